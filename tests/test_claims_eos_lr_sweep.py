"""eos-sharpness-across-step-sizes: the sweep's slope and null on synthetic trajectories, its config checks,
and the smoke tier end to end."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig
from harness.experiments.eos_lr_sweep import LrSweepConfig, eos_lr_sweep, log_log_slope, post_onset_median
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

NET = GDConfig(model="plain_mlp", activation="tanh", loss="mse", optim=OptimizerSpec("sgd", lr=0.2))


def _table(lr: float, lam0: float, n: int = 20) -> pd.DataFrame:
    """lambda_max rising linearly from lam0 to 2/lr by the middle row, then at 2/lr exactly."""
    lam = np.minimum(np.linspace(lam0, 2 * (2 / lr) - lam0, n), 2 / lr)
    return pd.DataFrame({"step": np.arange(n) * 5, "lambda_max": lam, "lr_lambda_max": lr * lam})


def test_lr_sweep_post_onset_median_reads_the_plateau():
    table = _table(0.3, lam0=1.0)
    median, covered = post_onset_median(table, NET)
    assert median == pytest.approx(2 / 0.3, rel=1e-12)
    assert covered == 1.0


def test_lr_sweep_post_onset_median_reads_only_its_window():
    """Onset at step 50 (lr 0.2): a window of 20 units of lr * step is steps 50-150; what comes after
    (lambda_max 3x higher) must not enter the median, and a run that stops inside it says how much it held."""
    step = np.arange(0, 400, 10)
    lam = np.where(step < 50, 1.0, np.where(step <= 150, 2 / 0.2, 3 * 2 / 0.2))
    table = pd.DataFrame({"step": step, "lambda_max": lam, "lr_lambda_max": 0.2 * lam})
    assert post_onset_median(table, NET, window=20.0) == (pytest.approx(10.0, rel=1e-12), 1.0)
    assert post_onset_median(table, NET)[0] == pytest.approx(30.0, rel=1e-12)   # to the end: the later level
    short = table[table["step"] <= 110]                           # 60 of the window's 100 steps
    assert post_onset_median(short, NET, window=20.0)[1] == pytest.approx(0.6, rel=1e-12)
    never = table.assign(lr_lambda_max=1.0)
    assert post_onset_median(never, NET, window=20.0)[1] == 0.0


def test_lr_sweep_claim_lr_02_arm_is_gd_edge_of_stability_run():
    """The cache shares a seed between the two claims only if the arm's config equals gd-edge-of-stability's
    (same experiment, same config, same seed numbers): at the cpu and smoke tiers."""
    load_claims()
    sweep, gd = get_claim("eos-sharpness-across-step-sizes"), get_claim("gd-edge-of-stability")
    assert gd.experiment.experiment_name == "gd_sharpness_trajectory"
    for tier in ("cpu", "smoke"):
        assert sweep.tiers[tier].config.lrs[0] == gd.tiers[tier].config.optim.lr
        assert sweep.tiers[tier].config.arm(0) == gd.tiers[tier].config
    cpu, gd_cpu = sweep.tiers["cpu"], gd.tiers["cpu"]
    assert (cpu.seeds, cpu.max_seeds) == (gd_cpu.seeds, gd_cpu.max_seeds)


def test_lr_sweep_slope_is_minus_one_at_the_edge_and_zero_for_the_null():
    lrs = [0.2, 0.3, 0.45]
    settled = [post_onset_median(_table(lr, lam0=2.5), NET)[0] for lr in lrs]
    assert log_log_slope(lrs, settled) == pytest.approx(-1.0, abs=1e-12)
    assert log_log_slope(lrs, [2.5, 2.5, 2.5]) == pytest.approx(0.0, abs=1e-12)


def test_lr_sweep_experiment_uses_each_arm_and_its_null(monkeypatch):
    """Through a fake cached_run: each arm's lr, steps and cadence reach its run; slope -1, null 0."""
    cfg = LrSweepConfig(base=NET, lrs=(0.2, 0.4), steps=(50, 30), measure_every=(5, 3))
    seen = []

    def fake_run(_exp, arm):
        seen.append((arm.optim.lr, arm.steps, arm.measure_every))
        table = _table(arm.optim.lr, lam0=2.5)
        return Measurement(scalars={"onset_fraction": 0.5, "max_lambda_residual_rel": 1e-4},
                           curves={"trajectory": table},
                           scale={"steps": arm.steps, "model": "m", "activation": "a", "trainable_params": 1,
                                  "data": "d", "n_train": 1, "dtype": "float64"})

    m = eos_lr_sweep(cfg, RunContext(seed=0, tier="cpu", cached_run=fake_run))
    assert seen == [(0.2, 50, 5), (0.4, 30, 3)]
    assert m.scalars["slope_log_lambda_on_log_lr"] == pytest.approx(-1.0, abs=1e-12)
    assert m.scalars["null_slope_initial_lambda_on_log_lr"] == pytest.approx(0.0, abs=1e-12)
    assert m.scalars["a1.lr_lambda_max_post_onset_median"] == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("kw, match", [({"lrs": (0.3, 0.2), "steps": (1, 1), "measure_every": (1, 1)}, "increasing"),
                                       ({"lrs": (0.2, 0.3), "steps": (1,), "measure_every": (1, 1)}, "one entry"),
                                       ({"base": GDConfig(optim=OptimizerSpec("sgd", lr=0.1, weight_decay=1e-3))},
                                        "plain GD"), ({"window": 0.0}, "window")])
def test_lr_sweep_config_refuses_bad_input(kw, match):
    with pytest.raises(ConfigError, match=match):
        LrSweepConfig(**kw)


def test_lr_sweep_claim_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    store = ResultStore(tmp_path / "results")
    entry = run_claims([get_claim("eos-sharpness-across-step-sizes")], RunOptions(tier="smoke"), store)["claims"][0]
    for check in entry["checks"] + entry["regime"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])
    record = store.load_seed(entry["seeds"][0]["key"])["measurement"]
    assert [record["scalars"][f"a{i}.lr"] for i in range(3)] == [0.2, 0.3, 0.45]
