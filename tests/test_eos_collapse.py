"""eos-intrinsic-time-collapse: the rescaled settings, the pre-onset spread and post-onset window metrics,
and checks that fail on runs whose lr * wd differ."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.experiments.eos_collapse import (
    CollapseConfig,
    eos_intrinsic_time_collapse,
    max_rel_spread,
    max_window_diff,
    on_step_clock,
    setting,
    window_edges,
    window_means,
)
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims

TINY = GDConfig(activation="tanh", optim=OptimizerSpec("sgd", lr=0.1, weight_decay=2e-2), steps=40, n_train=120,
                n_test=40, measure_every=5, widths=(16, 16))


def _curve(tau, sph):
    return pd.DataFrame({"tau": tau, "spherical_sharpness": sph})


def _region(metric):
    load_claims()
    check = next(c for c in get_claim("eos-intrinsic-time-collapse").checks if c.metric == metric)
    return check.expect.region("cpu")


def test_setting_keeps_lr_wd_and_lr_over_init_norm():
    for c2 in (0.5, 2.0, 4.0):
        s = setting(TINY, c2, measure_every=15)
        assert s.lr_wd == pytest.approx(TINY.lr_wd, rel=1e-15)
        assert s.optim.lr / s.init_scale**2 == pytest.approx(TINY.optim.lr / TINY.init_scale**2, rel=1e-15)
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
        CollapseConfig(base=derive(TINY, optim={"weight_decay": 0.0}))
    with pytest.raises(ConfigError, match="window_tau"):
        CollapseConfig(base=TINY, window_tau=0.0)
    with pytest.raises(ConfigError, match="clock_factor"):
        CollapseConfig(base=TINY, clock_factor=2.0)
    with pytest.raises(ConfigError, match="symmetry_tau"):
        CollapseConfig(base=TINY, symmetry_tau=10.0)


def test_window_edges_full_windows_from_the_start_or_one_window_for_a_short_run():
    assert window_edges(0.5, 4.0, 1.0) == pytest.approx([0.5, 1.5, 2.5, 3.5])
    assert window_edges(0.0, 0.12, 1.0) == pytest.approx([0.0, 0.12])


def test_window_means_are_means_of_log_and_skip_sparse_windows():
    tau = np.arange(0, 2.01, 0.1)
    c = _curve(tau, np.exp(tau))  # log S = tau: the window mean is the mean tau in the window
    m = window_means(c, np.array([0.0, 1.0, 2.0]))
    assert m == pytest.approx([0.45, 1.5])  # last window closed: 1.0 .. 2.0 (11 points)
    assert np.isnan(window_means(c, np.array([0.0, 0.15, 2.0]), min_points=3)[0])  # 2 points only
    # tau one ulp off an edge (lr*wd of a rescaled setting) stays on the same side
    shifted = _curve(tau * (1 + 1e-15), np.exp(tau))
    assert window_means(shifted, np.array([0.0, 1.0, 2.0])) == pytest.approx(m)


def test_window_check_holds_for_one_slow_curve_with_independent_fast_noise_and_fails_for_another_clock():
    """Post-onset equivalence: realizations of one process (same slow curve, own fast fluctuation of the
    size seen at the cpu tier, sd 0.3 in log S) pass; the same curve on a clock twice as fast does not."""
    region = _region("clock_log_sph_window_diff")
    tau = np.arange(0.6, 4.0, 0.05)  # every 25 steps at lr*wd = 2e-3
    slow = lambda t: 5.0 - 0.8 * (1 - np.exp(-(t - 0.6)))  # noqa: E731
    rng = np.random.default_rng(0)
    runs = [_curve(tau, np.exp(slow(tau) + 0.3 * rng.standard_normal(len(tau)))) for _ in range(3)]
    edges = window_edges(0.6, 3.95, 1.0)
    same = max_window_diff(runs, edges)
    assert region.contains(same) and same > 0
    assert max_window_diff([runs[0], runs[0].copy()], edges) == 0.0
    fast = _curve(tau, np.exp(slow(0.6 + 2 * (tau - 0.6)) + 0.3 * rng.standard_normal(len(tau))))
    assert not region.contains(max_window_diff([runs[0], fast], edges))
    assert math.isnan(max_window_diff(runs, np.array([10.0, 11.0])))  # no window with data


def test_pre_onset_check_holds_for_rescaled_runs_and_fails_when_lr_wd_differs():
    """Real (tiny) runs before any EoS onset: (lr c^2, wd/c^2, ||w0|| c) coincide with the base run to
    the solver's accuracy; doubling wd does not."""
    region = _region("sph_max_rel_spread_before_onset")
    ctx = RunContext(seed=0, tier="smoke")
    base = gd_sharpness_trajectory(TINY, ctx).curves["trajectory"]
    rescaled = [gd_sharpness_trajectory(setting(TINY, c2, TINY.measure_every), ctx).curves["trajectory"]
                for c2 in (0.5, 3.0)]
    tau = base["tau"].to_numpy()
    same, _ = max_rel_spread([base, *rescaled], tau)
    assert region.contains(same) and same < 1e-6
    faster = derive(TINY, optim={"weight_decay": 2 * TINY.optim.weight_decay})  # lr*wd x 2: a different clock
    other = gd_sharpness_trajectory(faster, ctx).curves["trajectory"]
    differ, _ = max_rel_spread([base, other], tau)
    assert not region.contains(differ) and math.isfinite(differ)


