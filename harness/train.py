"""Full-batch gradient descent with weight decay, recording curvature as it goes.

w <- (1 - lr*wd) * w - lr * grad L(w)   (plain GD; weight decay is not part of the loss, so
                                         sharpness is that of L alone, as in Lyu et al.)
Every `measure_every` steps a row is added to a tidy table: loss, accuracy, ||w||^2, the effective
LR lr/||w||^2, lambda_max of the Hessian of L (Lanczos, warm-started, with its residual), the
spherical sharpness ||w||^2 * lambda_max, and lr * lambda_max (= eta_eff * S_sph). Curvature probes
never change parameters, buffers, or any RNG that training uses.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from harness.curvature import HessianOperator, top_eigenvalues
from harness.losses import accuracy

log = logging.getLogger(__name__)


@dataclass
class GDResult:
    table: pd.DataFrame          # one row per measurement
    angles: list[float]          # angle (radians) between consecutive iterates, every step
    diverged_at: int | None      # step at which the loss became non-finite, else None
    steps_run: int


def train_full_batch_gd(model: torch.nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *,
                        lr: float, weight_decay: float, steps: int, measure_every: int,
                        x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
                        lanczos_tol: float = 1e-3, bn_mode: str = "full-batch",
                        progress: Callable[[int, int], None] = lambda s, t: None) -> GDResult:
    """Run full-batch GD on (x, y) and record the curvature trajectory.

    Args:
        model: trained in train mode on the whole batch (BatchNorm sees full-batch statistics).
        loss_fn: (logits, y) -> scalar mean loss.
        lr, weight_decay: GD step size and decoupled-in-form weight decay (w *= 1 - lr*wd).
        steps: number of GD steps.
        measure_every: record a row every this many steps (odd values avoid period-2 aliasing).
        bn_mode: BatchNorm mode of the Hessian; must match training ("full-batch" for full-batch GD).

    Returns:
        GDResult. A non-finite loss stops the run and is recorded in diverged_at (never raised).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    model.train()
    rows, angles, v0 = [], [], None
    diverged_at = None
    for step in range(steps + 1):
        logits = model(x)
        loss = loss_fn(logits, y)
        if not torch.isfinite(loss):
            diverged_at = step
            log.info("diverged at step %d (loss %s)", step, loss.item())
            break
        if step % measure_every == 0 or step == steps:
            row, v0 = _measure(model, loss_fn, x, y, names, params, lr, lanczos_tol, bn_mode, v0)
            row.update(step=step, loss=loss.item(), train_acc=accuracy(logits.detach(), y))
            if x_test is not None:
                with torch.no_grad():
                    row["test_acc"] = accuracy(model(x_test), y_test)
            rows.append(row)
            progress(step, steps)
        if step == steps:
            break
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            before = torch.cat([p.reshape(-1) for p in params])
            for p, g in zip(params, grads):
                p.mul_(1 - lr * weight_decay).sub_(lr * g)
            after = torch.cat([p.reshape(-1) for p in params])
            cos = torch.dot(before, after) / (before.norm() * after.norm())
            angles.append(math.acos(max(-1.0, min(1.0, cos.item()))))
    table = pd.DataFrame(rows)
    return GDResult(table=table, angles=angles, diverged_at=diverged_at,
                    steps_run=diverged_at if diverged_at is not None else steps)


def _measure(model, loss_fn, x, y, names, params, lr, tol, bn_mode, v0):
    with torch.no_grad():
        sq_norm = sum(p.pow(2).sum() for p in params).item()
    op = HessianOperator(model, loss_fn, [(x, y)], params=names, bn_mode=bn_mode)
    # A small Krylov basis lets the warm start pay off (about 8 HVPs instead of 22 near a fixed point).
    res = top_eigenvalues(op, k=1, tol=tol, v0=v0, ncv=6)
    lam = res.eigenvalues[0]
    row = {
        "sq_norm": sq_norm,
        "eff_lr": lr / sq_norm,
        "lambda_max": lam,
        "lambda_residual": res.residuals[0],
        "spherical_sharpness": sq_norm * lam,
        "lr_lambda_max": lr * lam,
        "hvps": res.matvecs,
    }
    return row, res.eigenvectors[:, 0]
