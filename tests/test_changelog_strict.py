"""Change logs on claims (pre-registration) and strict expectations for "X improves Y" checks."""
from dataclasses import dataclass

import pytest

from harness import Above, AtLeast, Below, Change, Check, Claim, Measurement, Tier, experiment, register
from harness.claim.verdict import FAILS, HOLDS, INCONCLUSIVE, decide, estimate


@dataclass(frozen=True)
class ToyConfig:
    steps: int = 1


@experiment("test_changelog_toy", ToyConfig)
def toy(cfg, ctx):
    return Measurement(scalars={"x": 1.0})


def _claim(**kw):
    args = dict(id="test-changelog-claim", source="s", statement="st", paper_value="p", experiment=toy,
                tiers={"smoke": Tier(1, ToyConfig()), "cpu": Tier(2, ToyConfig())},
                checks=(Check("x", AtLeast(0.0)),))
    args.update(kw)
    return Claim(**args)


def test_version_must_follow_the_change_log():
    entry = Change("2026-12-01", "band widened", "reason", results_seen=True)
    with pytest.raises(ValueError, match="version 1 must be 1 \\+ the number"):
        register(_claim(id="test-changelog-a", changes=(entry,)))
    claim = register(_claim(id="test-changelog-b", changes=(entry,), version=2))
    assert claim.changes[0].results_seen is True


def test_change_entries_are_validated():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Change("1 Dec", "w", "y", results_seen=False)
    with pytest.raises(ValueError, match="non-empty"):
        Change("2026-12-01", "", "y", results_seen=False)
    with pytest.raises(TypeError, match="True or False"):
        Change("2026-12-01", "w", "y", results_seen="no")
    late, early = Change("2026-12-02", "w", "y", False), Change("2026-12-01", "w", "y", False)
    with pytest.raises(ValueError, match="date order"):
        register(_claim(id="test-changelog-c", changes=(late, early), version=3))


def test_strict_bound_does_not_hold_at_exactly_zero():
    zero = estimate([0.0, 0.0, 0.0])  # the method never switched on: no effect at all
    assert decide(zero, Above(0.0).region("cpu")) == FAILS
    assert decide(zero, AtLeast(0.0).region("cpu")) == HOLDS  # why improvement checks use Above
    assert decide(estimate([0.20, 0.21, 0.22]), Above(0.0).region("cpu")) == HOLDS
    assert decide(estimate([-0.1, 0.2, 0.3]), Above(0.0).region("cpu")) == INCONCLUSIVE
    assert decide(estimate([0.0, 0.0]), Below(0.0).region("cpu")) == FAILS
    assert Above(0.0).describe("cpu") == "> 0" and Below(1.0).describe("cpu") == "< 1"
