"""Inline SVG figures drawn with matplotlib (Agg backend, imported on first use, so `python -m harness`
starts fast and runs where matplotlib is missing: only rendering a report needs it).

The figure is described as data (`Series`, `Fill`, `HBand`, `HLine`, `VSpan`, `VLine`) and drawn by
`line_plot`. Bands are drawn after the data have fixed the axis limits, so a one-sided band ("<= 1")
runs to the frame on its open side and shows its one edge as a line: it never reads as a closed range.
Every reference element carries an SVG id (`<fig_id>-<gid>`, e.g. `claim-x-p0-accepted-band`), and the
figure a `<title>`, so a browser or a test can find the band, the scored window and the onset.
"""
from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from harness.errors import HarnessError

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
ACCEPTED_COLOR = "#009E73"  # Okabe-Ito green: the accepted region
WINDOW_COLOR = "#E69F00"    # Okabe-Ito orange: the scored window
ONSET_COLOR = "#CC79A7"     # Okabe-Ito purple: the onset
INSTALL_HINT = "figures need matplotlib: pip install 'matplotlib>=3.7' (a dependency of claim-harness)"


class PlottingUnavailable(HarnessError):
    """matplotlib is not installed: the report says so instead of drawing figures."""


@dataclass(frozen=True)
class Series:
    """One curve. style: "line", "markers" or "line+markers"; y_err: symmetric error bars."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    style: str = "line"
    color: str | None = None  # None: the series' position in PALETTE
    dash: bool = False
    y_err: Sequence[float] | None = None
    alpha: float = 1.0
    width: float = 1.6
    gid: str = ""


@dataclass(frozen=True)
class Fill:
    """A shaded band between two curves over x (e.g. the interquartile range across seeds)."""

    label: str
    x: Sequence[float]
    lo: Sequence[float]
    hi: Sequence[float]
    color: str = "#0072B2"
    gid: str = ""


@dataclass(frozen=True)
class HLine:
    """A horizontal reference line (2, 2/lr, a threshold), labelled in the legend."""

    y: float
    label: str
    dash: bool = True
    color: str = "#444444"
    gid: str = ""


@dataclass(frozen=True)
class HBand:
    """A horizontal band from lo to hi; an infinite end runs to the frame (a one-sided band)."""

    lo: float
    hi: float
    label: str
    color: str = ACCEPTED_COLOR
    gid: str = "accepted-band"


@dataclass(frozen=True)
class VSpan:
    """A vertical span of x (e.g. the scored window); an infinite end runs to the frame."""

    lo: float
    hi: float
    label: str
    color: str = WINDOW_COLOR
    gid: str = "scored-window"


@dataclass(frozen=True)
class VLine:
    """A vertical marker at x (e.g. the onset)."""

    x: float
    label: str
    color: str = ONSET_COLOR
    gid: str = "onset"


def _pyplot():
    """matplotlib.pyplot on the Agg backend, with text kept as SVG text and stable element ids."""
    try:
        import matplotlib
    except ImportError as e:
        raise PlottingUnavailable(INSTALL_HINT) from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "claim-harness",
                                "font.size": 9, "axes.titlesize": 9.5, "legend.fontsize": 7.5,
                                "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _finite(values, positive: bool = False) -> list[float]:
    out = []
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f) and (f > 0 or not positive):
            out.append(f)
    return out


def _limits(values: list[float], log: bool) -> tuple[float, float] | None:
    """Axis limits around values with a 6% margin (in log space on a log axis)."""
    if not values:
        return None
    lo, hi = min(values), max(values)
    if log:
        lo, hi = math.log10(lo), math.log10(hi)
    pad = 0.06 * (hi - lo) if hi > lo else (0.1 * abs(hi) if hi else 1.0)
    lo, hi = lo - pad, hi + pad
    return (10 ** lo, 10 ** hi) if log else (lo, hi)


def line_plot(series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, xlog: bool = False,
              ylog: bool = False, hlines: Sequence[HLine] = (), bands: Sequence[HBand] = (),
              fills: Sequence[Fill] = (), vspans: Sequence[VSpan] = (), vlines: Sequence[VLine] = (),
              width: int = 560, height: int = 320, xticks: Sequence[tuple[float, str]] = (),
              fig_id: str = "fig") -> str:
    """Curves with reference lines, bands, shaded x spans and markers, as one inline `<svg>` element.

    Args:
        series, fills: curves and shaded curve bands (colour in PALETTE order unless set).
        title, xlabel, ylabel: text; the title is also the SVG's `<title>`.
        xlog, ylog: log axes; non-positive points are masked there.
        hlines, bands: y references; the y range includes every finite edge (a band is drawn whole) and line.
        vspans, vlines: x references (scored window, onset), clipped to the data's x range.
        width, height: size in px (the SVG scales down to its container).
        xticks: (position, label) pairs replacing numeric x ticks (integer positions such as seeds or runs).
        fig_id: prefix of the element ids, unique within the page.
    Returns:
        An `<svg>` element string; a "no data" panel when no point is drawable.
    Raises:
        PlottingUnavailable: matplotlib is not installed.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(width / 96, height / 96), dpi=96)
    try:
        _draw(ax, series, fills, hlines, bands, vspans, vlines, xlog, ylog, xticks, fig_id)
        ax.set_title(title if len(title) <= 90 else title[:87] + "...", loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, borderaxespad=0.0)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(fig)
    return _inline(buf.getvalue(), title, fig_id)


