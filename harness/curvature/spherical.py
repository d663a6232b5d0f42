"""Curvature of scale-invariant parameter groups (Lyu, Li, Arora 2022).

For a scale-invariant loss, L(c·w) = L(w) for c > 0, so ∇L(c·w) = ∇L(w)/c and
∇²L(c·w) = ∇²L(w)/c². Spherical sharpness S_sph(w) = λ_max(∇²L(w/‖w‖)) = ‖w‖²·λ_max(∇²L(w)),
and the effective learning rate is η/‖w‖², so η_eff·S_sph = η·λ_max(∇²L(w)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from harness.curvature.hvp import HessianOperator, LossFn, select_param_names
from harness.curvature.lanczos import top_eigenvalues

METHODS = ("rescale", "product")


@dataclass(frozen=True)
class SphericalSharpness:
    """Spherical sharpness of a parameter group.

    Attributes:
        value: S_sph = λ_max(∇²L(w/‖w‖)) ("rescale") or ‖w‖²·λ_max(∇²L(w)) ("product").
        raw_lambda_max: λ_max(∇²L(w)); measured for "product", value/‖w‖² for "rescale"
            (equal for a scale-invariant loss).
        sq_norm: ‖w‖² of the listed parameters, flattened together.
        residual: eigen-residual in the units of `value` (‖w‖²·‖Hv − λv‖ for "product"),
            so residual/value is the relative accuracy in both methods.
        eigenvector: (N,) unit top eigenvector; for a scale-invariant loss it is the same at w
            and w/‖w‖, so it warm-starts either method.
        method: "rescale" or "product".
    """

    value: float
    raw_lambda_max: float
    sq_norm: float
    residual: float
    eigenvector: Tensor
    method: str


@dataclass(frozen=True)
class ScaleInvarianceReport:
    """Result of a numerical scale-invariance check.

    Attributes:
        max_rel_dev: max of loss_rel_dev and grad_rel_dev.
        invariant: max_rel_dev <= rtol.
        loss_rel_dev: max over c of |L(c·w) − L(w)| / |L(w)|.
        grad_rel_dev: max over c of ‖c·∇L(c·w) − ∇L(w)‖ / ‖∇L(w)‖.
        rtol: the tolerance used.
    """

    max_rel_dev: float
    invariant: bool
    loss_rel_dev: float
    grad_rel_dev: float
    rtol: float


def effective_lr(lr: float, params: Iterable[Tensor]) -> float:
    """η_eff = lr / ‖w‖², w = all tensors in `params` flattened together.

    Args:
        lr: the learning rate η.
        params: the scale-invariant group's tensors (e.g. `[model[0].weight]`).

    Returns:
        The effective learning rate.

    Raises:
        TypeError: if `params` holds something other than tensors.
        ValueError: if there are no tensors or ‖w‖ = 0.
    """
    tensors = list(params)
    if not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError("params must be an iterable of tensors (e.g. [model[0].weight])")
    sq_norm = sum(float(t.detach().to(torch.float64).square().sum()) for t in tensors)
    if not tensors or sq_norm == 0:
        raise ValueError("effective_lr needs at least one tensor with nonzero norm")
    return lr / sq_norm


def _group(model: nn.Module, params: Sequence[str] | None) -> tuple[dict[str, Tensor], float]:
    """name -> detached value of the listed parameters, and their squared norm."""
    named = dict(model.named_parameters())
    w = {n: named[n].detach() for n in select_param_names(model, params)}
    sq_norm = sum(float(t.to(torch.float64).square().sum()) for t in w.values())
    if sq_norm == 0:
        raise ValueError("the listed parameters are all zero; the sphere w/‖w‖ is undefined")
    return w, sq_norm


def spherical_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[tuple[Tensor, Tensor]],
    bn_mode: str,
    *,
    params: Sequence[str] | None = None,
    method: str = "rescale",
    v0: Tensor | None = None,
    tol: float = 1e-4,
    stop: str = "residual",
    dtype: torch.dtype | None = None,
) -> SphericalSharpness:
    """Spherical sharpness of the listed (scale-invariant) parameters.

    "rescale" evaluates the Hessian at w/‖w‖ (by functional call; the model is not modified);
    "product" computes ‖w‖²·λ_max(∇²L(w)). They agree only for scale-invariant losses; use
    `check_scale_invariance` to verify that.

    Args:
        model, loss_fn, data, bn_mode, params: as for `HessianOperator`.
        method: "rescale" or "product".
        v0: warm start (a previous eigenvector).
        tol: relative residual tolerance of the eigensolver (see `top_eigenvalues`).
        stop: the eigensolver's stop, "residual" or "value" (see `top_eigenvalues`).
        dtype: solve on a copy of the operator in this dtype (see `top_hessian_eigenvalue`).

    Returns:
        A `SphericalSharpness`.

    Raises:
        ValueError: unknown method, all-zero parameters, or bad inputs (see `HessianOperator`).
        EigenNotConvergedError: Lanczos did not converge.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    w, sq_norm = _group(model, params)
    names = list(w)
    if method == "rescale":
        norm = math.sqrt(sq_norm)
        point = {n: t / norm for n, t in w.items()}
        op = HessianOperator(model, loss_fn, data, bn_mode, params=names, point=point, dtype=dtype)
        res = top_eigenvalues(op, k=1, tol=tol, v0=v0, stop=stop)
        value, raw, residual = res.eigenvalues[0], res.eigenvalues[0] / sq_norm, res.residuals[0]
    else:
        op = HessianOperator(model, loss_fn, data, bn_mode, params=names, dtype=dtype)
        res = top_eigenvalues(op, k=1, tol=tol, v0=v0, stop=stop)
        raw = res.eigenvalues[0]
        value, residual = sq_norm * raw, sq_norm * res.residuals[0]
    return SphericalSharpness(value, raw, sq_norm, residual, res.eigenvectors[:, 0], method)


def check_scale_invariance(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[tuple[Tensor, Tensor]],
    bn_mode: str,
    *,
    params: Sequence[str] | None = None,
    scales: Sequence[float] = (0.5, 2.0),
    rtol: float = 1e-6,
) -> ScaleInvarianceReport:
    """Numerically test L(c·w) = L(w) and ∇L(c·w) = ∇L(w)/c for each c in `scales`.

    Args:
        model, loss_fn, data, bn_mode, params: as for `HessianOperator`; the BatchNorm mode
            matters (running statistics in "eval" mode break invariance).
        scales: positive factors c to try.
        rtol: relative tolerance for `invariant`.

    Returns:
        A `ScaleInvarianceReport`.

    Raises:
        ValueError: empty or non-positive scales, negative rtol, or bad inputs.
    """
    if not scales or not all(c > 0 for c in scales):
        raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    w, _ = _group(model, params)
    names = list(w)
    base = HessianOperator(model, loss_fn, data, bn_mode, params=names)
    L0, g0 = base.loss(), base.gradient()
    loss_dev = grad_dev = 0.0
    for c in scales:
        op = HessianOperator(
            model, loss_fn, data, bn_mode, params=names, point={n: c * t for n, t in w.items()}
        )
        loss_dev = max(loss_dev, abs(op.loss() - L0) / max(abs(L0), 1e-300))
        g_dev = float((c * op.gradient() - g0).norm()) / max(float(g0.norm()), 1e-300)
        grad_dev = max(grad_dev, g_dev)
    dev = max(loss_dev, grad_dev)
    return ScaleInvarianceReport(dev, dev <= rtol, loss_dev, grad_dev, rtol)
