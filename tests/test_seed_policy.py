"""Issue 9's seed rule for the default (cpu) run: every stochastic claim gets >= 5 seeds, or a pilot
whose count is then chosen by power with a cap of at least 5 (harness.claim.sequential)."""
import pkgutil

import claims
from harness.run.loader import load_claims

# One seed on purpose, said in the claim's notes: the checked rows do not depend on the seed, and the
# single-seed interval is the regression's standard error.
SEED_FREE = {"sam-ire-flat-convergence"}


def _shipped_cpu_tiers():
    """(id, claim, cpu tier) of this repository's claims/ (not the claims other tests register)."""
    modules = {f"claims.{m.name}" for m in pkgutil.iter_modules(claims.__path__)}
    for cid, claim in sorted(load_claims().items()):
        if claim.module in modules and "cpu" in claim.tiers:
            yield cid, claim, claim.tiers["cpu"]


def test_seed_policy_every_stochastic_cpu_tier_reaches_five_seeds():
    shipped = list(_shipped_cpu_tiers())
    assert len(shipped) >= 12
    short = [f"{cid}: {tier.seeds_label}" for cid, claim, tier in shipped
             if not claim.deterministic and cid not in SEED_FREE and max(tier.seeds, tier.max_seeds or 0) < 5]
    assert not short, short


def test_seed_policy_pilots_can_estimate_a_spread():
    for cid, _, tier in _shipped_cpu_tiers():
        if tier.max_seeds is not None and tier.max_seeds > tier.seeds:
            assert tier.seeds >= 3, f"{cid}: a pilot of {tier.seeds} seeds cannot estimate the spread"


def test_seed_policy_label_says_by_power():
    from harness.claim.registry import Tier

    assert Tier(3, None, max_seeds=8).seeds_label == "3-8 seeds (by power)"
    assert Tier(5, None).seeds_label == "5 seeds" and Tier(1, None).seeds_label == "1 seed"


def test_seed_policy_deterministic_claims_run_one_seed(tmp_path):
    from dataclasses import dataclass

    import pandas as pd

    from harness import Between, Check, Claim, Measurement, Tier, experiment, register
    from harness.run.planning import seed_count
    from harness.run.runner import RunOptions, run_claims
    from harness.run.store import ResultStore

    calls = []

    @dataclass(frozen=True)
    class Exact:
        value: float = 2.0

    @experiment("test_seed_policy_exact", Exact)
    def exact(cfg, ctx):
        calls.append(ctx.seed)
        return Measurement(scalars={"m": cfg.value}, curves={"c": pd.DataFrame({"step": [0], "y": [2.0]})})

    def claim(cid, deterministic):
        return register(Claim(id=cid, source="test", statement="m is 2", paper_value="2", experiment=exact,
                              tiers={"smoke": Tier(3, Exact()), "cpu": Tier(3, Exact())}, checks=(Check("m", Between((1.9, 2.1))),),
                              deterministic=deterministic))

    exact_claim, noisy_claim = claim("test-seed-policy-exact", True), claim("test-seed-policy-noisy", False)
    tier = exact_claim.tiers["smoke"]
    assert seed_count(exact_claim, tier) == 1 and seed_count(noisy_claim, tier) == 3
    assert seed_count(exact_claim, tier, requested=4) == 4  # --seeds still wins
    store = ResultStore(tmp_path)
    entry = run_claims([exact_claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert calls == [0] and len(entry["seeds"]) == 1 and entry["verdict"] == "holds"
    entry = run_claims([noisy_claim], RunOptions(tier="smoke"), store)["claims"][0]
    assert calls == [0, 1, 2] and len(entry["seeds"]) == 3  # seed 0 reused from the store
