"""The EoS / normalization claims: smoke tier end to end, gpu tier's config capped on CPU,
and the metric code on synthetic trajectories."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import harness.experiments.eos as eos
import harness.experiments.eos_reduction as eos_reduction
from harness.claim.config import apply_overrides, derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.experiments.eos import GDConfig, trajectory_metrics
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

EOS_CLAIMS = ("gd-edge-of-stability", "eos-scale-invariant", "eos-scale-invariant-relu", "sharpness-reduction",
              "normalization-reduces-sharpness", "eos-intrinsic-time-collapse")


@pytest.fixture(scope="module")
def smoke_summary(tmp_path_factory):
    load_claims()
    store = ResultStore(tmp_path_factory.mktemp("eos") / "results")
    return run_claims([get_claim(c) for c in EOS_CLAIMS], RunOptions(tier="smoke"), store), store


def test_eos_claims_smoke_tier_runs_end_to_end(smoke_summary):
    summary, store = smoke_summary
    assert summary["status"] == "complete"
    for entry in summary["claims"]:
        for check in entry["checks"]:
            assert check["verdict"] != "error", (entry["id"], check)
            assert math.isfinite(check["estimate"]["value"])
        assert entry["measured_scale"]


def test_eos_claims_share_the_bn_wd_run(smoke_summary):
    summary, store = smoke_summary
    by_id = {c["id"]: c for c in summary["claims"]}
    assert by_id["eos-scale-invariant"]["seeds"][0]["key"] != by_id["eos-scale-invariant-relu"]["seeds"][0]["key"]
    # 14 records for 1 seed: plain GD; BN+WD (shared by four claims); its wd = 0 twin (shared by two); ReLU;
    # no-BN; the lr*wd ladder's x 1/4, x 1/2 and x 2 rungs (x 1/2 is also the collapse's clock pair);
    # c^2 = 0.5 and 3; the ladder, reduction, arms and collapse summaries.
    assert len(list((store.root / "cache").glob("*.json"))) == 14


def test_eos_trajectory_records_consistent_sharpness(smoke_summary):
    summary, store = smoke_summary
    entry = next(c for c in summary["claims"] if c["id"] == "eos-scale-invariant")
    curves = store.load_seed(entry["seeds"][0]["key"])["measurement"]["curves"]
    curve = pd.concat([pd.DataFrame(curves[f"r{i}.trajectory"]) for i in range(3)])  # one lr, three wd
    lr = entry["config"]["base"]["optim"]["lr"]
    np.testing.assert_allclose(curve["lr_lambda_max"], lr * curve["lambda_max"], rtol=1e-12)
    np.testing.assert_allclose(curve["spherical_sharpness"], curve["sq_norm"] * curve["lambda_max"], rtol=1e-12)
    assert (curve["lambda_residual"] <= 1e-2 * curve["lambda_max"].abs()).all()


@pytest.mark.parametrize("claim_id", EOS_CLAIMS)
def test_eos_gpu_tier_config_runs_capped_on_cpu(claim_id, fake_cifar10, tmp_path):
    """The gpu tier's own config (model, data format, dtype), on a tiny fake CIFAR-10, 2 steps."""
    load_claims()
    claim = get_claim(claim_id)
    prefix = "base." if "base" in claim.tiers["gpu"].config.__dataclass_fields__ else ""
    options = RunOptions(tier="gpu", seeds=1, max_steps=2, device="cpu",
                         overrides={f"{prefix}data_root": str(fake_cifar10), f"{prefix}n_train": "64",
                                    f"{prefix}n_test": "20"})
    summary = run_claims([claim], options, ResultStore(tmp_path))
    entry = summary["claims"][0]
    assert all(s["error"] is None for s in entry["seeds"]), entry["seeds"]
    assert entry["measured_scale"]


