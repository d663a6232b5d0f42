"""The catapult phase (Lewkowycz, Bahri, Dyer, Sohl-Dickstein, Gur-Ari 2020).

A wide net under MSE with full-batch GD at lr = k / lambda_0, lambda_0 the top Hessian eigenvalue at
init. The paper's three regimes: k < 2, lazy (the loss falls without a spike, the curvature barely moves);
2 < k < k_max, catapult (the loss first grows, then falls, and training ends at a sharpness below 2/lr);
k > k_max, divergence. Every arm starts from the same init (one seed = one init); the loss is recorded at
every step (cheap), lambda_max at init and at the end only (Lanczos).

Per arm ("<name>."): the peak of loss_t / loss_0 over steps t >= 1 (> 1: a spike), the final loss over the
initial, lr * lambda_max at the end (< 2: below the edge; nan when the arm diverged), lambda_max at the end
over lambda_0, and diverged (1 when the loss exceeded `divergence_factor` x loss_0 or became non-finite).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.curvature import HessianOperator, top_eigenvalues
from harness.data.datasets import DATASETS, check_data_source, load_dataset
from harness.errors import ConfigError
from harness.losses import LOSSES
from harness.models.factory import build_classifier
from harness.optim import OptimizerSpec

_NAME_OK = str.isidentifier


@dataclass(frozen=True)
class CatapultConfig:
    """A wide two-layer net, MSE, full-batch GD at lr = factor / lambda_0 per arm.

    Raises:
        ConfigError: no arms, bad names or factors, steps < 1, an unknown data set or loss.
    """

    arms: tuple[tuple[str, float], ...] = (("lazy", 1.0), ("catapult", 3.0), ("divergent", 24.0))
    width: int = 512
    activation: str = "relu"
    loss: str = "mse"             # 0.5 * sum over classes, averaged over examples (Cohen's convention)
    data: str = "digits"
    data_root: str = ""
    n_train: int = 200
    n_test: int = 50
    steps: int = 300
    divergence_factor: float = 1e6   # loss above this x loss_0 (or non-finite) counts as diverged
    lanczos_tol: float = 1e-4
    dtype: str = "float64"

    def __post_init__(self):
        if not self.arms or any(not (isinstance(a, tuple) and len(a) == 2 and isinstance(a[0], str)
                                     and _NAME_OK(a[0]) and a[1] > 0) for a in self.arms):
            raise ConfigError(f"arms must be (name, factor > 0) pairs with identifier names, got {self.arms!r:.120}")
        if len({a[0] for a in self.arms}) != len(self.arms):
            raise ConfigError(f"arm names must be unique, got {[a[0] for a in self.arms]}")
        if self.width < 1 or self.steps < 1 or self.n_train < 1 or self.n_test < 1:
            raise ConfigError("width, steps, n_train and n_test must be >= 1")
        check_bounds(self, positive=("divergence_factor", "lanczos_tol"))
        DATASETS.check(self.data)
        LOSSES.check(self.loss)
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def preflight(self) -> None:
        check_data_source(self.data, self.data_root)


def top_eigenvalue(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, tol: float) -> float:
    """lambda_max of the Hessian of the mean loss at the model's current parameters (Lanczos)."""
    op = HessianOperator(model, loss_fn, [(x, y)], bn_mode="full-batch")
    return float(top_eigenvalues(op, k=1, tol=tol).eigenvalues[0])


def run_arm(model: torch.nn.Module, loss_fn, x, y, lr: float, steps: int, divergence_factor: float,
            progress=lambda s, t: None) -> tuple[np.ndarray, bool]:
    """Full-batch GD at lr; the loss before every step and after the last. Stops at divergence.

    Returns:
        (losses, diverged): losses[t] is the loss at w_t (length steps + 1 unless it diverged first).
    """
    opt = OptimizerSpec("sgd", lr=lr).build(list(model.parameters()))
    losses = []
    for step in range(steps + 1):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        value = loss.item()
        losses.append(value)
        if not math.isfinite(value) or value > divergence_factor * losses[0]:
            return np.asarray(losses), True
        if step == steps:
            break
        loss.backward()
        opt.step()
        progress(step, steps)
    return np.asarray(losses), False


@experiment("catapult_phases", CatapultConfig,
            outputs=('lambda_0', '*.lr', '*.factor', '*.loss_peak_ratio', '*.loss_final_ratio',
                     '*.lr_lambda_max_final', '*.lambda_final_over_initial', '*.diverged', '*.steps_run',
                     'null_lazy_lambda_final_over_initial'),
            curves={'losses': ('step', '*')})
def catapult_phases(cfg: CatapultConfig, ctx: RunContext) -> Measurement:
    """Each arm from the same init at lr = factor / lambda_0; loss every step, lambda_max at the ends."""
    dtype = getattr(torch, cfg.dtype)
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root, dtype=dtype)
    x, y = split.x_train.to(ctx.device), split.y_train.to(ctx.device)
    loss_fn = LOSSES.get(cfg.loss)
    steps = ctx.steps(cfg.steps)

    def fresh() -> torch.nn.Module:
        return build_classifier("plain_mlp", split, widths=(cfg.width,), activation=cfg.activation,
                                seed=ctx.seed).to(dtype=dtype, device=ctx.device)

    lam0 = top_eigenvalue(fresh(), loss_fn, x, y, cfg.lanczos_tol)
    scalars, curves, notes = {"lambda_0": lam0}, {}, []
    for name, factor in cfg.arms:
        model, lr = fresh(), factor / lam0
        losses, diverged = run_arm(model, loss_fn, x, y, lr, steps, cfg.divergence_factor, ctx.progress)
        lam_end = math.nan if diverged else top_eigenvalue(model, loss_fn, x, y, cfg.lanczos_tol)
        scalars.update({f"{name}.lr": lr, f"{name}.factor": factor,
                        f"{name}.loss_peak_ratio": float(np.max(losses[1:]) / losses[0]) if len(losses) > 1
                        else math.inf,
                        f"{name}.loss_final_ratio": float(losses[-1] / losses[0]),
                        f"{name}.lr_lambda_max_final": lr * lam_end,
                        f"{name}.lambda_final_over_initial": lam_end / lam0,
                        f"{name}.diverged": float(diverged), f"{name}.steps_run": float(len(losses) - 1)})
        curves[name] = losses
        if diverged:
            notes.append(f"{name} (lr = {factor:g} / lambda_0): diverged at step {len(losses) - 1}")
    # What "no effect" reads for the curvature: the lazy arm's lambda_max ratio (the paper: ~1, frozen kernel).
    first = cfg.arms[0][0]
    scalars["null_lazy_lambda_final_over_initial"] = scalars[f"{first}.lambda_final_over_initial"]
    table = pd.DataFrame({"step": np.arange(steps + 1)})
    for name, losses in curves.items():
        table[name] = np.pad(losses, (0, steps + 1 - len(losses)), constant_values=np.nan)
    n_params = sum(p.numel() for p in fresh().parameters())
    scale = {"model": f"plain_mlp ({cfg.width},) {cfg.activation}", "trainable_params": n_params, "data": cfg.data,
             "n_train": len(y), "steps": steps, "dtype": cfg.dtype, "data_provenance": split.provenance}
    return Measurement(scalars=scalars, curves={"losses": table}, scale=scale, notes=notes)
