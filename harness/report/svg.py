"""Dependency-free SVG plots for the HTML report.

Each plot function returns one inline ``<svg>`` element as a string: no scripts, no fonts to fetch, no
``id`` attributes (several plots can share one HTML page), and the same input always gives the same string.
Points that cannot be drawn (NaN, inf, non-positive on a log axis) are skipped and leave a gap in the line;
reference values (``HLine``, ``HBand``) must be finite. All text is XML-escaped. Ticks, scales and the
frame they are drawn on live in `harness.report.svg_axes`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from harness.report.svg_axes import _FONT, Box, _esc, _frame, _n, _Scale, _scale, _text, _width

# Okabe & Ito (2008), "Color Universal Design"; yellow last because it is faint on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
Style = Literal["line", "markers", "line+markers"]
_STYLES = ("line", "markers", "line+markers")
_HALO = ' stroke="#fff" stroke-width="3" paint-order="stroke" font-size="10"'  # text readable over lines


def _floats(what: str, values: Sequence[float]) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be a sequence of numbers; got {values!r:.80}") from e


def _set_finite(obj: object, *names: str) -> None:
    """Coerce fields of a frozen reference dataclass to finite floats."""
    for name in names:
        v = _floats(f"{type(obj).__name__} {obj.label!r} {name}", [getattr(obj, name)])[0]
        if not math.isfinite(v):
            raise ValueError(f"{type(obj).__name__} {obj.label!r}: {name} must be finite, got {v}; "
                             "leave the reference out when it is undefined")
        object.__setattr__(obj, name, v)


@dataclass(frozen=True)
class Series:
    """One curve: ``x`` and ``y`` of equal length; ``y_err`` are half-widths of error bars (NaN: none)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    style: Style = "line"
    color: str | None = None  # None: the series' position in PALETTE
    dash: bool = False
    y_err: Sequence[float] | None = None

    def __post_init__(self) -> None:
        x, y = _floats(f"Series {self.label!r} x", self.x), _floats(f"Series {self.label!r} y", self.y)
        if len(x) != len(y):
            raise ValueError(f"Series {self.label!r}: x has {len(x)} values but y has {len(y)}; "
                             "pass one y per x")
        if self.style not in _STYLES:
            raise ValueError(f"Series {self.label!r}: style must be one of {_STYLES}, got {self.style!r}")
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        if self.y_err is not None:
            e = _floats(f"Series {self.label!r} y_err", self.y_err)
            if len(e) != len(y) or any(v < 0 for v in e):
                raise ValueError(f"Series {self.label!r}: y_err needs {len(y)} half-widths >= 0 (NaN: none), "
                                 f"got {len(e)} values with minimum {min(e, default=0)}")
            object.__setattr__(self, "y_err", e)


@dataclass(frozen=True)
class HLine:
    """A horizontal reference line (e.g. the stability threshold 2/η), labelled at its right end."""

    y: float
    label: str
    dash: bool = True
    color: str = "#444444"

    def __post_init__(self) -> None:
        _set_finite(self, "y")


@dataclass(frozen=True)
class HBand:
    """A shaded horizontal band ``lo <= y <= hi`` (e.g. the accepted tolerance around a target)."""

    lo: float
    hi: float
    label: str
    color: str = "#999999"

    def __post_init__(self) -> None:
        _set_finite(self, "lo", "hi")
        if self.lo > self.hi:
            raise ValueError(f"HBand {self.label!r}: lo={self.lo} is above hi={self.hi}; swap them")


def _svg(width: int, height: float, title: str, body: list[str]) -> str:
    font = min(13.0, (width - 20) / (0.62 * max(1, len(title))))  # shrink a long title to fit
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {_n(height)}" width="{width}" '
        f'height="{_n(height)}" role="img" font-family="sans-serif" font-size="{_FONT}" '
        'style="max-width:100%;height:auto">',
        f"<title>{_esc(title)}</title>",
        f'<rect width="{width}" height="{_n(height)}" fill="#fff"/>',
        _text(width / 2, 18, title, extra=f' font-size="{_n(font)}" font-weight="bold"'),
        *body, "</svg>",
    ])  # fmt: skip


def _check_size(width: int, height: int) -> None:
    if width < 200 or height < 150:
        raise ValueError(f"plot size must be at least 200x150 px, got {width}x{height}")


def _no_data(title: str, width: int, height: int) -> str:
    box = f'<rect x="10" y="30" width="{width - 20}" height="{height - 40}" fill="none" stroke="#bbb"/>'
    note = _text(width / 2, height / 2 + 10, "no data", "middle", ' fill="#777"')
    return _svg(width, height, title, [box, note])


