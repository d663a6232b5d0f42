"""Hutchinson and Hutch++ trace estimators: convergence against the dense float64 trace."""

import pytest
import torch
from curvature_helpers import (
    ignore_jit_script_warning,
)
from torch import nn
from torch.nn import functional as F

from harness.curvature import HessianOperator, hutchinson_trace, hutchpp_trace
from harness.curvature.reference import dense_hessian

pytestmark = ignore_jit_script_warning


@pytest.fixture(scope="module")
def problem():
    """4 -> 6 (tanh) -> 3 MLP, N = 51, 20 points, float64; BatchNorm HVPs are tested elsewhere."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(20, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (20,), generator=g))]
    op = HessianOperator(model, F.cross_entropy, data, "eval")
    exact = torch.trace(dense_hessian(model, F.cross_entropy, data, "eval")).item()
    return op, exact


@pytest.fixture(scope="module")
def large_estimate(problem):
    return hutchinson_trace(problem[0], 200, torch.Generator().manual_seed(0))


def test_hutchinson_converges_within_standard_errors(problem, large_estimate):
    _, exact = problem
    est = large_estimate
    assert est.num_samples == est.matvecs == 200
    assert abs(est.estimate - exact) <= 3 * est.std_error
    assert est.std_error < 0.2 * abs(exact)


def test_hutchinson_std_error_shrinks_like_inverse_sqrt(problem, large_estimate):
    small = hutchinson_trace(problem[0], 50, torch.Generator().manual_seed(1))
    assert 0.35 < large_estimate.std_error / small.std_error < 0.7  # 1/sqrt(4) = 0.5


def test_hutchinson_uses_only_the_given_generator(problem):
    op, _ = problem
    rng = torch.get_rng_state()
    a = hutchinson_trace(op, 20, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global RNG must not matter
    b = hutchinson_trace(op, 20, torch.Generator().manual_seed(7))
    c = hutchinson_trace(op, 20, torch.Generator().manual_seed(8))
    torch.set_rng_state(rng)
    assert a == b
    assert a.estimate != c.estimate


def test_hutchinson_single_sample_has_infinite_std_error(problem):
    op, _ = problem
    assert hutchinson_trace(op, 1, torch.Generator().manual_seed(0)).std_error == float("inf")


def test_hutchpp_exact_with_3n_matvecs(problem):
    op, exact = problem
    n = op.shape[0]
    rng = torch.get_rng_state()
    est = hutchpp_trace(op, 3 * n, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), rng)
    assert est.estimate == pytest.approx(exact, rel=1e-8)
    assert est.matvecs == 3 * n


def test_hutchpp_converges_within_standard_errors(problem):
    op, exact = problem
    est = hutchpp_trace(op, 90, torch.Generator().manual_seed(3))
    assert est.num_samples == 30
    assert abs(est.estimate - exact) <= 3 * est.std_error + 1e-12


def test_bad_arguments_raise(problem):
    op, _ = problem
    with pytest.raises(ValueError, match="num_samples must be a positive int"):
        hutchinson_trace(op, 0, torch.Generator())
    with pytest.raises(ValueError, match="num_matvecs must be an int >= 3"):
        hutchpp_trace(op, 2, torch.Generator())
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        hutchinson_trace(op, 10, 0)
