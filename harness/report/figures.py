"""Figures of one claim: its declared curve plots and a forest plot per check, each showing its check.

Inputs are the claim entry of a run summary and the claim's seed records as stored (JSON dicts), so a
report renders from the results folder alone. A curve plot draws, when its Plot declares them:
`band_check` (the accepted band of that check, in the plot's y units), `window` (the scored fraction of
the run: the last `window` of measurements, or "onset" for everything after the onset), `onset` (a scalar
giving the onset's x) and `hlines` (reference lines). Several seeds are drawn as their median with the
interquartile range, each seed faint behind. Every function returns inline SVG strings from
`harness.report.plotting` plus short notes for what could not be drawn; nothing here raises on bad data
(a missing matplotlib becomes one note).
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from harness.claim.records import CheckResult, ClaimResult, SeedRecord
from harness.report.plotting import (
    ACCEPTED_COLOR,
    PALETTE,
    Fill,
    HBand,
    HLine,
    PlottingUnavailable,
    Series,
    VLine,
    VSpan,
    line_plot,
)

log = logging.getLogger(__name__)

_STYLES = ("line", "markers", "line+markers")


@dataclass
class Figures:
    """SVG strings to show, and notes about plots that were skipped (shown beside them)."""

    svgs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def to_float(x) -> float:
    """A stored number as float: JSON keeps NaN/inf as strings ("nan", "inf", "-inf")."""
    if isinstance(x, bool) or x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def claim_figures(claim: dict, records: list[dict | None]) -> Figures:
    """Curve plots from claim["plots"] and one forest plot per check with an estimate.

    Args:
        claim: one entry of run["claims"] (as stored).
        records: the seed records of claim["seeds"] (as stored), in the same order; None where missing.
    Raises:
        HarnessError: the claim entry has no id (harness.claim.records.ClaimResult.from_dict).
    """
    return result_figures(ClaimResult.from_dict(claim),
                          [None if r is None else SeedRecord.from_dict(r) for r in records])


def result_figures(claim: ClaimResult, records: list[SeedRecord | None], fig_id: str = "fig") -> Figures:
    """claim_figures on records already read (the report reads each run summary once).

    Args:
        claim: one claim of a run.
        records: the seed records of claim.seeds, in the same order; None where missing.
        fig_id: prefix of the figures' element ids (unique per claim on a page).
    """
    figs = Figures()
    measured = [(s.seed, r.measurement) for s, r in zip(claim.seeds, records)
                if r is not None and r.measurement]
    unplotted = [str(s.seed) for s, r in zip(claim.seeds, records) if r is None or not r.measurement]
    if unplotted and claim.plots:
        figs.notes.append(f"seed(s) {', '.join(unplotted)} not plotted: no measurement (errored or missing)")
    checks = {k.metric: k for k in claim.checks + claim.reported}
    seeds = [s.seed for s in claim.seeds]
    for i, spec in enumerate(claim.plots):
        _add(figs, spec.get("title", "plot"),
             lambda spec=spec, i=i: curve_plot(spec, measured, checks, fig_id=f"{fig_id}-p{i}"))
    for j, check in enumerate(claim.checks):
        if check.estimate:
            _add(figs, f"check {check.metric}", lambda check=check, j=j: forest_plot(check, seeds, f"{fig_id}-c{j}"))
    return figs


def _add(figs: Figures, name: str, build) -> None:
    """Run one figure builder; a builder's note or a drawing error becomes a note, not a crash."""
    try:
        svg, notes = build()
    except PlottingUnavailable as e:
        if str(e) not in figs.notes:
            figs.notes.append(str(e))
        return
    except (ValueError, TypeError, KeyError, IndexError) as e:  # malformed stored data: say so on the page
        log.warning("report: could not draw %s: %s", name, e)
        figs.notes.append(f"{name}: not drawn ({type(e).__name__}: {e})")
        return
    if svg:
        figs.svgs.append(svg)
    figs.notes.extend(notes)


