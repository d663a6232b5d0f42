"""adam-edge-of-stability and sam-edge-of-stability: smoke tiers end to end, gpu configs capped on CPU, the
edges' formulas and the onset rule."""
import math

import numpy as np
import pytest

from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig
from harness.experiments.optimizer_edges import (
    AdamEdgeConfig,
    SAMEdgeConfig,
    adam_edge_trajectory,
    adam_threshold,
    edge_metrics,
    sam_edge,
    sam_edge_trajectory,
)
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

CLAIMS = ("adam-edge-of-stability", "sam-edge-of-stability")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    load_claims()
    store = ResultStore(tmp_path_factory.mktemp("edges") / "results")
    return run_claims([get_claim(c) for c in CLAIMS], RunOptions(tier="smoke"), store)["claims"]


def test_optimizer_edge_claims_smoke_tier_runs_end_to_end(smoke):
    assert [e["id"] for e in smoke] == list(CLAIMS)
    for entry in smoke:
        assert entry["checks"] and entry["regime"]
        for check in entry["checks"] + entry["regime"]:
            assert check["verdict"] != "error", check
            assert math.isfinite(check["estimate"]["value"])


@pytest.mark.parametrize("claim_id,exp", [("adam-edge-of-stability", adam_edge_trajectory),
                                          ("sam-edge-of-stability", sam_edge_trajectory)])
def test_optimizer_edge_claims_gpu_tier_config_runs_capped_on_cpu(fake_cifar10, claim_id, exp):
    load_claims()
    cfg = get_claim(claim_id).tiers["gpu"].config
    assert cfg.base.data == "cifar10" and cfg.base.widths == (512, 512) and cfg.base.dtype == "float32"
    small = derive(cfg, base={"data_root": str(fake_cifar10), "n_train": 64, "n_test": 20, "widths": (16,)})
    m = exp(small, RunContext(seed=0, tier="gpu", max_steps=2))
    assert m.scale["steps"] == 2 and m.scale["data"] == "cifar10"
    assert math.isfinite(m.scalars["over_edge_post_onset_median"])


def test_adam_threshold_is_38_over_lr_at_beta1_0_9():
    assert adam_threshold(1e-3, 0.9) == pytest.approx(38_000, rel=1e-12)
    assert adam_threshold(0.1, 0.0) == pytest.approx(2 / 0.1, rel=1e-12)  # beta1 = 0: RMSProp-like, GD's 2/lr


def test_sam_edge_solves_its_quadratic_and_lies_below_gd_edge():
    lr, rho, g = 0.2, 0.05, np.array([1e-4, 0.05, 1.0, 1e3])
    lam = sam_edge(lr, rho, g)
    np.testing.assert_allclose(lr * lam * (1 + rho * lam / g), 2.0, rtol=1e-12)
    assert (lam < 2 / lr).all() and np.all(np.diff(lam) > 0)  # below 2/lr, rising with ||g||
    assert sam_edge(lr, 1e-12, np.array([1.0]))[0] == pytest.approx(2 / lr, rel=1e-9)  # rho -> 0: GD's edge


def test_sam_edge_is_where_sam_on_a_quadratic_turns_unstable():
    """SAM on L = lam/2 x^2 with ||g|| = lam |x| held fixed: the multiplier 1 - lr lam (1 + rho lam / ||g||)."""
    lr, rho, g = 0.2, 0.05, 0.3
    edge = sam_edge(lr, rho, np.array([g]))[0]
    for lam, stable in ((0.99 * edge, True), (1.01 * edge, False)):
        multiplier = 1 - lr * (lam + rho * lam**2 / g)  # d/dx of x - lr L'(x + rho L'(x)/|L'(x)|), g fixed
        assert bool(abs(multiplier) < 1) is stable


def test_edge_metrics_onset_is_the_first_upward_crossing():
    step = np.arange(0, 100, 10.0)
    rel = np.array([1.5, 0.2, 0.4, 0.95, 1.0, 1.05, 0.97, 1.02, 1.0, 0.99])
    s, window = edge_metrics(step, rel, 0.9)
    assert s["onset_step"] == 30 and s["onset_fraction"] == pytest.approx(30 / 90)
    assert s["over_edge_initial"] == 1.5 and s["over_edge_pre_onset_min"] == 0.2
    assert s["over_edge_post_onset_median"] == pytest.approx(np.median(rel[3:])) and window.sum() == 7
    never, window = edge_metrics(step, np.full(10, 0.5), 0.9)
    assert math.isnan(never["onset_step"]) and never["onset_fraction"] == 1.0 and window.sum() == 3


@pytest.mark.parametrize("make,match", [
    (lambda: AdamEdgeConfig(GDConfig(optim=OptimizerSpec("sgd", lr=0.1))), "base.optim must be a 'adamw'"),
    (lambda: AdamEdgeConfig(GDConfig(optim=OptimizerSpec("adamw", lr=1e-3, weight_decay=0.1))), "weight_decay must be 0"),
    (lambda: SAMEdgeConfig(GDConfig(optim=OptimizerSpec("sam", lr=0.1, rho=0.05, momentum=0.9))), "plain GD"),
    (lambda: SAMEdgeConfig(GDConfig(optim=OptimizerSpec("adamw", lr=1e-3))), "base.optim must be a 'sam'"),
    (lambda: SAMEdgeConfig(onset=0.0), "onset"),
])
def test_optimizer_edge_configs_reject_what_the_edges_do_not_cover(make, match):
    with pytest.raises(ConfigError, match=match):
        make()
