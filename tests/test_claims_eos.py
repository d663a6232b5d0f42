"""The four EoS / normalization claims: smoke tier end to end, gpu tier's config capped on CPU,
and the metric code on synthetic trajectories."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.experiments.eos import GDConfig, trajectory_metrics
from harness.registry import get_claim, load_claims
from harness.runner import RunOptions, run_claims
from harness.store import ResultStore

EOS_CLAIMS = ("gd-edge-of-stability", "eos-scale-invariant", "sharpness-reduction",
              "normalization-reduces-sharpness")


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
    eos_keys = [s["key"] for s in by_id["eos-scale-invariant"]["seeds"]]
    red = by_id["sharpness-reduction"]["seeds"]
    assert [s["key"] for s in red] == eos_keys  # one stored record serves both claims
    # 5 records for 1 seed: plain GD, BN+WD (shared by three claims), BN wd=0, no-BN, the arms summary
    assert len(list((store.root / "cache").glob("*.json"))) == 5


def test_eos_trajectory_records_consistent_sharpness(smoke_summary):
    summary, store = smoke_summary
    entry = next(c for c in summary["claims"] if c["id"] == "eos-scale-invariant")
    curve = pd.DataFrame(store.load_seed(entry["seeds"][0]["key"])["measurement"]["curves"]["trajectory"])
    lr = entry["config"]["lr"]
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
    assert entry["measured_scale"]["steps" if not prefix else "bn_wd"]


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
    cfg = GDConfig(lr=0.1, weight_decay=1e-3, steps=90, tail_fraction=0.3)
    s, se = trajectory_metrics(_table(products, sph), cfg, angles=[0.01] * 90)
    assert s["onset_step"] == 30 and s["onset_fraction"] == pytest.approx(30 / 90)
    assert s["in_band_fraction"] == pytest.approx(6 / 7)   # 2.6 is outside [1.8, 2.3]
    assert s["sph_peak"] == 200 and s["sph_final_over_peak"] == pytest.approx(100 / 200)
    assert s["sph_log_slope_per_1k"] < 0 and se["sph_log_slope_per_1k"] > 0
    assert s["rms_angle_over_sqrt_2lr_wd"] == pytest.approx(0.01 / math.sqrt(2 * 0.1 * 1e-3))


def test_trajectory_metrics_without_onset_fail_rather_than_error():
    products = [0.2, 0.3, 0.4, 0.5, 0.5, 0.5]
    s, _ = trajectory_metrics(_table(products, [50] * 6), GDConfig(steps=50), angles=[])
    assert s["onset_fraction"] == 1.0 and s["in_band_fraction"] == 0.0
    assert math.isfinite(s["sph_log_slope_per_1k"]) and math.isnan(s["onset_step"])


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
