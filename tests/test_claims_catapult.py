"""catapult-phase: lambda_0 against a dense Hessian, the GD loop's divergence rule, the config checks, and the
smoke tier end to end."""
import math

import numpy as np
import pytest
import torch
from curvature_helpers import ignore_jit_script_warning
from torch import nn

from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.catapult import CatapultConfig, run_arm, top_eigenvalue
from harness.losses import LOSSES
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


def _tiny(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """4 -> 6 (ReLU) -> 3 with biases: 51 parameters, float64; 12 points."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).to(torch.float64)
    g = torch.Generator().manual_seed(seed + 1)
    return model, torch.randn(12, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (12,), generator=g)


@ignore_jit_script_warning
def test_catapult_top_eigenvalue_matches_the_dense_hessian():
    model, x, y = _tiny()
    loss_fn = LOSSES.get("mse")
    params = list(model.parameters())
    shapes = [p.shape for p in params]

    def loss_of(flat):
        chunks, i = [], 0
        for s in shapes:
            n = math.prod(s)
            chunks.append(flat[i:i + n].reshape(s))
            i += n
        w1, b1, w2, b2 = chunks
        return loss_fn(torch.relu(x @ w1.T + b1) @ w2.T + b2, y)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    dense = torch.autograd.functional.hessian(loss_of, flat)
    assert torch.allclose(dense, dense.T, atol=1e-12)
    expected = torch.linalg.eigvalsh(dense)[-1].item()
    got = top_eigenvalue(model, loss_fn, x, y, tol=1e-10)
    assert got == pytest.approx(expected, rel=1e-8)
    assert top_eigenvalue(model, loss_fn, x, y, tol=1e-10) == pytest.approx(got, rel=1e-12)  # deterministic


@ignore_jit_script_warning
def test_catapult_run_arm_stable_below_two_over_lambda_and_diverges_far_above():
    loss_fn = LOSSES.get("mse")
    model, x, y = _tiny()
    lam0 = top_eigenvalue(model, loss_fn, x, y, tol=1e-8)
    losses, diverged = run_arm(model, loss_fn, x, y, lr=0.5 / lam0, steps=50, divergence_factor=1e6)
    assert not diverged and len(losses) == 51 and losses[-1] < losses[0]
    model, x, y = _tiny()
    losses, diverged = run_arm(model, loss_fn, x, y, lr=200.0 / lam0, steps=200, divergence_factor=1e6)
    assert diverged and len(losses) < 201
    assert not np.isfinite(losses[-1]) or losses[-1] > 1e6 * losses[0]


@pytest.mark.parametrize("kw, match", [({"arms": ()}, "arms"), ({"arms": (("a b", 1.0),)}, "arms"),
                                       ({"arms": (("a", 1.0), ("a", 2.0))}, "unique"), ({"steps": 0}, ">= 1")])
def test_catapult_config_refuses_bad_input(kw, match):
    with pytest.raises(ConfigError, match=match):
        CatapultConfig(**kw)


def test_catapult_claim_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    store = ResultStore(tmp_path / "results")
    entry = run_claims([get_claim("catapult-phase")], RunOptions(tier="smoke"), store)["claims"][0]
    for check in entry["checks"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])
    record = store.load_seed(entry["seeds"][0]["key"])["measurement"]
    lam0 = record["scalars"]["lambda_0"]
    assert record["scalars"]["catapult.lr"] == pytest.approx(3.0 / lam0, rel=1e-12)
