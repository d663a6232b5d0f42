"""The HTML report: rendered from a real run of a tiny registered claim in a temporary store."""
from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser

import pandas as pd
import pytest

from harness import AtLeast, Check, Claim, HarnessError, Measurement, Plot, Tier, Within, experiment, register
from harness.report import render_report
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

HOSTILE = "<script>alert(1)</script>"


@dataclass(frozen=True)
class TinyConfig:
    steps: int = 20
    fail_seed: int = -1  # this seed raises, to exercise the 'error' verdict


@experiment("test_report_tiny", TinyConfig)
def tiny_experiment(cfg: TinyConfig, ctx) -> Measurement:
    if ctx.seed == cfg.fail_seed:
        raise RuntimeError(f"planted failure {HOSTILE}")
    steps = list(range(0, cfg.steps, 5))
    curve = pd.DataFrame({"step": steps, "sharpness": [1.0 + 0.1 * s + 0.01 * ctx.seed for s in steps],
                          "loss": [1.0 / (1 + s) for s in steps]})
    return Measurement(scalars={"ratio": 2.05 + 0.01 * ctx.seed, "two": 2.0, "speedup": 1.5 + 0.1 * ctx.seed},
                       curves={"traj": curve},
                       scale={"trainable_params": 1234, "n_train": 50, "steps": cfg.steps},
                       notes=[f"note for seed {ctx.seed}"])


PLOTS = (
    Plot(curve="traj", x="step", y=("sharpness",), title="sharpness", hlines=(("two", "2/lr"), (1.0, "one"))),
    Plot(curve="traj", x="step", y=("sharpness", "loss"), title="two columns", ylog=True),
    Plot(curve="absent", x="step", y=("loss",), title="never recorded"),
)

GOOD = register(Claim(
    id="test-report-good", source="Test et al. 2024", statement=f"ratio is near two {HOSTILE}",
    paper_value="2.0", experiment=tiny_experiment,
    tiers={"smoke": Tier(seeds=3, config=TinyConfig(), scale="tiny test"), "cpu": Tier(1, TinyConfig())},
    checks=(Check("ratio", Within(target=2.0, rtol=0.5), label="the ratio"),),
    regime=(Check("two", Within(target=2.0, rtol=0.1), label="premise: the run is in the regime"),),
    reported=(("speedup", "speed-up"),), plots=PLOTS, notes=f"hostile note {HOSTILE}",
))
BROKEN = register(Claim(
    id="test-report-broken", source="Test et al. 2024", statement="crashes on seed 1",
    paper_value="n/a", experiment=tiny_experiment,
    tiers={"smoke": Tier(seeds=2, config=TinyConfig(fail_seed=1)), "cpu": Tier(1, TinyConfig())},
    checks=(Check("speedup", AtLeast(1.0)),), plots=PLOTS[:1],
))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    store = ResultStore(root / "results")
    summary = run_claims([GOOD, BROKEN], RunOptions(tier="smoke"), store)
    index = render_report(store, summary["run_id"], root / "reports")
    return store, summary, index, root


class _Balance(HTMLParser):
    """Records tags closed out of order or left open (void elements excepted)."""

    VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}

    def __init__(self):
        super().__init__()
        self.stack, self.problems = [], []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_report_render_writes_index_with_claims_and_plots(rendered):
    _, summary, index, root = rendered
    assert index == root / "reports" / summary["run_id"] / "index.html"
    html = index.read_text()
    assert "test-report-good" in html and "test-report-broken" in html
    assert '<span class="badge v-holds">holds</span>' in html
    good = next(c for c in summary["claims"] if c["id"] == "test-report-good")
    assert good["verdict"] == "holds"
    est = good["checks"][0]["estimate"]
    assert f"{est['value']:.4g} [{est['lo']:.4g}, {est['hi']:.4g}]" in html
    assert html.count("<svg") >= 4  # two curve plots and one forest plot per claim with an estimate
    assert "median of 3 seeds" in html and "interquartile range" in html  # seeds aggregated, each faint
    assert "2/lr = 2" in html  # hline looked up in the seed-0 scalars
    assert "curve &#39;absent&#39;" in html or "curve 'absent'" in html
    assert "1,234 params" in html and "tiny test" in html


