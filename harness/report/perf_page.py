"""The performance page of a report (perf.html): benchmark ratios from pytest-benchmark's saved runs.

Shows the newest saved run's ratios against the previous run on the same machine folder (worse beyond
noise is flagged, see harness.run.perf), each ratio over the saved runs, and the raw timings.
"""
from __future__ import annotations

import math
from pathlib import Path

from markupsafe import Markup

from harness.report.plotting import PlottingUnavailable, Series, line_plot
from harness.run.perf import MIN_ROUNDS, RATIOS, latest_pair, load_bench_runs, ratio, worse

MAX_RUNS = 30


def perf_view(bench_root: Path | None) -> dict:
    """Display data for perf.html; 'runs' is empty when nothing was saved under bench_root."""
    view = {"root": str(bench_root) if bench_root else "", "runs": [], "rows": [], "plots": [], "timings": []}
    if bench_root is None:
        return view
    all_runs = load_bench_runs(bench_root)
    new, old = latest_pair(all_runs)
    if new is None:
        return view
    same = [r for r in all_runs if r.machine == new.machine][-MAX_RUNS:]
    view.update(machine=new.machine, cpu=new.cpu, latest=new.label, previous=old.label if old else "",
                runs=[{"n": i + 1, "label": r.label} for i, r in enumerate(same)])
    for spec in RATIOS:
        now, before = ratio(new, spec), ratio(old, spec) if old else None
        status = ("not measured" if now is None else "new" if before is None else
                  "worse" if worse(before, now) else "better" if worse(now, before) else "no clear change")
        if now is not None and now.rounds < MIN_ROUNDS and status != "not measured":
            status += f" (not gated: {now.rounds} rounds)"
        view["rows"].append({"name": spec.name, "note": spec.note, "now": now.describe() if now else "—",
                             "before": before.describe() if before else "—", "status": status})
        points = [(i + 1, ratio(r, spec)) for i, r in enumerate(same)]
        points = [(n, r) for n, r in points if r is not None]
        if points:
            x = [n for n, _ in points]
            series = [  # the interval is asymmetric (formed on the log scale): its ends as dashed lines
                Series("ratio of medians", x, [r.value for _, r in points], style="line+markers",
                       color="#000000"),
                Series("95% CI", x, [r.lo for _, r in points], color="#777777", dash=True),
                Series("", x, [r.hi for _, r in points], color="#777777", dash=True),
                Series("ratio of minima", x, [r.floor for _, r in points], style="markers", color="#0072B2"),
            ]
            try:
                view["plots"].append(Markup(line_plot(series, title=spec.name, xlabel="saved benchmark run",
                                                      ylabel="ratio", width=560, height=260,
                                                      fig_id=f"perf-{len(view['plots'])}")))
            except PlottingUnavailable:  # the table above still shows every ratio
                pass
    for key, st in sorted(new.stats.items()):
        view["timings"].append({"name": key, "median_ms": _ms(st.get("median")), "iqr_ms": _ms(st.get("iqr")),
                                "min_ms": _ms(st.get("min")), "rounds": st.get("rounds", "?")})
    return view


def _ms(seconds) -> str:
    try:
        v = float(seconds) * 1e3
    except (TypeError, ValueError):
        return "—"
    return f"{v:.4g}" if math.isfinite(v) else "—"
