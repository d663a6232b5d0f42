"""eos-entry-time: the entry-time experiment's arms and slopes on synthetic trajectories, its config checks,
and the smoke tier end to end."""
import math

import numpy as np
import pandas as pd
import pytest

from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig
from harness.experiments.eos_entry import EntryConfig, eos_entry_time, interpolated_onset_tau
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

NET = GDConfig(activation="tanh", loss="ce", optim=OptimizerSpec("sgd", lr=0.1, weight_decay=4e-2))


def test_entry_config_arm_scales_init_and_runs_to_log_c_plus_margin():
    cfg = EntryConfig(base=NET, scales=(1.0, 4.0), tau_margin=1.0)
    arm = cfg.arm(4.0)
    assert arm.init_scale == 4.0
    assert arm.steps == round((math.log(4.0) + 1.0) / 4e-3)
    assert arm.optim == NET.optim


def _norm_decay_run(arm: GDConfig, sph: float) -> Measurement:
    """The derivation's world: ||w||^2 = c^2 w0^2 exp(-2 tau) with S_sph fixed; onset where lr S_sph/||w||^2 = 1.8."""
    tau = np.arange(0, arm.steps + 1, arm.measure_every) * arm.lr_wd
    sq_norm = 100.0 * arm.init_scale**2 * np.exp(-2 * tau)
    lr_lam = arm.optim.lr * sph / sq_norm
    table = pd.DataFrame({"step": tau / arm.lr_wd, "tau": tau, "sq_norm": sq_norm, "spherical_sharpness": sph,
                          "lr_lambda_max": lr_lam, "lambda_max": lr_lam / arm.optim.lr})
    hit = np.flatnonzero(lr_lam >= arm.onset_threshold)
    return Measurement(scalars={"tau_onset": float(tau[hit[0]]) if len(hit) else math.nan,
                                "tau_end": float(tau[-1]), "onset_fraction": float(hit[0] / len(tau)) if len(hit) else 1.0,
                                "lr_lambda_max_initial": float(lr_lam[0]), "max_lambda_residual_rel": 1e-4},
                       curves={"trajectory": table},
                       scale={"steps": arm.steps, "tau_end": float(tau[-1]), "model": "m", "activation": "a",
                              "trainable_params": 1, "data": "d", "n_train": 1, "dtype": "float64",
                              "lr_wd": arm.lr_wd, "bn_mode": "b"})


def test_entry_time_slope_is_one_under_pure_norm_decay_and_tracks_the_sharpening():
    cfg = EntryConfig(base=GDConfig(activation="tanh", loss="ce", measure_every=1,
                                    optim=OptimizerSpec("sgd", lr=0.1, weight_decay=1e-2)), scales=(1.0, 2.0, 4.0))
    flat = eos_entry_time(cfg, RunContext(seed=0, tier="cpu", cached_run=lambda _e, a: _norm_decay_run(a, 900.0)))
    assert flat.scalars["slope_tau_onset_on_log_scale"] == pytest.approx(1.0, abs=1e-9)  # read between rows
    assert flat.scalars["predicted_slope_from_sph"] == pytest.approx(1.0, abs=1e-12)
    # S_sph at the onset proportional to c: tau_onset = ln c + 1/2 ln(2 w0^2/(lr S)) moves by (1 - 1/2) ln c.
    sharp = eos_entry_time(cfg, RunContext(seed=0, tier="cpu",
                                           cached_run=lambda _e, a: _norm_decay_run(a, 900.0 * a.init_scale)))
    assert sharp.scalars["slope_tau_onset_on_log_scale"] == pytest.approx(0.5, abs=1e-9)
    assert sharp.scalars["predicted_slope_from_sph"] == pytest.approx(0.5, abs=1e-12)


