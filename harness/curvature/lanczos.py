"""Top Hessian eigenvalues of a `HessianOperator`: Lanczos with full reorthogonalization.

The default solver ("lanczos", `harness.curvature.krylov`) keeps every basis vector V and its HVP
W = H V, takes Ritz pairs of V^T W and stops when each of the k wanted pairs has a true residual
||H y - θ y|| <= tol · |θ| (computed from W, so checking costs no HVP); a full basis is thick-
restarted. ARPACK's `eigsh(which="LA")` stays available as method="arpack".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import Tensor, nn

from harness.curvature.hvp import HessianOperator, LossFn
from harness.curvature.krylov import effective_tol, lanczos
from harness.errors import NumericalError

logger = logging.getLogger(__name__)

# Below this size the explicit matrix (N HVPs) plus a dense eigh is cheaper and more robust.
DENSE_MAX_N = 64
METHODS = ("lanczos", "arpack")
STOPS = ("residual", "value")


class EigenNotConvergedError(NumericalError):
    """The eigensolver did not converge within its iteration or matvec budget (and its retry).

    A numerical failure of that seed, not bad input (`harness.errors.NumericalError`).

    Attributes:
        partial: the pairs that did converge (an `EigenResult`), or None if there are none.
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
        residuals: ||H v_j - λ_j v_j|| for each pair (Lanczos: from the stored HVPs of the basis;
            ARPACK and the dense path: from a fresh HVP).
        matvecs: HVPs used in total (ARPACK and the dense path: including the k residual HVPs).
        error_bounds: bound on |λ_j - true eigenvalue| per pair that the stop tested: the residual
            (Weyl), or with stop="value" min(r, r² / gap) (Kato-Temple, gap from the Ritz values).
            Empty where the path computes none (ARPACK, dense).
    """

    eigenvalues: tuple[float, ...]
    eigenvectors: Tensor
    residuals: tuple[float, ...]
    matvecs: int
    error_bounds: tuple[float, ...] = ()


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


def _check_args(n: int, k: int, tol: float, max_matvecs: int | None, ncv: int | None, method: str,
                stop: str) -> None:
    if stop not in STOPS:
        raise ValueError(f"stop must be one of {STOPS}, got {stop!r}")
    if stop != "residual" and method != "lanczos":
        raise ValueError(f"stop={stop!r} needs method='lanczos' (ARPACK stops on its own residual test)")
    if not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"k must be an int in [1, {n}], got {k!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    if max_matvecs is not None and max_matvecs < 1:
        raise ValueError(f"max_matvecs must be a positive int or None, got {max_matvecs!r}")
    if ncv is not None and not (isinstance(ncv, int) and k < ncv):
        raise ValueError(f"ncv must be an int > k = {k} (or None), got {ncv!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def top_eigenvalues(
    op: HessianOperator,
    k: int = 1,
    tol: float = 1e-4,
    v0: Tensor | None = None,
    max_matvecs: int | None = None,
    *,
    ncv: int | None = None,
    seed: int = 0,
    method: str = "lanczos",
    stop: str = "residual",
) -> EigenResult:
    """The k largest (algebraic, not magnitude) eigenvalues of a symmetric operator.

    method="lanczos" (default): Lanczos with full reorthogonalization (`harness.curvature.krylov`),
    stopping (stop="residual", default) when every pair has ||H v - λ v|| <= tol · |λ|, so
    `residuals` are <= tol · |λ| on return; stop="value" stops when the eigenvalue error bound
    min(r, r² / gap) <= tol · |λ| (`error_bounds`), which for the same accuracy of λ takes fewer HVPs
    (the residual is then about sqrt(tol · gap) and is reported as found). If a run ends unconverged within its budget, it is retried once from a fresh random
    start with a twice larger basis before `EigenNotConvergedError` is raised.
    method="arpack": `scipy.sparse.linalg.eigsh(which="LA")` on `op.to_scipy()` (tol is ARPACK's).
    For N <= 64 or k >= N - 1 both build the explicit matrix from N HVPs and call a dense `eigh`
    (v0 is ignored).

    Args:
        op: a `HessianOperator` (or any object with `shape`, `dtype`, `device`, `@`,
            `matvec_count` and `to_scipy()`).
        k: number of eigenpairs, 1 <= k <= N.
        tol: relative residual tolerance (0 means a small multiple of machine precision).
        v0: warm start, e.g. a previous `EigenResult.eigenvectors` (N,) or (N, j); a block is
            combined into one start vector. Without it, the start is a Gaussian vector from a
            `torch.Generator` seeded with `seed`, so repeated calls give identical results.
        max_matvecs: optional cap on the HVPs (ARPACK: residual HVPs not counted).
        ncv: basis size. Lanczos: thick restart when the basis holds ncv vectors (default
            min(N, max(2k + 20, 40))). ARPACK: its ncv (scipy's default when None; ARPACK fills
            the whole basis before its first test, so only a small ncv lets a warm start pay).
        seed: seed of the cold-start vector; the global RNG is never used.
        method: "lanczos" or "arpack".
        stop: "residual" or "value" (Lanczos only), see above.

    Returns:
        An `EigenResult`; `residuals` and `error_bounds` give the achieved accuracy.

    Raises:
        ValueError: bad k, tol, v0, max_matvecs, ncv, method or stop.
        EigenNotConvergedError: no convergence (after the retry) or `max_matvecs` was reached;
            the error's `partial` holds the converged pairs, if any (no best-guess is returned).
    """
    n = op.shape[0]
    _check_args(n, k, tol, max_matvecs, ncv, method, stop)
    start = op.matvec_count
    if n <= DENSE_MAX_N or k >= n - 1:
        logger.debug("dense eigh fallback for N=%d, k=%d", n, k)
        eye = torch.eye(n, device=op.device, dtype=op.dtype)
        H = (op @ eye).cpu().to(torch.float64)  # (N, N)
        vals, vecs = torch.linalg.eigh((H + H.T) / 2)
        return _finish(op, vals[-k:].numpy(), vecs[:, -k:].numpy(), start)
    if v0 is None:
        v0 = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x0 = _start_vector(v0, n)
    if method == "arpack":
        return _arpack(op, k, tol, x0, max_matvecs, ncv, start)
    return _lanczos(op, k, tol, x0, max_matvecs, ncv, seed, start, stop)


def _lanczos(op, k: int, tol: float, x0: np.ndarray, max_matvecs: int | None, ncv: int | None,
             seed: int, start: int, stop: str) -> EigenResult:
    n = op.shape[0]
    tol_eff = effective_tol(tol, op.dtype)
    basis = min(n, ncv if ncv is not None else max(2 * k + 20, 40))
    generator = torch.Generator().manual_seed(seed + 1)
    start_vec = torch.from_numpy(x0).to(device=op.device, dtype=op.dtype)
    out = None
    for _ in range(2):  # one retry
        # without a cap, each attempt may use 20 basis fills (ARPACK's scale: maxiter = 10 N restarts)
        left = max_matvecs - (op.matvec_count - start) if max_matvecs is not None else 20 * basis
        if left < 1:
            break
        out = lanczos(op, k, tol_eff, start_vec, max_basis=basis, max_matvecs=left, generator=generator,
                      stop=stop)
        if bool(out.converged.all()):
            break
        # retry: a fresh random start (the warm start may be stuck near a wrong pair), larger basis
        logger.info("Lanczos unconverged after %d HVPs (k=%d, tol=%g, basis %d); retrying cold",
                    out.matvecs, k, tol, basis)
        basis = min(n, 2 * basis)
        start_vec = torch.randn(n, generator=generator, dtype=torch.float64).to(device=op.device, dtype=op.dtype)
    used = op.matvec_count - start
    result = EigenResult(
        eigenvalues=tuple(float(x) for x in out.values),
        eigenvectors=out.vectors,
        residuals=tuple(float(r) for r in out.residuals),
        matvecs=used,
        error_bounds=tuple(float(b) for b in out.bounds),
    )
    if not bool(out.converged.all()):
        done = [j for j in range(len(out.values)) if out.converged[j]]
        partial = None
        if done and done == list(range(len(done))):  # the top pairs converged
            partial = EigenResult(result.eigenvalues[: len(done)], out.vectors[:, : len(done)],
                                  result.residuals[: len(done)], used, result.error_bounds[: len(done)])
        worst = max(float(r / abs(t)) if t != 0 else math.inf for r, t in zip(out.bounds, out.values))
        cap = f"its budget of {max_matvecs} HVPs" if max_matvecs is not None else f"{used} HVPs and a retry"
        raise EigenNotConvergedError(
            f"Lanczos used {cap} without converging (tol={tol}, worst relative residual {worst:.2g}); "
            "raise max_matvecs or tol", partial)
    logger.debug("lanczos k=%d tol=%g: %d HVPs", k, tol, used)
    return result


def _arpack(op, k: int, tol: float, x0: np.ndarray, max_matvecs: int | None, ncv: int | None,
            start: int) -> EigenResult:
    n = op.shape[0]
    A = op.to_scipy()
    if max_matvecs is not None:
        inner = A

        def capped(X: np.ndarray) -> np.ndarray:
            if op.matvec_count - start + (X.shape[1] if X.ndim == 2 else 1) > max_matvecs:
                raise _BudgetExhausted
            return inner.matmat(X) if X.ndim == 2 else inner.matvec(X)

        A = LinearOperator(A.shape, matvec=capped, matmat=capped, dtype=np.float64)
    try:
        vals, vecs = eigsh(A, k=k, which="LA", tol=tol, v0=x0, ncv=None if ncv is None else min(ncv, n))
    except _BudgetExhausted:
        raise EigenNotConvergedError(
            f"ARPACK used its budget of {max_matvecs} HVPs without converging (tol={tol}); "
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
    stop: str = "residual",
    dtype: torch.dtype | None = None,
) -> EigenResult:
    """λ_max of the Hessian of the mean loss (k = 1); see `HessianOperator` and `top_eigenvalues`.

    Args:
        model, loss_fn, data, bn_mode, params: as for `HessianOperator`.
        v0: warm start (a previous eigenvector).
        tol: relative residual tolerance (see `top_eigenvalues`).
        ncv: basis size (see `top_eigenvalues`).
        stop: "residual" or "value" (see `top_eigenvalues`).
        dtype: solve on a copy of the operator in this dtype (e.g. torch.float32 for a float64
            model: about half the cost per HVP); eigenvectors come back in it. None: the model's.

    Returns:
        An `EigenResult` with one eigenpair.

    Raises:
        ValueError, TypeError: bad inputs (see `HessianOperator`).
        EigenNotConvergedError: Lanczos did not converge.
    """
    op = HessianOperator(model, loss_fn, data, bn_mode, params=params, dtype=dtype)
    return top_eigenvalues(op, k=1, tol=tol, v0=v0, ncv=ncv, stop=stop)
