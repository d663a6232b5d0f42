"""The verdict rules a reviewer signs: the smallest effect of interest (both outcomes reachable), the
family error control, the out-of-regime word, and a scale note that follows --set."""
import math
from dataclasses import dataclass

import pandas as pd
import pytest

from harness import Between, Check, Claim, Effect, Measurement, Tier, experiment, register
from harness.claim.sequential import seeds_needed
from harness.claim.verdict import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    OUT_OF_REGIME,
    Estimate,
    combine,
    decide,
    effect_distance,
    estimate,
    family_confidence,
)
from harness.errors import ConfigError
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


def _est(lo, hi):
    return Estimate((lo + hi) / 2, lo, hi, 5, "test")


@pytest.mark.parametrize("lo,hi,expected", [
    (0.1, 0.9, HOLDS),          # excludes 0, compatible with >= 0.3
    (0.4, 0.9, HOLDS),          # the whole interval beyond the smallest effect
    (-0.2, 0.25, FAILS),        # whatever the effect is, it is below 0.3: "no effect" is reachable
    (0.05, 0.2, FAILS),         # a real but smaller-than-interesting effect fails too
    (-0.5, 0.6, INCONCLUSIVE),  # straddles 0 and reaches 0.3
])
def test_effect_rule_reaches_every_outcome(lo, hi, expected):
    assert decide(_est(lo, hi), Effect(0.3), "cpu") == expected


@pytest.mark.parametrize("lo,hi,expected", [
    (0.5, 0.85, HOLDS),         # a ratio below 1, compatible with <= 0.9
    (0.92, 1.1, FAILS),         # the interval lies short of a 10% reduction
    (0.8, 1.05, INCONCLUSIVE),
])
def test_effect_rule_mirrors_for_reductions(lo, hi, expected):
    assert decide(_est(lo, hi), Effect(0.1, null=1.0, direction=-1), "cpu") == expected


def test_effect_true_zero_is_decided_with_enough_seeds():
    """An effect that is truly 0 fails once the interval is narrower than the smallest effect: the
    strict '> 0' check it replaces straddled 0 for ever."""
    values = [0.1 * math.sin(3.0 * i) for i in range(12)]  # mean ~ 0, sd ~ 0.07
    assert decide(estimate(values), Effect(0.3), "cpu") == FAILS
    assert decide(estimate(values[:2]), Effect(0.3), "cpu") in (INCONCLUSIVE, FAILS)


def test_effect_distance_and_seeds_needed_aim_at_the_decisive_edge():
    e = Effect(0.3)
    assert effect_distance(1.0, e, "cpu") == pytest.approx(1.0)   # must clear 0 to hold
    assert effect_distance(0.1, e, "cpu") == pytest.approx(0.2)   # must clear 0.3 to fail
    assert effect_distance(-0.1, e, "cpu") == pytest.approx(0.4)
    values = [0.0, 0.2, -0.2, 0.1, -0.1]
    n_effect = seeds_needed(values, e.region("cpu"), 0.95, effect_distance(0.0, e, "cpu"))
    n_strict = seeds_needed(values, e.region("cpu"), 0.95)
    assert n_strict is None and n_effect is not None and n_effect < 20


def test_effect_rejects_a_non_positive_smallest_effect():
    with pytest.raises(ConfigError, match="smallest"):
        Effect(0.0)
    with pytest.raises(ConfigError, match="direction"):
        Effect(0.3, direction=0)


def test_effect_describes_its_failing_edge():
    assert Effect(0.3).describe("cpu") == "> 0; fails if < 0.3 (smallest effect of interest)"


def test_family_confidence_is_bonferroni_over_checks_and_looks():
    assert family_confidence(1) == pytest.approx(0.95)
    assert family_confidence(4) == pytest.approx(1 - 0.05 / 4)
    assert family_confidence(3, looks=2) == pytest.approx(1 - 0.05 / 6)


@pytest.mark.parametrize("checks,regime,expected", [
    ([HOLDS], [HOLDS], HOLDS),
    ([HOLDS], [FAILS], OUT_OF_REGIME),
    ([FAILS], [FAILS], OUT_OF_REGIME),      # a failing check outside its regime says nothing
    ([FAILS], [INCONCLUSIVE], INCONCLUSIVE),
    ([HOLDS], [INCONCLUSIVE], INCONCLUSIVE),
    ([FAILS], [HOLDS], FAILS),
    ([HOLDS], ["error"], "error"),
])
def test_combine_gates_on_the_regime(checks, regime, expected):
    assert combine(checks, regime) == expected


@dataclass(frozen=True)
class RegimeConfig:
    gain: float = 0.5     # what doubling the budget buys: the premise
    effect: float = 1.0
    steps: int = 10


@experiment("test_verdict_rules_regime", RegimeConfig)
def regime_experiment(cfg, ctx):
    wobble = 0.01 * (ctx.seed % 3 - 1)
    return Measurement(scalars={"gain": cfg.gain + wobble, "effect": cfg.effect + wobble},
                       curves={"c": pd.DataFrame({"step": [0, 1], "y": [0.0, 1.0]})}, scale={"steps": cfg.steps})