def _table(products, sph, lr=0.1, every=10):
    n = len(products)
    sph = np.asarray(sph, dtype=float)
    lam = np.asarray(products, dtype=float) / lr
    return pd.DataFrame({"step": np.arange(n) * every, "lr_lambda_max": products, "lambda_max": lam,
                         "spherical_sharpness": sph, "sq_norm": sph / lam, "loss": np.linspace(1, 0.1, n),
                         "test_acc": 0.9, "lambda_residual": 1e-6})


def test_trajectory_metrics_find_onset_band_and_reduction():
    products = [0.5, 1.0, 1.5, 1.9, 2.0, 2.1, 2.0, 2.6, 2.05, 2.0]
    sph = [100, 120, 150, 200, 180, 150, 125, 110, 100, 90]
    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=0.1, weight_decay=1e-3), steps=90, tail_fraction=0.3)
    s, se = trajectory_metrics(_table(products, sph), cfg, angles=[0.01] * 90)
    assert s["onset_step"] == 30 and s["onset_fraction"] == pytest.approx(30 / 90)
    assert s["tau_onset"] == pytest.approx(30 * 1e-4) and s["tau_after_onset"] == pytest.approx(60 * 1e-4)
    assert s["in_band_fraction"] == pytest.approx(6 / 7)   # 2.6 is outside [1.8, 2.3]
    assert s["sph_peak"] == 200 and s["sph_final_over_peak"] == pytest.approx(100 / 200)
    assert s["sph_log_slope_per_tau"] < 0 and se["sph_log_slope_per_tau"] > 0
    assert s["lr_lambda_max_initial"] == 0.5
    assert s["rms_angle_over_sqrt_2lr_wd"] == pytest.approx(0.01 / math.sqrt(2 * 0.1 * 1e-3))


def test_trajectory_metrics_post_onset_peak_ignores_pre_onset_values():
    """A large step-0 S_sph (ordinary early training) is neither the peak nor the slope's origin."""
    products = [0.5, 1.0, 1.9, 2.0, 2.0, 2.0, 2.0, 2.0]
    sph = [1000, 400, 100, 100, 100, 100, 100, 100]  # flat after onset: no reduction at all
    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=0.1, weight_decay=1e-3), steps=70)
    s, _ = trajectory_metrics(_table(products, sph), cfg, angles=[])
    assert s["sph_peak"] == 100 and s["sph_final_over_peak"] == pytest.approx(1.0)
    assert s["sph_log_slope_per_tau"] == pytest.approx(0.0, abs=1e-9)
    load_claims()
    reduction = get_claim("sharpness-reduction")
    for check in reduction.checks[1:]:  # slope < 0 and final/peak <= 0.5 must both fail here
        assert not check.expect.region("cpu").contains(s[check.metric]), check.metric


def test_trajectory_metrics_slope_is_per_unit_tau_from_onset():
    lr, wd, every = 0.1, 2e-2, 25
    steps = np.arange(40) * every
    tau = lr * wd * steps
    products = np.where(steps >= 500, 2.0, 1.0)
    onset_tau = lr * wd * 500
    sph = np.where(steps >= 500, 300 * np.exp(-0.5 * (tau - onset_tau)), 300 * (1 + tau))
    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=lr, weight_decay=wd), steps=int(steps[-1]))
    s, _ = trajectory_metrics(_table(products, sph, lr=lr, every=every), cfg, angles=[])
    assert s["sph_log_slope_per_tau"] == pytest.approx(-0.5, rel=1e-6)
    assert s["sph_peak"] == pytest.approx(300.0)


