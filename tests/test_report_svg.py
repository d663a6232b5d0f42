"""Tests for the dependency-free SVG plots of the HTML report (harness.report.svg)."""

import math
import xml.etree.ElementTree as ET

import pytest

from harness.report.svg import HBand, HLine, Series, bar_plot, line_plot, scatter_plot
from harness.report.svg_axes import nice_ticks

NS = "{http://www.w3.org/2000/svg}"
NAN = float("nan")
HOSTILE = "<script>alert(1)</script>"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg" and root.get("role") == "img" and root.get("viewBox")
    assert root.find(f"{NS}title") is not None
    return root


def _by_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}{tag}") if e.get("class") == cls]


def _texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{NS}text")]


def _tick_labels(root: ET.Element, axis: str) -> list[str]:
    (group,) = _by_class(root, "g", f"{axis}ticks")
    return [t.text for t in group.iter(f"{NS}text")]


def _plot(series, **kw) -> str:
    return line_plot(series, title="t", xlabel="x", ylabel="y", **kw)


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1]),
        (3, 97, [20, 40, 60, 80]),
        (-7, 7, [-5, 0, 5]),
        (0, 0.013, [0, 0.005, 0.01]),
        (1000, 5000, [1000, 2000, 3000, 4000, 5000]),
    ],
)
def test_nice_ticks_expected_values(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("lo", [-3e5, -1.7, 0.0, 1e-7, 42.0])
@pytest.mark.parametrize("span", [1e-6, 0.37, 1.0, 9.9, 123.0, 4e8])
def test_nice_ticks_step_is_1_2_5_and_ticks_fit(lo, span):
    ticks = nice_ticks(lo, lo + span)
    assert 2 <= len(ticks) <= 6
    assert all(lo - 1e-9 * span <= t <= lo + span * (1 + 1e-9) for t in ticks)
    step = ticks[1] - ticks[0]
    noise = 4 * math.ulp(max(map(abs, ticks))) / step  # relative float error of a difference of ticks
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-9 + 10 * noise
    assert all(b - a == pytest.approx(step, rel=1e-9 + noise) for a, b in zip(ticks, ticks[1:]))


@pytest.mark.parametrize(("lo", "hi"), [(1, 1), (2, 1), (0, NAN), (0, math.inf)])
def test_nice_ticks_rejects_empty_or_infinite_range(lo, hi):
    with pytest.raises(ValueError, match="lo < hi"):
        nice_ticks(lo, hi)


def test_line_plot_one_path_per_series_and_legend_labels():
    svg = _plot([Series("alpha", [0, 1, 2], [1, 3, 2]), Series("beta", [0, 1, 2], [2, 2, 1], dash=True)])
    root = _parse(svg)
    lines = _by_class(root, "path", "line")
    assert len(lines) == 2
    assert lines[0].get("stroke") != lines[1].get("stroke")
    assert lines[1].get("stroke-dasharray")
    (legend,) = _by_class(root, "g", "legend")
    assert [t.text for t in legend.iter(f"{NS}text")] == ["alpha", "beta"]


def test_line_plot_unlabelled_series_stay_out_of_the_legend():
    root = _parse(_plot([Series("", [0, 1], [0, 1]), Series("named", [0, 1], [1, 0])]))
    assert len(_by_class(root, "path", "line")) == 2
    assert [t.text for t in _by_class(root, "g", "legend")[0].iter(f"{NS}text")] == ["named"]
    assert _parse(_plot([Series("", [0, 1], [0, 1])])).get("height") == "320"


def test_line_plot_styles_draw_lines_and_markers():
    x, y = [1, 2, 3], [3, 1, 2]
    root = _parse(_plot([Series("m", x, y, style="markers"), Series("lm", x, y, style="line+markers")]))
    assert len(_by_class(root, "path", "line")) == 1
    assert [len(list(g)) for g in _by_class(root, "g", "markers")] == [3, 3]


def test_line_plot_escapes_hostile_text_everywhere():
    svg = line_plot(
        [Series(HOSTILE, [0, 1], [0, 1])], title=HOSTILE, xlabel=HOSTILE, ylabel=HOSTILE,
        hlines=[HLine(0.5, HOSTILE, color='red" onload="x')], bands=[HBand(0.1, 0.2, HOSTILE)],
    )
    assert "<script" not in svg and "onload=" not in svg.replace("onload=&quot;", "")
    assert "&lt;script&gt;" in svg
    root = _parse(svg)
    assert root.find(f"{NS}title").text == HOSTILE
    assert _texts(root).count(HOSTILE) == 6  # drawn title, xlabel, ylabel, hline, band, legend


def test_line_plot_control_characters_still_give_valid_xml():
    _parse(_plot([Series("bell\x07 nul\x00 \ud800", [0, 1], [0, 1])]))


def test_line_plot_nan_gap_splits_line_into_pieces():
    root = _parse(_plot([Series("gap", [0, 1, 2, 3, 4, 5], [1, 2, NAN, 3, math.inf, 4])]))
    (line,) = _by_class(root, "path", "line")
    assert line.get("d").count("M") == 1 + 0  # run [0,1]; [3] and [5] are lone points
    assert len(list(_by_class(root, "g", "markers")[0])) == 2  # lone points of a line stay visible as dots
    root = _parse(_plot([Series("gap", [0, 1, 2, 3, 4, 5], [1, 2, NAN, 3, 4, 4])]))
    assert _by_class(root, "path", "line")[0].get("d").count("M") == 2


def test_line_plot_log_axes_skip_nonpositive_points():
    s = Series("s", [-1, 0, 1, 10, 100, 1000], [5, 5, 0, 2, -3, 0.5], style="markers")
    root = _parse(_plot([s], xlog=True, ylog=True, hlines=[HLine(0, "zero"), HLine(1, "one")]))
    assert len(list(_by_class(root, "g", "markers")[0])) == 2  # (10, 2) and (1000, 0.5)
    assert len(_by_class(root, "path", "hline")) == 1  # y=0 cannot sit on a log axis
    assert _tick_labels(root, "x") == ["10", "20", "50", "100", "200", "500", "1000"]  # 2x, 5x: few decades


def test_line_plot_log_axis_has_decade_ticks():
    root = _parse(_plot([Series("s", [1, 2, 3], [1e-3, 0.5, 7e3])], ylog=True))
    assert _tick_labels(root, "y") == ["0.001", "0.01", "0.1", "1", "10", "100", "1000", "1e4"]
    root = _parse(_plot([Series("s", [1, 2, 3], [1e-3, 0.5, 3e6])], ylog=True))
    assert _tick_labels(root, "y") == ["0.001", "0.1", "10", "1000", "1e5", "1e7"]  # at most 8: every other


@pytest.mark.parametrize(
    "series",
    [[], [Series("empty", [], [])], [Series("nan", [1, 2], [NAN, NAN])], [Series("inf", [NAN], [1.0])]],
)
def test_line_plot_without_drawable_points_says_no_data(series):
    root = _parse(_plot(series, hlines=[HLine(1, "ref")]))
    assert "no data" in _texts(root)
    assert not _by_class(root, "path", "line")


def test_line_plot_all_nonpositive_on_log_axis_says_no_data():
    assert "no data" in _texts(_parse(_plot([Series("s", [1, 2], [0, -1])], ylog=True)))


def test_line_plot_single_point_and_constant_series_get_an_axis():
    root = _parse(_plot([Series("one", [3], [7])]))
    assert len(_tick_labels(root, "y")) >= 3 and len(_tick_labels(root, "x")) >= 2
    root = _parse(_plot([Series("flat", [0, 1, 2], [0, 0, 0]), Series("flat5", [0, 1, 2], [5, 5, 5])]))
    assert len(_by_class(root, "path", "line")) == 2


def test_line_plot_y_range_includes_references():
    refs = {"hlines": [HLine(5, "2/eta")], "bands": [HBand(-2, -1, "tol")]}
    root = _parse(_plot([Series("s", [0, 1], [0, 1])], **refs))
    ticks = [float(t) for t in _tick_labels(root, "y")]
    assert min(ticks) <= -2 and max(ticks) >= 5
    assert len(_by_class(root, "rect", "band")) == 1 and "2/eta" in _texts(root)


def test_line_plot_error_bars_extend_the_range():
    root = _parse(_plot([Series("s", [0, 1], [1, 2], y_err=[0.5, NAN])]))
    (err,) = _by_class(root, "path", "err")
    assert err.get("d").count("V") == 1  # NaN half-width draws no bar
    assert float(_tick_labels(root, "y")[0]) <= 0.5


def test_line_plot_large_and_small_numbers_get_compact_labels():
    root = _parse(_plot([Series("s", [0, 50_000], [2e-5, 3e-5])]))
    assert _tick_labels(root, "x")[-1] == "5e4"
    assert all(len(label) <= 6 for label in _tick_labels(root, "x") + _tick_labels(root, "y"))


def test_line_plot_long_labels_move_the_legend_below():
    short = _parse(_plot([Series("a", [0, 1], [0, 1])]))
    long = _parse(_plot([Series("a much longer label " * 3, [0, 1], [0, 1])]))
    assert float(long.get("height")) > float(short.get("height")) == 320


def test_line_plot_is_deterministic():
    def make():
        s = Series("s", [0, 1, 2], [0.1, NAN, 0.3], y_err=[0.01, 0.02, 0.03])
        return _plot([s], hlines=[HLine(0.2, "h")], bands=[HBand(0, 0.05, "b")])

    assert make() == make()


def test_line_plot_rejects_tiny_size():
    with pytest.raises(ValueError, match="at least 200x150"):
        _plot([Series("s", [0], [0])], width=100)


def test_series_rejects_bad_input():
    with pytest.raises(ValueError, match="x has 2 values but y has 1"):
        Series("s", [0, 1], [0])
    with pytest.raises(ValueError, match="style must be one of"):
        Series("s", [0], [0], style="dots")
    with pytest.raises(ValueError, match="half-widths >= 0"):
        Series("s", [0], [0], y_err=[-1])
    with pytest.raises(TypeError, match="sequence of numbers"):
        Series("s", ["a"], [0])


def test_references_reject_nonfinite_or_swapped_values():
    with pytest.raises(ValueError, match="must be finite"):
        HLine(NAN, "2/eta")
    with pytest.raises(ValueError, match="swap them"):
        HBand(2, 1, "tol")


def test_scatter_plot_draws_markers_only():
    root = _parse(scatter_plot([Series("s", [1, 2, 3], [1, 2, 3])], title="t", xlabel="x", ylabel="y"))
    assert not _by_class(root, "path", "line")
    assert len(list(_by_class(root, "g", "markers")[0])) == 3


def test_bar_plot_negative_values_hang_below_zero_line():
    svg = bar_plot(["a", "b", "<b>&amp"], [0.02, -0.01, 0.03], [0.01, 0.015, NAN], title="diff", ylabel="acc",
                   hlines=[HLine(0.025, "claimed")])
    assert "<b>" not in svg and "&lt;b&gt;&amp;amp" in svg
    root = _parse(svg)
    bars = list(_by_class(root, "g", "bars")[0].iter(f"{NS}rect"))
    (zero,) = _by_class(root, "path", "zero")
    zero_y = float(zero.get("d").split()[1].split("H")[0])
    assert float(bars[0].get("y")) + float(bars[0].get("height")) == pytest.approx(zero_y, abs=0.11)
    assert float(bars[1].get("y")) == pytest.approx(zero_y, abs=0.11)  # the negative bar starts at the line
    assert _by_class(root, "path", "err")[0].get("d").count("V") == 2
    assert _tick_labels(root, "x") == ["a", "b", "<b>&amp"]


def test_bar_plot_nan_value_marked_and_all_nan_says_no_data():
    root = _parse(bar_plot(["a", "b"], [1.0, NAN], title="t", ylabel="y"))
    assert "n/a" in _texts(root) and len(list(_by_class(root, "g", "bars")[0].iter(f"{NS}rect"))) == 1
    assert "no data" in _texts(_parse(bar_plot(["a"], [NAN], title="t", ylabel="y")))
    assert "no data" in _texts(_parse(bar_plot([], [], title="t", ylabel="y")))


def test_bar_plot_long_categories_are_slanted_and_shortened():
    cats = [f"a-category-with-a-rather-long-name-{i}" for i in range(6)]
    root = _parse(bar_plot(cats, [1, 2, 3, 4, 5, 6], title="t", ylabel="y"))
    labels = list(_by_class(root, "g", "xticks")[0])
    assert all(e.get("transform", "").startswith("rotate") for e in labels)
    assert all(e.text.endswith("\u2026") and len(e.text) <= 24 for e in labels)


def test_bar_plot_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one value and one error"):
        bar_plot(["a", "b"], [1.0], title="t", ylabel="y")
    with pytest.raises(ValueError, match="one value and one error"):
        bar_plot(["a"], [1.0], [-0.1], title="t", ylabel="y")
