"""One full sharpness measurement vs one gradient, on the scale-invariant net the EoS claims train.

Model: ScaleInvariantMLP 64 -> 64 -> 64 (no biases, BatchNorm without affine, fixed head; 8,192
trainable parameters, float32) on 512 random 64-dim inputs, cross-entropy, bn_mode="full-batch".
A "full measurement" is what a report of this net needs at one step: λ_max by Lanczos (tol 1e-3,
cold start), spherical sharpness (Hessian at w/‖w‖) and a Hutchinson trace with 8 probes. Read the
time as a multiple of a training gradient's time (perf.html shows the ratio), not as an absolute number.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from harness.curvature import HessianOperator, hutchinson_trace, spherical_sharpness, top_eigenvalues
from harness.models.mlp import ScaleInvariantMLP

ROUNDS, WARMUP_ROUNDS, MEASURE_ROUNDS = 10, 2, 5  # >= 5 rounds: harness gate checks this ratio
TOL, PROBES = 1e-3, 8

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def problem():
    model = ScaleInvariantMLP(64, widths=(64, 64), num_classes=10, bn_eps=0.0, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 64, generator=gen)  # (n, D)
    y = torch.randint(0, 10, (512,), generator=gen)  # (n,)
    return model, [(x, y)]


def _measure(model, data) -> dict:
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    eig = top_eigenvalues(op, k=1, tol=TOL)
    sph = spherical_sharpness(model, F.cross_entropy, data, "full-batch", tol=TOL)
    tr = hutchinson_trace(op, PROBES, torch.Generator().manual_seed(1))
    return {"lambda_max": eig.eigenvalues[0], "residual": eig.residuals[0], "spherical": sph.value,
            "trace": tr.estimate, "trace_se": tr.std_error, "hvps": eig.matvecs + tr.matvecs}


def test_bench_sharpness_gradient(benchmark, problem):
    model, data = problem
    (x, y), params = data[0], list(model.parameters())
    # a training gradient (HessianOperator.gradient() is now read off the graph its constructor built)
    grads = benchmark.pedantic(lambda: torch.autograd.grad(F.cross_entropy(model(x), y), params),
                               rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    g = torch.cat([t.reshape(-1) for t in grads])
    assert g.shape == (sum(p.numel() for p in model.parameters()),)
    assert torch.isfinite(g).all() and g.norm() > 0
    torch.testing.assert_close(g, HessianOperator(model, F.cross_entropy, data, "full-batch").gradient())


def test_bench_sharpness_measurement(benchmark, problem):
    model, data = problem
    before = [p.detach().clone() for p in model.parameters()]
    out = benchmark.pedantic(_measure, args=problem, rounds=MEASURE_ROUNDS, iterations=1, warmup_rounds=1)
    lam = out["lambda_max"]
    assert math.isfinite(lam) and lam > 0 and out["residual"] < 1e-2 * lam
    # scale invariance: the Hessian at w/||w|| is ||w||^2 times the Hessian at w
    sq_norm = sum(float(p.detach().pow(2).sum()) for p in model.parameters())
    assert out["spherical"] == pytest.approx(sq_norm * lam, rel=2e-2)
    assert math.isfinite(out["trace"]) and out["trace_se"] >= 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # probes never move weights
    benchmark.extra_info.update({k: float(v) for k, v in out.items()})
