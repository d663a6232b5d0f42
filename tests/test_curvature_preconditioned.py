"""PreconditionedHessianOperator and adam_preconditioner against dense float64 references."""

import pytest
import torch
from curvature_helpers import ignore_jit_script_warning, make_bn_mlp, make_data
from torch.nn import functional as F

from harness.curvature import (
    HessianOperator,
    PreconditionedHessianOperator,
    adam_preconditioner,
    top_eigenvalues,
)
from harness.curvature.reference import dense_hessian

pytestmark = ignore_jit_script_warning


@pytest.fixture(scope="module")
def problem():
    """The 5 -> 8 (BatchNorm, tanh) -> 3 MLP (N = 91), its dense Hessian and a diagonal D spanning 1e-2..1e1."""
    model, data = make_bn_mlp(0), [make_data(20, 1)]
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    g = torch.Generator().manual_seed(3)
    d = 10.0 ** (3 * torch.rand(H.shape[0], generator=g, dtype=torch.float64) - 2)  # (N,)
    return model, data, H, d


def test_preconditioned_operator_matches_dense_product(problem):
    model, data, H, d = problem
    op = PreconditionedHessianOperator(HessianOperator(model, F.cross_entropy, data, "full-batch"), d)
    V = torch.randn(H.shape[0], 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    dense = torch.diag(d.rsqrt()) @ H @ torch.diag(d.rsqrt())  # (N, N)
    torch.testing.assert_close(op @ V, dense @ V, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(op @ V[:, 0], dense @ V[:, 0], rtol=1e-9, atol=1e-12)
    u, v = V[:, 1], V[:, 2]
    assert torch.dot(u, op @ v).item() == pytest.approx(torch.dot(v, op @ u).item(), rel=1e-10)
    torch.testing.assert_close(op @ V, op @ V, rtol=0, atol=0)  # deterministic
    assert op.matvec_count == 4 + 1 + 2 + 4 + 4


def test_preconditioned_top_eigenvalues_match_eigvals_of_p_inverse_h(problem):
    model, data, H, d = problem
    op = PreconditionedHessianOperator(HessianOperator(model, F.cross_entropy, data, "full-batch"), d)
    res = top_eigenvalues(op, k=2, tol=1e-12)
    assert op.shape[0] > 64  # the Lanczos path, not the dense fallback
    # P^-1 H is not symmetric; its eigenvalues are real (similar to the symmetric operator).
    ev = torch.linalg.eigvals(torch.diag(1 / d) @ H)
    assert ev.imag.abs().max() < 1e-8 * ev.real.abs().max()
    top = ev.real.sort(descending=True).values[:2]
    torch.testing.assert_close(torch.tensor(res.eigenvalues, dtype=torch.float64), top, rtol=1e-8, atol=0)
    raw = torch.linalg.eigvalsh(H)[-1]
    assert abs(res.eigenvalues[0] - raw.item()) > 0.1 * raw.item()  # the preconditioner matters here


def test_preconditioned_operator_bad_diagonal_raises(problem):
    model, data, H, d = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    with pytest.raises(ValueError, match=r"shape \(91,\)"):
        PreconditionedHessianOperator(op, d[:-1])
    with pytest.raises(ValueError, match="finite and > 0"):
        PreconditionedHessianOperator(op, torch.cat([d[:-1], d.new_zeros(1)]))
    with pytest.raises(TypeError, match="must be a tensor"):
        PreconditionedHessianOperator(op, d.tolist())


@pytest.mark.parametrize("kind", [torch.optim.Adam, torch.optim.AdamW])
def test_adam_preconditioner_is_the_next_steps_denominator(kind):
    """With beta1 = 0 the Adam update is exactly -lr * g / P: P read before the step divides the step."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    x, y = make_data(20, 1)
    params = list(model.parameters())
    opt = kind(params, lr=1e-2, betas=(0.0, 0.99), eps=1e-6, weight_decay=0.0)
    for _ in range(4):  # step 0 (empty state) and later steps
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        P = adam_preconditioner(opt, params)  # (N,)
        g = torch.cat([p.grad.reshape(-1) for p in params])
        before = torch.cat([p.detach().reshape(-1) for p in params])
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in params])
        torch.testing.assert_close(after - before, -1e-2 * g / P, rtol=1e-9, atol=1e-15)


def test_adam_preconditioner_bad_input_raises():
    model = torch.nn.Linear(3, 2).double()
    with pytest.raises(TypeError, match="needs a torch Adam or AdamW, got SGD"):
        adam_preconditioner(torch.optim.SGD(model.parameters(), lr=0.1), list(model.parameters()))
    with pytest.raises(ValueError, match=r"\.grad"):
        adam_preconditioner(torch.optim.Adam(model.parameters()), list(model.parameters()))