def _refs(
    ys: _Scale, box: Box, hlines: Sequence[HLine], bands: Sequence[HBand]
) -> tuple[list[str], list[str]]:
    """Bands and reference lines, and separately their labels (drawn last, over the data).

    On a log axis a band bottom <= 0 is clipped to the axis; a line or band top <= 0 is skipped.
    """
    x0, y0, x1, y1 = box
    shapes, labels = [], []
    for b in bands:
        if ys.log and b.hi <= 0:
            continue
        top = y1 - ys.frac(b.hi) * (y1 - y0)
        bottom = y1 - ys.frac(b.lo) * (y1 - y0) if b.lo > 0 or not ys.log else y1
        shapes.append(f'<rect class="band" x="{_n(x0)}" y="{_n(top)}" width="{_n(x1 - x0)}" '
                      f'height="{_n(bottom - top)}" fill="{_esc(b.color)}" fill-opacity="0.2"/>')
        ty = top + 12 if bottom - top >= 14 or top - 14 < y0 else top - 3
        labels.append(_text(x0 + 4, ty, b.label, "start", f' fill="#555"{_HALO}'))
    for h in hlines:
        if ys.log and h.y <= 0:
            continue
        y, c, dash = y1 - ys.frac(h.y) * (y1 - y0), _esc(h.color), ' stroke-dasharray="6 3"' if h.dash else ""
        shapes.append(f'<path class="hline" d="M{_n(x0)} {_n(y)}H{_n(x1)}" stroke="{c}" stroke-width="1.2"'
                      f"{dash}/>")
        labels.append(_text(x1 - 4, y - 4 if y - 14 >= y0 else y + 12, h.label, "end", f' fill="{c}"{_HALO}'))
    return shapes, labels


def _errbar(px: float, lo: float, hi: float, cap: float) -> str:
    left, w = _n(px - cap), _n(2 * cap)
    return f"M{_n(px)} {_n(lo)}V{_n(hi)}M{left} {_n(lo)}h{w}M{left} {_n(hi)}h{w}"


def _segments(s: Series, xlog: bool, ylog: bool) -> list[list[tuple[float, float, float]]]:
    """Runs of drawable (x, y, err) points; an undrawable point ends a run."""
    runs, cur = [], []
    for x, y, e in zip(s.x, s.y, s.y_err or (0.0,) * len(s.x)):
        if math.isfinite(x) and math.isfinite(y) and (x > 0 or not xlog) and (y > 0 or not ylog):
            cur.append((x, y, e if math.isfinite(e) else 0.0))
        elif cur:
            runs, cur = runs + [cur], []
    return runs + [cur] if cur else runs


def _series(s: Series, runs: list, color: str, xs: _Scale, ys: _Scale, box: Box) -> list[str]:
    """One series as a group: error bars, one path for all line runs (one 'M' per run), markers."""
    x0, y0, x1, y1 = box
    X, Y = (lambda v: x0 + xs.frac(v) * (x1 - x0)), (lambda v: y1 - ys.frac(v) * (y1 - y0))
    d, dots, errs, c = [], [], [], _esc(color)
    for run in runs:
        xy = [(_n(X(x)), _n(Y(y))) for x, y, _ in run]
        xy = [p for i, p in enumerate(xy) if i == 0 or p != xy[i - 1]]  # drop repeats of the same pixel
        if "line" in s.style and len(xy) > 1:
            d.append(f"M{xy[0][0]} {xy[0][1]}L" + " ".join(f"{a} {b}" for a, b in xy[1:]))
        if "markers" in s.style or len(xy) == 1:  # a lone point of a line would vanish otherwise
            dots += [f'<circle cx="{a}" cy="{b}" r="{2.8 if len(xy) < 300 else 1.6}"/>' for a, b in xy]
        # on a log axis a bar reaching 0 or below ends at the bottom of the plot
        errs += [_errbar(X(x), Y(y - e) if y > e or not ys.log else y1, Y(y + e), 3) for x, y, e in run if e]
    out = ['<g class="series">']
    if errs:
        out.append(f'<path class="err" d="{"".join(errs)}" stroke="{c}" fill="none"/>')
    if d:
        dash = ' stroke-dasharray="6 4"' if s.dash else ""
        out.append(f'<path class="line" d="{"".join(d)}" stroke="{c}" stroke-width="1.8" fill="none" '
                   f'stroke-linejoin="round"{dash}/>')
    if dots:
        out += [f'<g class="markers" fill="{c}">', *dots, "</g>"]
    return out + ["</g>"]