def test_report_render_shows_regime_checks_in_the_summary_and_their_own_table(rendered):
    _, _, index, _ = rendered
    html = index.read_text()
    assert "CheckResult(" not in html  # records are rendered as checks, never as their repr
    summary_cell = re.search(r'<ul class="checks">(.*?)</ul>', html, re.S).group(1)
    assert re.search(r'<span class="regime-tag">regime</span> <code>two</code>', summary_cell)
    assert "<h3>Regime checks</h3>" in html and "premise: the run is in the regime" in html


def test_report_render_html_is_balanced_and_offline(rendered):
    html = rendered[2].read_text()
    parser = _Balance()
    parser.feed(html)
    parser.close()
    assert parser.problems == [] and parser.stack == []
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "<link" not in html and "@import" not in html
    assert not re.search(r"url\(\s*['\"]?(?!#)", html)  # only in-page references (an SVG's clip path)


def test_report_render_hostile_strings_are_inert(rendered):
    html = rendered[2].read_text()
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_report_render_errored_seed_shows_error_and_reason(rendered):
    _, summary, index, _ = rendered
    broken = next(c for c in summary["claims"] if c["id"] == "test-report-broken")
    assert broken["verdict"] == "error"
    html = index.read_text()
    section = html[html.index('id="claim-test-report-broken"'):]
    assert '<span class="badge v-error">error</span>' in section
    assert "RuntimeError: planted failure" in section
    assert "1</span>" in html[:html.index("Summary")]  # one error in the verdict counts


def test_report_render_is_deterministic_apart_from_the_timestamp(rendered):
    store, summary, index, root = rendered
    first = index.read_text()
    again = render_report(store, summary["run_id"], root / "reports").read_text()
    strip = lambda s: re.sub(r'<span class="rendered">[^<]*</span>', "", s)  # noqa: E731
    assert strip(first) == strip(again)


def test_report_render_marks_an_incomplete_run_without_seed_records(rendered, tmp_path):
    summary = rendered[1]
    store = ResultStore(tmp_path / "results")  # run summary only: the seed records are not there
    store.save_run("partial", dict(summary, run_id="partial", status="running", finished=None,
                                   claims=summary["claims"][:1]))
    html = render_report(store, "latest", tmp_path / "reports").read_text()
    assert "has not finished" in html and "test-report-broken" not in html
    assert "missing from the cache" in html and "no seed recorded the curve" in html


def test_report_render_unknown_run_raises(rendered, tmp_path):
    with pytest.raises(HarnessError, match="no run 'nope'"):
        render_report(rendered[0], "nope", tmp_path)


def test_report_render_format_estimate_cases():
    from harness.report.render import format_estimate

    assert format_estimate({"value": 2.05, "lo": 1.98, "hi": 2.12, "n": 3}) == "2.05 [1.98, 2.12]"
    one = {"value": 2.05, "lo": float("-inf"), "hi": float("inf"), "n": 1}
    assert format_estimate(one) == "2.05, no interval (1 seed)"
    assert format_estimate({"value": 1.0, "lo": 1.0, "hi": 1.0, "n": 2, "method": "deterministic (point)"}) \
        == "1 (exact)"
    assert format_estimate(None) == "n/a"


def test_report_render_forest_band_keeps_open_sides_open():
    from harness.report.figures import visible_region

    inf = float("inf")
    # a one-sided region stays one-sided: the plot runs its open side to the frame
    assert visible_region([0.99, 1.0, 1.01], [-inf, 10.0]) == (-inf, 10.0)
    assert visible_region([5.0], ["nan", 1.0]) == (-inf, 1.0)
    assert visible_region([1.0], [-inf, inf]) is None
    assert visible_region([], [0.0, 1.0]) is None


def test_report_render_says_the_level_and_the_seed_design_of_a_power_chosen_claim():
    from harness.report.render import sampling_note

    assert sampling_note({"adaptive": True, "looks": 2, "pilot_seeds": 3, "max_seeds": 8,
                          "confidence": 0.975}) == "pilot 3, cap 8; 2 looks at 97.5%"
    assert sampling_note({"adaptive": True, "looks": 1, "pilot_seeds": 3, "max_seeds": 5,
                          "confidence": 0.975}) == "pilot 3, cap 5; 1 look at 97.5%"
    assert sampling_note({"adaptive": False, "looks": 1, "pilot_seeds": 5, "max_seeds": 5}) == ""
    assert sampling_note({}) == ""
