import json
import math
from dataclasses import dataclass

import pandas as pd
import pytest

from harness import AtLeast, Between, Check, Claim, Measurement, Plot, Tier, experiment, register
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

CALLS = []


@dataclass(frozen=True)
class NoisyConfig:
    center: float = 2.0
    spread: float = 0.05
    crash_seed: int = -1
    nan_seed: int = -1


@experiment("test_runner_noisy", NoisyConfig)
def noisy(cfg, ctx):
    CALLS.append(ctx.seed)
    if ctx.seed == cfg.crash_seed:
        raise RuntimeError("boom")
    value = math.nan if ctx.seed == cfg.nan_seed else cfg.center + cfg.spread * (ctx.seed - 1)
    curve = pd.DataFrame({"step": [0, 1, 2], "y": [1.0, 2.0, value]})
    return Measurement(scalars={"m": value}, curves={"c": curve}, scale={"steps": 2})


def make_claim(cid, cfg=NoisyConfig(), band=(1.8, 2.4)):
    return register(Claim(
        id=cid, source="test", statement="m is near 2", paper_value="2", experiment=noisy,
        tiers={"smoke": Tier(3, cfg), "cpu": Tier(3, cfg)}, checks=(Check("m", Between(band)),),
        plots=(Plot("c", "step", ("y",), "y"),)))


def test_run_holds_and_records_provenance(tmp_path):
    claim = make_claim("test-runner-holds")
    store = ResultStore(tmp_path)
    summary = run_claims([claim], RunOptions(tier="smoke"), store)
    entry = summary["claims"][0]
    assert entry["verdict"] == "holds"
    assert entry["checks"][0]["estimate"]["per_seed"] == pytest.approx([1.95, 2.0, 2.05])
    saved = store.load_run(summary["run_id"])
    assert saved["status"] == "complete"
    assert saved["environment"]["versions"]["torch"]
    assert "commit" in saved["environment"]["git"]
    record = store.load_seed(entry["seeds"][0]["key"])
    assert record["seed"] == 0 and record["config"] == {"center": 2.0, "spread": 0.05,
                                                        "crash_seed": -1, "nan_seed": -1}


def test_same_measurements_against_a_missed_band_fail(tmp_path):
    store = ResultStore(tmp_path)
    holds = run_claims([make_claim("test-runner-band-a")], RunOptions(tier="smoke"), store)
    fails = run_claims([make_claim("test-runner-band-b", band=(3.0, 4.0))], RunOptions(tier="smoke"), store)
    straddle = run_claims([make_claim("test-runner-band-c", band=(2.0, 4.0))], RunOptions(tier="smoke"), store)
    assert holds["claims"][0]["verdict"] == "holds"
    assert fails["claims"][0]["verdict"] == "fails"
    assert straddle["claims"][0]["verdict"] == "inconclusive"
    # identical experiment + config + seed: the second and third claims reused the first's seeds
    assert all(s["cached"] for s in fails["claims"][0]["seeds"])


def test_crash_and_nan_give_error_with_reason(tmp_path):
    store = ResultStore(tmp_path)
    crash = run_claims([make_claim("test-runner-crash", NoisyConfig(crash_seed=1))],
                       RunOptions(tier="smoke"), store)["claims"][0]
    assert crash["verdict"] == "error"
    assert "RuntimeError: boom" in crash["checks"][0]["reason"]
    nan = run_claims([make_claim("test-runner-nan", NoisyConfig(nan_seed=2))],
                     RunOptions(tier="smoke"), store)["claims"][0]
    assert nan["verdict"] == "error" and "is nan" in nan["checks"][0]["reason"]


def test_rerun_reuses_finished_seeds_after_interruption(tmp_path):
    claim = make_claim("test-runner-resume", NoisyConfig(center=5.0))
    store = ResultStore(tmp_path)
    # simulate a run killed after seed 0: only that seed's record exists
    CALLS.clear()
    run_claims([claim], RunOptions(tier="smoke", seeds=1), store)
    assert CALLS == [0]
    CALLS.clear()
    summary = run_claims([claim], RunOptions(tier="smoke"), store)
    assert CALLS == [1, 2]
    assert [s["cached"] for s in summary["claims"][0]["seeds"]] == [True, False, False]
    CALLS.clear()
    run_claims([claim], RunOptions(tier="smoke", use_cache=False), store)
    assert CALLS == [0, 1, 2]


def test_store_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = ResultStore(tmp_path)
    run_claims([make_claim("test-runner-atomic")], RunOptions(tier="smoke"), store)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    for p in tmp_path.rglob("*.json"):
        json.loads(p.read_text())


def test_step_cap_is_part_of_the_cache_key(tmp_path):
    store = ResultStore(tmp_path)
    claim = make_claim("test-runner-cap", NoisyConfig(center=7.0))
    a = run_claims([claim], RunOptions(tier="smoke", seeds=1), store)["claims"][0]["seeds"][0]["key"]
    b = run_claims([claim], RunOptions(tier="smoke", seeds=1, max_steps=3), store)["claims"][0]["seeds"][0]["key"]
    assert a != b


def test_one_seed_is_inconclusive_not_holds(tmp_path):
    summary = run_claims([make_claim("test-runner-one-seed")], RunOptions(tier="smoke", seeds=1),
                         ResultStore(tmp_path))
    assert summary["claims"][0]["verdict"] == "inconclusive"


def test_atleast_uses_per_tier_bound(tmp_path):
    claim = register(Claim(id="test-runner-atleast", source="t", statement="s", paper_value="p",
                           experiment=noisy, tiers={"smoke": Tier(3, NoisyConfig()), "cpu": Tier(3, NoisyConfig())},
                           checks=(Check("m", AtLeast({"smoke": 1.0, "cpu": 5.0})),)))
    store = ResultStore(tmp_path)
    assert run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]["verdict"] == "holds"
    assert run_claims([claim], RunOptions(tier="cpu"), store)["claims"][0]["verdict"] == "fails"