def _legend(entries: list[tuple[str, str]], x: float, y: float, wrap: float) -> tuple[list[str], int]:
    """(label, sample) items from (x, y), wrapping to a new row past x + ``wrap``; returns parts and rows."""
    out, cx, cy, rows = ['<g class="legend">'], x, y, 1
    for label, sample in entries:
        w = 28 + _width(label) + 14
        if cx > x and cx + w > x + wrap:
            cx, cy, rows = x, cy + 16, rows + 1
        out.append(sample.format(x=_n(cx), xm=_n(cx + 11), x2=_n(cx + 22), y=_n(cy)))
        out.append(_text(cx + 28, cy + 4, label, "start"))
        cx += w
    return out + ["</g>"], rows


def line_plot(
    series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, xlog: bool = False, ylog: bool = False,
    hlines: Sequence[HLine] = (), bands: Sequence[HBand] = (), width: int = 560, height: int = 320,
    xticks: Sequence[tuple[float, str]] = (),
) -> str:
    """Curves with a legend, optional reference lines and bands, on linear or log axes.

    Args:
        series: curves to draw, coloured in PALETTE order unless ``Series.color`` is set.
        title, xlabel, ylabel: text (escaped); the title is also the accessible name (``<title>``).
        xlog, ylog: log10 axes with decade ticks; non-positive points are skipped there.
        hlines, bands: references; the y range always includes them.
        width, height: size in px; a legend too wide for the right side goes below, adding height.
        xticks: (position, label) pairs that replace the numeric x ticks (a linear axis of categories such as
            runs: the axis spans them with half a step either side, so one point gets one label, not 0.9 ... 1.1).
    Returns:
        An ``<svg>`` element string; a "no data" panel when no point is drawable.
    Raises:
        ValueError: if the size is below 200x150.
    """
    _check_size(width, height)
    runs = [_segments(s, xlog, ylog) for s in series]
    pts = [p for r in runs for run in r for p in run]
    if not pts:
        return _no_data(title, width, height)
    yv = [y + s * e for _, y, e in pts for s in (-1, 1)] + [h.y for h in hlines]
    yv += [v for b in bands for v in (b.lo, b.hi)]
    margin = 0.04 if any("markers" in s.style or s.y_err for s in series) else 0.0  # keep dots off the frame
    xs, ys = _scale([p[0] for p in pts], xlog, margin), _scale([v for v in yv if v > 0 or not ylog], ylog)
    if xticks and not xlog:
        at = [float(p) for p, _ in xticks]
        lo, hi = min(at + [p[0] for p in pts]) - 0.5, max(at + [p[0] for p in pts]) + 0.5
        xs = _Scale(lo, hi, False, tuple(at), tuple(str(label) for _, label in xticks))
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    entries = []
    for s, r, c in zip(series, runs, map(_esc, colors)):
        if not s.label:  # unlabelled series stay out of the legend
            continue
        dash = ' stroke-dasharray="6 4"' if s.dash else ""
        # samples are templates: _legend fills in {x}, {xm}, {x2}, {y}
        line = f'<path d="M{{x}} {{y}}H{{x2}}" stroke="{c}" stroke-width="2"{dash}/>' * ("line" in s.style)
        dot = f'<circle cx="{{xm}}" cy="{{y}}" r="3" fill="{c}"/>' * ("markers" in s.style)
        entries.append((s.label + ("" if r else " (no data)"), line + dot))
    legend_w = 28 + max((_width(label) for label, _ in entries), default=0) + 12
    right = legend_w <= 0.3 * width and 16 * len(entries) <= height - 80  # else the legend goes below
    x0 = (28 if ylabel else 10) + max(map(_width, ys.labels))
    x1 = width - (legend_w + 8 if right else max(16, _width(xs.labels[-1]) / 2 + 4))
    box = (x0, 30.0, x1, height - 42.0)
    shapes, labels = _refs(ys, box, hlines, bands)
    out = _frame(ys, xs, box, xlabel, ylabel) + shapes
    for s, r, c in zip(series, runs, colors):
        out += _series(s, r, c, xs, ys, box)
    legend, rows = _legend(entries, x1 + 12, 36, 0) if right else _legend(entries, x0, height + 4, x1 - x0)
    return _svg(width, height if right else height + 16 * rows + 4, title, out + labels + legend)


def scatter_plot(
    series: Sequence[Series], *, title: str, xlabel: str, ylabel: str, xlog: bool = False, ylog: bool = False,
    hlines: Sequence[HLine] = (), bands: Sequence[HBand] = (), width: int = 560, height: int = 320,
) -> str:
    """``line_plot`` with every series drawn as markers only (same arguments, same return)."""
    return line_plot(
        [replace(s, style="markers") for s in series], title=title, xlabel=xlabel, ylabel=ylabel, xlog=xlog,
        ylog=ylog, hlines=hlines, bands=bands, width=width, height=height,
    )


