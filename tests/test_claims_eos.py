"""The EoS / normalization claims: smoke tier end to end, gpu tier's config capped on CPU,
and the metric code on synthetic trajectories."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

import harness.experiments.eos as eos
from harness.config import apply_overrides
from harness.experiments.eos import GDConfig, trajectory_metrics
from harness.measurement import RunContext
from harness.optim import OptimizerSpec
from harness.registry import get_claim, load_claims
from harness.runner import RunOptions, run_claims
from harness.store import ResultStore

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
    # 11 records for 1 seed: plain GD; BN+WD (shared by four claims); its wd = 0 twin (shared by two); ReLU;
    # no-BN; c^2 = 0.5 and 3; the lr*wd x 2 null; the reduction, arms and collapse summaries.
    assert len(list((store.root / "cache").glob("*.json"))) == 11


def test_eos_trajectory_records_consistent_sharpness(smoke_summary):
    summary, store = smoke_summary
    entry = next(c for c in summary["claims"] if c["id"] == "eos-scale-invariant")
    curve = pd.DataFrame(store.load_seed(entry["seeds"][0]["key"])["measurement"]["curves"]["trajectory"])
    lr = entry["config"]["optim"]["lr"]
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


def test_norm_equilibrium_is_one_at_the_stationary_norm():
    """||w||^4 = lr E||grad L(theta)||^2 / (wd (2 - lr wd)) at a stationary norm, and not before."""
    lr, wd = 0.1, 2e-2
    t = _table([2.0] * 10, [100.0] * 10, lr=lr)
    g_theta_sq = np.linspace(1.0, 3.0, 10)
    t["sq_norm"] = math.sqrt(lr * g_theta_sq.mean() / (wd * (2 - lr * wd)))
    t["grad_sq_norm"] = g_theta_sq / t["sq_norm"]  # ||grad L(w)||^2 = ||grad L(theta)||^2 / ||w||^2
    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=lr, weight_decay=wd), steps=90, tail_fraction=1.0)
    s, _ = trajectory_metrics(t, cfg, angles=[])
    assert s["norm4_over_equilibrium"] == pytest.approx(1.0, rel=1e-12)
    t["sq_norm"] *= 2  # the same direction's gradients at twice the equilibrium ||w||^2: 4x on ||w||^4
    t["grad_sq_norm"] = g_theta_sq / t["sq_norm"]
    s, _ = trajectory_metrics(t, cfg, angles=[])
    assert s["norm4_over_equilibrium"] == pytest.approx(4.0, rel=1e-12)


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


@pytest.mark.parametrize("claim_id,key,factor", [
    ("eos-scale-invariant", "optim.lr", 1.0), ("gd-edge-of-stability", "optim.lr", 1.0),
    ("eos-scale-invariant-relu", "optim.lr", 1.0), ("sharpness-reduction", "base.optim.lr", 1.0),
    ("normalization-reduces-sharpness", "base.optim.lr", 1.0),
    ("eos-intrinsic-time-collapse", "base.optim.lr", 0.5),  # its first run is the c^2 = 0.5 setting
])
def test_set_optim_lr_reaches_the_built_sgd(claim_id, key, factor, monkeypatch):
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
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(gd.optim.weight_decay / factor, rel=1e-15)
