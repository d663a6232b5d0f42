"""Display rows of a claim's checks, read defensively from the stored records so that old runs and runs
from newer harness versions both render.

A check row carries: the paper's number and where it is from (`paper`), the measured value with its
interval, the accepted band and where it comes from (`source`), the verdict (including "out-of-regime",
shown apart from errors), whether the band was pre-registered or changed after results were seen (read
from the claim's change log), and, for a metric that is NaN by design (no onset in a short run), a
plain "no onset" instead of error red.
"""
from __future__ import annotations

import math

from harness.claim import verdict as _verdict
from harness.claim.records import CheckResult, ClaimResult
from harness.claim.sequential import undecided_note
from harness.report.figures import to_float

OUT_OF_REGIME = getattr(_verdict, "OUT_OF_REGIME", "out-of-regime")
VERDICT_WORDS = tuple(dict.fromkeys((*_verdict.VERDICTS, OUT_OF_REGIME)))


def verdict_word(v) -> str:
    """A stored verdict as one of the words the report shows; anything unknown is an error."""
    return v if v in VERDICT_WORDS else "error"


def field_of(record, name: str):
    """A record's field whether the record class knows it (newer harness) or keeps it in `extra`."""
    value = getattr(record, name, None)
    if value is None:
        value = (getattr(record, "extra", None) or {}).get(name)
    return value


def regime_metrics(c: ClaimResult) -> list[str]:
    """The checks that gate the claim's verdict (its regime), when the claim declares them."""
    regime = field_of(c, "regime")
    if isinstance(regime, (list, tuple)):
        return [str(m.get("metric", "?")) if isinstance(m, dict) else str(getattr(m, "metric", m)) for m in regime]
    return []


def nan_by_design(k: CheckResult) -> str:
    """'no onset' (or the like) for a metric that is NaN because the run never reached the event it
    measures from, not because anything broke; '' otherwise."""
    est = k.estimate or {}
    if est and math.isfinite(to_float(est.get("value"))):
        return ""
    text = f"{k.metric} {k.reason or ''}".lower()
    if "onset" in text:
        return "no onset (NaN by design: the run never reached the edge)"
    if "no crossing" in text or "never reach" in text:
        return "not reached (NaN by design)"
    return ""


def registration(k: CheckResult, changes: list) -> tuple[str, str]:
    """('pre-registered' | 'changed after results' | 'changed before results', detail) for one check.

    A change-log entry concerns a check when it lists the check under `checks`, or names its metric in
    `what`. The latest such entry decides.
    """
    mine = []
    for ch in changes:
        if not isinstance(ch, dict):
            continue
        named = ch.get("checks")
        if (isinstance(named, (list, tuple)) and k.metric in named) or k.metric in str(ch.get("what", "")):
            mine.append(ch)
    if not mine:
        return "pre-registered", "no change-log entry names this check"
    last = mine[-1]
    date = str(last.get("date", "?"))
    if last.get("results_seen") is True:
        return "changed after results", f"{date}: {last.get('what', '')}"
    return "changed before results", f"{date}: {last.get('what', '')}"


def format_estimate(est: dict | None, fmt) -> str:
    """'2.05 [1.98, 2.12]'; 'no interval (1 seed)' when a bound is infinite; 'n/a' without an estimate."""
    if not est:
        return "n/a"
    value, lo, hi, n = to_float(est["value"]), to_float(est["lo"]), to_float(est["hi"]), est.get("n", "?")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{fmt(value)}, no interval ({n} seed{'' if n == 1 else 's'})"
    if lo == hi:
        exact = str(est.get("method", "")).startswith("deterministic")
        return f"{fmt(value)} ({'exact' if exact else 'all seeds equal: zero-width interval'})"
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def seeds_needed_text(k: CheckResult, fmt, sampling: dict | None = None) -> str:
    """'needs ≈ N seeds to decide' beside an inconclusive check whose entry carries `seeds_needed`, marked
    with the tier's reason when N is over its cap (or when no seed count can decide it)."""
    sampling = sampling or {}
    n = k.seeds_needed
    if isinstance(n, bool) or not isinstance(n, (int, float)):
        n = None
    return undecided_note(k.verdict, n, sampling.get("max_seeds"), sampling.get("cap_reason", ""))


def check_view(k: CheckResult, fmt, changes: list | None = None, regime: list[str] | None = None,
               sampling: dict | None = None) -> dict:
    """Display strings of one check or reported row (fmt: the report's number formatter)."""
    est = k.estimate
    nan_note = nan_by_design(k)
    verdict = "" if k.verdict is None else verdict_word(k.verdict)
    reg, reg_detail = registration(k, changes or []) if k.expectation else ("", "")
    return {"metric": k.metric, "label": k.label,
            "value_ci": nan_note or format_estimate(est, fmt), "nan_by_design": bool(nan_note),
            "method": est.get("method", "") if est else "",
            "n": est.get("n", "") if est else "",
            "per_seed": ", ".join(fmt(v) for v in est.get("per_seed", [])) if est else "",
            "expectation": k.expectation or "",
            "paper": str(field_of(k, "paper") or ""), "band_source": str(field_of(k, "source") or ""),
            "registration": reg, "registration_detail": reg_detail,
            "regime": k.metric in (regime or []),
            "verdict": verdict,
            "reason": k.reason or "", "reason_is_error": verdict == "error" and not nan_note,
            "null": "null" in str(k.metric),
            "seeds_needed": seeds_needed_text(k, fmt, sampling)}


def override_view(options: dict, config_pairs: list[tuple[str, str]]) -> list[str]:
    """The `--set` overrides of a run that reach this claim's config ('path=value'), [] for none."""
    overrides = options.get("overrides") or {}
    paths = {p for p, _ in config_pairs}
    return [f"{k}={v}" for k, v in overrides.items() if k in paths or any(p.endswith("." + k) for p in paths)]
