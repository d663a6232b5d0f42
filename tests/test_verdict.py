import math

import pytest

from harness.claim.expect import AtLeast, AtMost, Between, Region, Within
from harness.claim.verdict import ERROR, FAILS, HOLDS, INCONCLUSIVE, combine, decide, estimate
from harness.errors import ConfigError


def test_estimate_t_interval_matches_formula():
    est = estimate([1.0, 2.0, 3.0])
    # mean 2, sd 1, t_{0.975,2} = 4.3027
    assert est.value == pytest.approx(2.0)
    assert est.hi - est.value == pytest.approx(4.302652729 / math.sqrt(3), rel=1e-6)
    assert est.n == 3 and est.per_seed == (1.0, 2.0, 3.0)


def test_estimate_one_seed_has_no_interval_without_standard_error():
    est = estimate([5.0])
    assert math.isinf(est.lo) and math.isinf(est.hi)
    assert decide(est, Region(0.0, 10.0)) == INCONCLUSIVE


def test_estimate_one_seed_uses_its_standard_error():
    est = estimate([5.0], [0.5])
    assert est.lo == pytest.approx(5.0 - 1.959964 * 0.5, rel=1e-5)


def test_estimate_deterministic_is_a_point():
    est = estimate([0.93], deterministic=True)
    assert est.lo == est.hi == 0.93


def test_estimate_rejects_nonfinite():
    with pytest.raises(ValueError, match="non-finite"):
        estimate([1.0, math.nan])


@pytest.mark.parametrize("region,expected", [
    (Region(1.8, 2.4), HOLDS),         # CI inside
    (Region(3.0, 4.0), FAILS),         # CI entirely below
    (Region(0.0, 1.0), FAILS),         # CI entirely above
    (Region(2.05, 3.0), INCONCLUSIVE),  # straddles the lower edge
])
def test_decide_every_verdict_can_happen(region, expected):
    est = estimate([2.0, 2.05, 2.1])
    assert decide(est, region) == expected


def test_combine_worst_wins():
    assert combine([HOLDS, HOLDS]) == HOLDS
    assert combine([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([INCONCLUSIVE, FAILS]) == FAILS
    assert combine([FAILS, ERROR]) == ERROR


def test_expectations_regions_per_tier():
    assert Within(2.0, {"cpu": 0.1}).region("cpu") == Region(1.8, 2.2)
    assert AtLeast(2.0).region("gpu") == Region(lo=2.0)
    assert AtMost({"cpu": 0.5, "smoke": 1.0}).region("smoke") == Region(hi=1.0)
    assert Between({"cpu": (1.8, 2.4)}).region("cpu") == Region(1.8, 2.4)
    with pytest.raises(ConfigError, match="no value for tier 'gpu'"):
        Within(2.0, {"cpu": 0.1}).region("gpu")
    with pytest.raises(ConfigError, match="lo <= hi"):
        Between((3.0, 1.0)).region("cpu")
