"""From per-seed metric values to an estimate with a confidence interval, and to a verdict.

holds:        the whole confidence interval lies inside the accepted region;
fails:        it lies entirely outside;
inconclusive: it straddles a boundary (more seeds would decide);
error:        a seed crashed, diverged, or produced a non-finite metric.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from harness.expect import Region

HOLDS, FAILS, INCONCLUSIVE, ERROR = "holds", "fails", "inconclusive", "error"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, ERROR)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric aggregated over seeds: point value, confidence interval, and how it was formed."""

    value: float
    lo: float
    hi: float
    n: int
    method: str
    per_seed: tuple[float, ...] = ()

    def as_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "n": self.n,
                "method": self.method, "per_seed": list(self.per_seed)}


def estimate(values: Sequence[float], standard_errors: Sequence[float | None] = (),
             deterministic: bool = False, confidence: float = CONFIDENCE) -> Estimate:
    """Mean over seeds with a Student-t interval.

    Args:
        values: one finite value per seed.
        standard_errors: optional within-run standard error per seed; used only with one seed.
        deterministic: the experiment has no randomness, so the value is exact (a point interval).
        confidence: two-sided confidence level.

    Returns:
        Estimate. With one seed and no standard error the interval is unbounded: one seed alone
        cannot bound the seed-to-seed spread.

    Raises:
        ValueError: no values, or a non-finite value.
    """
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("estimate() needs at least one value")
    if not all(math.isfinite(v) for v in vals):
        raise ValueError(f"non-finite metric values: {vals}")
    n = len(vals)
    mean = sum(vals) / n
    if deterministic:
        spread = max(vals) - min(vals)
        return Estimate(mean, min(vals), max(vals), n,
                        "deterministic (point)" if spread == 0 else "deterministic (range over seeds)",
                        tuple(vals))
    if n == 1:
        se = standard_errors[0] if standard_errors else None
        if se is not None and math.isfinite(se):
            z = stats.norm.ppf(0.5 + confidence / 2)
            return Estimate(mean, mean - z * se, mean + z * se, 1,
                            f"{_pct(confidence)} normal interval from the run's own standard error",
                            tuple(vals))
        return Estimate(mean, -math.inf, math.inf, 1, "one seed: no interval", tuple(vals))
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1))
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n,
                    f"{_pct(confidence)} Student-t interval over {n} seeds", tuple(vals))


def _pct(confidence: float) -> str:
    return f"{confidence * 100:.4g}%"  # 95%, 97.5%


def decide(est: Estimate, region: Region) -> str:
    """holds / fails / inconclusive for an estimate against an accepted region."""
    if region.contains(est.lo) and region.contains(est.hi):
        return HOLDS
    below = est.hi <= region.lo if region.lo_open else est.hi < region.lo
    above = est.lo >= region.hi if region.hi_open else est.lo > region.hi
    if below or above:
        return FAILS
    return INCONCLUSIVE


def combine(verdicts: Sequence[str]) -> str:
    """A claim's verdict from its checks: any error > any fails > any inconclusive > holds."""
    for v in (ERROR, FAILS, INCONCLUSIVE):
        if v in verdicts:
            return v
    return HOLDS if verdicts else INCONCLUSIVE
