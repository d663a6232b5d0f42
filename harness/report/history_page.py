"""The history page of a report (history.html beside index.html): the run against each claim's
previous comparable run, a verdict timeline, and each check's value over runs with its interval (at
the family level that run used).

Only runs comparable to the report's run (same tier and measurement options, see harness.run.history)
and not newer than it are shown, so an old report re-renders the same.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from harness.claim.records import RunSummary
from harness.errors import HarnessError
from harness.report.figures import visible_region
from harness.report.plotting import HBand, PlottingUnavailable, Series, line_plot
from harness.run.history import diff_against_history, load_history, options_key
from harness.run.store import ResultStore

MAX_TIMELINE_RUNS = 30


def history_view(store: ResultStore, run: dict, report_root: Path | None = None) -> dict:
    """Display data for history.html: the diff, the timeline and one plot per (claim, check).

    Args:
        store: the results store. run: the report's run summary, as stored.
        report_root: the folder holding one report folder per run: a run whose report is there is linked.
    """
    summary = RunSummary.from_dict(run)
    all_df = load_history(store, tier=summary.tier)
    df = all_df[(all_df["options_key"] == options_key(summary)) & (all_df["run_id"] <= summary.run_id)]
    df = df[(df["status"] == "complete") | (df["run_id"] == summary.run_id)]
    runs = list(dict.fromkeys(df["run_id"]))[-MAX_TIMELINE_RUNS:]
    df = df[df["run_id"].isin(runs)]
    number = {r: i + 1 for i, r in enumerate(runs)}
    try:
        plots = [Markup(svg) for svg in metric_plots(df, number, run_labels(runs))]
    except PlottingUnavailable:  # the tables still render; index.html says how to get figures
        plots = []
    commits = dict(zip(df["run_id"], df["commit"].astype(str).str[:10]))
    return {"tier": summary.tier, "options": describe_options(summary),
            "runs": [{"n": number[r], "id": r, "label": lab, "current": r == summary.run_id,
                      "commit": commits.get(r, "unknown"), "href": _report_link(report_root, r, summary.run_id)}
                     for r, lab in run_labels(runs).items()],
            "other_runs": other_runs(store, all_df, options_key(summary)),
            "diff": diff_view(store, run), "timeline": timeline(df, runs),
            "plots": plots,
            "gate_rule": gate_rule()}


def _report_link(report_root: Path | None, run_id: str, current: str) -> str:
    """'../<run>/index.html' when that run's report sits beside this one ('index.html' for this run)."""
    if run_id == current:
        return "index.html"
    if report_root is not None and (Path(report_root) / run_id / "index.html").is_file():
        return f"../{run_id}/index.html"
    return ""


def other_runs(store: ResultStore, all_df: pd.DataFrame, key: str) -> list[dict]:
    """Runs of the same tier left out of the timeline because other options make them not comparable
    (overrides, a step cap, a fixed seed count), with what differs; newest first."""
    out = []
    for run_id in list(dict.fromkeys(all_df.loc[all_df["options_key"] != key, "run_id"]))[::-1]:
        try:
            other = RunSummary.from_dict(store.load_run(run_id))
        except (HarnessError, ValueError, KeyError):
            continue
        out.append({"id": run_id, "status": other.status, "options": describe_options(other)})
    return out


def gate_rule() -> str:
    """The regression gate's rule in words (harness.run.history.GATE_RULE), or a fallback while it is absent."""
    try:
        from harness.run.history import GATE_RULE
    except ImportError:
        return ("The gate (`--fail-on-regression`, `harness gate`) exits 1 when a claim that held in its previous "
                "comparable run no longer holds.")
    return str(GATE_RULE)


def describe_options(run: RunSummary) -> str:
    opts = run.options
    overrides = ", ".join(f"{k}={v}" for k, v in (opts.get("overrides") or {}).items()) or "none"
    seeds = opts.get("seeds") or "the tier's own"
    steps = opts.get("max_steps") or "none"
    return f"overrides: {overrides} · seeds: {seeds} · step cap: {steps}"


