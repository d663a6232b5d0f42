"""Several seeds share one GPU (`harness run --per-gpu K`); claims timed on wall clock run alone after them; a
seed that runs out of device memory while sharing is retried once alone (issue 17). No GPU here: the pool's
CUDA policy is exercised on CPU by simulating it (exclusive_applies, an out-of-memory error raised on CPU)."""
from __future__ import annotations

import logging
import multiprocessing
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from harness import Between, Check, Claim, Measurement, Tier, experiment, register
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.run import parallel
from harness.run.runner import RunOptions, run_claims
from harness.run.seeds import Session
from harness.run.loader import load_claims
from harness.run.store import ResultStore
from harness.run.values import PER_GPU, default_jobs
from harness.views.cli import main


@dataclass(frozen=True)
class LogConfig:
    log_dir: str = ""
    oom_seed: int = -1        # this seed raises CUDA's out-of-memory error in a worker process
    oom_once: bool = False    # ... only on its first attempt
    sleep_s: float = 0.0


@experiment("test_gpu_sharing_logged", LogConfig, outputs=("m",))
def logged(cfg: LogConfig, ctx) -> Measurement:
    """Writes one file per computation: seed, process, start and end time."""
    start = time.time()
    in_worker = multiprocessing.parent_process() is not None
    if ctx.seed == cfg.oom_seed and in_worker:
        marker = Path(cfg.log_dir) / f"oom-{ctx.seed}-{uuid.uuid4().hex}"
        earlier = list(Path(cfg.log_dir).glob(f"oom-{ctx.seed}-*"))
        marker.touch()
        if not (cfg.oom_once and earlier):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
    time.sleep(cfg.sleep_s)
    (Path(cfg.log_dir) / f"ran-{ctx.seed}-{os.getpid()}-{start:.6f}-{time.time():.6f}-{uuid.uuid4().hex}").touch()
    return Measurement(scalars={"m": 2.0 + 0.01 * ctx.seed})


def _claim(cid: str, cfg: LogConfig, seeds: int = 3, exclusive: bool = False) -> Claim:
    return register(Claim(id=cid, source="t", statement="m near 2", paper_value="2", experiment=logged,
                          tiers={"smoke": Tier(seeds, cfg, exclusive=exclusive), "cpu": Tier(seeds, cfg)},
                          checks=(Check("m", Between((1.0, 3.0))),)))


def _runs(log: Path) -> list[tuple[int, int, float, float]]:
    """(seed, pid, start, end) of every computation logged in `log`."""
    out = []
    for p in log.glob("ran-*"):
        _, seed, pid, start, end, _ = p.name.split("-")
        out.append((int(seed), int(pid), float(start), float(end)))
    return out


def test_default_jobs_on_cuda_is_per_gpu_times_visible_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert default_jobs("gpu", None) == 2 * PER_GPU
    assert default_jobs("cpu", "cuda") == 2 * PER_GPU
    assert default_jobs("gpu", "cuda:1") == PER_GPU  # one named GPU
    assert default_jobs("gpu", None, per_gpu=3) == 6


def test_default_jobs_on_cpu_is_unchanged_and_refuses_per_gpu():
    assert default_jobs("cpu", None) == default_jobs("gpu", "cpu") == max(1, min(os.cpu_count() or 1, 4))
    with pytest.raises(ConfigError, match="--per-gpu applies to runs on CUDA"):
        default_jobs("cpu", "cpu", per_gpu=2)


def test_worker_device_spreads_workers_round_robin_over_visible_gpus():
    assert [parallel.worker_device("cuda", slot, 2) for slot in range(4)] == ["cuda:0", "cuda:1", "cuda:0",
                                                                              "cuda:1"]
    assert parallel.worker_device("cuda:1", 0, 2) == "cuda:1"  # a named GPU keeps every worker
    assert parallel.worker_device("cpu", 3, 0) == "cpu"


