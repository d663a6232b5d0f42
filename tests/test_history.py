"""Run history, diffs and the regression gate, on real runs of a throwaway claim in a temporary store."""
from __future__ import annotations

import dataclasses
import json
import math

import pandas as pd
import pytest

from harness import Check, Claim, Measurement, Tier, Within, experiment, register
from harness.report import render_report
from harness.run.history import (
    compare_runs,
    config_changes,
    diff_against_history,
    format_diff,
    intervals_disjoint,
    load_history,
    regression_reasons,
)
from harness.run.perf import RATIOS, load_bench_runs, perf_regressions, ratios
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import main

inf = math.inf


@dataclasses.dataclass(frozen=True)
class HistConfig:
    shift: float = 0.0


@experiment("test_history_tiny", HistConfig)
def hist_experiment(cfg: HistConfig, ctx) -> Measurement:
    return Measurement(scalars={"ratio": 2.0 + cfg.shift + 0.01 * ctx.seed})


def _claim(target: float = 2.0) -> Claim:
    return Claim(id="test-history-claim", source="Test 2024", statement="ratio is near two", paper_value="2",
                 experiment=hist_experiment,
                 tiers={"smoke": Tier(3, HistConfig()), "cpu": Tier(3, HistConfig())},
                 checks=(Check("ratio", Within(target=target, rtol=0.05)),))


CLAIM = register(_claim())


@pytest.fixture
def store(tmp_path):
    return ResultStore(tmp_path / "results")


def test_history_two_identical_runs_give_an_empty_diff(store, tmp_path):
    first = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    second = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    df = load_history(store, claim=CLAIM.id)
    assert list(df["run_id"]) == [first["run_id"], second["run_id"]]
    assert set(df["claim_verdict"]) == {"holds"} and df["value"].notna().all()
    diff = diff_against_history(store, second)
    assert diff.empty and regression_reasons(diff) == []
    assert diff.claims[0].baseline_run == first["run_id"]
    assert "no changes" in format_diff(diff)
    index = render_report(store, second["run_id"], tmp_path / "reports")
    page = (index.parent / "history.html").read_text()
    assert 'id="diff-empty"' in page and first["run_id"] in page and second["run_id"] in page
    assert page.count('<th title="') == 2  # two runs in the verdict timeline
    assert 'href="history.html"' in index.read_text()


def test_history_first_run_has_no_baseline(store):
    run = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    diff = diff_against_history(store, run)
    assert diff.new_claims == [CLAIM.id] and diff.empty
    assert "NEW" in format_diff(diff)


def test_history_tolerance_change_fails_the_gate_with_one_line(store, tmp_path, capsys):
    results = str(store.root)
    args = ["--results", results, "run", "--claim", CLAIM.id, "--tier", "smoke", "--jobs", "1",
            "--no-report", "--fail-on-regression"]
    assert main(args) == 0
    assert main(args) == 0
    capsys.readouterr()
    try:
        register(_claim(target=5.0))  # same id, a tolerance the values cannot meet
        assert main(args) == 1
    finally:
        register(CLAIM)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("harness: regression: test-history-claim held in run ")
    assert err[-1].endswith("(smoke tier), now fails")
    # the gate command says the same about the latest run, and a report shows it
    assert main(["--results", results, "gate", "--benchmarks", str(tmp_path / "none")]) == 1
    gate_err = capsys.readouterr().err.strip()
    assert len(gate_err.splitlines()) == 1 and "now fails" in gate_err
    assert main(["--results", results, "report", "--no-notebooks", "--reports", str(tmp_path / "r")]) == 0
    run_id = store.run_ids()[-1]
    page = (tmp_path / "r" / run_id / "history.html").read_text()
    assert 'class="kind-regressed"' in page