def _draw(ax, series, fills, hlines, bands, vspans, vlines, xlog, ylog, xticks, fig_id) -> None:
    if xlog:
        ax.set_xscale("log", nonpositive="mask")
    if ylog:
        ax.set_yscale("log", nonpositive="mask")
    xs_all, ys_all = [], []
    for i, f in enumerate(fills):
        ax.fill_between(list(f.x), list(f.lo), list(f.hi), color=f.color, alpha=0.22, linewidth=0,
                        label=f.label or None, gid=f"{fig_id}-{f.gid or f'fill{i}'}")
        xs_all += _finite(f.x, xlog)
        ys_all += _finite(list(f.lo) + list(f.hi), ylog)
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        marker = "o" if "markers" in s.style else None
        ls = "none" if s.style == "markers" else ("--" if s.dash else "-")
        y_err = None if s.y_err is None else [e if math.isfinite(e) else 0.0 for e in _nan_floats(s.y_err)]
        ax.errorbar(_nan_floats(s.x), _nan_floats(s.y), yerr=y_err, color=color, linestyle=ls, marker=marker,
                    markersize=4, linewidth=s.width, alpha=s.alpha, capsize=3 if y_err else 0,
                    label=s.label or None, gid=f"{fig_id}-{s.gid or f'series{i}'}")
        xs_all += _finite(s.x, xlog)
        ys = _nan_floats(s.y)
        errs = y_err or [0.0] * len(ys)
        ys_all += _finite([y + sgn * e for y, e in zip(ys, errs) for sgn in (-1, 1)], ylog)
    if not xs_all or not ys_all:
        ax.text(0.5, 0.5, "no data to draw", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    refs = [h.y for h in hlines] + [e for b in bands for e in (b.lo, b.hi)]
    ylim = _limits(ys_all + _finite(refs, ylog), ylog)
    xlim = _limits(xs_all, xlog) if not xticks else (min(p for p, _ in xticks) - 0.6,
                                                      max(p for p, _ in xticks) + 0.6)
    if xticks:
        xlim = (min(xlim[0], min(xs_all) - 0.6), max(xlim[1], max(xs_all) + 0.6))
        ax.set_xticks([p for p, _ in xticks], [lab for _, lab in xticks])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    for h in hlines:
        if math.isfinite(h.y) and (h.y > 0 or not ylog):
            ax.axhline(h.y, color=h.color, linestyle="--" if h.dash else "-", linewidth=1.1,
                       label=h.label, gid=f"{fig_id}-{h.gid or 'reference'}")
    for b in bands:  # against the final limits: an open side runs to the frame
        lo, hi = max(b.lo, ylim[0]), min(b.hi, ylim[1])
        if lo < hi:
            ax.axhspan(lo, hi, color=b.color, alpha=0.16, linewidth=0, label=b.label, gid=f"{fig_id}-{b.gid}")
        for k, edge in enumerate((b.lo, b.hi)):
            if math.isfinite(edge) and ylim[0] <= edge <= ylim[1]:
                ax.axhline(edge, color=b.color, linewidth=1.0, gid=f"{fig_id}-{b.gid}-edge{k}")
    for v in vspans:
        lo, hi = max(v.lo, xlim[0]), min(v.hi, xlim[1])
        if lo < hi:
            ax.axvspan(lo, hi, color=v.color, alpha=0.13, linewidth=0, label=v.label, gid=f"{fig_id}-{v.gid}")
    for v in vlines:
        if math.isfinite(v.x) and xlim[0] <= v.x <= xlim[1]:
            ax.axvline(v.x, color=v.color, linestyle=":", linewidth=1.6, label=v.label, gid=f"{fig_id}-{v.gid}")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)


def _nan_floats(values) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


_GENERIC_ID = re.compile(r' id="((?:figure|axes|patch|line2d|text|legend|xtick|ytick|matplotlib\.axis|'
                         r'[A-Za-z]*Collection)_\d+)"')


def _inline(svg: str, title: str, fig_id: str) -> str:
    """matplotlib's SVG document as an inline element: no XML prolog, its generic ids ("axes_1", which
    repeat across figures of one page) prefixed by fig_id, a `<title>`, and a size that scales to its
    container."""
    svg = svg[svg.index("<svg"):]
    svg = _GENERIC_ID.sub(lambda m: f' id="{escape(fig_id)}-{m.group(1)}"', svg)
    head_end = svg.index(">") + 1
    return (svg[:head_end - 1] + f' id="{escape(fig_id)}" class="figure" role="img" style="max-width:100%;height:auto">'
            + f"<title>{escape(title)}</title>" + svg[head_end:])
