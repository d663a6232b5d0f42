"""Run history: every recorded run as one pandas table, diffs between runs, and the regression gate.

The store keeps every run (results/runs/<run-id>/run.json), so the history is read from it, never
kept separately. Two runs are *comparable* when they share a tier and the options that change what
is measured (--set overrides, --max-steps, --seeds). Each claim of a run is compared with that
claim's latest earlier record in a comparable, complete run (its *baseline*).

A check's value *moved* when the two 95% confidence intervals are disjoint (new lo > old hi, or new
hi < old lo). This is stricter than "the new estimate lies outside the old interval": two overlapping
intervals never count, so one noisy seed does not raise an alarm; a one-seed run (an unbounded
interval) can never move. A deterministic check (a zero-width interval) moves when its value changes.

A *regression* (the gate's rule, GATE_RULE) is a claim (or one of its checks) that held or was inconclusive in
its baseline and now fails or errors, or that held and is now inconclusive with a check whose value moved (its
interval is disjoint from the baseline's). "held, now inconclusive" with overlapping intervals is noise, not a regression: the
new seeds are consistent with the old value; more seeds would decide (see "needs ≈ N seeds").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pandas as pd

from harness.claim.records import ClaimResult, RunSummary
from harness.errors import HarnessError
from harness.run.store import ResultStore

GATE_RULE = ("A regression is a claim, or one of its checks, that held or was inconclusive in its previous "
             "comparable complete run and now fails or errors, or that held and is now inconclusive with a value "
             "that moved beyond both 95% confidence intervals (disjoint intervals); held → inconclusive with "
             "overlapping intervals is noise, not a regression, and a claim that already failed cannot regress.")

COLUMNS = ("run_id", "started", "status", "tier", "options_key", "commit", "claim", "claim_version",
           "config_hash", "claim_verdict", "metric", "label", "check_verdict", "value", "lo", "hi", "n",
           "region_lo", "region_hi", "expectation", "reason")


def options_key(run: RunSummary) -> str:
    """What makes two runs of one tier comparable: the options that change what is measured."""
    opts = run.options
    return json.dumps({"tier": run.tier, "overrides": opts.get("overrides") or {},
                       "max_steps": opts.get("max_steps"), "seeds": opts.get("seeds")}, sort_keys=True)


def _num(x) -> float:
    if isinstance(x, bool) or x is None:
        return math.nan
    try:
        return float(x)  # JSON keeps inf/nan as strings: float("inf") reads them back
    except (TypeError, ValueError):
        return math.nan


def run_rows(run: dict) -> list[dict]:
    """One row per (claim, check) of a run summary (as stored), in the columns of COLUMNS.

    Raises:
        HarnessError: the summary has no run id, or a claim without an id.
    """
    run = RunSummary.from_dict(run)
    base = {"run_id": run.run_id, "started": run.started or "", "status": run.status,
            "tier": run.tier, "options_key": options_key(run),
            "commit": run.environment.get("git", {}).get("commit", "unknown")}
    rows = []
    for c in run.claims:
        claim = {"claim": c.id, "claim_version": c.version, "config_hash": c.config_hash,
                 "claim_verdict": c.verdict}
        for k in c.checks:
            est = k.estimate or {}
            region = k.region or (None, None)
            rows.append({**base, **claim, "metric": k.metric, "label": k.label,
                         "check_verdict": k.verdict or "error", "value": _num(est.get("value")),
                         "lo": _num(est.get("lo")), "hi": _num(est.get("hi")), "n": est.get("n", 0),
                         "region_lo": _num(region[0]), "region_hi": _num(region[1]),
                         "expectation": k.expectation or "", "reason": k.reason or ""})
    return rows


def load_history(store: ResultStore, claim: str | None = None, tier: str | None = None,
                 complete_only: bool = False) -> pd.DataFrame:
    """Every recorded (run, claim, check), oldest run first.

    Args:
        store: the results store.
        claim, tier: keep only this claim id / tier (None: all).
        complete_only: drop runs that did not complete (interrupted, aborted, still running).
    Returns:
        A DataFrame with the columns of COLUMNS (empty, with those columns, when nothing matches).
    """
    rows = []
    for run_id in store.run_ids():
        try:
            rows += run_rows(store.load_run(run_id))
        except (HarnessError, ValueError, KeyError) as e:  # a damaged summary must not hide the rest
            rows.append({"run_id": run_id, "status": f"unreadable: {e}"})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if claim is not None:
        df = df[df["claim"] == claim]
    if tier is not None:
        df = df[df["tier"] == tier]
    if complete_only:
        df = df[df["status"] == "complete"]
    return df.reset_index(drop=True)


def check_gateable(run: dict) -> None:
    """The gate decides only on a run that completed.

    Raises:
        HarnessError: the run was interrupted, aborted or is still running (a run killed before any
            claim finished would otherwise pass the gate with nothing checked).
    """
    run = RunSummary.from_dict(run)
    if run.status != "complete":
        reason = str(run.status_reason or "").strip()
        why = f" ({reason.splitlines()[0]})" if reason else ""
        raise HarnessError(f"run {run.run_id} is {run.status}{why}, with "
                           f"{len(run.claims)} claim(s) finished: the gate needs a complete run")


# --- diffs -----------------------------------------------------------------------------------------

def intervals_disjoint(old: dict, new: dict) -> bool:
    """The 'moved' rule: the two confidence intervals share no point (see the module docstring)."""
    olo, ohi, nlo, nhi = (_num(old.get("lo")), _num(old.get("hi")), _num(new.get("lo")), _num(new.get("hi")))
    if any(math.isnan(v) for v in (olo, ohi, nlo, nhi)):
        return False
    return nlo > ohi or nhi < olo


@dataclass
class ClaimDiff:
    """One claim of the new run against its baseline record."""

    claim: str
    baseline_run: str | None  # None: no comparable earlier record
    old_verdict: str | None
    new_verdict: str
    moved: list[str] = field(default_factory=list)  # "metric: 2.01 [1.98, 2.04] → 2.31 [2.2, 2.4]"
    changed: list[str] = field(default_factory=list)  # claim version / config changed in between
    # checks that held in the baseline and now fail/error, or are inconclusive and moved: a check-level
    # regression counts even where the claim as a whole was undecided before (e.g. one check inconclusive)
    checks_regressed: list[str] = field(default_factory=list)

    @property
    def verdict_changed(self) -> bool:
        return self.old_verdict is not None and self.old_verdict != self.new_verdict

    @property
    def regressed(self) -> bool:
        """GATE_RULE: held before, and now fails/errors, or is inconclusive with a value that moved."""
        return self.claim_regressed or bool(self.checks_regressed)

    @property
    def claim_regressed(self) -> bool:
        """The claim-level half of GATE_RULE (the check-level half is `checks_regressed`)."""
        if self.old_verdict in ("holds", "inconclusive") and self.new_verdict in ("fails", "error"):
            return True
        return self.old_verdict == "holds" and self.new_verdict == "inconclusive" and bool(self.moved)


@dataclass
class RunDiff:
    """A run against its baselines: what changed verdict, what moved, what is new."""

    run_id: str
    tier: str
    claims: list[ClaimDiff]

    @property
    def changes(self) -> list[ClaimDiff]:
        return [c for c in self.claims if c.verdict_changed or c.moved]

    @property
    def reconfigured(self) -> list[ClaimDiff]:
        """Claims whose version or config changed while verdict and values stayed (said, never silent)."""
        return [c for c in self.claims if c.changed and c.baseline_run and not (c.verdict_changed or c.moved)]

    @property
    def new_claims(self) -> list[str]:
        return [c.claim for c in self.claims if c.baseline_run is None]

    @property
    def regressions(self) -> list[ClaimDiff]:
        return [c for c in self.claims if c.regressed]

    @property
    def empty(self) -> bool:
        return not self.changes


def _fmt(est: dict | None, digits: int = 4) -> str:
    if not est:
        return "n/a"
    v, lo, hi = _num(est.get("value")), _num(est.get("lo")), _num(est.get("hi"))
    g = f".{digits}g"
    return f"{v:{g}}" if not (math.isfinite(lo) and math.isfinite(hi)) else f"{v:{g}} [{lo:{g}}, {hi:{g}}]"


def _fmt_moved(old: dict, new: dict) -> str:
    """'old → new' with as many significant digits (4 to 12) as it takes for the printed intervals to be
    disjoint too, so a value called "moved" never reads 0.9929 → 0.9929."""
    def shown(x: float, digits: int) -> float:
        return float(f"{x:.{digits}g}")

    o_lo, o_hi, n_lo, n_hi = (_num(e.get(k)) for e in (old, new) for k in ("lo", "hi"))
    for digits in range(4, 13):
        if shown(n_lo, digits) > shown(o_hi, digits) or shown(n_hi, digits) < shown(o_lo, digits):
            break
    return f"{_fmt(old, digits)} → {_fmt(new, digits)}"


def diff_claim(old: ClaimResult | None, new: ClaimResult, baseline_run: str | None) -> ClaimDiff:
    """One claim entry of a run summary against the same claim's entry in an earlier run."""
    out = ClaimDiff(new.id, baseline_run, old.verdict if old else None, new.verdict)
    if old is None:
        return out
    if old.version != new.version:
        out.changed.append(f"claim version {old.version} → {new.version}")
    if old.config_hash != new.config_hash and old.config != new.config:  # the hash's rule may have changed
        out.changed.append(f"config changed: {config_changes(old.config, new.config)}")
    old_checks = {k.metric: k for k in old.checks}
    for k in new.checks:
        prev = old_checks.get(k.metric)
        moved = bool(prev and prev.estimate and k.estimate and intervals_disjoint(prev.estimate, k.estimate))
        if moved:
            out.moved.append(f"{k.metric}: {_fmt_moved(prev.estimate, k.estimate)}")
        now = k.verdict or "error"
        was = prev.verdict if prev else None
        if (was in ("holds", "inconclusive") and now in ("fails", "error")) or \
                (was == "holds" and now == "inconclusive" and moved):
            out.checks_regressed.append(f"{k.metric} {'held' if was == 'holds' else 'was inconclusive'}, "
                                        f"now {now}")
    return out


