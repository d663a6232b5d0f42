"""The EoS claims' nets, built from the claim files' own tier configs, so a benchmark cannot drift from them.

`claim_net(cfg)` builds the model and data exactly as the experiment's arm does (same data loader, model
factory, dtype, seed 0); `claim_trajectory(cfg, points)` runs the claim's full-batch GD (the config's own
optimizer spec and loss) and keeps the parameters at `points` measurement points and at the measurement
before each (whose eigenvector is the claim's warm start there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.curvature import HessianOperator
from harness.data.datasets import load_dataset
from harness.losses import LOSSES
from harness.models.factory import build_classifier, takes_images


@dataclass
class ClaimNet:
    model: torch.nn.Module
    loss_fn: Callable
    x: torch.Tensor  # (n_train, ...) the claim's full batch
    y: torch.Tensor  # (n_train,)
    cfg: object

    @property
    def params(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def gradient(self) -> tuple[torch.Tensor, ...]:
        """What one training step computes: the loss and its gradient on the full batch."""
        return torch.autograd.grad(self.loss_fn(self.model(self.x), self.y), self.params)

    def operator(self, point=None, dtype: torch.dtype | None = None) -> HessianOperator:
        """The operator the claim builds at a measurement (full-batch BatchNorm), or its copy in dtype."""
        return HessianOperator(self.model, self.loss_fn, [(self.x, self.y)], "full-batch", point=point,
                               dtype=dtype)


def claim_net(cfg, seed: int = 0) -> ClaimNet:
    """The model, loss and training batch of a GDConfig's arm (harness.experiments.eos._run_arm)."""
    dtype = getattr(torch, cfg.dtype)
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root, dtype=dtype,
                         images=takes_images(cfg.model))
    model = build_classifier(cfg.model, split, widths=cfg.widths, activation=cfg.activation,
                             bn_eps=cfg.bn_eps, seed=seed, pool=cfg.pool).to(dtype=dtype)
    if cfg.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.mul_(cfg.init_scale)
    return ClaimNet(model, LOSSES.get(cfg.loss), split.x_train, split.y_train, cfg)


def measurement_points(cfg, points: int) -> list[int]:
    """`points` measurement indices (>= 1) spread evenly over the config's measurements."""
    last = cfg.steps // cfg.measure_every
    return sorted({max(1, round(1 + j * (last - 1) / max(1, points - 1))) for j in range(points)})


def claim_trajectory(net: ClaimNet, points: list[int]) -> dict[int, dict[str, torch.Tensor]]:
    """Measurement index -> parameters, for every index in `points` and the one before each (GD as the
    claim runs it: the config's optimizer on the full batch; the model is left at the last point)."""
    cfg, model = net.cfg, net.model
    want = set(points) | {m - 1 for m in points}
    optimizer = cfg.optim.build(net.params, seed=0)
    model.train()
    snaps = {}
    for step in range(cfg.measure_every * max(points) + 1):
        if step % cfg.measure_every == 0 and step // cfg.measure_every in want:
            snaps[step // cfg.measure_every] = {n: p.detach().clone() for n, p in model.named_parameters()
                                                if p.requires_grad}
        optimizer.zero_grad()
        net.loss_fn(model(net.x), net.y).backward()
        optimizer.step()
    return snaps