def curve_plot(spec: dict, measured: list[tuple[int, dict]], checks: dict[str, CheckResult] | None = None,
               fig_id: str = "fig") -> tuple[str | None, list[str]]:
    """One declared plot: the curve table spec["curve"] of every seed, with the check it shows.

    Args:
        spec: a Plot as a dict (curve, x, y, title, ylabel, xlabel, ylog, xlog, hlines, style, and the
            optional band_check, window, onset).
        measured: (seed, measurement dict) for every seed that has a measurement.
        checks: the claim's checks and reported rows by metric (for band_check).
        fig_id: prefix of the figure's element ids.
    Returns:
        (svg or None, notes). None when no seed recorded the curve.
    """
    title, curve, xcol = spec["title"], spec["curve"], spec["x"]
    ycols = list(spec["y"])
    style = spec.get("style", "line") if spec.get("style") in _STYLES else "line"
    tables = [(seed, m["curves"][curve]) for seed, m in measured if curve in m.get("curves", {})]
    if not tables:
        return None, [f"plot '{title}' skipped: no seed recorded the curve '{curve}'"]
    notes, series, fills = [], [], []
    for j, ycol in enumerate(ycols):
        color = PALETTE[j % len(PALETTE)]
        runs = []
        for seed, table in tables:
            missing = [c for c in (xcol, ycol) if c not in table]
            if missing:
                notes.append(f"plot '{title}': seed {seed} has no column '{missing[0]}'")
                continue
            runs.append((seed, [to_float(v) for v in table[xcol]], [to_float(v) for v in table[ycol]]))
        name = ycol if len(ycols) > 1 else (spec.get("ylabel") or ycol)
        if len(runs) == 1:
            seed, xs, ys = runs[0]
            series.append(Series(f"{name} (seed {seed})", xs, ys, style=style, color=color, gid=f"curve-{j}"))
            continue
        for seed, xs, ys in runs:  # each seed faint behind the median
            series.append(Series("", xs, ys, style="line", color=color, alpha=0.25, width=0.8,
                                 gid=f"seed-{j}-{seed}"))
        agg = _quartiles(runs)
        if agg is not None:
            grid, q1, med, q3 = agg
            fills.append(Fill(f"{name}: interquartile range", grid, q1, q3, color=color, gid=f"iqr-{j}"))
            series.append(Series(f"{name}: median of {len(runs)} seeds", grid, med, style=style, color=color,
                                 width=2.0, gid=f"median-{j}"))
    scalars = [m.get("scalars", {}) for _, m in measured]
    hlines, hnotes = _hlines(spec, scalars[0] if scalars else {})
    bands, bnotes = _band(spec, checks or {})
    vlines, onset_note, onset_x = _onset(spec, scalars)
    vspans = _window(spec, tables, xcol, onset_x)
    legend_note = [onset_note] if onset_note else []
    svg = line_plot(series, title=title, xlabel=spec.get("xlabel") or xcol, ylabel=spec.get("ylabel", ""),
                    xlog=bool(spec.get("xlog")), ylog=bool(spec.get("ylog")), hlines=hlines, bands=bands,
                    fills=fills, vspans=vspans, vlines=vlines, fig_id=fig_id, width=620, height=330)
    return svg, notes + hnotes + bnotes + [f"plot '{title}': {n}" for n in legend_note]


def _quartiles(runs: list[tuple[int, list[float], list[float]]]):
    """(grid, q25, median, q75) across seeds: on the shared x when every seed has the same x, else each
    seed interpolated onto the longest seed's x within its own range. None when nothing overlaps."""
    xs0 = max((r[1] for r in runs), key=len)
    same = all(len(r[1]) == len(xs0) and np.allclose(r[1], xs0, equal_nan=True) for r in runs)
    grid = np.asarray(xs0, dtype=float)
    rows = []
    for _, xs, ys in runs:
        x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        if same:
            rows.append(y)
            continue
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() < 2:
            continue
        order = np.argsort(x[ok])
        xo, yo = x[ok][order], y[ok][order]
        row = np.interp(grid, xo, yo)
        row[(grid < xo[0]) | (grid > xo[-1])] = np.nan
        rows.append(row)
    if len(rows) < 2:
        return None
    stack = np.vstack(rows)
    with np.errstate(all="ignore"), warnings.catch_warnings():  # all-NaN columns give NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        q1, med, q3 = (np.nanpercentile(stack, q, axis=0) for q in (25, 50, 75))
    return list(grid), list(q1), list(med), list(q3)


def _hlines(spec: dict, first: dict) -> tuple[list[HLine], list[str]]:
    """Reference lines; a string y is a scalar of the first measured seed (e.g. "two_over_lr")."""
    out, notes = [], []
    for k, (y, label) in enumerate(spec.get("hlines", [])):
        if isinstance(y, str):
            value = to_float(first.get(y))
            if not math.isfinite(value):
                notes.append(f"plot '{spec['title']}': reference '{label}' not drawn "
                             f"(scalar '{y}' missing or not finite)")
                continue
            out.append(HLine(value, f"{label} = {value:.4g}", gid=f"reference-{k}"))
        elif math.isfinite(to_float(y)):
            out.append(HLine(to_float(y), f"reference {label}", gid=f"reference-{k}"))
    return out, notes


def _band(spec: dict, checks: dict[str, CheckResult]) -> tuple[list[HBand], list[str]]:
    """The accepted band of spec["band_check"], drawn in the plot's y units."""
    name = spec.get("band_check")
    if not name:
        return [], []
    check = checks.get(name)
    region = [to_float(v) for v in (check.region or ())] if check else []
    if len(region) != 2:
        return [], [f"plot '{spec['title']}': band of '{name}' not drawn (no such check with a band)"]
    lo = region[0] if not math.isnan(region[0]) else -math.inf
    hi = region[1] if not math.isnan(region[1]) else math.inf
    return [HBand(lo, hi, f"accepted band of {name}: {check.expectation or _region_text(lo, hi)}",
                  color=ACCEPTED_COLOR)], []


