"""eos-intrinsic-time-collapse: the rescaled settings, the spread metric, and a check that fails on runs
whose lr * wd differ."""
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.experiments.eos_collapse import CollapseConfig, max_rel_spread, setting
from harness.measurement import RunContext
from harness.registry import get_claim, load_claims

TINY = GDConfig(activation="tanh", lr=0.1, weight_decay=2e-2, steps=40, n_train=120, n_test=40,
                measure_every=5, widths=(16, 16))


def _curve(tau, sph):
    return pd.DataFrame({"tau": tau, "spherical_sharpness": sph})


def test_setting_keeps_lr_wd_and_lr_over_init_norm():
    for c2 in (0.5, 2.0, 4.0):
        s = setting(TINY, c2, measure_every=15)
        assert s.lr * s.weight_decay == pytest.approx(TINY.lr * TINY.weight_decay, rel=1e-15)
        assert s.lr / s.init_scale**2 == pytest.approx(TINY.lr / TINY.init_scale**2, rel=1e-15)
    assert setting(TINY, 1.0, measure_every=15) is TINY  # the base run itself: shared through the cache


def test_max_rel_spread_reads_zero_for_identical_curves_and_interpolates_in_tau():
    tau = np.linspace(0, 2, 21)
    a = _curve(tau, 100 * np.exp(-tau))
    spread, per_point = max_rel_spread([a, a.copy(), a.copy()], tau)
    assert spread == 0.0 and len(per_point) == 21
    coarse = _curve(tau[::4], 100 * np.exp(-tau[::4]))  # log-linear interpolation is exact here
    assert max_rel_spread([a, coarse], tau[:-1])[0] == pytest.approx(0.0, abs=1e-12)
    b = _curve(tau, 100 * np.exp(-2 * tau))  # the same curve on a clock running twice as fast
    assert max_rel_spread([a, b], tau)[0] == pytest.approx((np.exp(-2) - np.exp(-4)) / ((np.exp(-2) + np.exp(-4)) / 2))


def test_collapse_config_rejects_a_setup_that_cannot_collapse():
    with pytest.raises(ConfigError, match="1.0"):
        CollapseConfig(base=TINY, scales=(0.5, 2.0, 4.0))
    with pytest.raises(ConfigError, match="weight decay"):
        CollapseConfig(base=replace(TINY, weight_decay=0.0))


def test_collapse_check_holds_for_rescaled_runs_and_fails_when_lr_wd_differs():
    """Real (tiny) runs: (lr c^2, wd/c^2, ||w0|| c) coincide with the base run; doubling wd does not."""
    load_claims()
    region = get_claim("eos-intrinsic-time-collapse").checks[0].expect.region("cpu")
    ctx = RunContext(seed=0, tier="smoke")
    base = gd_sharpness_trajectory(TINY, ctx).curves["trajectory"]
    rescaled = [gd_sharpness_trajectory(setting(TINY, c2, TINY.measure_every), ctx).curves["trajectory"]
                for c2 in (0.5, 2.0)]
    tau = base["tau"].to_numpy()
    same, _ = max_rel_spread([base, *rescaled], tau)
    assert region.contains(same) and same < 1e-6
    faster = replace(TINY, weight_decay=2 * TINY.weight_decay)  # lr*wd x 2: a different clock
    other = gd_sharpness_trajectory(faster, ctx).curves["trajectory"]
    differ, _ = max_rel_spread([base, other], tau)
    assert not region.contains(differ) and math.isfinite(differ)
