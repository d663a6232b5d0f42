"""`harness show CLAIM [--tier T]`: what a claim says, checks and costs, without running anything.

Prints the statement, the paper's value, each check with its accepted band at the tier (and, when the
claim declares them, the band's source and the paper's number), the reported rows, the plots, the change
log, and per tier the seeds, the scale and a cost estimate: the compute per seed of the newest complete
run of that claim at that tier in the results store, else how to measure it (`harness plan`).
"""
from __future__ import annotations

from harness.claim.registry import TIERS, Claim
from harness.errors import HarnessError
from harness.run.store import ResultStore

MAX_RUNS_SCANNED = 50  # newest runs read for a cost estimate


def recorded_cost(store: ResultStore, claim_id: str, tier: str) -> tuple[float, int, str] | None:
    """(seconds of compute, seeds, run id) of the newest complete run of the claim at the tier, or None."""
    for run_id in reversed(store.run_ids()[-MAX_RUNS_SCANNED:]):
        try:
            run = store.load_run(run_id)
        except HarnessError:
            continue
        if run.get("status") != "complete" or run.get("tier") != tier:
            continue
        for c in run.get("claims", []):
            if c.get("id") == claim_id and isinstance(c.get("wall_time_s"), (int, float)) and c.get("seeds"):
                ran = [s for s in c["seeds"] if not s.get("cached")]
                seconds = sum(float(s.get("wall_time_s") or 0.0) for s in c["seeds"])
                if ran or seconds > 0:
                    return seconds, len(c["seeds"]), run_id
    return None


def _field(obj, name: str) -> str:
    value = getattr(obj, name, None)
    return str(value) if value else ""


def format_claim(claim: Claim, tier: str, store: ResultStore | None = None) -> str:
    """The text `harness show` prints for one claim at one tier (checks' bands are per tier).

    Raises:
        ConfigError: the claim has no such tier (harness.claim.registry.Claim.tier).
    """
    claim.tier(tier)
    out = [f"{claim.id} · version {claim.version} · {claim.source}",
           f"statement: {claim.statement}", f"paper: {claim.paper_value}", "",
           f"checks at the {tier} tier (metric · accepted band · its source · paper):"]
    for check in claim.checks:
        parts = [f"  {check.metric}", f"accepted {check.expect.describe(tier)}"]
        parts += [f"{what}: {text}" for what, text in (("source", _field(check, "source")),
                                                       ("paper", _field(check, "paper"))) if text]
        out.append(" · ".join(parts) + (f"\n      {check.label}" if check.label else ""))
    regime = getattr(claim, "regime", ())
    if regime:
        out.append(f"  regime (gates the verdict; unmet: out-of-regime): {', '.join(map(str, regime))}")
    if claim.reported:
        out.append("reported without a verdict:")
        out += [f"  {metric} · {label}" for metric, label in claim.reported]
    if claim.plots:
        out.append("plots:")
        out += [f"  {p.title} ({p.curve}: {p.x} → {', '.join(p.y)})" for p in claim.plots]
    out += ["", "tiers (seeds · scale · cost):"]
    for name in TIERS:
        if name not in claim.tiers:
            continue
        t = claim.tiers[name]
        out.append(f"  {name}{' (shown above)' if name == tier else ''}: {t.seeds_label} · {t.scale or '—'}")
        out.append(f"      cost: {_cost_text(store, claim.id, name, t)}")
    out += ["", f"change log ({len(claim.changes)} entr{'y' if len(claim.changes) == 1 else 'ies'}):"]
    out += [f"  {c.date} · {c.what} · why: {c.why} · results seen before: {'yes' if c.results_seen else 'no'}"
            for c in claim.changes] or ["  none: every band is as pre-registered"]
    return "\n".join(out)


def _cost_text(store: ResultStore | None, claim_id: str, tier: str, t) -> str:
    cost = recorded_cost(store, claim_id, tier) if store is not None else None
    if cost is None:
        return f"not recorded in this store; `harness plan --tier {tier} --claim {claim_id}` times it"
    seconds, n, run_id = cost
    per_seed = seconds / max(n, 1)
    planned = t.max_seeds or t.seeds
    span = f"{_secs(per_seed * t.seeds)}" + (f" to {_secs(per_seed * planned)}" if planned != t.seeds else "")
    return f"≈ {_secs(per_seed)} per seed, {span} for the tier's seeds (run {run_id}, {n} seeds)"


def _secs(s: float) -> str:
    if s < 90:
        return f"{s:.1f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"