def test_rms_angle_is_one_at_the_stationary_norm_and_reads_the_tail_only():
    """The RMS angular update per step over the tail, over sqrt(2 lr wd): 1 at the stationary norm."""
    lr, wd = 0.1, 2e-2
    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=lr, weight_decay=wd), steps=90, tail_fraction=0.5)
    t = _table([2.0] * 10, [100.0] * 10, lr=lr)
    angle = math.sqrt(2 * lr * wd)
    s, _ = trajectory_metrics(t, cfg, angles=[10 * angle] * 45 + [angle] * 45)  # early steps never count
    assert s["rms_angle_over_sqrt_2lr_wd"] == pytest.approx(1.0, rel=1e-12)
    s, _ = trajectory_metrics(t, cfg, angles=[angle] * 45 + [2 * angle] * 45)
    assert s["rms_angle_over_sqrt_2lr_wd"] == pytest.approx(2.0, rel=1e-12)
    assert "norm4_over_equilibrium" not in s  # dropped: sampled every k steps it aliased the oscillation


def test_edge_of_stability_check_fails_a_run_that_starts_at_the_edge():
    products = [2.0, 2.05, 2.0, 2.1, 2.0, 2.0]
    s, _ = trajectory_metrics(_table(products, [50] * 6), GDConfig(steps=50), angles=[])
    load_claims()
    claim = get_claim("gd-edge-of-stability")
    sharpening = next(c for c in claim.checks if c.metric == "lr_lambda_max_initial")
    assert not sharpening.expect.region("cpu").contains(s["lr_lambda_max_initial"])
    assert s["onset_fraction"] == 0.0 and s["in_band_fraction"] == 1.0  # the old checks alone passed it


def test_trajectory_metrics_without_onset_fail_rather_than_error():
    products = [0.2, 0.3, 0.4, 0.5, 0.5, 0.5]
    s, _ = trajectory_metrics(_table(products, [50] * 6), GDConfig(steps=50), angles=[])
    assert s["onset_fraction"] == 1.0 and s["in_band_fraction"] == 0.0
    assert math.isfinite(s["sph_log_slope_per_tau"]) and math.isnan(s["onset_step"])


def test_parallel_seeds_give_the_same_numbers_as_serial(tmp_path):
    """--jobs 2 runs seeds in spawned processes; on CPU the results equal a serial run's."""
    load_claims()
    claim = get_claim("gd-edge-of-stability")
    serial = run_claims([claim], RunOptions(tier="smoke", seeds=2), ResultStore(tmp_path / "a"))
    parallel = run_claims([claim], RunOptions(tier="smoke", seeds=2, jobs=2), ResultStore(tmp_path / "b"))
    a, b = serial["claims"][0], parallel["claims"][0]
    assert [s["key"] for s in a["seeds"]] == [s["key"] for s in b["seeds"]]
    assert not any(s["cached"] for s in a["seeds"])
    assert not any(s["cached"] for s in b["seeds"])  # computed by this run's workers, not reused
    assert a["checks"][0]["estimate"]["per_seed"] == b["checks"][0]["estimate"]["per_seed"]


class _Built(Exception):
    """Raised by the patched training loop once it has the optimizer the experiment built."""


@pytest.mark.parametrize("claim_id,key,factor,wd_factor", [
    ("eos-scale-invariant", "base.optim.lr", 1.0, 0.25),  # its first run is the lr*wd x 1/4 rung
    ("gd-edge-of-stability", "optim.lr", 1.0, 1.0),
    ("eos-scale-invariant-relu", "optim.lr", 1.0, 1.0), ("sharpness-reduction", "base.optim.lr", 1.0, 1.0),
    ("normalization-reduces-sharpness", "base.optim.lr", 1.0, 1.0),
    ("eos-intrinsic-time-collapse", "base.optim.lr", 0.5, 2.0),  # its first run is the c^2 = 0.5 setting
])
def test_set_optim_lr_reaches_the_built_sgd(claim_id, key, factor, wd_factor, monkeypatch):
    """--set optim.lr=0.3 (base.optim.lr for the composites) is the lr torch.optim.SGD is built with."""
    built = []

    def fake_train(*args, optimizer, **kwargs):
        built.append(optimizer)
        raise _Built

    monkeypatch.setattr(eos, "train_full_batch_gd", fake_train)
    load_claims()
    claim = get_claim(claim_id)
    cfg = apply_overrides(claim.tiers["smoke"].config, {key: "0.3"})
    gd = cfg.base if key.startswith("base.") else cfg
    assert gd.optim.lr == 0.3
    with pytest.raises(_Built):
        claim.experiment(cfg, RunContext(seed=0, tier="smoke"))
    (opt,) = built
    assert type(opt) is torch.optim.SGD
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * factor, rel=1e-15)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(gd.optim.weight_decay * wd_factor, rel=1e-15)


