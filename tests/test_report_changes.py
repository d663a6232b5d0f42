"""Report details a reviewer reads: the change log beside each verdict, 'needs ≈ N seeds' beside inconclusive
checks, null-baseline rows set apart, the benchmark note, run labels on the history axis and the gate rule."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

import pytest

from harness import Check, Claim, Measurement, Tier, Within, experiment, register
from harness.report import render_report
from harness.report.history_page import run_labels
from harness.report.plotting import Series, line_plot
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


@dataclass(frozen=True)
class ChangesConfig:
    steps: int = 3


@experiment("test_report_changes_tiny", ChangesConfig)
def changes_experiment(cfg: ChangesConfig, ctx) -> Measurement:
    return Measurement(scalars={"gain": 0.2 + 0.05 * ctx.seed, "gain_null": 0.01 * ctx.seed})


CLAIM = register(Claim(
    id="test-report-changes", source="Test 2026", statement="gain is near 0.2", paper_value="0.2",
    experiment=changes_experiment, tiers={"smoke": Tier(seeds=2, config=ChangesConfig()), "cpu": Tier(2, ChangesConfig())},
    checks=(Check("gain", Within(target=0.2, rtol=0.5)),), reported=(("gain_null", "null: labels shuffled"),),
))


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes")
    store = ResultStore(root / "results")
    summary = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    run = copy.deepcopy(store.load_run(summary["run_id"]))
    entry = run["claims"][0]
    entry["version"] = 3
    entry["changes"] = [
        {"date": "2026-11-20", "what": "band widened <b>x</b>", "why": "paper says 0.2±0.1", "results_seen": True},
        {"date": "2026-12-01", "what": "seeds 2 -> 5", "why": "CI too wide", "results_seen": False},
    ]
    entry["checks"][0].update(verdict="inconclusive", seeds_needed=12)
    entry["sampling"].update(max_seeds=8, cap_reason="one image is <i>0.125</i> points")
    store.save_run(run["run_id"], run)
    index = render_report(store, run["run_id"], root / "reports", benchmarks=root / "no-benchmarks")
    return index.read_text(), (index.parent / "history.html").read_text()


def test_change_log_is_shown_beside_the_verdict(report):
    html, _ = report
    assert "claim version 3" in html and 'href="#claim-test-report-changes-changes">2 changes</a>' in html
    assert "2026-11-20" in html and "paper says 0.2±0.1" in html and "seeds 2 -&gt; 5" in html
    assert "results seen: yes" in html and "results seen: no" in html
    assert "<b>x</b>" not in html  # escaped like every stored string


def test_inconclusive_check_says_how_many_seeds_would_decide(report):
    html, _ = report
    assert html.count("needs ≈ 12 seeds to decide") == 2  # summary table and the claim's check table
    # over the tier's cap: the tier's reason why no affordable cap decides it, escaped like every string
    assert html.count("over this tier&#39;s cap of 8: one image is &lt;i&gt;0.125&lt;/i&gt; points") == 2


def test_null_rows_are_marked_as_the_no_effect_reference(report):
    html, _ = report
    row = re.search(r'<tr class="null-row">.*?</tr>', html, re.S)
    assert row and "gain_null" in row.group(0) and "null baseline" in row.group(0)
    assert not re.search(r'<tr class="null-row">\s*<td><code>gain</code>', html)


def test_summary_says_the_performance_page_needs_nox_bench(report):
    html, _ = report
    assert 'id="bench-note"' in html and "<code>nox -s bench</code>" in html and 'href="perf.html"' in html


def test_history_page_shows_the_gate_rule_and_run_labels(report):
    _, history = report
    assert 'id="gate-rule"' in history
    assert "0.90" not in history and "1.10" not in history  # one run: no fractional run numbers


def test_run_labels_are_dates_and_disambiguate_repeats():
    assert run_labels(["20261201-215532"]) == {"20261201-215532": "12-01 21:55"}
    both = run_labels(["20261201-215532", "20261201-215559", "custom"])
    assert both == {"20261201-215532": "12-01 21:55:32", "20261201-215559": "12-01 21:55:59", "custom": "custom"}


def test_line_plot_category_ticks_replace_numeric_ones():
    svg = line_plot([Series("v", [1], [2.0], style="line+markers")], title="t", xlabel="run", ylabel="v",
                    xticks=[(1, "12-01 21:55")])
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert "12-01 21:55" in texts and "0.9" not in texts and "1.1" not in texts
