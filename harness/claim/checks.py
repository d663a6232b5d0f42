"""Deciding a claim's checks from its seeds: each check's estimate, interval and verdict, and the scale
note of the config that ran (harness.claim.verdict holds the rules; this module applies them to a claim)."""
from __future__ import annotations

import math

from harness.claim.config import config_paths
from harness.claim.expect import Effect
from harness.claim.records import CheckResult
from harness.claim.sequential import seeds_needed
from harness.claim.verdict import (
    CONFIDENCE,
    ERROR,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    decide,
    effect_distance,
    estimate,
)

STEP_CAPPED = "step-capped run"


def scale_that_ran(tier, config) -> str:
    """The tier's scale note, followed by the config paths a --set changed, so a run with overrides never
    prints the declared scale alone (e.g. '..., 2000 GD steps [ran with --set: steps=8000]')."""
    if config == tier.config:
        return tier.scale
    declared, ran = dict(config_paths(tier.config)), dict(config_paths(config))
    changed = [f"{k}={ran[k]!r}" for k in ran if declared.get(k) != ran[k]]
    return f"{tier.scale} [ran with --set: {', '.join(changed) or 'changed config'}]"


def evaluate_check(claim, metric, measurements, seeds, tier, check=None, label="", capped=False,
                   confidence: float = CONFIDENCE) -> CheckResult:
    """One check (or, with check=None, one reported row) of a claim over its seeds' measurements: the
    estimate at `confidence`, the verdict, and for an inconclusive check the seeds it needs to decide."""
    row = {"metric": metric, "label": check.label if check else label}
    if check is not None:
        region = check.expect.region(tier)
        row.update(expectation=check.expect.describe(tier), region=[region.lo, region.hi],
                   source=check.source or None, paper=check.paper or None)
        if isinstance(check.expect, Effect):
            row["effect_edge"] = check.expect.effect_threshold(tier)
    errors = [f"seed {s.seed}: {s.error}" for s in seeds if s.error]
    values, ses = [], []
    for s, m in zip(seeds, measurements):
        if m is None:
            continue
        v = m.scalars.get(metric)
        if v is None:
            errors.append(f"seed {s.seed}: metric '{metric}' missing from the measurement")
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            errors.append(f"seed {s.seed}: metric '{metric}' is {v}")
        else:
            values.append(v)
            ses.append(m.standard_errors.get(metric))
    if errors or not values:
        return CheckResult(**row, verdict=ERROR, estimate=None, reason="; ".join(errors) or "no values")
    est = estimate(values, ses, deterministic=claim.deterministic, confidence=confidence)
    if check is None:
        return CheckResult(**row, estimate=est.as_dict())
    verdict, reason, needed = decide(est, check.expect, tier), None, None
    if capped and verdict in (FAILS, HOLDS):  # a capped run is not the tier's scale: it decides nothing
        verdict, reason = INCONCLUSIVE, STEP_CAPPED
    elif verdict == INCONCLUSIVE and not claim.deterministic:
        distance = effect_distance(est.value, check.expect, tier) if isinstance(check.expect, Effect) else None
        needed = seeds_needed(values, region, confidence, distance)
    return CheckResult(**row, estimate=est.as_dict(), verdict=verdict, seeds_needed=needed, reason=reason)