def test_whole_cycle_mean_averages_whole_slow_cycles_despite_the_period_two_alternation():
    """A slow sine (period 12 samples) plus a period-2 alternation: the mean over whole cycles is the
    sine's centre; a plain mean over a window ending mid-cycle is biased."""
    from harness.experiments.eos_ladder import whole_cycle_mean

    i = np.arange(53)
    x = 2.1 + 0.3 * np.sin(2 * np.pi * i / 12) + 0.05 * (-1.0) ** i
    mean, cycles = whole_cycle_mean(x)
    assert cycles >= 3
    assert mean == pytest.approx(2.1, abs=0.01)
    assert abs(np.mean(x) - 2.1) > 0.015  # the plain mean over 53 samples is not
    flat, none = whole_cycle_mean(np.array([2.0, 2.2, 2.1]))
    assert none == 0 and flat == pytest.approx(2.1)


def test_ladder_rungs_share_tau_end_and_measurement_spacing():
    from harness.experiments.eos_ladder import rung

    base = GDConfig(optim=OptimizerSpec("sgd", lr=0.1, weight_decay=2e-2), steps=2000, measure_every=25)
    for f, steps, every in ((0.25, 4000, 101), (0.5, 2000, 51), (1.0, 1000, 25)):
        r = rung(base, f, tau_end=2.0)
        assert r.optim.lr == 0.1 and r.lr_wd == pytest.approx(2e-3 * f, rel=1e-12)
        assert (r.steps, r.measure_every) == (steps, every)
        assert r.lr_wd * r.steps == pytest.approx(2.0)
    assert rung(base, 1.0) is base


def test_ladder_truncated_base_rung_equals_the_shorter_run():
    """The factor-1 rung cut to tau_end reads the same trajectory a run of that many steps records."""
    from harness.experiments.eos_ladder import truncated_run

    base = GDConfig(activation="tanh", optim=OptimizerSpec("sgd", lr=0.1, weight_decay=2e-2), steps=40,
                    measure_every=5, n_train=64, n_test=20, widths=(8,))
    ctx = RunContext(seed=3, tier="smoke")
    table, scalars, scale = truncated_run(base, 20, ctx)
    short = eos.gd_sharpness_trajectory(derive(base, steps=20), ctx).curves["trajectory"]
    np.testing.assert_allclose(table["lambda_max"], short["lambda_max"], rtol=1e-8)
    np.testing.assert_allclose(table["sq_norm"], short["sq_norm"], rtol=1e-12)
    assert scale["steps"] == 20 and scalars["tau_end"] == pytest.approx(20 * 2e-3)


