"""Axes of the report's SVG plots: 1-2-5 and decade ticks, their labels, the data-to-pixel scale, and the
frame (grid, tick marks, tick and axis labels) drawn from it; with the markup helpers every plot shares
(XML escaping, pixel numbers, text elements and their rough width).

`harness.report.svg` draws the plots on these axes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

_FONT = 11  # px; 0.6 * _FONT is the rough advance of one sans-serif character, used to size margins
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")  # not allowed in XML 1.0
Box = tuple[float, float, float, float]  # plot area in px: left, top, right, bottom


def _esc(text: str) -> str:
    return escape(_XML_BAD.sub("\ufffd", str(text)), quote=True)


def _n(v: float) -> str:
    """Pixel coordinate with at most one decimal: '12', '12.3'."""
    s = f"{v:.1f}".removesuffix(".0")
    return "0" if s == "-0" else s


def _text(x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}"{extra}>{_esc(s)}</text>'


def _width(s: str) -> float:
    return len(s) * 0.6 * _FONT


def _nice_step(lo: float, hi: float, target: int) -> float:
    """Smallest 1-2-5 step that cuts [lo, hi] into at most ``target`` intervals."""
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and math.isfinite(hi - lo)):
        raise ValueError(f"tick range must be finite with lo < hi, got lo={lo}, hi={hi}")
    raw = (hi - lo) / max(1, target)
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw * (1 - 1e-9))


def _ticks_in(lo: float, hi: float, step: float) -> tuple[float, ...]:
    """Multiples of ``step`` in [lo, hi], rounded well below the step (no 0.30000000000000004, no -0.0)."""
    digits = 3 - math.floor(math.log10(step))
    ks = range(math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) + 1)
    return tuple(round(k * step, digits) + 0.0 for k in ks)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Ticks at the multiples of a 1-2-5 step that lie inside [lo, hi].

    Args:
        lo, hi: finite range with lo < hi.
        target: at most this many step intervals span [lo, hi].
    Returns:
        Ascending ticks, e.g. ``nice_ticks(0, 1) == [0, 0.2, 0.4, 0.6, 0.8, 1]``, ``nice_ticks(3, 97) ==
        [20, 40, 60, 80]`` (plots widen their axis to whole steps, here 0..100).
    Raises:
        ValueError: if the range is empty or not finite.
    """
    return list(_ticks_in(lo, hi, _nice_step(lo, hi, target)))


def _fmt(v: float, step: float, big: float) -> str:
    """Tick label: fixed point at the step's precision, or compact scientific (2e4, 2.5e-5) for extremes."""
    if big >= 1e4 or big < 1e-3:
        if v == 0:
            return "0"
        digits = max(1, min(6, math.floor(math.log10(big)) - math.floor(math.log10(step) + 1e-9) + 1))
        mant, _, exp = f"{v:.{digits}g}".partition("e")
        return f"{mant}e{int(exp)}" if exp else mant
    return f"{v:.{max(0, -math.floor(math.log10(step) + 1e-9))}f}"


@dataclass(frozen=True)
class _Scale:
    """An axis range [lo, hi] with major ticks, their labels and unlabelled minor ticks."""

    lo: float
    hi: float
    log: bool
    ticks: tuple[float, ...]
    labels: tuple[str, ...]
    minor: tuple[float, ...] = ()

    def frac(self, v: float) -> float:
        """Position of ``v`` along the axis: 0 at ``lo``, 1 at ``hi``."""
        if self.log:
            return math.log10(v / self.lo) / math.log10(self.hi / self.lo)
        return (v - self.lo) / (self.hi - self.lo)


