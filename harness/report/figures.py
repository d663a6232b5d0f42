"""Figures of one claim: its declared curve plots (one series per seed) and a forest plot per check.

Inputs are the claim entry of a run summary and the claim's seed records as stored (JSON dicts), so a
report renders from the results folder alone. Every function returns inline SVG strings from
`harness.report.svg` plus short notes for what could not be drawn; nothing here raises on bad data.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from harness.records import CheckResult, ClaimResult, SeedRecord
from harness.report.svg import PALETTE, HBand, HLine, Series, line_plot

log = logging.getLogger(__name__)

_STYLES = ("line", "markers", "line+markers")
ACCEPTED_COLOR = "#009E73"  # Okabe-Ito green: the accepted region band


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
        HarnessError: the claim entry has no id (harness.records.ClaimResult.from_dict).
    """
    return result_figures(ClaimResult.from_dict(claim),
                          [None if r is None else SeedRecord.from_dict(r) for r in records])


def result_figures(claim: ClaimResult, records: list[SeedRecord | None]) -> Figures:
    """claim_figures on records already read (the report reads each run summary once).

    Args:
        claim: one claim of a run.
        records: the seed records of claim.seeds, in the same order; None where missing.
    """
    figs = Figures()
    measured = [(s.seed, r.measurement) for s, r in zip(claim.seeds, records)
                if r is not None and r.measurement]
    unplotted = [str(s.seed) for s, r in zip(claim.seeds, records) if r is None or not r.measurement]
    if unplotted and claim.plots:
        figs.notes.append(f"seed(s) {', '.join(unplotted)} not plotted: no measurement (errored or missing)")
    for spec in claim.plots:
        _add(figs, spec.get("title", "plot"), lambda spec=spec: curve_plot(spec, measured))
    for check in claim.checks:
        if check.estimate:
            _add(figs, f"check {check.metric}", lambda check=check: forest_plot(check))
    return figs


def _add(figs: Figures, name: str, build) -> None:
    """Run one figure builder; a builder's note or a drawing error becomes a note, not a crash."""
    try:
        svg, notes = build()
    except (ValueError, TypeError, KeyError) as e:  # malformed stored data: say so on the page
        log.warning("report: could not draw %s: %s", name, e)
        figs.notes.append(f"{name}: not drawn ({type(e).__name__}: {e})")
        return
    if svg:
        figs.svgs.append(svg)
    figs.notes.extend(notes)


def curve_plot(spec: dict, measured: list[tuple[int, dict]]) -> tuple[str | None, list[str]]:
    """One declared plot: the curve table spec["curve"] of every seed, one series per seed and y column.

    Args:
        spec: a Plot as a dict (curve, x, y, title, ylabel, xlabel, ylog, xlog, hlines, style).
        measured: (seed, measurement dict) for every seed that has a measurement.
    Returns:
        (svg or None, notes). None when no seed recorded the curve.
    """
    title, curve, xcol = spec["title"], spec["curve"], spec["x"]
    ycols = list(spec["y"])
    style = spec.get("style", "line") if spec.get("style") in _STYLES else "line"
    notes, series = [], []
    tables = [(seed, m["curves"][curve]) for seed, m in measured if curve in m.get("curves", {})]
    if not tables:
        return None, [f"plot '{title}' skipped: no seed recorded the curve '{curve}'"]
    for seed, table in tables:
        if xcol not in table:
            notes.append(f"plot '{title}': seed {seed} has no column '{xcol}'")
            continue
        xs = [to_float(v) for v in table[xcol]]
        for j, ycol in enumerate(ycols):
            if ycol not in table:
                notes.append(f"plot '{title}': seed {seed} has no column '{ycol}'")
                continue
            label = f"seed {seed}" if len(ycols) == 1 else f"{ycol} · seed {seed}"
            # several y columns: colour by column, so replicates of one quantity share a colour
            color = PALETTE[j % len(PALETTE)] if len(ycols) > 1 else None
            series.append(Series(label, xs, [to_float(v) for v in table[ycol]], style=style, color=color,
                                 dash=len(ycols) > 1 and seed % 2 == 1))
    hlines, hnotes = _hlines(spec, measured[0][1] if measured else {})
    svg = line_plot(series, title=title, xlabel=spec.get("xlabel") or xcol, ylabel=spec.get("ylabel", ""),
                    xlog=bool(spec.get("xlog")), ylog=bool(spec.get("ylog")), hlines=hlines)
    return svg, notes + hnotes


