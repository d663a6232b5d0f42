"""sam-ire-flat-convergence: smoke tier end to end, the steps-to-flat counter against a hand-written
normalised SAM loop, and the fit / threshold helpers on synthetic input."""
import math

import numpy as np
import pytest

from harness.claim.config import apply_overrides, derive
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.sam_flat import (
    SamFlatConfig,
    SamToyConfig,
    _net_arm,
    first_below_after_peak,
    toy_steps_to_flat,
)
from harness.experiments.toy import loglog_slope
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


def test_sam_flat_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    claim = get_claim("sam-ire-flat-convergence")
    summary = run_claims([claim], RunOptions(tier="smoke"), ResultStore(tmp_path))
    entry = summary["claims"][0]
    assert summary["status"] == "complete" and entry["measured_scale"]
    for check in entry["checks"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])
        assert math.isfinite(check["estimate"]["lo"])  # the fit's standard error gave an interval
    assert all(math.isfinite(r["estimate"]["value"]) for r in entry["reported"])


def _reference_steps(rho: float, kappa: float, lr=0.5, u=1.0, v=0.01) -> int:
    """Normalised SAM (+ kappa on the u coordinate) on (1 + u^2) v^2 / 2, written out by hand."""
    for step in range(1, 100_000):
        g = np.array([u * v * v, (1 + u * u) * v])
        eu, ev = rho * g / np.linalg.norm(g)
        pu, pv = u + eu, v + ev
        du, dv = -lr * pu * pv * pv, -lr * (1 + pu * pu) * pv
        u, v = u + (1 + kappa) * du, v + dv
        if abs(u) < 0.5:
            return step
    raise AssertionError("never reached")


@pytest.mark.parametrize("rho", [0.05, 0.03])
def test_toy_steps_to_flat_matches_hand_written_sam(rho):
    cfg = SamToyConfig()
    assert toy_steps_to_flat(rho, cfg, "sam", cap=10_000)[0] == _reference_steps(rho, 0.0)
    assert toy_steps_to_flat(rho, cfg, "samire", cap=10_000)[0] == _reference_steps(rho, 1 / rho)


def test_toy_steps_to_flat_reports_cap_plus_one_when_not_reached():
    assert toy_steps_to_flat(0.01, SamToyConfig(), "sam", cap=50)[0] == 51


def test_loglog_slope_recovers_power_law_exponent():
    x = np.array([0.01, 0.02, 0.03, 0.05])
    for exponent in (-2.0, -1.0, 0.5):
        slope, se = loglog_slope(x, 7.0 * x ** exponent)
        assert slope == pytest.approx(exponent, abs=1e-10) and se < 1e-8
    noisy = 7.0 * x ** -2.0 * np.array([1.05, 0.97, 1.02, 0.99])
    slope, se = loglog_slope(x, noisy)
    assert abs(slope + 2.0) < 3 * se + 0.1 and se > 1e-3


def test_loglog_slope_rejects_too_few_or_nonpositive_points():
    with pytest.raises(ValueError, match=">= 3"):
        loglog_slope([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1.0, 2.0, 3.0], [1.0, 0.0, 2.0])


def test_first_below_after_peak_ignores_the_rise_from_initialisation():
    values = np.array([-5.0, 10.0, 30.0, 20.0, 8.0, 4.0])
    assert first_below_after_peak(values, 9.0) == 4  # index 0 is below 9 too, but before the peak at 2
    assert first_below_after_peak(values, 30.0) == 2
    assert first_below_after_peak(values, 1.0) is None


def test_set_net_optim_lr_reaches_both_net_arms_optimizers(monkeypatch):
    """`--set net.optim.lr=0.2`: SAM-IRE's spec and the SAM arm derived from it both build with lr 0.2."""
    import harness.experiments.sam_flat as sam_flat
    from harness.claim.measurement import RunContext

    load_claims()
    cfg = apply_overrides(get_claim("sam-ire-flat-convergence").tiers["smoke"].config, {"net.optim.lr": "0.2"})
    assert cfg.net.optim.as_kind("sam").lr == 0.2 and cfg.net.optim.kappa == 20.0
    built = []
    real_build = sam_flat.OptimizerSpec.build

    def spy(spec, params, **kw):
        opt = real_build(spec, params, **kw)
        built.append((spec.name, {g["lr"] for g in opt.param_groups}))
        return opt

    monkeypatch.setattr(sam_flat.OptimizerSpec, "build", spy)
    split = sam_flat.load_dataset("digits", n_train=16, n_test=0, images=True)
    net = derive(cfg.net, grad_evals=4, measure_every=100, trace_probes=1)
    for ire in (False, True):
        _net_arm(net, RunContext(seed=0, tier="smoke"), split, split.x_train[:4], ire=ire)
    assert built == [("sam", {0.2}), ("sam_ire", {0.2})]


def test_sam_flat_config_checks_its_groups():
    with pytest.raises(ConfigError, match="needs >= 3 positive radii"):
        SamToyConfig(rhos=(0.05, 0.01))
    with pytest.raises(ConfigError, match="'sam_ire' OptimizerSpec"):
        derive(SamFlatConfig(), net={"optim": OptimizerSpec("sam", lr=0.1, rho=0.05)})
    with pytest.raises(ConfigError, match="grad_evals must be >= 2"):
        derive(SamFlatConfig(), {"net.grad_evals": 1})
    with pytest.raises(ConfigError, match="constant lr"):
        derive(SamFlatConfig(), {"net.optim.lr_warmup_steps": 5})