def test_history_only_comparable_complete_runs_are_baselines(store):
    base = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    other = run_claims([CLAIM], RunOptions(tier="smoke", overrides={"shift": "1.0"}), store)  # other options
    broken = store.load_run(run_claims([CLAIM], RunOptions(tier="smoke"), store)["run_id"])
    store.save_run(broken["run_id"], dict(broken, status="interrupted"))
    new = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    diff = diff_against_history(store, new)
    assert diff.claims[0].baseline_run == base["run_id"]
    assert diff_against_history(store, other).new_claims == [CLAIM.id]
    assert compare_runs(store.load_run(base["run_id"]), other).claims[0].old_verdict == "holds"
    assert compare_runs(store.load_run(base["run_id"]), other).claims[0].regressed  # 3.0 is outside 2 ± 5%


@pytest.mark.parametrize("old,new,moved", [
    ((1.0, 2.0), (1.5, 2.5), False),  # overlapping
    ((1.0, 2.0), (2.1, 3.0), True),  # disjoint above
    ((1.0, 2.0), (-1.0, 0.9), True),  # disjoint below
    ((-inf, inf), (5.0, 6.0), False),  # one seed: no interval, never moves
    ((2.0, 2.0), (2.0, 2.0), False),  # deterministic, unchanged
    ((2.0, 2.0), (2.0000001, 2.0000001), True),  # deterministic, changed
    ((1.0, 2.0), (2.0, 3.0), False),  # touching intervals share a point
])
def test_history_moved_means_disjoint_intervals(old, new, moved):
    assert intervals_disjoint({"lo": old[0], "hi": old[1]}, {"lo": new[0], "hi": new[1]}) is moved


def _run(run_id: str, verdict: str, est: dict | None, version: int = 1) -> dict:
    check = {"metric": "m", "verdict": verdict, "estimate": est, "expectation": "≤ 1", "region": [-inf, 1.0]}
    return {"run_id": run_id, "tier": "cpu", "status": "complete", "options": {},
            "claims": [{"id": "c", "version": version, "config_hash": "h", "verdict": verdict,
                        "checks": [check]}]}


def test_history_compare_reports_moved_values_and_verdict_changes():
    old = _run("a", "holds", {"value": 0.5, "lo": 0.4, "hi": 0.6})
    new = _run("b", "inconclusive", {"value": 0.9, "lo": 0.7, "hi": 1.1}, version=2)
    diff = compare_runs(old, new)
    (c,) = diff.changes
    assert c.regressed and c.verdict_changed and c.moved == ["m: 0.5 [0.4, 0.6] → 0.9 [0.7, 1.1]"]
    assert c.changed == ["claim version 1 → 2"]
    text = format_diff(diff)
    assert "REGRESSED" in text and "moved: m" in text
    assert regression_reasons(diff) == ["c held in run a (cpu tier), now inconclusive (claim version 1 → 2)"]
    error = compare_runs(old, _run("b", "error", None))
    assert error.claims[0].regressed and error.claims[0].moved == []


def test_history_a_restructured_config_is_said_path_by_path_not_silent():
    """A library change that regroups a config (lr -> optim.lr) re-keys the stored result: same verdict and
    values, so no change and no regression, but compare says which fields moved, appeared or changed."""
    est = {"value": 0.5, "lo": 0.4, "hi": 0.6}
    old, new = _run("a", "holds", est), _run("b", "holds", est)
    old["claims"][0].update(config={"lr": 0.1, "steps": 5, "optimizer": "sgd", "arms": [["hb", {"lr": 1.0}]]})
    new["claims"][0].update(config={"optim": {"name": "sgd", "lr": 0.1}, "steps": 6,
                                    "arms": [["hb", {"optim": {"lr": 1.0}}]]}, config_hash="h2")
    diff = compare_runs(old, new)
    assert diff.empty and not diff.regressions and [c.claim for c in diff.reconfigured] == ["c"]
    (said,) = diff.claims[0].changed
    assert said == ("config changed: steps: 5 → 6, -optimizer='sgd', +optim.name='sgd', lr → optim.lr "
                    "(and 1 more)")
    assert config_changes(old["claims"][0]["config"], new["claims"][0]["config"], limit=9).endswith(
        "arms.0.1.lr → arms.0.1.optim.lr")
    text = format_diff(diff)
    assert "CONFIG     c: holds, values within their CIs, but config changed: steps: 5 → 6" in text
    assert "1 claim(s) with a changed config or version, above" in text