def _regime_claim(cid):
    cfg = RegimeConfig()
    return register(Claim(
        id=cid, source="test", statement="effect > 0 where the premise holds", paper_value="1",
        experiment=regime_experiment, tiers={"smoke": Tier(3, cfg, scale="10 steps"), "cpu": Tier(3, cfg)},
        checks=(Check("effect", Effect(0.2), source="test: smallest effect 0.2", paper="1 (Table 1)"),),
        regime=(Check("gain", Between((0.1, math.inf)), source="test: premise"),)))


def test_run_reads_out_of_regime_when_the_premise_fails(tmp_path):
    claim = _regime_claim("test-verdict-rules-regime")
    store = ResultStore(tmp_path)
    inside = run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert inside["verdict"] == HOLDS
    assert inside["regime"][0]["verdict"] == HOLDS and inside["regime"][0]["source"] == "test: premise"
    assert inside["checks"][0]["paper"] == "1 (Table 1)"
    assert inside["sampling"]["family_tests"] == 2
    assert inside["sampling"]["confidence"] == pytest.approx(1 - 0.05 / 2)
    outside = run_claims([claim], RunOptions(tier="smoke", overrides={"gain": "0.0"}), store)["claims"][0]
    assert outside["regime"][0]["verdict"] == FAILS
    assert outside["checks"][0]["verdict"] == HOLDS   # the check alone would hold ...
    assert outside["verdict"] == OUT_OF_REGIME         # ... but the claim is not about this setting


def test_scale_note_follows_the_config_that_ran(tmp_path):
    claim = _regime_claim("test-verdict-rules-scale")
    store = ResultStore(tmp_path)
    declared = run_claims([claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert declared["scale"] == "10 steps"
    changed = run_claims([claim], RunOptions(tier="smoke", overrides={"steps": "80"}), store)["claims"][0]
    assert changed["scale"] == "10 steps [ran with --set: steps=80]"


def test_plot_band_must_be_a_check_of_the_claim():
    from harness import Plot

    cfg = RegimeConfig()
    with pytest.raises(ValueError, match="not one of its checks"):
        register(Claim(id="test-verdict-rules-plot", source="t", statement="s", paper_value="p",
                       experiment=regime_experiment, tiers={"smoke": Tier(1, cfg), "cpu": Tier(1, cfg)},
                       checks=(Check("effect", Effect(0.2), source="t"),),
                       plots=(Plot("c", "step", ("y",), "y", band_check="gain"),)))
    with pytest.raises(ValueError, match="names no onset"):
        register(Claim(id="test-verdict-rules-plot2", source="t", statement="s", paper_value="p",
                       experiment=regime_experiment, tiers={"smoke": Tier(1, cfg), "cpu": Tier(1, cfg)},
                       checks=(Check("effect", Effect(0.2), source="t"),),
                       plots=(Plot("c", "step", ("y",), "y", window="onset"),)))


def test_no_second_look_when_a_regime_check_fails(tmp_path):
    cfg = RegimeConfig(gain=0.0)  # the premise fails in every seed
    claim = register(Claim(
        id="test-verdict-rules-no-second-look", source="test", statement="s", paper_value="1",
        experiment=regime_experiment, tiers={"smoke": Tier(3, cfg, max_seeds=8), "cpu": Tier(3, cfg)},
        checks=(Check("effect", Between((0.985, 2.0)), source="test: an edge the pilot straddles"),),
        regime=(Check("gain", Between((0.1, math.inf)), source="test: premise"),)))
    entry = run_claims([claim], RunOptions(tier="smoke"), ResultStore(tmp_path))["claims"][0]
    assert entry["checks"][0]["verdict"] == INCONCLUSIVE and entry["checks"][0]["seeds_needed"] <= 8
    assert entry["verdict"] == OUT_OF_REGIME and len(entry["seeds"]) == 3


def test_effect_check_records_its_fails_edge_and_the_forest_plot_draws_it():
    from harness.claim.records import CheckResult
    from harness.report.figures import forest_plot

    k = CheckResult(metric="gain", expectation="> 0; fails if < 0.29", region=[0.0, None], verdict="inconclusive",
                    estimate={"value": 0.1, "lo": -0.2, "hi": 0.4, "n": 3, "per_seed": [0.0, 0.1, 0.2]},
                    effect_edge=0.29)
    assert k.to_dict()["effect_edge"] == 0.29 and CheckResult.from_dict(k.to_dict()) == k
    svg, _ = forest_plot(k)
    assert 'id="effect-edge' in svg or "effect-edge" in svg
    plain = CheckResult(metric="x", expectation="≥ 1", region=[1.0, None], verdict="holds",
                        estimate={"value": 2.0, "lo": 1.5, "hi": 2.5, "n": 3, "per_seed": [1.8, 2.0, 2.2]})
    assert "effect_edge" not in plain.to_dict() and "effect-edge" not in forest_plot(plain)[0]