def test_entry_time_onset_is_read_between_measurements_exactly_under_norm_decay():
    # A coarse grid (tau 0.13 between measurements): the onset must still land on the derivation's value
    # tau = 1/2 ln(1.8 ||w0||^2 c^2 / (lr S_sph)), not on the next grid point.
    lr, sph = 0.1, 700.0
    cfg = EntryConfig(base=GDConfig(activation="tanh", loss="ce", measure_every=13,
                                    optim=OptimizerSpec("sgd", lr=lr, weight_decay=1e-1)), scales=(1.0, 2.0, 4.0))
    m = eos_entry_time(cfg, RunContext(seed=0, tier="cpu", cached_run=lambda _e, a: _norm_decay_run(a, sph)))
    for i, c in enumerate(cfg.scales):
        exact = 0.5 * math.log(1.8 * 100.0 * c**2 / (lr * sph))
        assert m.scalars[f"c{i}.tau_onset"] == pytest.approx(exact, abs=1e-9)
        assert m.scalars[f"c{i}.tau_onset_grid"] - exact > 1e-3      # the grid reading lies after it
    assert m.scalars["slope_tau_onset_on_log_scale"] == pytest.approx(1.0, abs=1e-9)


def test_interpolated_onset_tau_reads_first_row_and_no_onset():
    cfg = GDConfig(activation="tanh", loss="ce")
    at_start = pd.DataFrame({"tau": [0.0, 0.1, 0.2], "lr_lambda_max": [1.9, 1.0, 2.0]})
    never = pd.DataFrame({"tau": [0.0, 0.1], "lr_lambda_max": [1.0, 1.7]})
    later = pd.DataFrame({"tau": [0.0, 0.1, 0.2, 0.3], "lr_lambda_max": [1.0, 0.9, 2.5, 1.0]})
    assert interpolated_onset_tau(at_start, cfg) == 0.0
    assert math.isnan(interpolated_onset_tau(never, cfg))
    expected = 0.1 + 0.1 * math.log(1.8 / 0.9) / math.log(2.5 / 0.9)   # the bracketing rows 1 and 2
    assert interpolated_onset_tau(later, cfg) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kw, match", [({"scales": (2.0, 1.0)}, "increasing"), ({"tau_margin": 0.0}, "tau_margin"),
                                       ({"base": GDConfig(optim=OptimizerSpec("sgd", lr=0.1))}, "weight decay")])
def test_entry_config_refuses_bad_input(kw, match):
    with pytest.raises(ConfigError, match=match):
        EntryConfig(**kw)


def test_entry_time_claim_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    store = ResultStore(tmp_path / "results")
    entry = run_claims([get_claim("eos-entry-time")], RunOptions(tier="smoke"), store)["claims"][0]
    for check in entry["checks"] + entry["regime"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])
    record = store.load_seed(entry["seeds"][0]["key"])["measurement"]
    assert [record["scalars"][f"c{i}.scale"] for i in range(3)] == [1.0, 2.0, 4.0]


def test_entry_time_premise_reads_the_interpolated_onset_not_the_grid():
    cfg = EntryConfig(base=GDConfig(activation="tanh", loss="ce", measure_every=7,
                                    optim=OptimizerSpec("sgd", lr=0.1, weight_decay=1e-2)), scales=(1.0, 2.0, 4.0))
    m = eos_entry_time(cfg, RunContext(seed=0, tier="cpu", cached_run=lambda _e, a: _norm_decay_run(a, 900.0)))
    for i, c in enumerate(cfg.scales):
        arm = cfg.arm(c)
        tau_end = (arm.steps // arm.measure_every) * arm.measure_every * arm.lr_wd  # the stub run's tau_end
        frac = m.scalars[f"c{i}.onset_fraction"]
        assert frac == pytest.approx(m.scalars[f"c{i}.tau_onset"] / tau_end, rel=1e-12)
        assert frac != m.scalars[f"c{i}.onset_fraction_grid"]  # the grid reading is a whole number of rows
    assert m.scalars["max_onset_fraction"] == max(m.scalars[f"c{i}.onset_fraction"] for i in range(3))