def test_history_report_lists_a_reconfigured_claim(store, tmp_path):
    first = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    path = store.root / "runs" / first["run_id"] / "run.json"  # as an older library would have stored it
    stored = json.loads(path.read_text())
    stored["claims"][0].update(config={"offset": 0.0}, config_hash="older")
    path.write_text(json.dumps(stored))
    second = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    index = render_report(store, second["run_id"], tmp_path / "reports")
    page = (index.parent / "history.html").read_text()
    assert 'id="diff-empty"' in page and 'id="diff-reconfigured"' in page
    assert "config changed: -offset=0.0, +shift=0.0" in page


def test_history_load_history_reads_json_infinities_and_is_a_dataframe(store):
    store.save_run("r1", _run("r1", "inconclusive", {"value": 1.0, "lo": "-inf", "hi": "inf", "n": 1}))
    df = load_history(store)
    assert isinstance(df, pd.DataFrame) and len(df) == 1
    assert df.loc[0, "lo"] == -inf and df.loc[0, "hi"] == inf and df.loc[0, "region_hi"] == 1.0
    assert load_history(store, claim="nope").empty


# --- benchmark ratios ---------------------------------------------------------------------------

def _bench(name: str, median: float, iqr: float, low: float | None = None) -> dict:
    return {"name": name, "fullname": f"benchmarks/bench_curvature.py::{name}",
            "stats": {"median": median, "iqr": iqr, "rounds": 20, "mean": median,
                      "min": median * 0.9 if low is None else low}}


def _save_bench(root, n: int, hvp: float, iqr: float = 0.001, hvp_min: float | None = None) -> None:
    folder = root / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"datetime": f"2026-01-0{n}T00:00:00", "commit_info": {"id": f"c{n}", "dirty": False},
               "machine_info": {"cpu": {"brand_raw": "test cpu"}},
               "benchmarks": [_bench("test_bench_gradient", 0.100, iqr), _bench("test_bench_hvp", hvp, iqr, hvp_min)]}
    (folder / f"000{n}_c{n}_2026.json").write_text(json.dumps(payload))


def test_history_benchmark_ratio_regression_is_caught_beyond_noise(tmp_path):
    root = tmp_path / ".benchmarks"
    _save_bench(root, 1, hvp=0.150)
    _save_bench(root, 2, hvp=0.153)  # outside the tiny noise, but only 2% higher: not a regression
    assert perf_regressions(root) == []
    (r,) = ratios(load_bench_runs(root)[-1])
    assert r.name == RATIOS[0].name and r.value == pytest.approx(1.53) and r.lo < 1.53 < r.hi
    _save_bench(root, 3, hvp=0.180, iqr=0.2)  # 18% higher, but within a huge spread
    assert perf_regressions(root) == []
    _save_bench(root, 4, hvp=0.180)
    _save_bench(root, 5, hvp=0.300, hvp_min=0.160)  # median up, floor not: a burst of other load
    assert perf_regressions(root) == []
    _save_bench(root, 6, hvp=0.180)
    _save_bench(root, 7, hvp=0.300)  # median and floor up: slower code
    (reason,) = perf_regressions(root)
    assert reason.startswith("benchmark ratio HVP / gradient rose from 1.8")
    assert perf_regressions(tmp_path / "missing") == []


def test_history_perf_page_shows_ratios(tmp_path, store):
    root = tmp_path / ".benchmarks"
    _save_bench(root, 1, hvp=0.150)
    _save_bench(root, 2, hvp=0.300)
    run = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    index = render_report(store, run["run_id"], tmp_path / "reports", benchmarks=root)
    page = (index.parent / "perf.html").read_text()
    assert "HVP / gradient" in page and 'class="status-worse"' in page and "3 [" in page
    empty = render_report(store, run["run_id"], tmp_path / "r2", benchmarks=tmp_path / "none")
    assert 'id="no-benchmarks"' in (empty.parent / "perf.html").read_text()
