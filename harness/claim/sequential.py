"""Seeds chosen by power: a pilot, then as many seeds as the observed spread says are needed.

A tier that declares `max_seeds > seeds` runs in at most two looks:

1. the pilot: the tier's `seeds`;
2. only if some check is inconclusive after the pilot *and* the projected count (below) fits
   `max_seeds`: seeds are added up to the largest projected count, and every check is decided again
   on all seeds.

Looking twice at the data would inflate the error rate of a 95% interval, so each look uses a
Bonferroni-corrected level: with two looks, each interval is a 97.5% interval (1 - 0.05 / 2); by the
union bound the chance that either look's interval misses the true mean is at most 5%. A tier
without `max_seeds` (or a run with `--seeds N`, which fixes the count) looks once, at 95%.

The projected count for an inconclusive check is the smallest n for which a t-interval at the
look's level, with the observed seed-to-seed standard deviation, would be narrower than the distance
from the mean to the nearest boundary of the accepted region — the seeds it "needs to decide" if the
mean and spread stay as observed. It is None when the spread cannot be estimated (one seed), the
mean sits on a boundary, or more than MAX_PROJECTED seeds would be needed.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

from harness.claim.expect import Region
from harness.claim.records import CheckResult
from harness.claim.verdict import CONFIDENCE

LOOKS = 2
MAX_PROJECTED = 10_000


def look_confidence(adaptive: bool, confidence: float = CONFIDENCE) -> float:
    """The confidence level of each look: 1 - alpha / LOOKS when seeds are added, else the plain level."""
    return 1 - (1 - confidence) / LOOKS if adaptive else confidence


def seeds_needed(values: Sequence[float], region: Region, confidence: float,
                 distance: float | None = None) -> int | None:
    """The projected seed count that would decide a check against `region` (see the module docstring).

    Args:
        values: the per-seed values so far (finite).
        region: the accepted region of the check.
        confidence: the two-sided level of the interval the decision will use.
        distance: how far the mean must be from the decisive edge (an Effect's, see
            harness.claim.verdict.effect_distance); default: the nearest finite bound of `region`.
    Returns:
        n >= 2, or None when no count can be projected.
    """
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    if distance is None:
        bounds = [b for b in (region.lo, region.hi) if math.isfinite(b)]
        if not bounds:
            return None
        distance = min(abs(mean - b) for b in bounds)
    if distance == 0 or not math.isfinite(sd):
        return None
    if sd == 0:
        return n
    q = 0.5 + confidence / 2
    lo, hi = 2, MAX_PROJECTED  # half-width t(q, n-1) * sd / sqrt(n) decreases in n: bisect
    if stats.t.ppf(q, hi - 1) * sd / math.sqrt(hi) >= distance:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if stats.t.ppf(q, mid - 1) * sd / math.sqrt(mid) < distance:
            hi = mid
        else:
            lo = mid + 1
    return lo


def second_look_size(checks: Sequence[CheckResult], n_pilot: int, max_seeds: int) -> int | None:
    """The total seed count of the second look, or None when there is no second look.

    A second look happens only when some check is inconclusive and every inconclusive check's
    projected count is known and fits max_seeds (otherwise more seeds would not decide it).
    """
    wanted = [c.seeds_needed for c in checks if c.verdict == "inconclusive"]
    if not wanted or any(w is None or w > max_seeds for w in wanted):
        return None
    total = max(wanted)
    return total if total > n_pilot else None


def undecided_note(verdict: str | None, needed: int | None, cap: int | None, cap_reason: str = "") -> str:
    """What an inconclusive check says about seeds: 'needs ≈ N seeds to decide', marked when N is over
    the tier's cap (with the tier's reason why no cap it can afford decides it), or, for a check that
    no seed count can decide (one deterministic run, or a spread that cannot be projected), the reason.
    '' for a decided check."""
    if verdict != "inconclusive":
        return ""
    if isinstance(needed, (int, float)) and not isinstance(needed, bool):
        text = f"needs ≈ {int(needed)} seeds to decide"
        if cap is not None and needed > cap:
            text += f", over this tier's cap of {cap}: " + (cap_reason or "the tier gives no reason")
        return text
    return f"more seeds cannot decide it: {cap_reason}" if cap_reason else ""
