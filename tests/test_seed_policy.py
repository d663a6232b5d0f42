"""Issue 9's seed rule for the default (cpu) run: every stochastic claim gets >= 5 seeds, or a pilot
whose count is then chosen by power with a cap of at least 5 (harness.sequential)."""
import pkgutil

import claims
from harness.registry import load_claims

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
    from harness.registry import Tier

    assert Tier(3, None, max_seeds=8).seeds_label == "3-8 seeds (by power)"
    assert Tier(5, None).seeds_label == "5 seeds" and Tier(1, None).seeds_label == "1 seed"
