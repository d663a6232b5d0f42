"""From per-seed metric values to an estimate with a confidence interval, and to a verdict.

holds:        the whole confidence interval lies inside the accepted region;
fails:        it lies entirely outside;
inconclusive: it straddles a boundary (more seeds would decide);
error:        a seed crashed, diverged, or produced a non-finite metric;
out-of-regime: a pre-registered regime check of the claim (its premise at this tier, e.g. "doubling the
              steps still improves the loss") fails: the claim is not about this setting, so its checks
              say nothing about it either way. Counted apart from holds and fails.

A comparative check with a smallest effect of interest (harness.claim.expect.Effect) is decided by EFFECT_RULE.
Every check of a claim is one test of a family: each interval is at level 1 - alpha / (looks * checks)
(Bonferroni; FAMILY_RULE), so the chance that any interval of the claim misses is at most alpha.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from harness.claim.expect import Effect, Expectation, Region

HOLDS, FAILS, INCONCLUSIVE, ERROR = "holds", "fails", "inconclusive", "error"
OUT_OF_REGIME = "out-of-regime"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, OUT_OF_REGIME, ERROR)
CONFIDENCE = 0.95
FAMILY_RULE = ("Family error control: a claim's checks and regime checks are one family of k tests, and with "
               "L looks at the data (2 when seeds are chosen by power) each interval is a "
               "1 - 0.05 / (L k) interval (Bonferroni), so the chance that any of the claim's intervals "
               "misses its true value is at most 5%.")


def family_confidence(tests: int, looks: int = 1, confidence: float = CONFIDENCE) -> float:
    """The level of each interval of a claim with `tests` checks and `looks` looks (FAMILY_RULE)."""
    k = max(1, int(tests)) * max(1, int(looks))
    return 1 - (1 - confidence) / k


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


def decide(est: Estimate, region: Region | Expectation, tier: str | None = None) -> str:
    """holds / fails / inconclusive for an estimate against an accepted region, or against an
    expectation at a tier (an Effect is decided by EFFECT_RULE)."""
    if isinstance(region, Effect):
        return _decide_effect(est, region, tier)
    if isinstance(region, Expectation):
        region = region.region(tier)
    if region.contains(est.lo) and region.contains(est.hi):
        return HOLDS
    below = est.hi <= region.lo if region.lo_open else est.hi < region.lo
    above = est.lo >= region.hi if region.hi_open else est.lo > region.hi
    if below or above:
        return FAILS
    return INCONCLUSIVE


def _decide_effect(est: Estimate, effect: Effect, tier: str) -> str:
    s = effect.direction  # work on the claimed side: s * (x - null) > 0 is an effect in that direction
    lo, hi = sorted((s * (est.lo - effect.null), s * (est.hi - effect.null)))
    smallest = s * (effect.effect_threshold(tier) - effect.null)
    if hi < smallest:
        return FAILS
    if lo > 0:
        return HOLDS
    return INCONCLUSIVE


def effect_distance(mean: float, effect: Effect, tier: str) -> float:
    """How far the mean is from the edge an interval must clear to decide the check (EFFECT_RULE):
    above the smallest effect, from 0 (to hold); below it, from the smallest effect (to fail)."""
    e = effect.direction * (mean - effect.null)
    smallest = effect.direction * (effect.effect_threshold(tier) - effect.null)
    return e if e >= smallest else smallest - e


def combine(verdicts: Sequence[str], regime: Sequence[str] = ()) -> str:
    """A claim's verdict from its checks and its regime checks.

    Any error (of a check or a regime check) > a regime check that fails (out-of-regime: the checks say
    nothing) > any fails > any inconclusive > holds; a regime check that is inconclusive turns holds or
    fails into inconclusive (the premise is not established).
    """
    if ERROR in verdicts or ERROR in regime:
        return ERROR
    if FAILS in regime:
        return OUT_OF_REGIME
    for v in (FAILS, INCONCLUSIVE):
        if v in verdicts:
            return INCONCLUSIVE if INCONCLUSIVE in regime else v
    if not verdicts:
        return INCONCLUSIVE
    return INCONCLUSIVE if INCONCLUSIVE in regime else HOLDS