def _scale(values: Sequence[float], log: bool, margin: float = 0.0) -> _Scale:
    """Axis covering ``values`` (finite; > 0 when log).

    With no margin the axis widens to whole steps or decades, so ticks sit at both ends; with a margin
    it is padded by that fraction of its span (of log10 on a log axis) and the ticks fall inside, which
    keeps markers at the extremes off the frame.
    """
    lo, hi = min(values), max(values)
    if log:
        d0, d1 = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
        d0, d1 = (d0 - 1, d1 + 1) if d0 == d1 else (d0, d1)
        every = math.ceil((d1 - d0) / 8)  # at most 8 labelled decades
        d1 = d0 + math.ceil((d1 - d0) / every) * every
        ticks = [10.0**k for k in range(d0, d1 + 1, every)]
        if d1 - d0 <= 2:  # few decades: label 2x and 5x too
            ticks = sorted(ticks + [m * 10.0**k for k in range(d0, d1) for m in (2, 5)])
        minor = [m * 10.0**k for k in range(d0, d1) for m in range(2, 10)] if d1 - d0 <= 4 else []
        pad = 10 ** (margin * math.log10(hi / lo))
        lo, hi = lo / pad, hi * pad
        if pad == 1 or sum(lo <= t <= hi for t in ticks) < 2:  # too few ticks inside: whole decades
            lo, hi = 10.0**d0, 10.0**d1
        ticks, minor = [t for t in ticks if lo <= t <= hi], [t for t in minor if lo <= t <= hi]
        return _Scale(lo, hi, True, tuple(ticks), tuple(_fmt(t, t, t) for t in ticks), tuple(minor))
    if hi - lo <= 1e-12 * max(abs(lo), abs(hi)):  # constant data: widen around the value
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    lo, hi = lo - margin * (hi - lo), hi + margin * (hi - lo)
    step = _nice_step(lo, hi, 5)
    if not margin:
        lo, hi = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = _ticks_in(lo, hi, step)
    big = max(abs(ticks[0]), abs(ticks[-1]))
    return _Scale(lo, hi, False, ticks, tuple(_fmt(t, step, big) for t in ticks))


def _frame(ys: _Scale, xs: _Scale | None, box: Box, xlabel: str, ylabel: str) -> list[str]:
    """Grid, frame, ticks, tick labels and axis labels (x ticks only when ``xs`` is given)."""
    x0, y0, x1, y1 = box
    grid, marks, out = [], [], ['<g class="yticks" text-anchor="end">']
    for t, lab in zip(ys.ticks, ys.labels):
        py = y1 - ys.frac(t) * (y1 - y0)
        grid.append(f"M{_n(x0)} {_n(py)}H{_n(x1)}")
        out.append(f'<text x="{_n(x0 - 7)}" y="{_n(py + 4)}">{_esc(lab)}</text>')
    marks += [f"M{_n(x0 - 4)} {_n(y1 - ys.frac(t) * (y1 - y0))}h4" for t in ys.ticks]
    marks += [f"M{_n(x0 - 2)} {_n(y1 - ys.frac(t) * (y1 - y0))}h2" for t in ys.minor]
    out.append("</g>")
    if xs is not None:
        gap, need = (x1 - x0) / max(1, len(xs.ticks) - 1), max(map(_width, xs.labels)) + 8
        k = next((k for k in range(1, len(xs.ticks)) if need <= gap * k), len(xs.ticks))  # label every k-th
        out.append('<g class="xticks" text-anchor="middle">')
        for i, (t, lab) in enumerate(zip(xs.ticks, xs.labels)):
            px = x0 + xs.frac(t) * (x1 - x0)
            grid.append(f"M{_n(px)} {_n(y0)}V{_n(y1)}")
            marks.append(f"M{_n(px)} {_n(y1)}v4")
            if i % k == 0:
                out.append(f'<text x="{_n(px)}" y="{_n(y1 + 16)}">{_esc(lab)}</text>')
        marks += [f"M{_n(x0 + xs.frac(t) * (x1 - x0))} {_n(y1)}v2" for t in xs.minor]
        out.append("</g>")
    out.insert(0, f'<path d="{"".join(grid)}" stroke="#e6e6e6" fill="none"/>')
    out.append(f'<path d="{"".join(marks)}" stroke="#333" fill="none"/>')
    out.append(f'<rect x="{_n(x0)}" y="{_n(y0)}" width="{_n(x1 - x0)}" height="{_n(y1 - y0)}" '
               'fill="none" stroke="#888"/>')
    if xlabel:
        out.append(_text((x0 + x1) / 2, y1 + 34, xlabel))
    if ylabel:
        out.append(_text(14, (y0 + y1) / 2, ylabel, extra=f' transform="rotate(-90 14 {_n((y0 + y1) / 2)})"'))
    return out