def bar_plot(
    categories: Sequence[str], values: Sequence[float], errors: Sequence[float] | None = None, *, title: str,
    ylabel: str, xlabel: str = "", hlines: Sequence[HLine] = (), bands: Sequence[HBand] = (),
    width: int = 560, height: int = 320,
) -> str:
    """Bars from 0 (negative values hang below the zero line) with optional symmetric error bars.

    Args:
        categories: one label per bar (escaped); long ones are slanted and cut short with an ellipsis.
        values: bar heights; a NaN/inf value leaves its slot marked "n/a".
        errors: half-widths of the error bars (e.g. of a CI), >= 0; NaN draws none.
        title, ylabel, xlabel, hlines, bands, width, height: as in ``line_plot``.
    Returns:
        An ``<svg>`` element string; a "no data" panel when no value is finite.
    Raises:
        ValueError: if the lengths differ, an error is negative or the size is below 200x150.
    """
    _check_size(width, height)
    cats, v = [str(c) for c in categories], _floats("bar_plot values", values)
    e = (0.0,) * len(v) if errors is None else _floats("bar_plot errors", errors)
    if not len(cats) == len(v) == len(e) or any(x < 0 for x in e):
        raise ValueError(f"bar_plot needs one value and one error >= 0 per category; got {len(cats)} "
                         f"categories, {len(v)} values, {len(e)} errors (minimum {min(e, default=0)})")
    ok = [math.isfinite(x) for x in v]
    if not any(ok):
        return _no_data(title, width, height)
    e = tuple(x if math.isfinite(x) else 0.0 for x in e)
    yv = [0.0] + [y + s * d for y, d, f in zip(v, e, ok) if f for s in (-1, 1)]
    ys = _scale(yv + [h.y for h in hlines] + [b for band in bands for b in (band.lo, band.hi)], False)
    most = max(4, min(24, int((0.45 * height - 24) / (0.64 * 0.6 * _FONT))))  # slanted labels fit the margin
    cats = [c if len(c) <= most else c[: most - 1] + "\u2026" for c in cats]
    n, x1, cat_w = len(cats), width - 16.0, max(map(_width, cats))
    x0 = (28 if ylabel else 10) + max(map(_width, ys.labels))
    slant = cat_w > (x1 - x0) / n - 6
    if slant:  # the first label reaches cos(40 deg) * its width left of its bar centre: keep it in view
        x0 = max(x0, (0.77 * cat_w + 6 - x1 / (2 * n)) / (1 - 1 / (2 * n)))
    slot, bottom = (x1 - x0) / n, 24 + (0.64 * cat_w if slant else 0) + (18 if xlabel else 0)
    box = (x0, 30.0, x1, height - max(42.0, min(bottom, 0.45 * height)))
    Y = lambda y: box[3] - ys.frac(y) * (box[3] - box[1])  # noqa: E731
    shapes, ref_labels = _refs(ys, box, hlines, bands)
    out = _frame(ys, None, box, "", ylabel) + shapes + [f'<g class="bars" fill="{PALETTE[0]}">']
    errs, labels = [], []
    for i, (c, y, d, f) in enumerate(zip(cats, v, e, ok)):
        cx = x0 + (i + 0.5) * slot
        if f:
            top, h = min(Y(y), Y(0)), abs(Y(y) - Y(0))
            out.append(f'<rect x="{_n(cx - 0.3 * slot)}" y="{_n(top)}" width="{_n(0.6 * slot)}" '
                       f'height="{_n(h)}"/>')
            errs += [_errbar(cx, Y(y - d), Y(y + d), 4)] if d > 0 else []
        else:
            out.append(_text(cx, Y(0) - 4, "n/a", extra=' fill="#777"'))
        turn = f' transform="rotate(-40 {_n(cx)} {_n(box[3] + 14)})"' if slant else ""
        labels.append(_text(cx + 4 * slant, box[3] + 16 - 2 * slant, c, "end" if slant else "middle", turn))
    out.append("</g>")
    if errs:
        out.append(f'<path class="err" d="{"".join(errs)}" stroke="#333" fill="none"/>')
    out.append(f'<path class="zero" d="M{_n(x0)} {_n(Y(0))}H{_n(x1)}" stroke="#333"/>')
    if xlabel:
        out.append(_text((x0 + x1) / 2, height - 8, xlabel))
    return _svg(width, height, title, out + ['<g class="xticks">', *labels, "</g>"] + ref_labels)
