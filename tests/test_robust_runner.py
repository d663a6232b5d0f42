"""No silent errors, no lost work (issue 10): numerical failures, divergence, step caps, threads,
interrupted runs, and the cache key of each experiment's own code."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest
import torch

from harness import Between, Check, Claim, ConfigError, Measurement, Tier, experiment, register
from harness.curvature.lanczos import EigenNotConvergedError
from harness.errors import HarnessError, NumericalError, is_input_error
from harness.run import provenance
from harness.run.history import check_gateable, format_history, load_history
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

CALLS: list[tuple[str, int]] = []


@dataclass(frozen=True)
class RobustConfig:
    steps: int = 10
    fail_seed: int = -1
    failure: str = ""        # "eigen" | "numerical" | "config" | "diverged"
    center: float = 2.0


@experiment("test_robust_toy", RobustConfig, outputs=("m", "threads", "diverged", "wobble"), curves={})
def robust_toy(cfg: RobustConfig, ctx) -> Measurement:
    CALLS.append((cfg.failure, ctx.seed))
    if ctx.seed == cfg.fail_seed:
        if cfg.failure == "eigen":
            raise EigenNotConvergedError("ARPACK converged 0 of 1 eigenpairs; raise tol")
        if cfg.failure == "numerical":
            raise NumericalError("Hutchinson estimate is nan")
        if cfg.failure == "config":
            raise ConfigError("n_train=10**9 exceeds the data set")
        if cfg.failure == "diverged":
            return Measurement(scalars={"m": 1e30, "threads": 1.0, "diverged": 1.0},
                               notes=["loss became inf at step 7"])
    # a reduction whose rounding depends on the thread count on a multi-core machine
    g = torch.Generator().manual_seed(ctx.seed)
    a = torch.randn(256, 256, generator=g, dtype=torch.float32)
    wobble = float((a @ a).sum()) * 1e-9
    steps = ctx.steps(cfg.steps)
    return Measurement(scalars={"m": cfg.center + 0.01 * ctx.seed + (steps - cfg.steps) * 0.1,
                                "threads": float(torch.get_num_threads()), "diverged": 0.0,
                                "wobble": wobble})


def toy_claim(cid: str, cfg: RobustConfig | None = None, band=(1.9, 2.1)) -> Claim:
    cfg = cfg or RobustConfig()
    return register(Claim(id=cid, source="test", statement="m near 2", paper_value="2", experiment=robust_toy,
                          tiers={"smoke": Tier(3, cfg), "cpu": Tier(3, cfg)},
                          checks=(Check("m", Between(band)),)))


def test_robust_eigensolver_nonconvergence_is_that_seeds_error_and_other_claims_finish(tmp_path):
    store = ResultStore(tmp_path)
    bad = toy_claim("test-robust-eigen", RobustConfig(fail_seed=1, failure="eigen"))
    num = toy_claim("test-robust-numerical", RobustConfig(fail_seed=0, failure="numerical"))
    good = toy_claim("test-robust-good")
    summary = run_claims([bad, num, good], RunOptions(tier="smoke"), store)
    by_id = {c["id"]: c for c in summary["claims"]}
    assert summary["status"] == "complete" and store.load_run(summary["run_id"])["status"] == "complete"
    assert by_id["test-robust-eigen"]["verdict"] == "error"
    assert [s["error"] is not None for s in by_id["test-robust-eigen"]["seeds"]] == [False, True, False]
    assert "EigenNotConvergedError: ARPACK converged 0 of 1" in by_id["test-robust-eigen"]["checks"][0]["reason"]
    assert "NumericalError: Hutchinson" in by_id["test-robust-numerical"]["checks"][0]["reason"]
    assert by_id["test-robust-good"]["verdict"] == "holds"


def test_robust_numerical_errors_are_not_input_errors():
    assert not is_input_error(EigenNotConvergedError("x"))
    assert not is_input_error(NumericalError("x")) and not issubclass(NumericalError, HarnessError)
    assert is_input_error(ConfigError("x")) and not is_input_error(RuntimeError("x"))


def test_robust_input_error_inside_a_seed_stops_the_run_and_records_it_aborted(tmp_path):
    store = ResultStore(tmp_path)
    claim = toy_claim("test-robust-input", RobustConfig(fail_seed=0, failure="config"))
    with pytest.raises(ConfigError, match="exceeds the data set"):
        run_claims([claim], RunOptions(tier="smoke"), store)
    (run_id,) = store.run_ids()
    run = store.load_run(run_id)
    assert run["status"] == "aborted" and "exceeds the data set" in run["status_reason"]
    with pytest.raises(HarnessError, match="is aborted"):
        check_gateable(run)


def test_robust_diverged_measurement_is_an_error_not_a_number(tmp_path):
    claim = toy_claim("test-robust-diverged", RobustConfig(fail_seed=2, failure="diverged"), band=(-1e40, 1e40))
    entry = run_claims([claim], RunOptions(tier="smoke"), ResultStore(tmp_path))["claims"][0]
    assert entry["verdict"] == "error"
    assert entry["seeds"][2]["error"] == "diverged: loss became inf at step 7"


def test_robust_step_capped_fails_becomes_inconclusive(tmp_path):
    store = ResultStore(tmp_path)
    claim = toy_claim("test-robust-capped", band=(2.5, 3.0))  # m misses the band: an uncapped run fails
    assert run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]["verdict"] == "fails"
    capped = run_claims([claim], RunOptions(tier="smoke", max_steps=3), store)["claims"][0]
    assert capped["step_capped"] and capped["verdict"] == "inconclusive"
    assert capped["checks"][0]["reason"] == "step-capped run"
    # a cap at or above the tier's steps cuts nothing: the verdict stands
    uncut = run_claims([claim], RunOptions(tier="smoke", max_steps=10), store)["claims"][0]
    assert not uncut["step_capped"] and uncut["verdict"] == "fails"
    # nor can a capped run hold: it is not the tier's scale (issue 10: "a capped run can only be inconclusive")
    good = toy_claim("test-robust-capped-good")
    assert run_claims([good], RunOptions(tier="smoke"), store)["claims"][0]["verdict"] == "holds"
    capped_good = run_claims([good], RunOptions(tier="smoke", max_steps=3), store)["claims"][0]
    assert capped_good["verdict"] == "inconclusive" and capped_good["checks"][0]["reason"] == "step-capped run"


def test_robust_seed_threads_are_fixed_and_recorded_whatever_the_parent_uses(tmp_path):
    claim = toy_claim("test-robust-threads")
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what torch's default would give on a 2-core machine
    try:
        serial = run_claims([claim], RunOptions(tier="smoke", seeds=2), ResultStore(tmp_path / "a"))
        assert torch.get_num_threads() == 2  # restored after the seeds
    finally:
        torch.set_num_threads(before)
    parallel = run_claims([claim], RunOptions(tier="smoke", seeds=2, jobs=2), ResultStore(tmp_path / "b"))
    for summary, root in ((serial, tmp_path / "a"), (parallel, tmp_path / "b")):
        for s in summary["claims"][0]["seeds"]:
            record = ResultStore(root).load_seed(s["key"])
            assert record["threads"] == 1 and record["measurement"]["scalars"]["threads"] == 1
    a, b = serial["claims"][0], parallel["claims"][0]
    assert [s["key"] for s in a["seeds"]] == [s["key"] for s in b["seeds"]]
    scalars = [[ResultStore(root).load_seed(s["key"])["measurement"]["scalars"] for s in c["seeds"]]
               for c, root in ((a, tmp_path / "a"), (b, tmp_path / "b"))]
    assert scalars[0] == scalars[1]  # every number, the thread-sensitive matmul sum included
    assert a["checks"][0]["estimate"] == b["checks"][0]["estimate"]  # bit-identical
    assert serial["options"]["threads"] == parallel["options"]["threads"] == 1


def test_robust_adding_an_experiment_module_keeps_every_cache_key(tmp_path, monkeypatch):
    import shutil

    from harness.run.loader import load_claims

    load_claims()
    names = ("figure1_toy", "gd_sharpness_trajectory", "test_robust_toy")
    before = {n: provenance.experiment_code_hash(n) for n in names}
    copy = tmp_path / "harness"
    shutil.copytree(provenance.PACKAGE_ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", copy)
    provenance._module_closure_hash.cache_clear()
    try:
        assert {n: provenance.experiment_code_hash(n) for n in names} == before  # same sources, same keys
        (copy / "experiments" / "brand_new_claim.py").write_text("X = 1\n")
        (copy / "report" / "render.py").write_text("# the report changed\n")
        (copy / "run" / "runner.py").write_text("# the runner changed\n")
        provenance._module_closure_hash.cache_clear()
        assert {n: provenance.experiment_code_hash(n) for n in names} == before
        # control: code the EoS experiment imports (the curvature package) changes its key, and
        # not the key of the toy experiment, which never imports it
        with open(copy / "curvature" / "trace.py", "a") as f:
            f.write("\n# a change to the trace estimator\n")
        provenance._module_closure_hash.cache_clear()
        after = {n: provenance.experiment_code_hash(n) for n in names}
        assert after["gd_sharpness_trajectory"] != before["gd_sharpness_trajectory"]
        assert after["figure1_toy"] == before["figure1_toy"]
    finally:
        provenance._module_closure_hash.cache_clear()


def test_robust_adding_an_experiment_keeps_stored_seeds_reused(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    claim = toy_claim("test-robust-new-module")
    run_claims([claim], RunOptions(tier="smoke", seeds=1), store)

    @experiment("test_robust_added_later", RobustConfig)
    def added_later(cfg, ctx):  # a new experiment registered after the first run
        return Measurement(scalars={"m": 0.0})

    provenance._module_closure_hash.cache_clear()
    again = run_claims([claim], RunOptions(tier="smoke", seeds=1), store)["claims"][0]
    assert again["seeds"][0]["cached"]


SCRIPT = textwrap.dedent("""
    import sys, time
    from dataclasses import dataclass
    from harness import Between, Check, Claim, Measurement, Tier, experiment, register
    from harness.run.runner import RunOptions, run_claims
    from harness.run.store import ResultStore

    @dataclass(frozen=True)
    class C:
        sleep: float = 60.0

    @experiment("test_robust_sleeper", C)
    def sleeper(cfg, ctx):
        if ctx.seed == 1:
            print("started", flush=True)
            time.sleep(cfg.sleep)
        return Measurement(scalars={"m": 2.0 + 0.01 * ctx.seed})

    fast = register(Claim(id="test-robust-fast", source="t", statement="s", paper_value="p",
                          experiment=sleeper, tiers={"smoke": Tier(1, C()), "cpu": Tier(1, C())},
                          checks=(Check("m", Between((1.0, 3.0))),)))
    slow = register(Claim(id="test-robust-slow", source="t", statement="s", paper_value="p",
                          experiment=sleeper, tiers={"smoke": Tier(2, C()), "cpu": Tier(2, C())},
                          checks=(Check("m", Between((1.0, 3.0))),)))
    run_claims([fast, slow] if sys.argv[2] == "two" else [slow], RunOptions(tier="smoke"), ResultStore(sys.argv[1]))