def _hlines(spec: dict, first: dict) -> tuple[list[HLine], list[str]]:
    """Reference lines; a string y is a scalar of the first measured seed (e.g. "two_over_lr")."""
    out, notes = [], []
    for y, label in spec.get("hlines", []):
        if isinstance(y, str):
            value = to_float(first.get("scalars", {}).get(y))
            if not math.isfinite(value):
                notes.append(f"plot '{spec['title']}': reference '{label}' not drawn "
                             f"(scalar '{y}' missing or not finite)")
                continue
            out.append(HLine(value, f"{label} = {value:.4g}"))
        elif math.isfinite(to_float(y)):
            out.append(HLine(to_float(y), label))
    return out, notes


def forest_plot(check: CheckResult) -> tuple[str, list[str]]:
    """Per-seed values of a check, the mean with its interval, and the accepted region as a band.

    Seeds sit at x = 0..n-1 (coloured as in the curve plots); the mean sits apart at x = n+1 with its
    interval as an error bar (the larger side for an asymmetric range).
    """
    est = check.estimate
    values = [to_float(v) for v in est.get("per_seed", [])]
    mean, lo, hi = to_float(est["value"]), to_float(est["lo"]), to_float(est["hi"])
    series = [Series(f"seed {i}", [i], [v], style="markers") for i, v in enumerate(values)]
    has_ci = math.isfinite(lo) and math.isfinite(hi) and hi > lo
    label = "mean ± CI" if has_ci else ("mean (zero-width CI)" if lo == hi else "mean (no interval)")
    series.append(Series(label, [len(values) + 1], [mean], style="markers", color="#000000",
                         y_err=[max(mean - lo, hi - mean)] if has_ci else None))
    region = [to_float(v) for v in check.region or (math.nan, math.nan)]
    shown = [v for v in values + [mean] + ([lo, hi] if has_ci else []) if math.isfinite(v)]
    band = _visible_region(shown, region)
    bands = [HBand(*band, f"accepted {check.expectation or ''}", color=ACCEPTED_COLOR)] if band else []
    name = check.label or check.metric
    svg = line_plot(series, title=f"{check.metric}: per seed → {check.verdict or ''}",
                    xlabel="seed (right: mean ± 95% CI)", ylabel=name if len(name) <= 40 else check.metric,
                    bands=bands, width=560, height=280)
    return svg, []


def _visible_region(shown: list[float], region: list[float]) -> tuple[float, float] | None:
    """The part of the accepted region worth drawing next to the data: an edge far from data that lies
    inside the region is cut off (the band's label states the full region); an edge the data is
    outside of, or near, is always drawn."""
    if not shown or not any(math.isfinite(v) for v in region):
        return None
    dlo, dhi = min(shown), max(shown)
    span = (dhi - dlo) or abs(dhi) * 0.1 or 1.0
    wlo, whi = dlo - 0.5 * span, dhi + 0.5 * span
    rlo = region[0] if math.isfinite(region[0]) else -math.inf
    rhi = region[1] if math.isfinite(region[1]) else math.inf
    inside = rlo <= dlo and dhi <= rhi
    for edge in (rlo, rhi):
        if math.isfinite(edge) and (not inside or wlo - 3 * span <= edge <= whi + 3 * span):
            wlo, whi = min(wlo, edge), max(whi, edge)
    margin = 0.1 * (whi - wlo)  # so a band that ends at the window's edge still shows
    wlo, whi = wlo - margin, whi + margin
    lo, hi = max(rlo, wlo), min(rhi, whi)
    return (lo, hi) if lo <= hi else None
