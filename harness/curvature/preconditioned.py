"""Preconditioned sharpness λ_max(P⁻¹H) for a diagonal preconditioner P (Adam's, Cohen et al. 2022).

P⁻¹H is not symmetric, but it is similar to the symmetric D^{-1/2} H D^{-1/2} with D = diag(P)
(P⁻¹H = D^{-1/2} (D^{-1/2} H D^{-1/2}) D^{1/2}), so both have the same eigenvalues and Lanczos runs on
the symmetric one. `adam_preconditioner` reads P from a torch Adam/AdamW's state: the P of the update
the optimizer is about to take, P = diag(√v̂ + ε) with v̂ = v_{t+1} / (1 − β₂^{t+1}) and
v_{t+1} = β₂ v_t + (1 − β₂) g_t² (torch's Adam denominator, from the gradient now in `.grad`).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor

from harness.curvature.hvp import HessianOperator


class PreconditionedHessianOperator:
    """D^{-1/2} H D^{-1/2} as a symmetric N x N operator; its eigenvalues are those of P⁻¹H, P = diag(D).

    Has the interface `top_eigenvalues` needs (`shape`, `dtype`, `device`, `@`, `matvec_count`,
    `to_scipy`); one product is one HVP of the wrapped operator.

    Args:
        hessian: a `HessianOperator` (or any operator with that interface).
        diagonal: (N,) entries of D, finite and > 0, in any float dtype; cast to the operator's.

    Raises:
        TypeError: `diagonal` is not a tensor.
        ValueError: `diagonal` has the wrong shape, or an entry that is not finite and positive.
    """

    def __init__(self, hessian: HessianOperator, diagonal: Tensor) -> None:
        n = hessian.shape[0]
        if not isinstance(diagonal, Tensor):
            raise TypeError(f"diagonal must be a tensor of shape ({n},), got {type(diagonal).__name__}")
        if diagonal.shape != (n,):
            raise ValueError(f"diagonal must have shape ({n},), got {tuple(diagonal.shape)}")
        d = diagonal.detach().to(device=hessian.device, dtype=hessian.dtype)
        if not (torch.isfinite(d).all() and (d > 0).all()):
            raise ValueError("diagonal must be finite and > 0 (a preconditioner P = diag(d))")
        self.hessian = hessian
        self._scale = d.rsqrt()  # (N,) D^{-1/2}

    @property
    def shape(self) -> tuple[int, int]:
        return self.hessian.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.hessian.dtype

    @property
    def device(self) -> torch.device:
        return self.hessian.device

    @property
    def matvec_count(self) -> int:
        return self.hessian.matvec_count

    def __matmul__(self, v: Tensor) -> Tensor:
        """D^{-1/2} H D^{-1/2} v for v of shape (N,) or (N, k); errors as `HessianOperator.__matmul__`."""
        if not isinstance(v, Tensor):
            raise TypeError(f"expected a tensor, got {type(v).__name__}")
        s = self._scale if v.dim() == 1 else self._scale[:, None]
        return s * (self.hessian @ (s * v))

    def to_scipy(self) -> LinearOperator:
        """This operator as a float64 `scipy.sparse.linalg.LinearOperator` (symmetric)."""

        def matmat(X: np.ndarray) -> np.ndarray:
            X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
            return (self @ X_t.to(device=self.device, dtype=self.dtype)).cpu().to(torch.float64).numpy()

        return LinearOperator(self.shape, matvec=matmat, rmatvec=matmat, matmat=matmat, dtype=np.float64)


def is_adam(optimizer: torch.optim.Optimizer) -> bool:
    """Whether `optimizer` is a torch Adam or AdamW (whose state gives `adam_preconditioner`)."""
    return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: Sequence[Tensor]) -> Tensor:
    """Diagonal of the P that `optimizer`'s next step divides by, flattened in `params` order.

    P = √v̂ + ε with v̂ = (β₂ v_t + (1 − β₂) g_t²) / (1 − β₂^{t+1}): v_t and t from the state (0 before the
    first step), g_t the `.grad` now present, i.e. the update's own preconditioner (torch's Adam).

    Args:
        optimizer: a torch Adam or AdamW holding exactly `params`, one (β₁, β₂) and ε for all groups.
        params: the parameters, in the Hessian operator's flattening order, each with `.grad` set.

    Returns:
        (N,) tensor in the parameters' dtype.

    Raises:
        TypeError: not an Adam/AdamW.
        ValueError: a parameter without `.grad`, or groups with different betas or eps.
    """
    if not is_adam(optimizer):
        raise TypeError(f"adam_preconditioner needs a torch Adam or AdamW, got {type(optimizer).__name__}")
    settings = {(tuple(g["betas"]), g["eps"]) for g in optimizer.param_groups}
    if len(settings) != 1:
        raise ValueError(f"the optimizer's groups must share betas and eps, got {sorted(settings)}")
    (_, beta2), eps = next(iter(settings))
    out = []
    with torch.no_grad():
        for p in params:
            if p.grad is None:
                raise ValueError("every parameter needs its gradient in .grad (call backward first)")
            state = optimizer.state.get(p, {})
            v = state.get("exp_avg_sq", torch.zeros_like(p))
            t = float(state["step"]) if "step" in state else 0.0
            v_next = beta2 * v + (1 - beta2) * p.grad.square()
            out.append((v_next / (1 - beta2 ** (t + 1))).sqrt().add(eps).reshape(-1))
    return torch.cat(out)
