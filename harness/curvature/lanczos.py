"""Top Hessian eigenvalues by Lanczos (ARPACK `eigsh`, which="LA") on a `HessianOperator`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from harness.curvature.hvp import HessianOperator, LossFn
from harness.errors import HarnessError

logger = logging.getLogger(__name__)

# Below this size the explicit matrix (N HVPs) plus a dense eigh is cheaper and more robust.
DENSE_MAX_N = 64


class EigenNotConvergedError(HarnessError):
    """Lanczos did not converge within its iteration or matvec budget.

    Attributes:
        partial: the pairs ARPACK did converge (an `EigenResult`), or None if there are none.
    """

    def __init__(self, message: str, partial: EigenResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class EigenResult:
    """Top eigenpairs of a Hessian operator.

    Attributes:
        eigenvalues: the k largest (algebraic) eigenvalues, descending.
        eigenvectors: (N, k) unit eigenvectors in the operator's dtype, column j for eigenvalue j.
        residuals: ||H v_j - λ_j v_j|| for each pair, from a fresh HVP.
        matvecs: HVPs used in total, including the k residual HVPs.
    """

    eigenvalues: tuple[float, ...]
    eigenvectors: Tensor
    residuals: tuple[float, ...]
    matvecs: int


class _BudgetExhausted(Exception):
    pass


def _start_vector(v0: Tensor, n: int) -> np.ndarray:
    """A (N,) float64 start vector; a (N, j) block is summed column-wise after normalising."""
    if not isinstance(v0, Tensor) or v0.dim() not in (1, 2) or v0.shape[0] != n:
        shape = tuple(v0.shape) if isinstance(v0, Tensor) else type(v0).__name__
        raise ValueError(f"v0 must be a tensor of shape ({n},) or ({n}, j), got {shape}")
    v = v0.detach().cpu().to(torch.float64)
    if v.dim() == 2:
        v = (v / v.norm(dim=0).clamp_min(1e-300)).sum(dim=1)
    if not torch.isfinite(v).all() or v.norm() == 0:
        raise ValueError("v0 must be finite and nonzero")
    return (v / v.norm()).numpy()


def _finish(op: HessianOperator, vals: np.ndarray, vecs: np.ndarray, start: int) -> EigenResult:
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    V = torch.from_numpy(np.ascontiguousarray(vecs)).to(device=op.device, dtype=op.dtype)  # (N, k)
    lam = torch.tensor(vals.copy(), device=op.device, dtype=op.dtype)  # (k,)
    residuals = (op @ V - V * lam).norm(dim=0)  # (k,)
    return EigenResult(
        eigenvalues=tuple(float(x) for x in vals),
        eigenvectors=V,
        residuals=tuple(float(r) for r in residuals),
        matvecs=op.matvec_count - start,
    )


def top_eigenvalues(
    op: HessianOperator,
    k: int = 1,
    tol: float = 1e-4,
    v0: Tensor | None = None,
    max_matvecs: int | None = None,
    *,
    ncv: int | None = None,
    seed: int = 0,
) -> EigenResult:
    """The k largest (algebraic, not magnitude) eigenvalues of a symmetric operator.

    Uses `scipy.sparse.linalg.eigsh(which="LA")` on `op.to_scipy()`. For N <= 64 or k >= N - 1
    it instead builds the explicit matrix from N HVPs and calls a dense `eigh` (v0 is ignored).

    Args:
        op: a `HessianOperator` (or any object with `shape`, `dtype`, `device`, `@`,
            `matvec_count` and `to_scipy()`).
        k: number of eigenpairs, 1 <= k <= N.
        tol: ARPACK's relative accuracy for the Ritz values (0 means machine precision).
        v0: warm start, e.g. a previous `EigenResult.eigenvectors` (N,) or (N, j); a block is
            combined into one start vector. Without it, the start is a Gaussian vector from a
            `torch.Generator` seeded with `seed` (not ARPACK's own random start, which changes
            from call to call), so repeated calls give identical results.
        max_matvecs: optional cap on the HVPs ARPACK may use (residual HVPs not counted).
        ncv: Lanczos basis size (scipy's default min(N, max(2k + 1, 20)) when None). ARPACK
            fills the whole basis before its first convergence test, so a warm start only
            saves HVPs with a small basis (e.g. ncv=6 for k=1).
        seed: seed of the cold-start vector; the global RNG is never used.

    Returns:
        An `EigenResult`; check `residuals` for the achieved accuracy.

    Raises:
        ValueError: bad k, tol, v0 or max_matvecs.
        EigenNotConvergedError: ARPACK did not converge or `max_matvecs` was reached; the
            error's `partial` holds the converged pairs, if any (no best-guess is returned).
    """
    n = op.shape[0]
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}], got {k!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if max_matvecs is not None and max_matvecs < 1:
        raise ValueError(f"max_matvecs must be a positive int or None, got {max_matvecs!r}")
    if ncv is not None and not (isinstance(ncv, int) and k < ncv):
        raise ValueError(f"ncv must be an int > k = {k} (or None), got {ncv!r}")
    start = op.matvec_count
    if n <= DENSE_MAX_N or k >= n - 1:
        logger.debug("dense eigh fallback for N=%d, k=%d", n, k)
        eye = torch.eye(n, device=op.device, dtype=op.dtype)
        H = (op @ eye).cpu().to(torch.float64)  # (N, N)
        vals, vecs = torch.linalg.eigh((H + H.T) / 2)
        return _finish(op, vals[-k:].numpy(), vecs[:, -k:].numpy(), start)

    A = op.to_scipy()
    if max_matvecs is not None:
        inner = A

        def capped(X: np.ndarray) -> np.ndarray:
            if op.matvec_count - start + (X.shape[1] if X.ndim == 2 else 1) > max_matvecs:
                raise _BudgetExhausted
            return inner.matmat(X) if X.ndim == 2 else inner.matvec(X)

        A = LinearOperator(A.shape, matvec=capped, matmat=capped, dtype=np.float64)
    if v0 is None:
        v0 = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x0 = _start_vector(v0, n)
    try:
        vals, vecs = eigsh(A, k=k, which="LA", tol=tol, v0=x0, ncv=None if ncv is None else min(ncv, n))
    except _BudgetExhausted:
        raise EigenNotConvergedError(
            f"Lanczos used its budget of {max_matvecs} HVPs without converging (tol={tol}); "
            "raise max_matvecs or tol"
        ) from None
    except ArpackNoConvergence as e:
        partial = None
        if len(e.eigenvalues) > 0:
            partial = _finish(op, np.asarray(e.eigenvalues), np.asarray(e.eigenvectors), start)
        raise EigenNotConvergedError(
            f"ARPACK converged {len(e.eigenvalues)} of {k} eigenpairs (tol={tol}); raise tol",
            partial,
        ) from e
    result = _finish(op, vals, vecs, start)
    logger.debug("eigsh k=%d tol=%g: %d HVPs", k, tol, result.matvecs)
    return result


def top_hessian_eigenvalue(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[tuple[Tensor, Tensor]],
    bn_mode: str,
    *,
    params: Sequence[str] | None = None,
    v0: Tensor | None = None,
    tol: float = 1e-4,
    ncv: int | None = None,
) -> EigenResult:
    """λ_max of the Hessian of the mean loss (k = 1); see `HessianOperator` and `top_eigenvalues`.

    Args:
        model, loss_fn, data, bn_mode, params: as for `HessianOperator`.
        v0: warm start (a previous eigenvector).
        tol: ARPACK relative tolerance.
        ncv: Lanczos basis size (see `top_eigenvalues`).

    Returns:
        An `EigenResult` with one eigenpair.

    Raises:
        ValueError, TypeError: bad inputs (see `HessianOperator`).
        EigenNotConvergedError: Lanczos did not converge.
    """
    op = HessianOperator(model, loss_fn, data, bn_mode, params=params)
    return top_eigenvalues(op, k=1, tol=tol, v0=v0, ncv=ncv)
