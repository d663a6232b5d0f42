"""The report's figures as SVG text (no browser): each trajectory figure carries the check it shows (the
accepted band, the scored window, the onset, the references) as elements with stable ids, several seeds
are a median with its interquartile band, a one-sided band runs to the frame, and forest plots put seeds
at integer positions."""
from __future__ import annotations

import math
import re

import pytest

pytest.importorskip("matplotlib")

from harness.claim.records import CheckResult, ClaimResult  # noqa: E402
from harness.report.check_view import check_view, nan_by_design, registration, verdict_word  # noqa: E402
from harness.report.figures import curve_plot, forest_plot, result_figures  # noqa: E402
from harness.report.plotting import HBand, Series, line_plot  # noqa: E402
from harness.report.render import fmt_num  # noqa: E402

SPEC = {"curve": "traj", "x": "step", "y": ["ratio"], "title": "lr * lambda_max", "ylabel": "ratio",
        "hlines": [[2.0, "2"], ["two_over_lr", "2/lr"]], "band_check": "tail_ratio", "window": 0.3,
        "onset": "onset_step"}
BAND = CheckResult(metric="tail_ratio", expectation="in [1.8, 2.4]", region=[1.8, 2.4], verdict="holds",
                   estimate={"value": 2.05, "lo": 1.98, "hi": 2.12, "n": 3, "per_seed": [2.0, 2.05, 2.1]})


def _measured(n_seeds: int = 3, onset=40.0) -> list[tuple[int, dict]]:
    steps = list(range(0, 100, 5))
    return [(s, {"scalars": {"onset_step": onset, "two_over_lr": 20.0},
                 "curves": {"traj": {"step": steps, "ratio": [min(2.1, 0.05 * t + 0.1 * s) for t in steps]}}})
            for s in range(n_seeds)]


def _ids(svg: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', svg))


def _box(svg: str, gid: str) -> tuple[float, float]:
    """(top, bottom) in SVG pixels of the first path inside the group with id gid."""
    d = re.search(rf'<g id="{re.escape(gid)}"[^>]*>\s*<path d="([^"]+)"', svg).group(1)
    ys = [float(v) for v in re.findall(r"[-\d.]+", d)[1::2]]
    return min(ys), max(ys)


def test_curve_plot_draws_band_window_onset_references_and_median():
    svg, notes = curve_plot(SPEC, _measured(), {"tail_ratio": BAND}, fig_id="c0")
    ids = _ids(svg)
    for gid in ("accepted-band", "scored-window", "onset", "reference-0", "reference-1", "median-0", "iqr-0"):
        assert f"c0-{gid}" in ids, gid
    assert {"c0-seed-0-0", "c0-seed-0-1", "c0-seed-0-2"} <= ids  # each seed faint behind the median
    assert "<title>lr * lambda_max</title>" in svg and notes == []
    assert "last 30% of measurements" in svg and "onset (onset_step) = 40" in svg


def test_curve_plot_defaults_draw_no_band_window_or_onset():
    spec = {k: v for k, v in SPEC.items() if k not in ("band_check", "window", "onset")}
    svg, _ = curve_plot(spec, _measured(1), {"tail_ratio": BAND}, fig_id="c1")
    ids = _ids(svg)
    assert not {"c1-accepted-band", "c1-scored-window", "c1-onset", "c1-median-0"} & ids
    assert "c1-curve-0" in ids  # one seed: its own curve, no quartiles


def test_curve_plot_without_onset_says_no_onset_not_error():
    svg, notes = curve_plot(SPEC, _measured(2, onset="nan"), {"tail_ratio": BAND}, fig_id="c2")
    assert "c2-onset" not in _ids(svg)
    assert any("no onset" in n for n in notes)


def test_plotting_one_sided_band_runs_to_the_frame():
    svg = line_plot([Series("v", [0, 1, 2], [0.2, 0.5, 0.9])], title="t", xlabel="x", ylabel="y",
                    bands=[HBand(-math.inf, 1.0, "≤ 1")], fig_id="f")
    axes_top, axes_bottom = _box(svg, "f-patch_2")
    band_top, band_bottom = _box(svg, "f-accepted-band")
    assert band_bottom == pytest.approx(axes_bottom, abs=0.1)  # open side: down to the frame
    assert band_top > axes_top + 1  # the edge at 1.0 lies inside the axes, drawn as a line
    assert "f-accepted-band-edge1" in _ids(svg) and "f-accepted-band-edge0" not in _ids(svg)


def test_forest_plot_puts_seeds_at_integer_positions_and_the_band_whole():
    svg, _ = forest_plot(BAND, seeds=[100, 101, 102], fig_id="k")
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert {"100", "101", "102", "mean"} <= set(texts)
    assert not any(re.fullmatch(r"-?\d+\.5", t.strip()) for t in texts if t.strip())
    assert {"k-accepted-band-edge0", "k-accepted-band-edge1", "k-mean-ci"} <= _ids(svg)


def test_result_figures_ids_are_unique_per_claim():
    claim = ClaimResult(id="x", plots=[SPEC], checks=[BAND])
    figs = result_figures(claim, [], fig_id="claim-x")
    assert len(figs.svgs) == 1  # the forest plot (no seed measured the curve)
    assert any("no seed recorded the curve" in n for n in figs.notes)
    assert 'id="claim-x-c0"' in figs.svgs[0]


def test_check_view_marks_changed_after_results_and_reads_new_fields():
    k = CheckResult(metric="tail_ratio", expectation="in [1.8, 2.4]", region=[1.8, 2.4], verdict="holds",
                    extra={"paper": "2 (Thm. 1.1)", "source": "smooth probes 2.00-2.23"})
    changes = [{"date": "2026-12-01", "what": "tail_ratio band widened", "why": "w", "results_seen": True}]
    assert registration(k, changes)[0] == "changed after results"
    assert registration(k, [])[0] == "pre-registered"
    assert registration(k, [{**changes[0], "results_seen": False}])[0] == "changed before results"
    row = check_view(k, fmt_num, changes)
    assert row["paper"] == "2 (Thm. 1.1)" and row["band_source"] == "smooth probes 2.00-2.23"


def test_check_view_nan_onset_is_by_design_and_out_of_regime_is_its_own_word():
    k = CheckResult(metric="onset_tau", expectation="<= 3", region=["-inf", 3.0], verdict="out-of-regime",
                    estimate={"value": "nan", "lo": "nan", "hi": "nan", "n": 1, "per_seed": ["nan"]})
    assert nan_by_design(k).startswith("no onset")
    row = check_view(k, fmt_num)
    assert row["verdict"] == "out-of-regime" and row["nan_by_design"] and not row["reason_is_error"]
    assert verdict_word("bogus") == "error"
