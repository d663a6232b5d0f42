"""--jobs N survives a worker that dies, computes each seed once (also with --no-cache), and keeps
what finished (issue 10, items 3 and 9)."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Between, Check, Claim, Measurement, Tier, experiment, register
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


@dataclass(frozen=True)
class KillConfig:
    log_dir: str = ""          # one file per computation lands here (counts across processes)
    kill_seed: int = -1        # this seed kills its worker process
    kill_once: bool = False    # ... only on its first attempt


@experiment("test_robust_killer", KillConfig, outputs=("m",))
def killer(cfg: KillConfig, ctx) -> Measurement:
    log = Path(cfg.log_dir)
    if ctx.seed == cfg.kill_seed and multiprocessing.parent_process() is not None:  # never the test process
        marker = log / f"killed-{ctx.seed}"
        if not (cfg.kill_once and marker.exists()):
            marker.touch()
            os._exit(3)
    (log / f"ran-{ctx.seed}-{uuid.uuid4().hex}").touch()
    return Measurement(scalars={"m": 2.0 + 0.01 * ctx.seed})


def _claim(cid: str, cfg: KillConfig) -> Claim:
    return register(Claim(id=cid, source="t", statement="m near 2", paper_value="2", experiment=killer,
                          tiers={"smoke": Tier(3, cfg), "cpu": Tier(3, cfg)}, checks=(Check("m", Between((1.0, 3.0))),)))


def _ran(log: Path) -> list[int]:
    return sorted(int(p.name.split("-")[1]) for p in log.glob("ran-*"))


def test_robust_killed_worker_leaves_a_readable_store_and_a_clean_run(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    store = ResultStore(tmp_path / "results")
    claim = _claim("test-robust-killed-worker", KillConfig(str(log), kill_seed=1))
    summary = run_claims([claim], RunOptions(tier="smoke", jobs=2), store)
    entry = summary["claims"][0]
    assert summary["status"] == "complete" and store.load_run(summary["run_id"])["status"] == "complete"
    assert entry["verdict"] == "error"
    errors = [s["error"] for s in entry["seeds"]]
    assert errors[0] is None and errors[2] is None
    assert errors[1].startswith("worker process died while computing this seed")
    assert sorted(set(_ran(log))) == [0, 2]  # the parent never ran the killer seed itself
    lost_key = entry["seeds"][1]["key"]
    assert store.load_seed(lost_key) is None  # not stored: a later run tries it again
    # a rerun reuses what finished and tries the lost seed again (serially here, in the test
    # process, where the experiment does not kill itself)
    again = run_claims([claim], RunOptions(tier="smoke", jobs=1), store)["claims"][0]
    assert [s["cached"] for s in again["seeds"]] == [True, False, True]
    assert again["verdict"] == "holds" and sorted(set(_ran(log))) == [0, 1, 2] and _ran(log).count(1) == 1


def test_robust_a_worker_that_dies_once_is_retried_and_the_run_is_whole(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    store = ResultStore(tmp_path / "results")
    claim = _claim("test-robust-dies-once", KillConfig(str(log), kill_seed=0, kill_once=True))
    entry = run_claims([claim], RunOptions(tier="smoke", jobs=2), store)["claims"][0]
    assert entry["verdict"] == "holds" and all(s["error"] is None for s in entry["seeds"])
    # seed 0 finished on its retry; a seed whose worker the broken pool terminated mid-way may have
    # been computed a second time, which is what a retry is for
    assert sorted(set(_ran(log))) == [0, 1, 2] and _ran(log).count(0) == 1


def test_robust_no_cache_with_jobs_computes_each_seed_once(tmp_path):
    log = tmp_path / "log"
    log.mkdir()
    store = ResultStore(tmp_path / "results")
    claim = _claim("test-robust-no-cache-once", KillConfig(str(log)))
    run_claims([claim], RunOptions(tier="smoke", jobs=1), store)
    assert _ran(log) == [0, 1, 2]
    summary = run_claims([claim], RunOptions(tier="smoke", jobs=2, use_cache=False), store)
    assert _ran(log) == [0, 0, 1, 1, 2, 2]  # once more each: the parent reads what the workers stored
    assert [s["cached"] for s in summary["claims"][0]["seeds"]] == [False, False, False]


PARENT_SCRIPT = '''
import os, sys, time
from dataclasses import dataclass
from pathlib import Path
from harness import Between, Check, Claim, Measurement, Tier, experiment, register
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

@dataclass(frozen=True)
class C:
    log_dir: str = ""

@experiment("test_robust_slow_worker", C)
def slow(cfg, ctx):
    Path(cfg.log_dir, f"worker-{os.getpid()}").touch()
    time.sleep(120)
    return Measurement(scalars={"m": 2.0})

if __name__ == "__main__":
    claim = register(Claim(id="test-robust-slow-worker", source="t", statement="s", paper_value="p",
                           experiment=slow, tiers={"smoke": Tier(6, C(sys.argv[2])), "cpu": Tier(6, C(sys.argv[2]))},
                           checks=(Check("m", Between((1.0, 3.0))),)))
    run_claims([claim], RunOptions(tier="smoke", jobs=2), ResultStore(sys.argv[1]))
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is pending


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_robust_workers_stop_when_the_parent_is_killed_or_interrupted(tmp_path, sig):
    log = tmp_path / "log"
    log.mkdir()
    script = tmp_path / "parent.py"
    script.write_text(PARENT_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "results"), str(log)],
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(list(log.glob("worker-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    workers = [int(p.name.split("-")[1]) for p in log.glob("worker-*")]
    assert len(workers) == 2, "the workers did not start"
    t0 = time.monotonic()
    parent.send_signal(sig)
    parent.wait(timeout=60)
    while any(_alive(w) for w in workers) and time.monotonic() - t0 < 30:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers)  # neither finishing the queue nor hanging
    assert time.monotonic() - t0 < 30
    if sig == signal.SIGINT:
        run = ResultStore(tmp_path / "results").load_run()
        assert run["status"] == "interrupted"


def test_robust_a_single_missing_seed_starts_no_pool(tmp_path, monkeypatch):
    import harness.run.parallel as parallel

    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for one seed")

    log = tmp_path / "log"
    log.mkdir()
    store = ResultStore(tmp_path / "results")
    claim = _claim("test-robust-single-seed", KillConfig(str(log)))
    monkeypatch.setattr(parallel, "_pool", no_pool)
    entry = run_claims([claim], RunOptions(tier="smoke", jobs=2, seeds=1), store)["claims"][0]
    assert entry["seeds"][0]["error"] is None and _ran(log) == [0]  # computed once, in this process
