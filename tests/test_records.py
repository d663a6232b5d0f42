"""Typed store records: each reads back what the runner wrote and writes out exactly the same JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from harness import Check, Claim, HarnessError, Measurement, Tier, Within, experiment, register
from harness.claim.records import CheckResult, ClaimResult, RunSummary, SeedEntry, SeedRecord
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore, record_digest

# A run of every claim at the cpu tier, where one was made on this machine; CI has none and skips.


@dataclass(frozen=True)
class RecConfig:
    fail_seed: int = 1


@experiment("test_records_tiny", RecConfig)
def rec_experiment(cfg: RecConfig, ctx) -> Measurement:
    if ctx.seed == cfg.fail_seed:
        raise RuntimeError("planted failure")
    return Measurement(scalars={"ratio": 2.0 + 0.01 * ctx.seed, "speedup": 1.5}, notes=[f"seed {ctx.seed}"])


CLAIM = register(Claim(
    id="test-records-claim", source="Test 2024", statement="ratio is near two", paper_value="2",
    experiment=rec_experiment,
    tiers={"smoke": Tier(3, RecConfig()), "cpu": Tier(2, RecConfig(fail_seed=-1))},
    checks=(Check("ratio", Within(target=2.0, rtol=0.05), label="the ratio"),),
    reported=(("speedup", "speed-up"),),
))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store holding two real runs of CLAIM: smoke (one seed errors) and cpu (every seed measures)."""
    store = ResultStore(tmp_path_factory.mktemp("records") / "results")
    for tier in ("smoke", "cpu"):
        run_claims([CLAIM], RunOptions(tier=tier), store)
    return store


def _same_json(a, b) -> bool:
    """Same keys in the same order and the same values, as the store writes them."""
    return json.dumps(a, default=str) == json.dumps(b, default=str)


def test_records_run_summary_round_trips_a_real_run_exactly(store):
    for run_id in store.run_ids():
        stored = json.loads(store.run_path(run_id).read_text())
        run = RunSummary.from_dict(stored)
        assert _same_json(run.to_dict(), stored)
        (claim,) = run.claims
        assert isinstance(claim, ClaimResult) and not claim.extra and not run.extra
        assert all(isinstance(s, SeedEntry) for s in claim.seeds)
        assert [type(k) for k in claim.checks + claim.reported] == [CheckResult, CheckResult]


def test_records_errored_check_and_reported_row_keep_their_keys(store):
    smoke = RunSummary.from_dict(store.load_run(store.run_ids()[0]))
    (claim,) = smoke.claims
    assert claim.tier == "smoke" and claim.verdict == "error"
    check, row = claim.checks[0].to_dict(), claim.reported[0].to_dict()
    assert list(check) == ["metric", "label", "expectation", "region", "verdict", "estimate", "reason"]
    assert list(row) == ["metric", "label", "verdict", "estimate", "reason"]
    cpu = RunSummary.from_dict(store.load_run(store.run_ids()[1])).claims[0]
    assert list(cpu.checks[0].to_dict()) == ["metric", "label", "expectation", "region", "estimate", "verdict",
                                            "seeds_needed"]
    assert list(cpu.reported[0].to_dict()) == ["metric", "label", "estimate"]
    assert cpu.reported[0].is_check is False and cpu.checks[0].is_check is True


def test_records_seed_record_round_trips_with_its_digest(store):
    run = RunSummary.from_dict(store.load_run())
    for entry in run.claims[0].seeds:
        path = store.seed_path(entry.key)
        stored = json.loads(path.read_text())
        record = SeedRecord.from_dict(stored)
        assert _same_json(record.to_dict(), stored) and not record.extra
        assert record.key == entry.key and record.digest == record_digest(record.to_dict())


def test_records_old_dicts_read_with_the_readers_defaults():
    claim = ClaimResult.from_dict({"id": "c", "checks": [{"metric": "m"}], "changes": None, "measured_scale": None})
    assert (claim.version, claim.verdict, claim.source, claim.seeds, claim.reported) == (None, "error", "", [], [])
    assert claim.changes == [] and claim.measured_scale == {} and claim.sampling == {}
    (check,) = claim.checks
    assert (check.label, check.verdict, check.estimate, check.reason, check.is_check) == ("", None, None, None, False)
    run = RunSummary.from_dict({"run_id": "r", "claims": [{"id": "c"}]})
    assert (run.status, run.tier, run.started, run.options, run.status_reason) == ("unknown", "?", None, {}, None)
    assert "status_reason" not in run.to_dict() and "schema" not in run.to_dict()
    entry = SeedEntry.from_dict({"seed": 0})
    assert (entry.key, entry.cached, entry.error, entry.notes) == (None, False, None, [])


def test_records_unknown_keys_are_kept_after_the_known_ones():
    stored = {"schema": 2, "key": "0" * 24, "experiment": "x", "seed": 0, "wall_time_s": 1.0, "error": None,
              "measurement": {"scalars": {}}, "world_size": 2, "digest": "d"}
    record = SeedRecord.from_dict(stored)
    assert record.extra == {"world_size": 2}
    assert list(record.to_dict())[-2:] == ["world_size", "digest"]
    lost = SeedRecord(experiment="x", seed=0, wall_time_s=0.0, error="worker died", run="r").to_dict()
    assert not {"threads", "environment", "recorded", "schema", "key", "digest"} & set(lost)
    claim = ClaimResult.from_dict({"id": "c", "added_later": 1})
    assert claim.extra == {"added_later": 1} and list(claim.to_dict())[-1] == "added_later"


def test_records_missing_required_key_raises_with_the_keys_found():
    with pytest.raises(HarnessError, match="ClaimResult has no 'id'"):
        ClaimResult.from_dict({"verdict": "holds"})
    with pytest.raises(HarnessError, match="stored as an object"):
        RunSummary.from_dict({"run_id": "r", "claims": ["not a claim"]})
