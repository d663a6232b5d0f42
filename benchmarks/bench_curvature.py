"""Curvature probe costs on one fixed model: gradient, one HVP, and λ_max (tol 1e-3, cold and warm).

Model: 64 -> 64 -> 64 -> 10 tanh MLP with BatchNorm after each hidden Linear (9,226 parameters,
float32), 1,000 random 64-dim inputs, cross-entropy, bn_mode="full-batch". Read the HVP time as a
multiple of the gradient time (recorded in extra_info), not as an absolute number. Run: pytest benchmarks/.
"""

from __future__ import annotations

import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.curvature import HessianOperator, top_eigenvalues

ROUNDS, WARMUP_ROUNDS = 20, 3
EIG_ROUNDS = 3
TOL = 1e-3

# torch's first forward-mode AD call scripts its jvp decompositions (a torch-internal warning).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _setup(seed: int = 0) -> HessianOperator:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, 64), nn.BatchNorm1d(64), nn.Tanh(),
        nn.Linear(64, 64), nn.BatchNorm1d(64), nn.Tanh(),
        nn.Linear(64, 10),
    )  # fmt: skip
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1000, 64, generator=gen)  # (n, D)
    y = torch.randint(0, 10, (1000,), generator=gen)  # (n,)
    return HessianOperator(model, F.cross_entropy, [(x, y)], "full-batch")


@pytest.fixture(scope="module")
def op() -> HessianOperator:
    return _setup()


def _min_seconds(fn, repeats: int = ROUNDS) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_bench_gradient(benchmark, op):
    g = benchmark.pedantic(op.gradient, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert g.shape == (op.shape[0],)
    assert torch.isfinite(g).all() and g.norm() > 0


def test_bench_hvp(benchmark, op):
    v = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(1))  # (N,)
    hv = benchmark.pedantic(lambda: op @ v, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert torch.isfinite(hv).all() and hv.norm() > 0
    if benchmark.stats is not None:  # None under --benchmark-disable
        gradient_min = _min_seconds(op.gradient)
        benchmark.extra_info["gradient_min_s"] = gradient_min
        benchmark.extra_info["hvp_over_gradient_min"] = benchmark.stats.stats.min / gradient_min


@pytest.mark.parametrize("ncv", [None, 6])
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_bench_lambda_max(benchmark, op, start, ncv):
    v0 = top_eigenvalues(op, tol=TOL, ncv=ncv).eigenvectors if start == "warm" else None
    res = benchmark.pedantic(
        lambda: top_eigenvalues(op, tol=TOL, v0=v0, ncv=ncv),
        rounds=EIG_ROUNDS,
        iterations=1,
        warmup_rounds=1,
    )
    lam = res.eigenvalues[0]
    assert math.isfinite(lam) and lam > 0
    assert res.residuals[0] < 1e-2 * lam  # float32 HVPs, tol 1e-3: observed 4e-5 to 8e-4 relative
    benchmark.extra_info["hvps"] = res.matvecs
    benchmark.extra_info["lambda_max"] = lam
