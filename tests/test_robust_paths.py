"""Every file read is checked and every folder written is checked before compute (issue 22, item 3)."""
from __future__ import annotations

import errno
import json
import os

import pytest
from test_robust_store import CALLS, CLAIM  # noqa: F401 (CLAIM: registers test-robust-store)

from harness.errors import HarnessError
from harness.run.history import load_history
from harness.run.perf import load_bench_runs
from harness.run.store import ResultStore
from harness.views.cli import main

RUN = ["run", "--claim", "test-robust-store", "--tier", "smoke", "--jobs", "1"]


@pytest.mark.parametrize("sub", ["cache", "runs"])
def test_paths_read_only_part_of_the_store_fails_before_compute(tmp_path, capsys, monkeypatch, sub):
    root = tmp_path / "r"
    (root / sub).mkdir(parents=True)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(root / sub) else real_access(p, m))
    CALLS.clear()
    assert main(["--results", str(root), *RUN, "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"--results {root / sub} is not writable" in err and len(err.splitlines()) == 1
    assert CALLS == []


def test_paths_lock_file_that_is_a_folder_is_one_line(tmp_path, capsys):
    store = ResultStore(tmp_path / "r")
    assert main(["--results", str(store.root), *RUN, "--no-report"]) == 0
    key = store.load_run()["claims"][0]["seeds"][0]["key"]
    store.seed_path(key).unlink()
    (store.root / "cache" / f"{key}.lock").mkdir()
    capsys.readouterr()
    assert main(["--results", str(store.root), *RUN, "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot open the lock file {store.root / 'cache' / key}.lock: it is a folder" in err
    assert len(err.splitlines()) == 1


def test_paths_report_folder_of_the_run_that_is_a_file_is_one_line(tmp_path, capsys):
    store = ResultStore(tmp_path / "r")
    assert main(["--results", str(store.root), *RUN, "--no-report"]) == 0
    run_id = store.load_run()["run_id"]
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / run_id).write_text("in the way")
    capsys.readouterr()
    assert main(["--results", str(store.root), "report", "--no-notebooks", "--reports", str(reports)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{reports / run_id} is not a folder" in err and len(err.splitlines()) == 1
    assert (reports / run_id).read_text() == "in the way"


def test_paths_full_report_disk_is_one_line_naming_the_folder(tmp_path, capsys, monkeypatch):
    import harness.report

    store = ResultStore(tmp_path / "r")
    assert main(["--results", str(store.root), *RUN, "--no-report"]) == 0

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "reports" / "x.svg"))
    monkeypatch.setattr(harness.report, "render_report", full)
    capsys.readouterr()
    assert main(["--results", str(store.root), "report", "--reports", str(tmp_path / "reports")]) == 2
    err = capsys.readouterr().err.strip()
    assert f"cannot write the report under {tmp_path / 'reports'}: No space left on device" in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("content", [
    "[1, 2]", '{"benchmarks": "abc"}', '{"benchmarks": [{"name": "x", "stats": "fast"}]}',
    '{"benchmarks": [{"name": "x", "stats": {"median": "1ms"}}]}', '{"commit_info": [], "benchmarks": []}',
    '{"machine_info": {"cpu": "x86"}, "benchmarks": []}', "{not json",
], ids=["list", "benchmarks-text", "stats-text", "median-text", "commit-list", "cpu-text", "not-json"])
def test_paths_damaged_benchmark_file_is_skipped_not_a_crash(tmp_path, capsys, content):
    bench = tmp_path / ".benchmarks" / "Linux-x"
    bench.mkdir(parents=True)
    (bench / "0001_damaged.json").write_text(content)
    assert load_bench_runs(tmp_path / ".benchmarks") == []
    assert main(["--results", str(tmp_path / "r"), "perf", "--benchmarks", str(tmp_path / ".benchmarks")]) == 0
    assert "no saved benchmark runs" in capsys.readouterr().out


@pytest.mark.parametrize("field,value,needle", [
    ("options", "fast", "RunSummary.options is str, not dict"),
    ("environment", [], "RunSummary.environment is list, not dict"),
    ("tier", 3, "RunSummary.tier is int, not str"),
    ("verdict", 1, "ClaimResult.verdict is int, not str"),
    ("verdict", "great", "unknown verdict 'great'"),
    ("checks", "all", "ClaimResult.checks is str, not list"),
    ("config", "lr=1", "ClaimResult.config is str, not dict"),
    ("region", 5, "CheckResult.region is int, not list"),
    ("wall_time_s", "slow", "ClaimResult.wall_time_s is str"),
])
def test_paths_run_record_field_of_the_wrong_type_is_one_line(tmp_path, capsys, field, value, needle):
    store = ResultStore(tmp_path / "r")
    assert main(["--results", str(store.root), *RUN, "--no-report"]) == 0
    run = store.load_run()
    if field in ("options", "environment", "tier"):
        run[field] = value
    elif field == "region":
        run["claims"][0]["checks"][0]["region"] = value
    else:
        run["claims"][0][field] = value
    path = store.run_path(run["run_id"])
    path.write_text(json.dumps(run))
    with pytest.raises(HarnessError, match="is damaged"):
        store.load_run(run["run_id"])
    capsys.readouterr()
    for argv in (["report", "--no-notebooks", "--reports", str(tmp_path / "rep")], ["gate"],
                 ["compare", run["run_id"], run["run_id"]]):
        assert main(["--results", str(store.root), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, err
    assert main(["--results", str(store.root), "history"]) == 0
    assert load_history(store).loc[0, "status"].startswith("unreadable")