""")


def _start_and_kill(tmp_path, sig, which="two") -> ResultStore:
    script = tmp_path / "run_and_sleep.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "results"), which],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return ResultStore(tmp_path / "results")


def test_robust_killed_run_reads_interrupted_and_history_and_gate_skip_it(tmp_path):
    store = _start_and_kill(tmp_path, signal.SIGKILL)
    (run_id,) = store.run_ids()
    raw = json.loads(store.run_path(run_id).read_text())
    assert raw["status"] == "running"  # what the killed process left behind
    run = store.load_run(run_id)
    assert run["status"] == "interrupted" and "died" in run["status_reason"]
    assert [c["id"] for c in run["claims"]] == ["test-robust-fast"]
    with pytest.raises(HarnessError, match="is interrupted .* 1 claim.* the gate needs a complete run"):
        check_gateable(run)
    assert load_history(store, complete_only=True).empty
    assert "skipped incomplete runs: " + run_id in format_history(load_history(store))
    from harness.views.cli import main

    assert main(["--results", str(store.root), "gate", "--benchmarks", str(tmp_path / "none")]) == 2


def test_robust_sigterm_records_the_run_interrupted(tmp_path):
    store = _start_and_kill(tmp_path, signal.SIGTERM, which="one")
    (run_id,) = store.run_ids()
    raw = json.loads(store.run_path(run_id).read_text())
    assert raw["status"] == "interrupted" and raw["finished"]
    assert raw["claims"] == []


def test_robust_a_seed_in_progress_elsewhere_is_waited_for_not_computed_twice(tmp_path):
    import threading

    from harness.run.seeds import Session, cached_seed, seed_key

    store = ResultStore(tmp_path)
    claim = toy_claim("test-robust-lock")
    session = Session(RunOptions(tier="smoke"), torch.device("cpu"), store, "run-b")
    key = seed_key(robust_toy, claim.tiers["smoke"].config, 0, session)
    lock = store.lock_seed(key)  # "another run" is computing seed 0
    record = {"experiment": "test_robust_toy", "seed": 0, "wall_time_s": 0.5, "error": None,
              "measurement": Measurement(scalars={"m": 2.0}).to_dict(), "run": "run-a"}

    def other_run_finishes():
        time.sleep(0.5)
        store.save_seed(key, record)
        lock.release()

    CALLS.clear()
    t = threading.Thread(target=other_run_finishes)
    t.start()
    got, got_key, reused = cached_seed(robust_toy, claim.tiers["smoke"].config, 0, session, "x")
    t.join()
    assert CALLS == [] and got_key == key and reused and got["wall_time_s"] == 0.5
    assert not store.seed_died_computing(key) and not list(tmp_path.rglob("*.lock"))