def diff_view(store: ResultStore, run: dict) -> dict:
    diff = diff_against_history(store, run)
    rows = [{"claim": c.claim, "baseline": c.baseline_run, "old": c.old_verdict, "new": c.new_verdict,
             "kind": "regressed" if c.regressed else "verdict changed" if c.verdict_changed else "moved",
             "moved": c.moved, "changed": c.changed} for c in diff.changes]
    compared = [c.claim for c in diff.claims if c.baseline_run is not None]
    reconfigured = [{"claim": c.claim, "baseline": c.baseline_run, "verdict": c.new_verdict, "changed": c.changed}
                    for c in diff.reconfigured]
    return {"rows": rows, "empty": diff.empty, "compared": compared, "new": diff.new_claims,
            "reconfigured": reconfigured,
            "baselines": sorted({c.baseline_run for c in diff.claims if c.baseline_run})}


def timeline(df: pd.DataFrame, runs: list[str]) -> list[dict]:
    """One row per claim: its verdict in each run ('' where the run did not include it)."""
    verdicts = df.drop_duplicates(["run_id", "claim"]).set_index(["claim", "run_id"])["claim_verdict"]
    return [{"claim": claim, "cells": [verdicts.get((claim, r), "") for r in runs]}
            for claim in sorted(df["claim"].dropna().unique())]


def run_labels(run_ids: list[str]) -> dict[str, str]:
    """Short axis labels for run ids 'YYYYMMDD-HHMMSS[-n]': 'MM-DD HH:MM', with seconds (and the suffix)
    where minutes repeat, the id itself when it has another form."""
    def short(r: str, full: bool) -> str:
        m = re.fullmatch(r"\d{4}(\d\d)(\d\d)-(\d\d)(\d\d)(\d\d)(-\d+)?", r)
        if not m:
            return r
        return f"{m[1]}-{m[2]} {m[3]}:{m[4]}" + (f":{m[5]}{m[6] or ''}" if full else "")

    first = [short(r, False) for r in run_ids]
    return {r: short(r, first.count(f) > 1) for r, f in zip(run_ids, first)}


def metric_plots(df: pd.DataFrame, number: dict[str, int], labels: dict[str, str] | None = None) -> list[str]:
    """Per (claim, check): value by run with its interval (the family level of that run) as an error bar
    and the accepted region.

    Args:
        df: the history rows. number: run id -> x position. labels: run id -> x tick label (None: numbers).
    """
    out = []
    for (claim, metric), g in df.groupby(["claim", "metric"], sort=True):
        x = [number[r] for r in g["run_id"]]
        y = [v if math.isfinite(v) else math.nan for v in g["value"]]
        lo, hi = g["lo"].to_numpy(), g["hi"].to_numpy()
        err = [max(v - a, b - v) if math.isfinite(a) and math.isfinite(b) else math.nan
               for v, a, b in zip(y, lo, hi)]
        series = [Series("value ± interval (family level)", x, y, style="line+markers", color="#000000", y_err=err)]
        last = g.iloc[-1]
        shown = [v for v in list(y) + [a for a in lo if math.isfinite(a)] + [b for b in hi if math.isfinite(b)]
                 if math.isfinite(v)]
        band = visible_region(shown, [last["region_lo"], last["region_hi"]])
        bands = [HBand(*band, f"accepted {last['expectation']}")] if band else []
        ticks = [(n, labels[r]) for r, n in number.items()] if labels else []
        out.append(line_plot(series, title=f"{claim} · {metric}", xlabel="run (date and time it started)",
                             ylabel=metric if len(metric) <= 40 else "value", bands=bands, width=560, height=280,
                             xticks=ticks, fig_id=f"history-{len(out)}"))
    return out