def _region_text(lo: float, hi: float) -> str:
    if math.isinf(lo):
        return f"≤ {hi:.4g}"
    if math.isinf(hi):
        return f"≥ {lo:.4g}"
    return f"[{lo:.4g}, {hi:.4g}]"


def _onset(spec: dict, scalars: list[dict]) -> tuple[list[VLine], str, float]:
    """The median onset over seeds as a dotted line; a run without onset says "no onset" (by design, not an
    error)."""
    name = spec.get("onset")
    if not name:
        return [], "", math.nan
    values = [to_float(s.get(name)) for s in scalars]
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [], f"no onset ('{name}' is NaN in every seed: the run never reached the edge)", math.nan
    x = float(np.median(finite))
    label = f"onset ({name}) = {x:.4g}" + ("" if len(finite) == 1 else f", median of {len(finite)} seeds")
    if len(finite) < len(values):
        label += f"; no onset in {len(values) - len(finite)} seed(s)"
    return [VLine(x, label)], "", x


def _window(spec: dict, tables: list[tuple[int, dict]], xcol: str, onset_x: float) -> list[VSpan]:
    """The scored window: the last `window` fraction of the measurements (median start over seeds), or
    from the onset to the end when window is "onset"."""
    window = spec.get("window")
    if window in (None, "", 0):
        return []
    if window == "onset":
        return [VSpan(onset_x, math.inf, "scored window: after the onset")] if math.isfinite(onset_x) else []
    frac = to_float(window)
    if not 0 < frac <= 1:
        return []
    starts = []
    for _, table in tables:
        xs = [to_float(v) for v in table.get(xcol, [])]
        if xs:
            starts.append(xs[min(len(xs) - 1, int(math.floor(len(xs) * (1 - frac))))])
    starts = [s for s in starts if math.isfinite(s)]
    if not starts:
        return []
    return [VSpan(float(np.median(starts)), math.inf, f"scored window: last {frac:.0%} of measurements")]


def forest_plot(check: CheckResult, seeds: list | None = None, fig_id: str = "fig") -> tuple[str, list[str]]:
    """Per-seed values of a check at integer positions, the mean with its interval, and the whole band.

    Seeds sit at x = 0..n-1 (labelled by seed number when the counts match); the mean sits apart at x = n+1
    with its interval as an error bar (the larger side for an asymmetric range). Both finite edges of the
    accepted band are inside the axes; an open side runs to the frame.
    """
    est = check.estimate
    values = [to_float(v) for v in est.get("per_seed", [])]
    mean, lo, hi = to_float(est["value"]), to_float(est["lo"]), to_float(est["hi"])
    n = len(values)
    has_ci = math.isfinite(lo) and math.isfinite(hi) and hi > lo
    label = f"mean [{lo:.4g}, {hi:.4g}]" if has_ci else ("mean (zero-width CI)" if lo == hi else
                                                          "mean (no interval)")
    series = [Series("per seed", list(range(n)), values, style="markers", color=PALETTE[0], gid="per-seed"),
              Series(label, [n + 1], [mean], style="markers", color="#000000",
                     y_err=[max(mean - lo, hi - mean)] if has_ci else None, gid="mean-ci")]
    region = [to_float(v) for v in check.region or (math.nan, math.nan)]
    bands = []
    if any(math.isfinite(v) for v in region):
        rlo = region[0] if math.isfinite(region[0]) else -math.inf
        rhi = region[1] if math.isfinite(region[1]) else math.inf
        bands = [HBand(rlo, rhi, f"accepted {check.expectation or _region_text(rlo, rhi)}")]
    edge = to_float(check.effect_edge) if check.effect_edge is not None else math.nan
    hlines = [HLine(edge, f"smallest effect of interest {edge:.4g}: an interval wholly short of it fails",
                    color="#b3261e", gid="effect-edge")] if math.isfinite(edge) else []
    names = [str(s) for s in seeds] if seeds and len(seeds) == n else [str(i) for i in range(n)]
    ticks = [(i, names[i]) for i in range(n)] + [(n + 1, "mean")]
    name = check.label or check.metric
    svg = line_plot(series, title=f"{check.metric}: per seed → {check.verdict or ''}", xlabel="seed",
                    ylabel=name if len(name) <= 40 else check.metric, bands=bands, hlines=hlines,
                    width=560, height=280,
                    xticks=ticks, fig_id=fig_id)
    return svg, []


def visible_region(shown: list[float], region: list[float]) -> tuple[float, float] | None:
    """The accepted region as a band for a plot of `shown` values: None when there is nothing to draw,
    else the region with open (infinite or NaN) sides kept infinite (plotting runs them to the frame)."""
    if not shown or not any(math.isfinite(to_float(v)) for v in region):
        return None
    lo, hi = (to_float(v) for v in region)
    return (lo if math.isfinite(lo) else -math.inf, hi if math.isfinite(hi) else math.inf)
