"""momentum-edge-of-stability: smoke tier end to end, gpu tier's config capped on CPU, the arms composer
and the threshold-relative metrics of the trajectory experiment."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.experiments.gd_arms import GDArmsConfig, gd_arms
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

TINY = GDConfig(model="plain_mlp", activation="tanh", loss="mse", optim=OptimizerSpec("sgd", lr=0.1),
                steps=20, measure_every=5, n_train=60, n_test=30)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    load_claims()
    store = ResultStore(tmp_path_factory.mktemp("momentum") / "results")
    summary = run_claims([get_claim("momentum-edge-of-stability")], RunOptions(tier="smoke"), store)
    return summary["claims"][0], store


def test_momentum_claim_smoke_tier_runs_end_to_end(smoke):
    entry, _ = smoke
    assert len(entry["checks"]) == 4 and len(entry["regime"]) == 2
    for check in entry["checks"] + entry["regime"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])


def test_momentum_claim_arms_sit_at_the_gd_claims_threshold(smoke):
    """Each arm's lr puts its own threshold at gd-edge-of-stability's 2/lr = 10; the curves are per arm."""
    entry, store = smoke
    record = store.load_seed(entry["seeds"][0]["key"])["measurement"]
    for arm, beta_factor in (("heavy_ball", 3.8), ("nesterov", 3.8 / 2.8)):
        assert record["scalars"][f"{arm}.stability_threshold"] == pytest.approx(10.0, rel=1e-12)
        assert record["scalars"][f"{arm}.two_over_lr"] == pytest.approx(10.0 / beta_factor * 2, rel=1e-12)
        curve = pd.DataFrame(record["curves"][f"{arm}.trajectory"])
        assert (curve["grad_sq_norm"] > 0).all()


def test_momentum_claim_gpu_tier_config_runs_capped_on_cpu(fake_cifar10, tmp_path):
    load_claims()
    claim = get_claim("momentum-edge-of-stability")
    arms = dict(claim.tiers["gpu"].config.arms)
    # T = 2/0.05 = 40 for both arms: lr = 3.8/40 (heavy ball), (3.8/2.8)/40 (Nesterov).
    assert arms["heavy_ball"].optim.lr == pytest.approx(3.8 / 40)
    assert arms["nesterov"].optim.lr == pytest.approx(3.8 / 2.8 / 40)
    assert {derive(a, optim={"lr": 1.0, "momentum": 0.0, "nesterov": False}) for a in arms.values()} == {
        derive(arms["heavy_ball"], optim={"lr": 1.0, "momentum": 0.0})}  # they differ only in the optimizer
    # --set cannot reach inside arms: the capped run uses a copy of the gpu config on the fake data set,
    # one arm (a 1.6M-parameter float32 net: each Lanczos call costs seconds on a CPU).
    nesterov = derive(arms["nesterov"], data_root=str(fake_cifar10), n_train=64, n_test=20)
    m = gd_arms(GDArmsConfig(arms=(("nesterov", nesterov),)), RunContext(seed=0, tier="gpu", max_steps=1))
    assert m.scale["nesterov"]["steps"] == 1 and m.scale["nesterov"]["data"] == "cifar10"
    assert math.isfinite(m.scalars["nesterov.lambda_over_threshold_initial"])


def test_gd_arms_prefixes_each_arms_outputs_and_matches_the_single_runs():
    cfg = GDArmsConfig(arms=(("gd", TINY), ("hb", derive(TINY, optim={"momentum": 0.5}))))
    m = gd_arms(cfg, RunContext(seed=0, tier="smoke"))
    single = gd_sharpness_trajectory(TINY, RunContext(seed=0, tier="smoke"))
    assert m.scalars["gd.lambda_max_final"] == single.scalars["lambda_max_final"]
    assert m.scalars["hb.stability_threshold"] == pytest.approx(3.0 / 0.1)
    assert set(m.curves) == {"gd.trajectory", "hb.trajectory"} and set(m.scale) == {"gd", "hb"}


@pytest.mark.parametrize("arms,match", [
    ((), "at least one"),
    ((("Heavy-Ball", TINY),), "lower-case identifiers"),
    ((("a", TINY), ("a", TINY)), "unique"),
    ((("a", "not a config"),), "must be a GDConfig"),
])
def test_gd_arms_config_rejects_bad_arms(arms, match):
    with pytest.raises(ConfigError, match=match):
        GDArmsConfig(arms=arms)


def test_threshold_metrics_for_plain_gd_equal_the_lr_lambda_metrics():
    """For GD T = 2/lr, so lambda_max / T = lr * lambda_max / 2 row by row."""
    m = gd_sharpness_trajectory(TINY, RunContext(seed=1, tier="smoke"))
    s, table = m.scalars, m.curves["trajectory"]
    assert s["stability_threshold"] == 2 / TINY.optim.lr
    assert s["lambda_over_threshold_tail_median"] == pytest.approx(s["lr_lambda_max_tail_median"] / 2, rel=1e-12)
    assert s["lambda_over_threshold_initial"] == pytest.approx(table["lr_lambda_max"].iloc[0] / 2, rel=1e-12)
    assert s["threshold_onset_fraction"] == s["onset_fraction"]
    assert s["threshold_in_band_fraction"] == s["in_band_fraction"]


def test_threshold_metrics_find_onset_and_band_relative_to_the_momentum_threshold(monkeypatch):
    """A planted trajectory: heavy ball's T = (2 + 2b)/lr; onset and band read against T, not 2/lr."""
    import harness.experiments.eos as eos
    from harness.train import GDResult

    cfg = GDConfig(optim=OptimizerSpec("sgd", lr=0.1, momentum=0.9), steps=90, measure_every=10)
    T = 3.8 / 0.1
    rel = np.array([0.3, 0.5, 0.7, 0.95, 1.0, 1.1, 1.2, 1.05, 1.0, 0.98])  # lambda_max / T
    table = pd.DataFrame({"step": np.arange(10) * 10, "lambda_max": rel * T, "lr_lambda_max": rel * T * 0.1,
                          "spherical_sharpness": rel * T * 4, "sq_norm": 4.0, "loss": np.linspace(1, 0.1, 10),
                          "test_acc": 0.9, "lambda_residual": 1e-6, "grad_sq_norm": 1.0})
    monkeypatch.setattr(eos, "_run_arm", lambda c, ctx: (GDResult(table, [0.01] * 90, None, 90), {}))
    s = gd_sharpness_trajectory(cfg, RunContext(seed=0, tier="smoke")).scalars
    assert s["stability_threshold"] == pytest.approx(T)
    assert s["lambda_over_threshold_initial"] == pytest.approx(0.3)
    assert s["threshold_onset_step"] == 30 and s["threshold_onset_fraction"] == pytest.approx(30 / 90)
    assert s["threshold_in_band_fraction"] == pytest.approx(6 / 7)  # 1.2 is outside [0.9, 1.15]
    assert s["lambda_over_threshold_tail_median"] == pytest.approx(1.0)  # median of the last 3 rows
    assert s["lambda_over_threshold_post_onset_median"] == pytest.approx(1.0)  # rows 3..9: 0.95 .. 1.2
    # the null reads the same median against plain GD's 2/lr: x (T lr / 2) = 1.9 for heavy ball at 0.9
    assert s["null_lambda_over_gd_threshold_post_onset_median"] == pytest.approx(1.9)
    # Read against plain GD's 2/lr (lr * lambda_max = 3.8 rel): onset at row 1, one in-band row of 9.
    assert s["onset_fraction"] == pytest.approx(10 / 90) and s["in_band_fraction"] == pytest.approx(1 / 9)


def test_momentum_arms_build_sgd_with_their_lr_momentum_and_nesterov(monkeypatch):
    """Each arm's optim (derived from the net's with derive) is what torch.optim.SGD is built with."""
    import torch

    import harness.experiments.eos as eos

    built = []

    def fake_train(*args, optimizer, steps, **kwargs):
        built.append(optimizer)
        raise RuntimeError("built")

    monkeypatch.setattr(eos, "train_full_batch_gd", fake_train)
    load_claims()
    arms = dict(get_claim("momentum-edge-of-stability").tiers["smoke"].config.arms)
    for name, nesterov in (("heavy_ball", False), ("nesterov", True)):
        arm = derive(arms[name], {"optim.lr": 0.3})
        with pytest.raises(RuntimeError, match="built"):
            gd_sharpness_trajectory(arm, RunContext(seed=0, tier="smoke"))
        group = built[-1].param_groups[0]
        assert type(built[-1]) is torch.optim.SGD
        assert (group["lr"], group["momentum"], group["nesterov"]) == (0.3, 0.9, nesterov)