@pytest.mark.parametrize("argv,needle", [
    (["--per-gpu", "0"], "--per-gpu expects a positive integer, got '0'"),
    (["--per-gpu", "two"], "--per-gpu expects a positive integer, got 'two'"),
    (["--per-gpu", "2", "--jobs", "2"], "--jobs and --per-gpu both set how many seeds run at once"),
    (["--per-gpu", "2", "--device", "cpu"], "--per-gpu applies to runs on CUDA"),
])
def test_cli_per_gpu_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    code = main(["--results", str(tmp_path / "results"), "run", "--claim", "ire-toy-figure1", "--tier", "smoke",
                 "--no-report", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "results" / "cache").exists()


def test_tier_exclusive_is_set_where_the_gpu_tier_times_wall_clock():
    load_claims()
    overhead = get_claim("ire-overhead")
    assert overhead.tier("gpu").exclusive and not overhead.tier("cpu").exclusive
    with pytest.raises(ConfigError, match="Tier.exclusive must be True or False"):
        Tier(1, LogConfig(), exclusive=1)


def test_missing_tasks_exclusive_only_where_the_device_is_shared_by_wall_clock(tmp_path):
    shared = _claim("test-sharing-tasks-shared", LogConfig(str(tmp_path)))
    alone = _claim("test-sharing-tasks-alone", LogConfig(str(tmp_path), sleep_s=1.0), seeds=2, exclusive=True)
    plans = [(c, c.tier("smoke"), c.tier("smoke").config) for c in (shared, alone)]
    store = ResultStore(tmp_path / "results")
    on = {dev: parallel.missing_tasks(plans, Session(RunOptions(tier="smoke"), torch.device(dev), store, "r"))
          for dev in ("cpu", "cuda")}
    assert [t.exclusive for t in on["cpu"]] == [False] * 5  # a CPU run is today's pool, bit for bit
    assert [(t.label, t.exclusive) for t in on["cuda"]] == [(shared.id, False)] * 3 + [(alone.id, True)] * 2
    # a seed two claims share (the same experiment, config and seed) is exclusive if either claim's tier is
    twin = _claim("test-sharing-tasks-twin", LogConfig(str(tmp_path)), seeds=2, exclusive=True)
    plans.append((twin, twin.tier("smoke"), twin.tier("smoke").config))
    tasks = parallel.missing_tasks(plans, Session(RunOptions(tier="smoke"), torch.device("cuda"), store, "r"))
    assert [(t.seed, t.exclusive) for t in tasks] == [(0, True), (1, True), (2, False), (0, True), (1, True)]


def test_run_exclusive_seeds_run_alone_after_the_shared_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "exclusive_applies", lambda device: True)  # CUDA's policy, on CPU
    log = tmp_path / "log"
    log.mkdir()
    shared = _claim("test-sharing-order-shared", LogConfig(str(log), sleep_s=0.2))
    alone = _claim("test-sharing-order-alone", LogConfig(str(log), sleep_s=0.3), seeds=2, exclusive=True)
    summary = run_claims([alone, shared], RunOptions(tier="smoke", jobs=2), ResultStore(tmp_path / "results"))
    assert [c["verdict"] for c in summary["claims"]] == ["holds", "holds"]
    runs = _runs(log)
    assert len(runs) == 5
    # the shared claim's 3 seeds ran in pool workers; the exclusive claim's 2 in this process, one at a time,
    # after every shared seed ended (though the exclusive claim comes first in the run)
    pooled = [r for r in runs if r[1] != os.getpid()]
    own = sorted((r for r in runs if r[1] == os.getpid()), key=lambda r: r[2])
    assert len(pooled) == 3 and len(own) == 2
    assert min(r[2] for r in own) > max(r[3] for r in pooled)
    assert own[1][2] >= own[0][3]