def _flatten(value, prefix: str = "") -> dict:
    """path -> leaf of a stored config; dicts, and lists holding dicts or lists (arms), are walked into."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix[:-1]: value}
    out = {}
    for k, v in items:
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def config_changes(old: dict, new: dict, limit: int = 4) -> str:
    """What differs between two stored configs, path by path: "steps: 60 → 100" (a value), "-kappa=0.0"
    (gone), "+optim.name='sgd'" (new), "lr → optim.lr" (the field moved, same value); in that order, the
    first `limit`, then a count. A config restructured by a library change reads as moves, so a re-keyed
    result is said, not silent."""
    a, b = _flatten(old or {}), _flatten(new or {})
    values = [f"{k}: {_short(a[k])} → {_short(b[k])}" for k in a if k in b and a[k] != b[k]]
    added, gone, moved = [k for k in b if k not in a], [], []
    for k in [k for k in a if k not in b]:
        leaf = k.rsplit(".", 1)[-1]
        to = next((n for n in added if n.rsplit(".", 1)[-1] == leaf and b[n] == a[k]), None)
        if to is None:
            gone.append(f"-{k}={_short(a[k])}")
        else:
            added.remove(to)
            moved.append(f"{k} → {to}")
    parts = values + gone + [f"+{k}={_short(b[k])}" for k in added] + moved
    if not parts:
        return "the same fields and values (hashed differently)"
    more = f" (and {len(parts) - limit} more)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def compare_runs(old: dict, new: dict) -> RunDiff:
    """Run B against run A (run summaries as stored), claim by claim (claims only in A are ignored;
    only in B are 'new')."""
    old, new = RunSummary.from_dict(old), RunSummary.from_dict(new)
    olds = {c.id: c for c in old.claims}
    return RunDiff(new.run_id, new.tier,
                   [diff_claim(olds.get(c.id), c, old.run_id if c.id in olds else None) for c in new.claims])


def baselines(store: ResultStore, run: RunSummary) -> dict[str, tuple[str, ClaimResult]]:
    """claim id -> (run id, claim entry) of its latest earlier record in a comparable complete run."""
    key, found = options_key(run), {}
    wanted = {c.id for c in run.claims}
    ids = store.run_ids()
    earlier = ids[:ids.index(run.run_id)] if run.run_id in ids else [i for i in ids if i < run.run_id]
    for run_id in reversed(earlier):
        if not wanted - set(found):
            break
        try:
            old = RunSummary.from_dict(store.load_run(run_id))
        except (HarnessError, ValueError):
            continue
        if old.status != "complete" or options_key(old) != key:
            continue
        for c in old.claims:
            if c.id in wanted and c.id not in found:
                found[c.id] = (run_id, c)
    return found


def diff_against_history(store: ResultStore, run: dict) -> RunDiff:
    """A run (its summary as stored) against each claim's baseline (see the module docstring)."""
    run = RunSummary.from_dict(run)
    base = baselines(store, run)
    return RunDiff(run.run_id, run.tier,
                   [diff_claim(base[c.id][1] if c.id in base else None, c, base[c.id][0] if c.id in base else None)
                    for c in run.claims])


