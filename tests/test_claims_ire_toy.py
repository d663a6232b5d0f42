"""ire-toy-figure1: smoke tier end to end, the Figure 1 numbers, and the metric helpers on synthetic input."""
import math

import numpy as np
import pandas as pd
import pytest

import harness.experiments.toy as toy_module
from harness.claim.config import apply_overrides, derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.toy import (
    ToyConfig,
    _figure1_arm,
    _uv_plane,
    figure1_toy,
    first_divergence,
    rotated_gain_fraction,
)
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


def test_ire_toy_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    summary = run_claims([get_claim("ire-toy-figure1")], RunOptions(tier="smoke"), ResultStore(tmp_path))
    entry = summary["claims"][0]
    assert summary["status"] == "complete" and entry["measured_scale"]
    for check in entry["checks"] + entry["reported"]:
        assert check.get("verdict") != "error", check
        assert math.isfinite(check["estimate"]["value"]), check


def test_figure1_gd_lr1_final_u_reproduces_paper():
    table, diverged = _figure1_arm(ToyConfig(), lr=1.0, kappa=None)
    assert diverged is None
    assert abs(table["u"].iloc[-1] - 0.993) < 1e-3  # paper: GD with eta = 1 ends near u = 0.993
    assert abs(table["v"].iloc[-1]) < 1e-6  # the step count was chosen so that v has converged


def test_figure1_gd_lr2_diverges_within_ten_steps():
    table, diverged = _figure1_arm(ToyConfig(), lr=2.0, kappa=None)
    assert diverged is not None and diverged <= 10  # paper: within ~8 steps
    assert len(table) == diverged + 1  # the run stops at the first diverged loss


def test_figure1_ire_moves_further_along_the_valley_with_kappa():
    finals = [_figure1_arm(ToyConfig(steps=300), 1.0, k)[0]["u"].iloc[-1] for k in (None, 90.0, 900.0)]
    assert finals[0] > finals[1] > finals[2]


def test_first_divergence_finds_first_nonfinite_or_capped_loss():
    assert first_divergence(np.array([1.0, 2.0, 3.0]), cap=10.0) is None
    assert first_divergence(np.array([1.0, 20.0, np.nan]), cap=10.0) == 1
    assert first_divergence(np.array([1.0, np.inf, 5.0]), cap=10.0) == 1
    assert first_divergence(np.array([1.0, 2.0, np.nan]), cap=10.0) == 2


def test_rotated_gain_fraction_is_share_of_exact_reduction():
    assert rotated_gain_fraction(10.0, 6.0, 8.0, False) == pytest.approx(0.5)
    assert rotated_gain_fraction(10.0, 6.0, 6.0, False) == pytest.approx(1.0)
    assert rotated_gain_fraction(10.0, 6.0, 12.0, False) == pytest.approx(-0.5)  # sharper than GD
    assert rotated_gain_fraction(10.0, 6.0, math.nan, True) == 0.0  # diverged: none of the gain
    assert math.isnan(rotated_gain_fraction(10.0, 10.0, 9.0, False))  # no exact gain to share


def test_uv_plane_table_keeps_each_arm_in_its_own_column():
    traj = {"gd": pd.DataFrame({"u": [1.0, 0.9], "v": [0.1, -0.01]}),
            "ire90": pd.DataFrame({"u": [1.0, 0.5, 0.4], "v": [0.1, 1e-20, 0.0]})}
    table = _uv_plane(traj, floor=1e-12)
    assert list(table["u"]) == [1.0, 0.9, 1.0, 0.5, 0.4]
    assert table["abs_v_gd"].iloc[:2].tolist() == [0.1, 0.01] and table["abs_v_gd"].iloc[2:].isna().all()
    assert table["abs_v_ire90"].iloc[:2].isna().all() and table["abs_v_ire90"].iloc[2] == 0.1
    assert table["abs_v_ire90"].iloc[3:].isna().all()  # below the floor: not drawn on a log axis


def test_set_optim_lr_reaches_the_figure1_arms_optimizers(monkeypatch):
    """`--set optim.lr=0.5`: GD and every IRE arm on the Figure 1 toy build with lr 0.5 (GD at lr_unstable
    and the rotated toy's arms keep their own step sizes)."""
    load_claims()
    cfg = apply_overrides(get_claim("ire-toy-figure1").tiers["smoke"].config,
                          {"optim.lr": "0.5", "rotated.kappas": "3"})
    built = []
    real_build = OptimizerSpec.build

    def spy(spec, params, **kw):
        built.append((spec.name, spec.lr, spec.kappa))
        return real_build(spec, params, **kw)

    monkeypatch.setattr(toy_module.OptimizerSpec, "build", spy)
    figure1_toy(cfg, RunContext(seed=0, tier="smoke", max_steps=3))
    figure1 = built[:5]  # gd, ire90, ire900, ire9000, the kappa = 0 null; then GD at lr_unstable
    assert figure1 == [("sgd", 0.5, 0.0), ("ire_projected", 0.5, 90.0), ("ire_projected", 0.5, 900.0),
                       ("ire_projected", 0.5, 9000.0), ("ire_projected", 0.5, 0.0)]
    assert built[5] == ("sgd", 2.0, 0.0)
    assert [(n, k) for n, _, k in built[6:]] == [("sgd", 0.0), ("ire_projected", 3.0), ("ire", 3.0)]


def test_toy_config_checks_its_groups():
    with pytest.raises(ConfigError, match="rotated gamma must be in"):
        derive(ToyConfig(), {"rotated.gamma": 1.0})
    with pytest.raises(ConfigError, match="'sgd' OptimizerSpec"):
        derive(ToyConfig(), optim=OptimizerSpec("adamw", lr=1.0))
    with pytest.raises(ConfigError, match="constant lr"):
        derive(ToyConfig(), {"optim.schedule": "cosine"})
