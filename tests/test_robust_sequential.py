"""Seeds chosen by power (two looks, Bonferroni), --seed-offset, and the gate's noise rule (issue 9)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from harness import Between, Check, Claim, Measurement, Region, Tier, experiment, register
from harness.claim.records import CheckResult
from harness.claim.sequential import look_confidence, second_look_size, seeds_needed
from harness.run.history import GATE_RULE, compare_runs
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import format_table

SEEN: list[int] = []


@dataclass(frozen=True)
class SeqConfig:
    center: float = 2.0
    spread: float = 0.1


@experiment("test_robust_sequential", SeqConfig, outputs=("m",))
def seq_toy(cfg, ctx) -> Measurement:
    SEEN.append(ctx.seed)
    return Measurement(scalars={"m": cfg.center + cfg.spread * ((ctx.seed % 3) - 1)})  # c-s, c, c+s, ...


def _claim(cid: str, seeds: int = 3, max_seeds: int | None = None) -> Claim:
    tier = Tier(seeds, SeqConfig(), max_seeds=max_seeds)
    return register(Claim(id=cid, source="t", statement="m above 1.8", paper_value="2", experiment=seq_toy,
                          tiers={"smoke": tier, "cpu": tier}, checks=(Check("m", Between((1.8, 3.0))),)))


def test_robust_seeds_needed_projects_the_count_that_decides():
    region = Region(1.8, 3.0)
    vals = [1.9, 2.0, 2.1]  # mean 2.0, sd 0.1: 0.2 from the lower bound
    assert seeds_needed(vals, region, 0.95) == 4      # t(.975, 3) * 0.1 / 2 = 0.159 < 0.2; n=3 gives 0.248
    assert seeds_needed(vals, region, 0.975) == 5     # stricter level, more seeds
    assert seeds_needed([2.0], region, 0.95) is None  # one seed: no spread to project from
    assert seeds_needed([1.79, 1.81], Region(1.8, 3.0), 0.95) is None  # the mean sits on the bound
    assert seeds_needed([1.0, 2.602], Region(1.8, 3.0), 0.95) is None  # ~5 million: beyond MAX_PROJECTED
    assert look_confidence(True) == pytest.approx(0.975) and look_confidence(False) == 0.95


def test_robust_second_look_only_when_every_inconclusive_check_fits():
    assert second_look_size([CheckResult(verdict="inconclusive", seeds_needed=5)], 3, 8) == 5
    assert second_look_size([CheckResult(verdict="inconclusive", seeds_needed=9)], 3, 8) is None
    assert second_look_size([CheckResult(verdict="inconclusive")], 3, 8) is None
    assert second_look_size([CheckResult(verdict="holds")], 3, 8) is None


def test_robust_adaptive_tier_adds_seeds_in_a_second_look_and_decides(tmp_path):
    SEEN.clear()
    entry = run_claims([_claim("test-robust-adaptive", max_seeds=8)], RunOptions(tier="smoke"),
                       ResultStore(tmp_path))["claims"][0]
    assert SEEN == [0, 1, 2, 3, 4] and [s["seed"] for s in entry["seeds"]] == [0, 1, 2, 3, 4]
    assert entry["sampling"] == {"adaptive": True, "looks": 2, "pilot_seeds": 3, "max_seeds": 8,
                                 "confidence": pytest.approx(0.975), "family_tests": 1, "cap_reason": ""}
    check = entry["checks"][0]
    assert check["verdict"] == "holds" and check["seeds_needed"] is None
    assert "97.5%" in check["estimate"]["method"]


def test_robust_second_look_runs_its_added_seeds_in_the_pool_with_the_same_numbers(tmp_path):
    SEEN.clear()
    pooled = run_claims([_claim("test-robust-adaptive-pool", max_seeds=8)], RunOptions(tier="smoke", jobs=2),
                        ResultStore(tmp_path / "pool"))["claims"][0]
    assert SEEN == []  # pilot and second look both ran in worker processes
    serial = run_claims([_claim("test-robust-adaptive-serial", max_seeds=8)], RunOptions(tier="smoke"),
                        ResultStore(tmp_path / "serial"))["claims"][0]
    assert [s["seed"] for s in pooled["seeds"]] == [0, 1, 2, 3, 4] and pooled["sampling"]["looks"] == 2
    assert pooled["checks"][0]["estimate"] == serial["checks"][0]["estimate"]


def test_robust_adaptive_tier_does_not_add_seeds_that_would_not_decide(tmp_path):
    entry = run_claims([_claim("test-robust-adaptive-cap", max_seeds=4)], RunOptions(tier="smoke"),
                       ResultStore(tmp_path))["claims"][0]
    assert len(entry["seeds"]) == 3 and entry["sampling"]["looks"] == 1
    assert entry["checks"][0]["verdict"] == "inconclusive" and entry["checks"][0]["seeds_needed"] == 5


def test_robust_fixed_seeds_look_once_at_95_and_say_what_would_decide(tmp_path):
    store = ResultStore(tmp_path)
    plain = run_claims([_claim("test-robust-fixed")], RunOptions(tier="smoke"), store)
    check = plain["claims"][0]["checks"][0]
    assert check["verdict"] == "inconclusive" and check["seeds_needed"] == 4
    assert "needs ≈ 4 seeds to decide" in format_table(plain)
    forced = run_claims([_claim("test-robust-fixed-seeds", max_seeds=8)], RunOptions(tier="smoke", seeds=3),
                        store)["claims"][0]
    assert len(forced["seeds"]) == 3 and not forced["sampling"]["adaptive"]  # --seeds N fixes the count


def test_robust_seed_offset_runs_fresh_disjoint_seeds(tmp_path):
    store = ResultStore(tmp_path)
    claim = _claim("test-robust-offset")
    base = run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]
    SEEN.clear()
    fresh = run_claims([claim], RunOptions(tier="smoke", seed_offset=10), store)
    entry = fresh["claims"][0]
    assert [s["seed"] for s in entry["seeds"]] == [10, 11, 12] and SEEN == [10, 11, 12]
    assert not {s["key"] for s in base["seeds"]} & {s["key"] for s in entry["seeds"]}
    assert fresh["options"]["seed_offset"] == 10


def _run(run_id, verdict, lo, hi):
    est = {"value": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 3}
    return {"run_id": run_id, "tier": "cpu", "status": "complete", "options": {},
            "claims": [{"id": "c", "version": 1, "config_hash": "h", "verdict": verdict,
                        "checks": [{"metric": "m", "verdict": verdict, "estimate": est}]}]}


@pytest.mark.parametrize("new,regressed", [
    (("inconclusive", 1.7, 2.3), False),  # held -> inconclusive, overlapping: noise
    (("inconclusive", 2.6, 3.4), True),   # held -> inconclusive, moved beyond both intervals
    (("fails", 1.9, 2.1), True),          # fails is always a regression
    (("error", 1.9, 2.1), True),
    (("holds", 1.9, 2.1), False),
])
def test_robust_gate_tells_a_regression_from_noise(new, regressed):
    diff = compare_runs(_run("a", "holds", 1.9, 2.5), _run("b", *new))
    assert diff.claims[0].regressed is regressed
    assert "overlapping intervals is noise" in GATE_RULE


def test_robust_gate_catches_a_check_that_held_inside_an_undecided_claim():
    """A claim that was inconclusive as a whole (one check undecided) still regresses when a check that held
    now fails: e.g. IRE's kappa planted at 0 makes 'IRE - base > 0' read exactly 0."""
    def run(run_id, first):
        est = {"value": 1.0, "lo": 0.8, "hi": 1.2, "n": 5}
        zero = {"value": 0.0, "lo": 0.0, "hi": 0.0, "n": 5}
        wide = {"value": 0.0, "lo": -0.4, "hi": 0.4, "n": 5}
        return {"run_id": run_id, "tier": "cpu", "status": "complete", "options": {},
                "claims": [{"id": "c", "version": 1, "config_hash": "h", "verdict": "inconclusive" if first else "fails",
                            "checks": [{"metric": "gain", "verdict": "holds" if first else "fails",
                                        "estimate": est if first else zero},
                                       {"metric": "vs_control", "verdict": "inconclusive", "estimate": wide}]}]}
    diff = compare_runs(run("a", True), run("b", False))
    assert diff.claims[0].regressed and diff.claims[0].checks_regressed == ["gain held, now fails"]
    again = compare_runs(run("a", True), run("b2", True))
    assert not again.claims[0].regressed
    # inconclusive -> fails is a regression too (the planted kappa = 0 against a baseline whose check was
    # undecided); a claim that already failed cannot regress
    undecided = run("u", True)
    undecided["claims"][0]["checks"][0]["verdict"] = "inconclusive"
    assert compare_runs(undecided, run("b3", False)).claims[0].regressed
    failing = run("f", False)
    assert not compare_runs(failing, run("b4", False)).claims[0].regressed


