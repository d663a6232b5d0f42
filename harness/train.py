"""Full-batch training with any torch optimizer, recording curvature as it goes.

The loop takes a built `torch.optim.Optimizer` (`OptimizerSpec.build`): plain GD with weight decay is
`torch.optim.SGD(lr, weight_decay=wd)`, i.e. w <- w - lr * (grad L(w) + wd * w) (weight decay is not
part of the loss, so sharpness is that of L alone, as in Lyu et al.); heavy ball, Nesterov, SAM and
IRE drop in unchanged. Every `measure_every` steps a row is added to a tidy table: loss, accuracy,
||grad L||^2, ||w||^2, the effective LR lr/||w||^2, lambda_max of the Hessian of L (Lanczos,
warm-started, with its residual), the spherical sharpness ||w||^2 * lambda_max, and lr * lambda_max
(= eta_eff * S_sph). Under Adam/AdamW a row also holds the preconditioned sharpness λ_max(P⁻¹H), P the
diagonal its next step divides by (Cohen et al. 2022; `harness.curvature.adam_preconditioner`), and
lr * that. Curvature probes never change parameters, buffers, gradients, optimizer state or any RNG that
training uses.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch

from harness.curvature import (
    HessianOperator,
    PreconditionedHessianOperator,
    adam_preconditioner,
    is_adam,
    top_eigenvalues,
)
from harness.losses import accuracy
from harness.optim import IRE, requires_closure
from harness.optim.base import FlatAmplifier

log = logging.getLogger(__name__)


@dataclass
class GDResult:
    table: pd.DataFrame          # one row per measurement
    angles: list[float]          # angle (radians) between consecutive iterates, every step
    diverged_at: int | None      # step at which the loss became non-finite, else None
    steps_run: int


def train_full_batch_gd(model: torch.nn.Module, loss_fn: Callable, x: torch.Tensor, y: torch.Tensor, *,
                        optimizer: torch.optim.Optimizer, steps: int, measure_every: int,
                        x_test: torch.Tensor | None = None, y_test: torch.Tensor | None = None,
                        lanczos_tol: float = 1e-3, bn_mode: str = "full-batch",
                        refresh: Callable[[torch.optim.Optimizer], None] | None = None,
                        progress: Callable[[int, int], None] = lambda s, t: None,
                        lanczos_stop: str = "residual", curvature_dtype: torch.dtype | None = None) -> GDResult:
    """Run full-batch training on (x, y) with `optimizer` and record the curvature trajectory.

    Args:
        model: trained in train mode on the whole batch (BatchNorm sees full-batch statistics).
        loss_fn: (logits, y) -> scalar mean loss.
        optimizer: a built optimizer over the model's trainable parameters, one lr for all groups
            (the recorded lr * lambda_max uses it); SAM-type optimizers get a closure.
        steps: number of optimizer steps.
        measure_every: record a row every this many steps (odd values avoid period-2 aliasing).
        bn_mode: BatchNorm mode of the Hessian; must match training ("full-batch" for full-batch GD).
        lanczos_stop, curvature_dtype: λ_max's stop ("residual" or "value") and the dtype of the operator
            copy it is solved on (None: the model's); see `harness.curvature.top_eigenvalues`.
        refresh: called with the optimizer before a step whenever an IRE-type optimizer's
            `should_refresh_mask()` is True; default for IRE / SAM-IRE: `refresh_mask` on the
            training batch (full-batch: no other data). Needed for `IREProjected`.

    Returns:
        GDResult. A non-finite loss stops the run and is recorded in diverged_at (never raised).

    Raises:
        ValueError: the optimizer's groups have different learning rates, or it does not hold
            exactly the model's trainable parameters, or it needs flat directions and no `refresh`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    _check_optimizer(optimizer, params, refresh)
    closure_step = requires_closure(optimizer)
    model.train()
    rows, angles, v0, v0_pre = [], [], None, None
    diverged_at = None
    for step in range(steps + 1):
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        if not torch.isfinite(loss):
            diverged_at = step
            log.info("diverged at step %d (loss %s)", step, loss.item())
            break
        measure_now = step % measure_every == 0 or step == steps
        if measure_now or not closure_step:
            loss.backward()  # .grad = grad L(w_t), without the weight-decay term
        if measure_now:
            lr = optimizer.param_groups[0]["lr"]
            with torch.no_grad():
                grad_sq = sum(p.grad.pow(2).sum() for p in params).item()
            op = HessianOperator(model, loss_fn, [(x, y)], params=names, bn_mode=bn_mode, dtype=curvature_dtype)
            row, v0 = _measure(op, params, lr, lanczos_tol, v0, lanczos_stop)
            if is_adam(optimizer):  # P from the state and the gradient just computed: this step's P
                row_pre, v0_pre = _measure_preconditioned(op, adam_preconditioner(optimizer, params), lr,
                                                          lanczos_tol, v0_pre, lanczos_stop)
                row.update(row_pre)
            row.update(step=step, loss=loss.item(), train_acc=accuracy(logits.detach(), y), grad_sq_norm=grad_sq)
            if x_test is not None:
                with torch.no_grad():
                    row["test_acc"] = accuracy(model(x_test), y_test)
            rows.append(row)
            progress(step, steps)
        if step == steps:
            break
        if isinstance(optimizer, FlatAmplifier) and optimizer.should_refresh_mask():
            if refresh is not None:
                refresh(optimizer)
            else:
                optimizer.refresh_mask(lambda: model(x))
        with torch.no_grad():
            before = torch.cat([p.reshape(-1) for p in params])
        if closure_step:
            optimizer.step(lambda: _backward(model, loss_fn, x, y))
        else:
            optimizer.step()
        with torch.no_grad():
            after = torch.cat([p.reshape(-1) for p in params])
            cos = torch.dot(before, after) / (before.norm() * after.norm())
            angles.append(math.acos(max(-1.0, min(1.0, cos.item()))))
    table = pd.DataFrame(rows)
    return GDResult(table=table, angles=angles, diverged_at=diverged_at,
                    steps_run=diverged_at if diverged_at is not None else steps)


def _backward(model, loss_fn, x, y) -> torch.Tensor:
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss


def _check_optimizer(opt: torch.optim.Optimizer, params: list[torch.Tensor], refresh) -> None:
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a built torch.optim.Optimizer (OptimizerSpec.build), "
                        f"got {type(opt).__name__}")
    lrs = {float(g["lr"]) for g in opt.param_groups}
    if len(lrs) != 1:
        raise ValueError(f"the optimizer's param groups must share one lr (lr * lambda_max is recorded), "
                         f"got {sorted(lrs)}")
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    if held != {id(p) for p in params}:
        raise ValueError("the optimizer must hold exactly the model's trainable parameters")
    if isinstance(opt, FlatAmplifier) and not isinstance(opt, IRE) and refresh is None:
        raise ValueError(f"{type(opt).__name__} needs its flat directions from the caller: pass refresh=")


def _measure(op, params, lr, tol, v0, stop="residual"):
    with torch.no_grad():
        sq_norm = sum(p.pow(2).sum() for p in params).item()
    # Lanczos stops on the residual ||Hv - λv|| <= tol·λ (or, stop="value", on the bound of λ's error),
    # checked after every HVP, so a warm start (the previous eigenvector) pays off without a small basis.
    res = top_eigenvalues(op, k=1, tol=tol, v0=v0, stop=stop)
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


def _measure_preconditioned(op, diagonal, lr, tol, v0, stop="residual"):
    """λ_max(P⁻¹H) on the same Hessian operator (the eigenvalue of D^{-1/2} H D^{-1/2}), warm-started."""
    res = top_eigenvalues(PreconditionedHessianOperator(op, diagonal), k=1, tol=tol, v0=v0, stop=stop)
    lam = res.eigenvalues[0]
    row = {"precond_lambda_max": lam, "precond_lambda_residual": res.residuals[0], "lr_precond_lambda_max": lr * lam}
    return row, res.eigenvectors[:, 0]
