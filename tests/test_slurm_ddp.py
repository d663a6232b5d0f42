"""Data-parallel seeds through --executor slurm on a real cluster (tools/slurm-single-node starts one).

A seed whose config declares data-parallel arms (launch torchrun, nproc 2) is one SLURM job of 2 tasks
(gloo on CPU) storing every arm and the seed under the runner's keys; a job signalled as SLURM signals a
preempted or timed-out job (USR2) is requeued through submitit's checkpointing protocol and resumes from
its checkpoint, ending with the records an uninterrupted job stores. Skips where test_slurm skips.
"""
import json
import subprocess
import time
from pathlib import Path

import pytest
from test_slurm import PROBLEM, harness, info_logs, records, wait_running  # noqa: F401 (a fixture)

from harness.data.text import stdlib_corpus
from harness.views import cli

pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))

# The paper tier of ire-llm-speedup (launch torchrun) shrunk to a CPU toy on 2 ranks, as tests/test_ddp.py
TINY = {"base.model": "tiny-1m", "base.data": "stdlib", "base.data_root": "", "base.tokenizer": "bytes",
        "base.max_bytes": "300000",
        "base.seq_len": "16", "base.batch_size": "4", "base.steps": "6", "base.optim.lr_warmup_steps": "1",
        "base.eval_every": "2", "base.val_windows": "4", "base.eval_batch": "4", "base.nproc": "2"}
TIMING = ("time", "wall_clock")  # durations: the only fields two computations of a seed may differ in


SLURM = ("--executor", "slurm", "--slurm-gpus", "0", "--slurm-cpus", "1", "--slurm-mem", "2",
         "--slurm-time", "10", "--slurm-checkpoint-every", "1")


def dp_run(results: Path, cache: Path, *extra, executor=SLURM) -> list[str]:
    sets = [a for k, v in {**TINY, "base.cache_dir": str(cache)}.items() for a in ("--set", f"{k}={v}")]
    return ["--results", str(results), "run", "--tier", "paper", "--claim", "ire-llm-speedup", "--seeds", "1",
            "--device", "cpu", "--no-report", *sets, *executor, *extra]


def untimed(value):
    """A measurement without its measured durations (scalars, curve columns and notes named for time)."""
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if not any(t in k for t in TIMING) and k != "notes"}
    return value


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One tiny data-parallel seed through SLURM, uninterrupted: (store, token cache, exit code)."""
    tmp = tmp_path_factory.mktemp("dp")
    cache = tmp / "tokens"
    stdlib_corpus(cache, max_bytes=300_000)  # built once here, not by both ranks at once
    code = cli.main(dp_run(tmp / "store", cache))
    return tmp / "store", cache, code


def test_slurm_data_parallel_seed_is_one_job_of_two_ranks_stored_for_the_runner(uninterrupted, capsys):
    store, cache, code = uninterrupted
    assert code == 0
    stored = records(store)
    seeds = [r for r in stored.values() if r["experiment"] == "ire_llm_speedup"]
    arms = [r for r in stored.values() if r["experiment"] == "llm_pretrain_arm"]
    assert len(seeds) == 1 and len(arms) >= 4 and len(stored) == len(seeds) + len(arms)
    (run_id,) = {r["run"] for r in stored.values()}
    assert run_id is not None and all(r["world_size"] == 2 and r["error"] is None for r in stored.values())
    logs = store / "slurm" / "logs"
    assert len(list(logs.glob("*_submitted.pkl"))) == 1  # one job ...
    tasks = {p.name.removesuffix("_log.err").rsplit("_", 1)[1] for p in logs.glob("*_log.err")}
    assert tasks == {"0", "1"}  # ... of two tasks (ranks)
    assert not list((store / "checkpoints").glob("*.pt"))  # removed once each arm is stored
    # the local executor (which cannot train a torchrun arm in process) finds the seed under its own key
    code, out, err = harness(capsys, *dp_run(store, cache, executor=("--jobs", "1")))
    assert code == 0, err
    run = json.loads(sorted((store / "runs").glob("*/run.json"))[-1].read_text())
    assert run["claims"][0]["seeds"][0]["cached"] and run["claims"][0]["verdict"] != "error"


def _signal_at_a_checkpoint(store: Path, job: str, timeout: float = 120) -> None:
    """Once an arm's checkpoint is on disk, stop the job's ranks (and look again: the arm may have ended),
    send USR2 (what SLURM sends before the time limit, and at preemption with
    PreemptParameters=send_user_signal), and let them go on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list((store / "checkpoints").glob("*.pt")):
            subprocess.run(["scancel", "-s", "STOP", job], check=True)
            if list((store / "checkpoints").glob("*.pt")):
                subprocess.run(["scancel", "-s", "USR2", job], check=True)
                subprocess.run(["scancel", "-s", "CONT", job], check=True)
                return
            subprocess.run(["scancel", "-s", "CONT", job], check=True)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint appeared under {store / 'checkpoints'} within {timeout} s")


def _start_requeued_now(job: str, timeout: float = 60) -> None:
    """SLURM holds a requeued job about two minutes (its BeginTime); let it start at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        if "Restarts=1" in out and "JobState=PENDING" in out:
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.5)
    raise AssertionError(f"SLURM job {job} was not requeued within {timeout} s")


def test_slurm_signalled_data_parallel_job_requeues_and_resumes_from_its_checkpoint(uninterrupted, tmp_path,
                                                                                     capsys):
    reference, cache, code = uninterrupted
    assert code == 0
    store = tmp_path / "store"
    code, out, err = harness(capsys, *dp_run(store, cache, "--detach"))
    assert code == 0, err
    job = wait_running(store, seed=0)
    try:
        _signal_at_a_checkpoint(store, job)
        _start_requeued_now(job)
    except AssertionError:
        subprocess.run(["scancel", job])
        raise
    code, out, err = harness(capsys, *dp_run(store, cache))  # adopts the job and waits for it
    assert code == 0, err
    assert "adopting SLURM job" in err and "seed(s) as SLURM job" not in err  # never submitted twice
    log = Path(next((store / "slurm" / "logs").glob("*_0_log.err"))).read_text()
    assert "Requeued job" in log and "start 2 of this job" in log  # submitit requeued it; it started again
    resumed, stored = records(store), records(reference)
    assert any(any("resumed" in n for n in r["measurement"]["notes"]) for r in resumed.values())
    assert set(resumed) == set(stored)  # the same keys
    for key, record in stored.items():
        assert untimed(resumed[key]["measurement"]) == untimed(record["measurement"]), record["experiment"]
        assert resumed[key]["world_size"] == 2 and resumed[key]["error"] is None
    assert not list((store / "checkpoints").glob("*.pt"))