def test_undecided_note_marks_a_count_over_the_cap_with_the_tiers_reason():
    from harness.claim.sequential import undecided_note

    assert undecided_note("inconclusive", 4, 8) == "needs ≈ 4 seeds to decide"
    over = undecided_note("inconclusive", 257, 5, "one test image is 0.125 points")
    assert over == "needs ≈ 257 seeds to decide, over this tier's cap of 5: one test image is 0.125 points"
    assert undecided_note("inconclusive", 257, 5).endswith("over this tier's cap of 5: the tier gives no reason")
    # a deterministic run (no projection): only the reason says why more seeds cannot decide it
    assert undecided_note("inconclusive", None, 1, "one deterministic run") == \
        "more seeds cannot decide it: one deterministic run"
    assert undecided_note("inconclusive", None, 1) == ""
    assert undecided_note("holds", 257, 5, "why") == "" and undecided_note("fails", None, 1, "why") == ""


def test_format_table_prints_the_cap_reason_beside_a_count_over_the_cap():
    summary = {"run_id": "r", "tier": "cpu", "options": {"device": "cpu"}, "claims": [{
        "id": "c", "verdict": "inconclusive", "tier": "cpu", "scale": "s", "regime": [], "reported": [],
        "seeds": [1, 2, 3], "wall_time_s": 1.0, "paper_value": "p",
        "sampling": {"max_seeds": 3, "cap_reason": "the spread is too wide for the budget"},
        "checks": [{"metric": "m", "estimate": None, "expectation": "> 0", "verdict": "inconclusive",
                    "seeds_needed": 40}]}]}
    assert "needs ≈ 40 seeds to decide, over this tier's cap of 3: the spread is too wide for the budget" \
        in format_table(summary)
