"""top_eigenvalues / top_hessian_eigenvalue against dense float64 eigvalsh."""

import pytest
import torch
from curvature_helpers import (
    ignore_jit_script_warning,
    make_bn_mlp,
    make_data,
)
from torch import nn
from torch.nn import functional as F

from harness.curvature import (
    EigenNotConvergedError,
    HessianOperator,
    top_eigenvalues,
    top_hessian_eigenvalue,
)
from harness.curvature.reference import dense_hessian
from harness.errors import HarnessError, NumericalError

pytestmark = ignore_jit_script_warning


def make_problem(seed: int = 0):
    """5 -> 8 (BatchNorm, tanh) -> 3 MLP, N = 91, one batch of 20 points, float64."""
    return make_bn_mlp(seed), [make_data(20, seed + 1)]


@pytest.fixture(scope="module")
def problem():
    model, data = make_problem()
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    return model, data, torch.linalg.eigvalsh(H).flip(0)  # descending


def test_top_eigenvalues_match_dense_lanczos_path(problem):
    model, data, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    res = top_eigenvalues(op, k=3, tol=1e-12)
    assert op.shape[0] > 64  # exercises eigsh, not the dense fallback
    torch.testing.assert_close(
        torch.tensor(res.eigenvalues, dtype=torch.float64), evals[:3], rtol=1e-6, atol=0
    )
    assert list(res.eigenvalues) == sorted(res.eigenvalues, reverse=True)
    assert res.eigenvectors.shape == (91, 3)
    torch.testing.assert_close(
        res.eigenvectors.T @ res.eigenvectors, torch.eye(3, dtype=torch.float64), atol=1e-8, rtol=0
    )
    assert all(r < 1e-6 * abs(lam) for r, lam in zip(res.residuals, res.eigenvalues))
    assert res.matvecs == op.matvec_count


def test_top_eigenvalues_dense_fallback_for_small_n():
    model, data = make_problem()
    names = ["3.weight", "3.bias"]  # N = 27
    op = HessianOperator(model, F.cross_entropy, data, "full-batch", params=names)
    evals = torch.linalg.eigvalsh(
        dense_hessian(model, F.cross_entropy, data, "full-batch", params=names)
    ).flip(0)
    res = top_eigenvalues(op, k=2, v0=torch.ones(27, dtype=torch.float64))
    torch.testing.assert_close(
        torch.tensor(res.eigenvalues, dtype=torch.float64), evals[:2], rtol=1e-10, atol=0
    )
    assert max(res.residuals) < 1e-10
    assert res.matvecs == 27 + 2  # explicit matrix + residual HVPs


def test_top_eigenvalues_k_equals_n():
    model, data = make_problem()
    op = HessianOperator(model, F.cross_entropy, data, "full-batch", params=["3.bias"])  # N = 3
    res = top_eigenvalues(op, k=3)
    evals = torch.linalg.eigvalsh(
        dense_hessian(model, F.cross_entropy, data, "full-batch", params=["3.bias"])
    )
    torch.testing.assert_close(
        torch.tensor(res.eigenvalues, dtype=torch.float64), evals.flip(0), rtol=1e-10, atol=1e-14
    )


def test_top_eigenvalues_is_largest_algebraic_not_magnitude():
    # loss = mean_i y_i * (e_i . w)^2 gives H = (2/n) diag(y); the most negative entry dominates |λ|.
    n = 100
    y = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    y[0] = -50.0
    model = nn.Linear(n, 1, bias=False).double()
    data = [(torch.eye(n, dtype=torch.float64), y)]
    op = HessianOperator(model, lambda out, t: (t * out.squeeze(1) ** 2).mean(), data, "eval")
    res = top_eigenvalues(op, k=1, tol=1e-10)
    assert res.eigenvalues[0] == pytest.approx(2.0 / n, rel=1e-8)


@pytest.mark.parametrize("ncv", [None, 6])
def test_warm_start_agrees_and_needs_no_more_matvecs(problem, ncv):
    model, data, evals = problem
    kwargs = dict(tol=1e-10, ncv=ncv)
    cold = top_hessian_eigenvalue(model, F.cross_entropy, data, "full-batch", **kwargs)
    warm = top_hessian_eigenvalue(model, F.cross_entropy, data, "full-batch", v0=cold.eigenvectors, **kwargs)
    assert cold.eigenvalues[0] == pytest.approx(evals[0].item(), rel=1e-6)
    assert warm.eigenvalues[0] == pytest.approx(evals[0].item(), rel=1e-6)
    assert warm.matvecs <= cold.matvecs
    if ncv is not None:  # a small basis lets the warm start pay off
        assert warm.matvecs < cold.matvecs


def test_top_eigenvalues_deterministic(problem):
    model, data, _ = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    rng = torch.get_rng_state()
    a, b = top_eigenvalues(op, tol=1e-3), top_eigenvalues(op, tol=1e-3)
    assert a.eigenvalues == b.eigenvalues
    assert torch.equal(a.eigenvectors, b.eigenvectors)
    assert torch.equal(torch.get_rng_state(), rng)


def test_matvec_budget_raises_numerical_error(problem):
    model, data, _ = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    with pytest.raises(EigenNotConvergedError, match="budget of 5 HVPs") as info:
        top_eigenvalues(op, k=1, tol=1e-12, max_matvecs=5)
    assert isinstance(info.value, NumericalError) and not isinstance(info.value, HarnessError)
    assert op.matvec_count <= 5


def test_bad_arguments_raise(problem):
    model, data, _ = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 91\]"):
        top_eigenvalues(op, k=0)
    with pytest.raises(ValueError, match="v0 must be a tensor of shape"):
        top_eigenvalues(op, v0=torch.ones(90, dtype=torch.float64))
    with pytest.raises(ValueError, match="finite and nonzero"):
        top_eigenvalues(op, v0=torch.zeros(91, dtype=torch.float64))
