"""--executor slurm against a real SLURM cluster (tools/slurm-single-node starts one; .ci/run does).

No mocks for the engine: seeds run as SLURM jobs through submitit and land in the test's store. Every test
skips, with the reason, where no cluster answers `sinfo` or submitit is not installed.
"""
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.claim import registry
from harness.run import loader
from harness.run.loader import load_claims
from harness.views import cli


def _cluster_problem() -> str | None:
    if os.environ.get("HARNESS_SLURM_UNAVAILABLE"):  # .ci/run: tools/slurm-single-node could not start one
        return os.environ["HARNESS_SLURM_UNAVAILABLE"]
    if shutil.which("sinfo") is None:
        return "no SLURM here (sinfo is not installed; tools/slurm-single-node starts a one-node cluster)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    states = out.stdout.split()
    up = ("idle", "mixed", "allocated", "completing")
    if out.returncode != 0 or not any(s.rstrip("*~#") in up for s in states):
        return f"no SLURM node is up (sinfo: {(out.stderr or out.stdout).strip() or 'no nodes'})"
    try:
        import submitit  # noqa: F401
    except ImportError:
        return "submitit is not installed (pip install -e '.[slurm]')"
    return None


PROBLEM = _cluster_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))

# A claim of our own: seed 1 sleeps $HARNESS_TEST_SLEEP seconds (the environment reaches SLURM jobs and is
# no part of the cache key), so a test can cancel it or run it out of time while seed 0 finishes.
TOY = textwrap.dedent('''
    import os
    import time
    from dataclasses import dataclass

    from harness import AtLeast, Check, Claim, Measurement, Tier, experiment, register


    @dataclass(frozen=True)
    class SlurmToyConfig:
        offset: float = 1.0


    @experiment("slurm_toy", SlurmToyConfig)
    def slurm_toy(cfg, ctx):
        if ctx.seed == 1:
            time.sleep(float(os.environ.get("HARNESS_TEST_SLEEP", "0")))
        return Measurement(scalars={"x": cfg.offset + 0.01 * ctx.seed})


    CLAIM = register(Claim(id="slurm-toy", source="test", statement="x is at least 0.5", paper_value="1",
                           experiment=slurm_toy, tiers={"smoke": Tier(2, SlurmToyConfig()), "cpu": Tier(2, SlurmToyConfig())},
                           checks=(Check("x", AtLeast(0.5)),)))
''')


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """A --claims-path folder with the toy claim; registry, loader and sys.path are left as found."""
    load_claims()
    monkeypatch.setattr(registry, "_CLAIMS", dict(registry._CLAIMS))
    monkeypatch.setattr(registry, "_EXPERIMENTS", dict(registry._EXPERIMENTS))
    monkeypatch.setattr(loader, "_SOURCES", list(loader._SOURCES))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "0")
    folder = tmp_path / "toy_claims"
    folder.mkdir()
    (folder / "slurm_toy_claim.py").write_text(TOY)
    yield folder
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path is not None and Path(path).resolve().is_relative_to(tmp_path.resolve()):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def info_logs(caplog):
    """The runner's progress lines (INFO) reach stderr, as on a terminal."""
    caplog.set_level(logging.INFO)