def test_run_a_seed_out_of_device_memory_while_sharing_is_retried_once_alone(tmp_path, caplog):
    log = tmp_path / "log"
    log.mkdir()
    claim = _claim("test-sharing-oom-once", LogConfig(str(log), oom_seed=1, oom_once=True))
    with caplog.at_level(logging.WARNING, logger="harness.run.runner"):
        entry = run_claims([claim], RunOptions(tier="smoke", jobs=2), ResultStore(tmp_path / "results"))["claims"][0]
    assert entry["verdict"] == "holds" and all(s["error"] is None for s in entry["seeds"])
    retried = [r.getMessage() for r in caplog.records if "retrying it once alone" in r.getMessage()]
    assert len(retried) == 1 and "seed 1: out of device memory with 2 processes sharing cpu" in retried[0]
    assert len(list(log.glob("oom-1-*"))) == 2 and sorted(r[0] for r in _runs(log)) == [0, 1, 2]


def test_run_a_seed_out_of_device_memory_alone_too_is_this_runs_error_not_stored(tmp_path, caplog):
    log = tmp_path / "log"
    log.mkdir()
    store = ResultStore(tmp_path / "results")
    claim = _claim("test-sharing-oom-always", LogConfig(str(log), oom_seed=1))
    with caplog.at_level(logging.WARNING, logger="harness.run.runner"):
        entry = run_claims([claim], RunOptions(tier="smoke", jobs=2), store)["claims"][0]
    assert entry["verdict"] == "error"
    error = entry["seeds"][1]["error"]
    assert error.startswith("OutOfMemoryError: CUDA out of memory") and "not stored" in error
    assert store.load_seed(entry["seeds"][1]["key"]) is None  # a later run tries it again
    assert len(list(log.glob("oom-1-*"))) == 2  # shared, then once alone; never a third time
    assert sum("retrying it once alone" in r.getMessage() for r in caplog.records) == 1


def test_run_values_are_bit_identical_with_one_or_two_processes_sharing_the_device(tmp_path):
    load_claims()
    claim = get_claim("gd-edge-of-stability")
    runs = {}
    for jobs, per_gpu in ((1, 1), (2, 2)):  # on CUDA: --per-gpu 1 and 2 on one GPU; here: the same pool, CPU
        store = ResultStore(tmp_path / f"k{jobs}")
        summary = run_claims([claim], RunOptions(tier="smoke", seeds=2, jobs=jobs, per_gpu=per_gpu), store)
        runs[jobs] = [store.load_seed(s["key"])["measurement"] for s in summary["claims"][0]["seeds"]]
    assert [m["scalars"] for m in runs[1]] == [m["scalars"] for m in runs[2]]
    assert [m["curves"] for m in runs[1]] == [m["curves"] for m in runs[2]]
    assert runs[1][0]["scalars"] != runs[1][1]["scalars"]  # two different seeds, not one seed twice


def test_format_plan_divides_wall_time_by_sharing_only_for_shared_claims():
    from harness.run.progress import fmt_duration
    from harness.views.cost import ClaimPlan, format_plan

    load_claims()
    plans = [ClaimPlan("eos-scale-invariant", 3, per_seed_s=100.0, total_s=300.0),
             ClaimPlan("ire-overhead", 2, per_seed_s=50.0, total_s=100.0)]
    total = format_plan(plans, "gpu", "cuda", (3, 12), sharing=4).splitlines()[-1]
    assert f"wall about {fmt_duration(300.0 / 4 + 100.0)} with 4 seeds sharing cuda" in total
    assert total.endswith("timed alone: ire-overhead")  # its gpu tier is exclusive (read from the registry)
    everyone = format_plan(plans, "gpu", "cuda", (3, 12), sharing=4, exclusive=frozenset()).splitlines()[-1]
    assert f"wall about {fmt_duration(400.0 / 4)}" in everyone and everyone.endswith("timed alone: none")
    assert "wall about" not in format_plan(plans, "cpu", "cpu", (3, 12)).splitlines()[-1]  # CPU: as before