def test_window_check_holds_for_rescaled_runs_at_eos_and_fails_when_lr_wd_differs():
    """Real (tiny) runs through the EoS onset, windows of tau 0.25 from the base run's onset: the rescaled
    settings pass the window check, a run with lr*wd x 4 does not (seed 0, deterministic on CPU)."""
    region = _region("clock_log_sph_window_diff")
    ctx = RunContext(seed=0, tier="smoke")
    eos = derive(TINY, optim={"weight_decay": 5e-2}, steps=200)  # onset near step 70, tau_end = 1
    run = gd_sharpness_trajectory(eos, ctx)
    assert math.isfinite(run.scalars["onset_step"])
    base = run.curves["trajectory"]
    edges = window_edges(run.scalars["tau_onset"], eos.lr_wd * eos.steps, 0.25)
    rescaled = [gd_sharpness_trajectory(setting(eos, c2, eos.measure_every), ctx).curves["trajectory"]
                for c2 in (0.5, 3.0)]
    same = max_window_diff([base, *rescaled], edges)
    assert region.contains(same)
    faster = derive(eos, optim={"weight_decay": 4 * eos.optim.weight_decay}, steps=eos.steps // 4,
                    measure_every=1)
    differ = max_window_diff([base, gd_sharpness_trajectory(faster, ctx).curves["trajectory"]], edges)
    assert not region.contains(differ) and math.isfinite(differ)


def test_matched_steps_null_separates_a_tau_clock_and_the_matched_tau_check_does_not():
    """One slow curve S(tau) sampled by runs at lr*wd 2e-3 and 1e-3: at matched tau the window means
    agree; put on the step clock (the wrong one), the slower run lags and the null reads the lag."""
    slow_curve = lambda t: 5.0 - 2.0 * (1 - np.exp(-t))  # noqa: E731  (log S_sph falls ~2 over tau 0..3)
    steps_fast, steps_slow = np.arange(0, 1001, 25), np.arange(0, 2001, 51)
    fast = pd.DataFrame({"step": steps_fast, "tau": steps_fast * 2e-3,
                         "spherical_sharpness": np.exp(slow_curve(steps_fast * 2e-3))})
    slow = pd.DataFrame({"step": steps_slow, "tau": steps_slow * 1e-3,
                         "spherical_sharpness": np.exp(slow_curve(steps_slow * 1e-3))})
    edges = window_edges(0.5, 2.0, 1.0)
    assert max_window_diff([fast, slow], edges) < 0.01
    wrong = max_window_diff([on_step_clock(fast, 2e-3), on_step_clock(slow, 2e-3)], edges)
    assert wrong > 0.1 and not _region("clock_log_sph_window_diff").contains(wrong)
    assert on_step_clock(slow, 2e-3)["tau"].to_numpy() == pytest.approx(steps_slow * 2e-3)


def test_collapse_experiment_reads_symmetry_clock_and_its_gate_on_tiny_runs():
    """End to end on a tiny net: the rescaled settings agree before the onset; the gate is 1 exactly when
    the matched-steps null exceeds the configured margin."""
    eos = derive(TINY, optim={"weight_decay": 5e-2}, steps=120)
    for margin in (1e-6, 1e6):
        cfg = CollapseConfig(base=eos, symmetry_tau=0.3, clock_margin=margin)
        m = eos_intrinsic_time_collapse(cfg, RunContext(seed=0, tier="smoke"))
        s = m.scalars
        assert s["sph_max_rel_spread_before_onset"] < 1e-6
        assert math.isfinite(s["clock_log_sph_window_diff"])
        null = s["null_clock_log_sph_window_diff_matched_steps"]
        assert s["clock_null_separates"] == float(null > margin)