def harness(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def toy_run(toy, results, *extra):
    return ["--results", results, "run", "--claims-path", toy, "--claim", "slurm-toy", "--tier", "smoke",
            "--no-report", "--executor", "slurm", *extra]


def records(store: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (store / "cache").glob("*.json")}


def wait_running(store: Path, seed: int, timeout: float = 120) -> str:
    """The job id of `seed`'s marker, once SLURM runs it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for marker in (store / "slurm" / "jobs").glob("*.json"):
            m = json.loads(marker.read_text())
            if m["seed"] == seed:
                out = subprocess.run(["squeue", "-h", "-o", "%T", "-j", m["job_id"].split("_")[0]],
                                     capture_output=True, text=True)
                if "RUNNING" in out.stdout:
                    return m["job_id"]
        time.sleep(0.5)
    raise AssertionError(f"seed {seed}'s job did not start within {timeout} s")


def test_slurm_smoke_records_are_bit_identical_to_local(tmp_path, capsys):
    claims = ["--claim", "ire-toy-figure1", "--claim", "sam-ire-flat-convergence"]
    common = ["run", "--tier", "smoke", *claims, "--no-report", "--jobs", "1"]
    assert harness(capsys, "--results", tmp_path / "local", *common)[0] == 0
    code, out, err = harness(capsys, "--results", tmp_path / "slurm", *common, "--executor", "slurm")
    assert code == 0, err
    assert "submitted 1 seed(s) as SLURM job" in err
    local, slurm = records(tmp_path / "local"), records(tmp_path / "slurm")
    assert len(local) == 2 and set(local) == set(slurm)  # the same keys
    for key, record in local.items():
        assert slurm[key]["measurement"] == record["measurement"]  # bit for bit (JSON of the floats)
        assert slurm[key]["threads"] == record["threads"] and slurm[key]["error"] is None
    def verdicts(store):
        claims = [json.loads(p.read_text())["claims"] for p in (store / "runs").glob("*/run.json")][0]
        return [c["verdict"] for c in claims]
    assert verdicts(tmp_path / "slurm") == verdicts(tmp_path / "local")
    assert verdicts(tmp_path / "slurm")[0] == "holds"  # ire-toy-figure1: decided at smoke
    assert not list((tmp_path / "slurm" / "slurm" / "jobs").glob("*.json"))  # markers gone once collected


def test_slurm_detach_returns_at_once_and_status_finishes_the_run(toy, tmp_path, capsys):
    results = tmp_path / "results"
    code, out, err = harness(capsys, *toy_run(toy, results, "--detach"))
    assert code == 0, err
    run_id = out.split()[1].rstrip(":")
    assert "2 seed(s) in SLURM job(s)" in out and f"status {run_id}" in out
    assert not (results / "runs" / run_id / "run.json").exists()  # no half run in the history
    code, out, err = harness(capsys, "--results", results, "status", run_id, "--wait")
    assert code == 0, err
    assert "slurm-toy: " in out
    run = json.loads((results / "runs" / run_id / "run.json").read_text())
    assert run["status"] == "complete" and run["options"]["executor"] == "slurm"
    (claim,) = run["claims"]
    assert claim["verdict"] == "holds" and [s["cached"] for s in claim["seeds"]] == [False, False]
    assert {r["run"] for r in records(results).values()} == {run_id}  # the jobs stored this run's seeds


def test_slurm_second_run_adopts_detached_jobs_instead_of_resubmitting(toy, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "15")  # seed 1's job is still there when the second run looks
    code, out, _ = harness(capsys, *toy_run(toy, results, "--detach"))
    run_id = out.split()[1].rstrip(":")
    code, out, err = harness(capsys, *toy_run(toy, results))
    assert code == 0, err
    assert "adopting SLURM job" in err and "seed(s) as SLURM job" not in err
    assert "HOLDS" in out and {r["run"] for r in records(results).values()} == {run_id}


def test_slurm_cancelled_job_is_that_seeds_error_and_rerun_resubmits_only_it(toy, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "300")
    assert harness(capsys, *toy_run(toy, results, "--detach"))[0] == 0
    job = wait_running(results, seed=1)
    subprocess.run(["scancel", job], check=True)
    code, out, err = harness(capsys, *toy_run(toy, results))
    assert code == 0, err
    run = json.loads(sorted((results / "runs").glob("*/run.json"))[-1].read_text())
    seeds = run["claims"][0]["seeds"]
    assert seeds[0]["error"] is None and run["claims"][0]["verdict"] == "error"
    assert f"SLURM job {job} ended CANCELLED" in seeds[1]["error"] and "_log.err" in seeds[1]["error"]
    assert len(records(results)) == 1  # the cancelled seed was not stored
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "0")
    code, out, err = harness(capsys, *toy_run(toy, results))
    assert code == 0, err
    assert "submitted 1 seed(s)" in err and "HOLDS" in out  # only seed 1 went to SLURM again
    assert len(records(results)) == 2


def test_slurm_job_past_its_time_limit_is_that_seeds_error(toy, tmp_path, capsys, monkeypatch):
    results = tmp_path / "results"
    monkeypatch.setenv("HARNESS_TEST_SLEEP", "400")
    code, out, err = harness(capsys, *toy_run(toy, results, "--slurm-time", "1"))
    assert code == 0, err
    seeds = json.loads(sorted((results / "runs").glob("*/run.json"))[-1].read_text())["claims"][0]["seeds"]
    assert seeds[0]["error"] is None
    assert "ended TIMEOUT without storing the seed" in seeds[1]["error"]
    assert not list((results / "slurm" / "jobs").glob("*.json"))  # consumed: the next run submits it again


def test_slurm_refused_partition_is_one_line_before_anything_is_submitted(toy, tmp_path, capsys):
    results = tmp_path / "results"
    code, out, err = harness(capsys, *toy_run(toy, results, "--slurm-partition", "no-such-partition"))
    assert code == 2
    assert err.strip().count("\n") == 0 and "SLURM refuses the request for slurm-toy" in err
    assert "invalid partition" in err.lower() and not (results / "slurm").exists()


def test_slurm_without_submitit_is_one_line(toy, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    code, out, err = harness(capsys, *toy_run(toy, tmp_path / "results"))
    assert code == 2 and "needs submitit: pip install 'claim-harness[slurm]'" in err
    assert err.strip().count("\n") == 0


def test_slurm_unreachable_cluster_is_one_line(toy, tmp_path, capsys, monkeypatch):
    conf = tmp_path / "slurm.conf"  # a controller nobody listens for
    conf.write_text("ClusterName=gone\nSlurmctldHost=localhost\nSlurmctldPort=6999\nAuthType=auth/munge\n"
                    "NodeName=localhost\nPartitionName=p Nodes=localhost\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    code, out, err = harness(capsys, *toy_run(toy, tmp_path / "results"))
    assert code == 2 and "no SLURM cluster is reachable" in err
    assert err.strip().count("\n") == 0 and not (tmp_path / "results" / "slurm").exists()
