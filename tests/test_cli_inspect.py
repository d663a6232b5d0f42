"""`harness show` and `harness export`, global flags on either side of the subcommand, "did you mean" for
tiers, enough digits in `compare`, output piped into `head`, and files that respect the umask."""
from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass

import pandas as pd
import pytest

from harness import Check, Claim, Measurement, Plot, Tier, Within, experiment, register
from harness.atomic import atomic_write_text
from harness.run.history import compare_runs
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import main


@dataclass(frozen=True)
class InspectConfig:
    steps: int = 4


@experiment("test_cli_inspect_tiny", InspectConfig)
def inspect_experiment(cfg: InspectConfig, ctx) -> Measurement:
    curve = pd.DataFrame({"step": list(range(cfg.steps)), "loss": [1.0 / (1 + s) for s in range(cfg.steps)]})
    return Measurement(scalars={"gain": 0.2 + 0.01 * ctx.seed, "onset": float("nan")}, curves={"traj": curve})


CLAIM = register(Claim(
    id="test-cli-inspect", source="Test 2026, Fig. 9", statement="gain is near 0.2", paper_value="0.2 (Fig. 9)",
    experiment=inspect_experiment,
    tiers={"smoke": Tier(seeds=2, config=InspectConfig(), scale="tiny"), "cpu": Tier(3, InspectConfig(), max_seeds=6)},
    checks=(Check("gain", Within(target=0.2, rtol=0.5), label="the gain"),),
    plots=(Plot("traj", "step", ("loss",), "loss"),),
))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    store = ResultStore(root / "results")
    summary = run_claims([CLAIM], RunOptions(tier="smoke"), store)
    return store, summary


def test_show_prints_statement_bands_seeds_and_recorded_cost(store, capsys):
    st, summary = store
    assert main(["show", CLAIM.id, "--tier", "smoke", "--results", str(st.root)]) == 0
    out = capsys.readouterr().out
    assert "gain is near 0.2" in out and "0.2 (Fig. 9)" in out
    assert "gain · accepted " in out and "the gain" in out
    assert "smoke (shown above): 2 seeds · tiny" in out and "cpu: 3-6 seeds (by power)" in out
    assert f"run {summary['run_id']}, 2 seeds" in out  # the smoke cost comes from the stored run
    assert "harness plan --tier cpu" in out  # no cpu run recorded: says how to time it


def test_show_unknown_tier_suggests_one(capsys):
    assert main(["show", CLAIM.id, "--tier", "smok"]) == 2
    err = capsys.readouterr().err
    assert "did you mean smoke" in err and len(err.strip().splitlines()) == 1


def test_export_json_has_checks_scalars_and_long_curves(store, capsys):
    st, summary = store
    assert main(["--results", str(st.root), "export", summary["run_id"], "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["run_id"] == summary["run_id"] and data["tier"] == "smoke"
    check = next(r for r in data["checks"] if r["claim"] == CLAIM.id)
    est = summary["claims"][0]["checks"][0]["estimate"]
    assert check["kind"] == "check" and check["value"] == pytest.approx(est["value"])
    gains = sorted(r["value"] for r in data["scalars"] if r["metric"] == "gain")
    assert gains == pytest.approx([0.2, 0.21])
    assert [r["value"] for r in data["scalars"] if r["metric"] == "onset"] == ["nan", "nan"]
    loss = [r for r in data["curves"] if r["seed"] == 0 and r["column"] == "loss"]
    assert [r["row"] for r in loss] == [0, 1, 2, 3] and loss[1]["value"] == pytest.approx(0.5)


def test_export_csv_is_one_long_table_and_out_file(store, tmp_path, capsys):
    st, summary = store
    out = tmp_path / "run.csv"
    assert main(["export", summary["run_id"], "--format", "csv", "--out", str(out), "--results", str(st.root)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["table"] for r in rows} == {"checks", "scalars", "curves"}
    assert sum(r["table"] == "curves" for r in rows) == 2 * 2 * 4  # 2 seeds x (step, loss) x 4 rows
    assert main(["export", "--format", "xml", "--results", str(st.root)]) == 2


def test_global_flags_work_after_the_subcommand(store, capsys):
    st, summary = store
    assert main(["history", "-q", "--results", str(st.root)]) == 0
    assert summary["run_id"] in capsys.readouterr().out
    args_before = ["-q", "--data-dir", "/tmp/d", "--results", str(st.root), "list"]
    args_after = ["list", "-q", "--data-dir", "/tmp/d", "--results", str(st.root)]
    from harness.views.cli import build_parser

    for argv in (args_before, args_after):
        ns = build_parser().parse_args(argv)
        assert ns.quiet and ns.data_dir == "/tmp/d" and ns.results == str(st.root)


def test_compare_prints_enough_digits_to_show_a_move():
    def run(value, lo, hi):
        check = {"metric": "m", "expectation": "≥ 0", "region": [0, "inf"], "verdict": "holds",
                 "estimate": {"value": value, "lo": lo, "hi": hi, "n": 3}}
        return {"run_id": "r", "claims": [{"id": "c", "verdict": "holds", "checks": [check], "reported": []}]}

    diff = compare_runs(run(0.99291, 0.99290, 0.99292), run(0.99294, 0.99293, 0.99295))
    moved = diff.claims[0].moved[0]
    before, after = moved.split(": ", 1)[1].split(" → ")
    assert before != after and "0.99292]" in before and "[0.99293" in after


def test_output_piped_to_head_ends_without_traceback(store):
    st, _ = store
    cmd = (f"{sys.executable} -m harness --results {st.root} list | head -1; "
           f"{sys.executable} -m harness --results {st.root} export --format csv | head -2")
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 3


def test_atomic_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o027)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o640


def test_history_page_lists_runs_with_other_options_and_links_rendered_reports(store, tmp_path):
    from harness.report import render_report
    from harness.report.history_page import history_view

    st, summary = store
    overridden = run_claims([CLAIM], RunOptions(tier="smoke", overrides={"steps": "5"}), st)
    render_report(st, overridden["run_id"], tmp_path, notebooks=False)
    view = history_view(st, summary, report_root=tmp_path)
    assert [r["id"] for r in view["other_runs"]] == [overridden["run_id"]]
    assert "steps=5" in view["other_runs"][0]["options"]
    assert view["runs"][-1]["href"] == "index.html" and view["runs"][-1]["commit"]
    html = (tmp_path / overridden["run_id"] / "index.html").read_text()
    assert 'id="run-overrides"' in html and f'id="claim-{CLAIM.id}-overrides"' in html  # the --set banners