def regression_reasons(diff: RunDiff) -> list[str]:
    """One short reason per regressed claim, e.g. 'x held in run A (cpu tier), now fails'."""
    out = []
    for c in diff.regressions:
        if c.claim_regressed:
            was = "held" if c.old_verdict == "holds" else f"was {c.old_verdict}"
            what = f"{c.claim} {was} in run {c.baseline_run} ({diff.tier} tier), now {c.new_verdict}"
        else:
            what = f"{c.claim} ({diff.tier} tier, baseline run {c.baseline_run}): {'; '.join(c.checks_regressed)}"
        out.append(what + (f" ({'; '.join(c.changed)})" if c.changed else ""))
    return out


def format_diff(diff: RunDiff, against: str = "") -> str:
    """The diff as terminal text; 'no changes' when nothing changed verdict or moved."""
    where = against or "each claim's previous comparable run"
    head = f"run {diff.run_id} ({diff.tier} tier) against {where}"
    lines = [head]
    for c in diff.claims:
        if c.baseline_run is None:
            lines.append(f"  NEW        {c.claim}: {c.new_verdict} (no earlier comparable record)")
            continue
        if not (c.verdict_changed or c.moved):
            if c.changed:
                lines.append(f"  {'CONFIG':10s} {c.claim}: {c.new_verdict}, values within their CIs, but "
                             f"{'; '.join(c.changed)} (baseline {c.baseline_run})")
            continue
        tag = "REGRESSED" if c.regressed else "CHANGED" if c.verdict_changed else "MOVED"
        lines.append(f"  {tag:10s} {c.claim}: {c.old_verdict} → {c.new_verdict} (baseline {c.baseline_run})"
                     + (f" [{'; '.join(c.changed)}]" if c.changed else ""))
        lines += [f"{'':13s}moved: {m}" for m in c.moved]
    if diff.empty:
        lines.append("  no changes: every verdict is the same and no value moved beyond its confidence interval"
                     + (f" ({len(diff.reconfigured)} claim(s) with a changed config or version, above)"
                        if diff.reconfigured else ""))
    return "\n".join(lines)


def format_history(df: pd.DataFrame) -> str:
    """The history table for the terminal: one line per (run, claim, check)."""
    skipped = sorted(set(df.loc[df["status"] != "complete", "run_id"].dropna())) if not df.empty else []
    df = df[df["status"] == "complete"] if not df.empty else df
    if df.empty:
        return "no recorded runs match" + (f" (skipped incomplete runs: {', '.join(skipped)})" if skipped else "")
    out = []
    for (run_id, claim), g in df.groupby(["run_id", "claim"], sort=True):
        first = g.iloc[0]
        out.append(f"{run_id}  {first['tier']:5s} {first['claim_verdict'].upper():13s} {claim}")
        for _, r in g.iterrows():
            est = {"value": r["value"], "lo": r["lo"], "hi": r["hi"]}
            shown = _fmt(est) if math.isfinite(r["value"]) else f"n/a ({r['reason']})"
            out.append(f"{'':22s}{r['metric']}: {shown} · accepted {r['expectation']} → {r['check_verdict']}")
    if skipped:
        out.append(f"(skipped incomplete runs: {', '.join(skipped)})")
    return "\n".join(out)
