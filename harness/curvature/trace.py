"""Stochastic trace estimators: Hutchinson and Hutch++ (Meyer, Musco, Musco, Woodruff 2021).

Probes are Rademacher vectors drawn only from the caller's `torch.Generator`, never the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.curvature.hvp import HessianOperator

# Probes are applied in blocks of this many columns to bound memory at N x _BLOCK.
_BLOCK = 16


@dataclass(frozen=True)
class TraceEstimate:
    """A trace estimate.

    Attributes:
        estimate: the estimated trace.
        std_error: standard error of the stochastic (Hutchinson) part: sample std / sqrt(m);
            inf when it rests on a single sample.
        num_samples: number of Hutchinson probes in the stochastic part.
        matvecs: HVPs used.
    """

    estimate: float
    std_error: float
    num_samples: int
    matvecs: int


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")


def _rademacher(op: HessianOperator, m: int, generator: torch.Generator) -> Tensor:
    """(N, m) matrix of ±1 in the operator's dtype, drawn from `generator` on its own device."""
    bits = torch.randint(0, 2, (op.shape[0], m), generator=generator, device=generator.device)
    return (2 * bits - 1).to(device=op.device, dtype=op.dtype)


def _quadratic_forms(op: HessianOperator, m: int, generator: torch.Generator, Q: Tensor | None) -> Tensor:
    """(m,) samples z^T P H P z with P = I - Q Q^T (P = I when Q is None)."""
    samples = []
    for start in range(0, m, _BLOCK):
        Z = _rademacher(op, min(_BLOCK, m - start), generator)  # (N, b)
        if Q is not None:
            Z = Z - Q @ (Q.T @ Z)
        samples.append((Z * (op @ Z)).sum(dim=0))
    return torch.cat(samples).to(torch.float64)


def _std_error(samples: Tensor) -> float:
    if len(samples) < 2:
        return math.inf
    return float(samples.std(correction=1) / math.sqrt(len(samples)))


def hutchinson_trace(op: HessianOperator, num_samples: int, generator: torch.Generator) -> TraceEstimate:
    """Hutchinson's estimate tr(H) ≈ (1/m) Σ z_i^T H z_i with Rademacher z_i.

    Args:
        op: a symmetric operator (`shape`, `dtype`, `device`, `@`).
        num_samples: number of probes m >= 1 (= HVPs).
        generator: source of the probes.

    Returns:
        A `TraceEstimate`; std_error = sample std / sqrt(m).

    Raises:
        ValueError: num_samples < 1.
        TypeError: generator is not a torch.Generator.
    """
    _check_generator(generator)
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
    samples = _quadratic_forms(op, num_samples, generator, None)
    return TraceEstimate(float(samples.mean()), _std_error(samples), num_samples, num_samples)


def hutchpp_trace(op: HessianOperator, num_matvecs: int, generator: torch.Generator) -> TraceEstimate:
    """Hutch++: exact trace on a sketched top subspace plus Hutchinson on its complement.

    With s = num_matvecs // 3 sketch probes S and m = num_matvecs - 2s Hutchinson probes G
    (Meyer et al. 2021, Alg. 1): Q = orth(H S), estimate = tr(Q^T H Q) + (1/m) Σ g^T P H P g,
    P = I - Q Q^T. When s >= N, Q spans everything and the estimate is exact up to rounding.

    Args:
        op: a symmetric operator (`shape`, `dtype`, `device`, `@`).
        num_matvecs: total HVP budget, >= 3.
        generator: source of the probes.

    Returns:
        A `TraceEstimate` whose std_error and num_samples refer to the Hutchinson part.

    Raises:
        ValueError: num_matvecs < 3.
        TypeError: generator is not a torch.Generator.
    """
    _check_generator(generator)
    if not isinstance(num_matvecs, int) or num_matvecs < 3:
        raise ValueError(f"num_matvecs must be an int >= 3, got {num_matvecs!r}")
    s = num_matvecs // 3
    m = num_matvecs - 2 * s
    S = _rademacher(op, s, generator)  # (N, s)
    Q, _ = torch.linalg.qr(op @ S)  # (N, min(N, s)), orthonormal columns
    top = float(torch.trace(Q.T @ (op @ Q)))
    samples = _quadratic_forms(op, m, generator, Q)
    # Q has min(N, s) columns, so when N < s the sketch and top part use fewer HVPs than budgeted.
    used = s + Q.shape[1] + m
    return TraceEstimate(top + float(samples.mean()), _std_error(samples), m, used)
