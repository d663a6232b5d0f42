"""Ideal IRE: the amplification projects Δ onto flat Hessian eigen-directions (see `base.py`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from harness.optim.base import FlatAmplifier


class IREProjected(FlatAmplifier):
    """Ideal IRE: θ ← θ′ + κ_t P Δ, P = U Uᵀ the projector onto flat Hessian eigen-directions.

    For small models and toy losses (Δ is flattened over all parameters). The flat directions come from
    a callable, e.g. `lambda: flat_projection_from_hessian(H_at_theta(), num_flat=r)` (a basis U) or a
    toy's closed-form projector P, refreshed on the same schedule as IRE's mask (default every step).

    Args:
        base_optimizer: a constructed optimizer; it keeps its own state.
        kappa: amplification κ ≥ 0.
        mask_every: refresh period of the flat directions, counted from warmup_steps.
        warmup_steps: plain base steps before IRE starts.
        kappa_decay_with_lr: κ_t = κ · lr_t / lr_max; needs a single param group (P mixes groups).
        flat_directions: what `refresh_mask`'s callable returns: "basis" (U, N × r, orthonormal
            columns) or "projector" (P, N × N, symmetric and idempotent).

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if an argument is out of range, or kappa decay is asked for with several groups.
    """

    def __init__(self, base_optimizer: Optimizer, *, kappa: float, mask_every: int = 1, warmup_steps: int = 0,
                 kappa_decay_with_lr: bool = False, flat_directions: str = "basis") -> None:
        super().__init__(base_optimizer, kappa, mask_every, warmup_steps, kappa_decay_with_lr)
        if kappa_decay_with_lr and len(self.param_groups) > 1:
            raise ValueError("IREProjected with kappa_decay_with_lr needs a single param group")
        if flat_directions not in ("basis", "projector"):
            raise ValueError(f'flat_directions must be "basis" or "projector", got {flat_directions!r}')
        self.flat_directions = flat_directions
        self._basis: Tensor | None = None  # (N, r); a projector is stored through its basis

    def refresh_mask(self, flat_fn: Callable[[], Tensor]) -> None:
        """Recompute the flat directions at the current parameters.

        Args:
            flat_fn: returns U (N, r) or P (N, N) as set by `flat_directions`, N the total parameter
                count, coordinates in param_groups order.

        Raises:
            ValueError: if U is not (N, r) with orthonormal columns, or P not an (N, N) projector.
        """
        M = flat_fn()
        n = sum(p.numel() for p in self._params())
        projector = self.flat_directions == "projector"
        shape_ok = isinstance(M, Tensor) and M.dim() == 2 and M.shape[0] == n
        if not (shape_ok and (M.shape[1] == n or not projector)):
            got = tuple(M.shape) if isinstance(M, Tensor) else type(M).__name__
            want = f"({n}, {n})" if projector else f"({n}, r)"
            raise ValueError(f"the {self.flat_directions} must have shape {want}, got {got}")
        tol = 1e-8 if M.dtype == torch.float64 else 1e-4
        if projector:
            if not (torch.allclose(M, M.T, atol=tol) and torch.allclose(M @ M, M, atol=tol)):
                raise ValueError("P must be an orthogonal projector (P = P.T = P @ P)")
            eigenvalues, eigenvectors = torch.linalg.eigh((M + M.T) / 2)  # eigenvalues are 0 or 1
            M = eigenvectors[:, eigenvalues > 0.5]  # (N, r) basis of the range of P
        if not torch.allclose(M.T @ M, torch.eye(M.shape[1], dtype=M.dtype, device=M.device), atol=tol):
            raise ValueError("U needs orthonormal columns (U.T @ U = I); see flat_projection_from_hessian")
        self._basis = M.detach().clone()

    def flat_fraction(self) -> float:
        """r / N for the current basis (0.0 before the first refresh)."""
        return 0.0 if self._basis is None else self._basis.shape[1] / self._basis.shape[0]

    def _has_flat(self) -> bool:
        return self._basis is not None

    def _amplify(self, params: list[Tensor], deltas: list[Tensor], kappas: list[float]) -> None:
        delta = torch.cat([d.reshape(-1) for d in deltas])  # (N,)
        U = self._basis.to(delta.dtype)  # (N, r)
        projected = (U @ (U.T @ delta)).split([d.numel() for d in deltas])  # P Δ, split per parameter
        for p, pd, kappa in zip(params, projected, kappas, strict=True):
            if kappa != 0:
                p.add_(pd.view_as(p), alpha=kappa)

    def _hyper(self) -> dict[str, Any]:
        return super()._hyper() | {"flat_directions": self.flat_directions}

    def _extra_state(self) -> dict[str, Any]:
        return {"basis": self._basis}

    def _load_extra_state(self, ire: dict[str, Any]) -> None:
        n = sum(p.numel() for p in self._params())
        if ire["basis"] is not None and ire["basis"].shape[0] != n:
            raise ValueError(f"the saved basis has {ire['basis'].shape[0]} rows, the parameters {n}")
        self._basis = None if ire["basis"] is None else ire["basis"].clone()