def test_ladder_excess_slope_reads_the_growth_per_doubling(monkeypatch):
    """Rungs whose tail medians are 2 + 0.1 * log2(lr*wd / 5e-4) give a slope of 0.1 per doubling."""
    import harness.experiments.eos_ladder as ladder

    def fake(cfg, ctx):
        level = 2.0 + 0.1 * math.log2(cfg.lr_wd / 5e-4)
        n = 40
        t = _table([level + 0.01 * (-1) ** k for k in range(n)], [100.0] * n, every=cfg.measure_every)
        s, _ = trajectory_metrics(t, cfg, [])
        return eos.Measurement(scalars=s, curves={"trajectory": t}, scale={"steps": cfg.steps, "lr_wd": cfg.lr_wd,
                                                                           "tau_end": s["tau_end"]})

    monkeypatch.setattr(ladder, "gd_sharpness_trajectory", fake)
    base = GDConfig(optim=OptimizerSpec("sgd", lr=0.1, weight_decay=2e-2), steps=2000, measure_every=25)
    ctx = RunContext(seed=0, tier="smoke")
    m = ladder.eos_lr_wd_ladder(ladder.LadderConfig(base=base), ctx)
    assert m.scalars["excess_slope_per_doubling"] == pytest.approx(0.1, rel=1e-9)
    assert m.scalars["smallest.lr_lambda_max_tail_median"] == pytest.approx(2.0, abs=0.011)


def test_window_fall_is_robust_to_spikes_and_divides_by_the_twins_fall():
    """S_sph = 100 exp(-0.5 tau) with one spike x10 in the last window: the window-mean fall reads the
    trend (exp(-0.5 x 2) between window centres 1 and 3 here, up to the spike's 1/n in log), final / peak
    is thrown by the spike; a twin that rises x1.5 over the same steps divides the fall by 1.5."""
    lr_wd, every = 2e-3, 25
    step = np.arange(0, 2001, every, dtype=float)
    tau = step * lr_wd
    sph = 100 * np.exp(-0.5 * tau)
    sph[-3] *= 10  # a catapult spike
    run = pd.DataFrame({"step": step, "spherical_sharpness": sph})
    twin_steps = np.append(np.arange(0, 2001, 199, dtype=float), 2000.0)  # a run also measures its last step
    twin = pd.DataFrame({"step": twin_steps, "spherical_sharpness": 50 * 1.5 ** (twin_steps / 2000)})
    s = eos_reduction.window_fall_metrics(run, twin, onset_step=500.0, steps=2000, lr_wd=lr_wd)
    n_last = int(np.sum(step >= 1500))
    expected = np.exp(-0.5 * (np.mean(tau[step >= 1500]) - np.mean(tau[(step >= 500) & (step < 1000)]))
                      + np.log(10) / n_last)
    assert s["sph_window_fall"] == pytest.approx(expected, rel=1e-9)
    assert s["null_wd0_sph_window_fall"] == pytest.approx(
        1.5 ** ((np.mean(step[step >= 1500]) - np.mean(step[(step >= 500) & (step < 1000)])) / 2000), rel=1e-3)
    assert s["sph_window_fall_over_wd0"] == pytest.approx(s["sph_window_fall"] / s["null_wd0_sph_window_fall"])
    assert s["trend_fall"] < 1


@pytest.mark.parametrize("fields,stop,dtype", [
    ({}, "residual", None),  # the defaults: today's solve (the model's dtype, residual stop)
    ({"lanczos_stop": "value", "curvature_dtype": "float32"}, "value", torch.float32),
])
def test_gd_config_curvature_fields_reach_the_training_loop(fields, stop, dtype, monkeypatch):
    """GDConfig.lanczos_stop / curvature_dtype are what train_full_batch_gd is called with."""
    seen = []

    def fake_train(*args, lanczos_stop, curvature_dtype, **kwargs):
        seen.append((lanczos_stop, curvature_dtype))
        raise _Built

    monkeypatch.setattr(eos, "train_full_batch_gd", fake_train)
    cfg = GDConfig(steps=2, n_train=20, n_test=10, **fields)
    with pytest.raises(_Built):
        eos.gd_sharpness_trajectory(cfg, RunContext(seed=0, tier="smoke"))
    assert seen == [(stop, dtype)]


@pytest.mark.parametrize("field,value", [("lanczos_stop", "values"), ("curvature_dtype", "float16")])
def test_gd_config_curvature_fields_refuse_unknown_values(field, value):
    with pytest.raises(ValueError, match=field):
        GDConfig(**{field: value})
