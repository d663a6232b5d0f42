"""The fast curvature paths against dense float64 references: graph-reusing and rebuilding HVPs, the
fused BatchNormNoAffine, and the residual-stopped Lanczos (default) next to ARPACK."""

import pytest
import torch
from curvature_helpers import ignore_jit_script_warning, make_bn_mlp, make_data
from torch import nn
from torch.nn import functional as F

import harness.curvature.lanczos as lanczos_mod
from harness.curvature import EigenNotConvergedError, HessianOperator, top_eigenvalues
from harness.curvature.reference import dense_hessian
from harness.models.mlp import BatchNormNoAffine, ScaleInvariantMLP

pytestmark = ignore_jit_script_warning

CASES = {
    "full-batch": lambda x, y: [(x, y)],
    "ghost": lambda x, y: [(x[:12], y[:12]), (x[12:], y[12:])],
    "eval": lambda x, y: [(x[:7], y[:7]), (x[7:], y[7:])],
}


def rand_vec(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("retain", [True, False])
@pytest.mark.parametrize("bn_mode", list(CASES))
def test_both_hvp_paths_match_dense(bn_mode, retain):
    model = make_bn_mlp()
    data = CASES[bn_mode](*make_data())
    op = HessianOperator(model, F.cross_entropy, data, bn_mode, retain_graph=retain)
    assert (op._graphs is not None) == retain
    H = dense_hessian(model, F.cross_entropy, data, bn_mode)
    for seed in range(2):
        v = rand_vec(91, seed)
        torch.testing.assert_close(op @ v, H @ v, rtol=0, atol=1e-10)
    assert op.matvec_count == 2


@pytest.mark.parametrize("bn_mode", ["ghost", "eval"])
def test_retained_and_rebuilt_paths_agree_on_loss_and_gradient(bn_mode):
    model = make_bn_mlp(dropout=0.3)  # same dropout masks on both paths (RNG reseeded in order)
    data = CASES[bn_mode](*make_data())
    a = HessianOperator(model, F.cross_entropy, data, bn_mode, retain_graph=True)
    b = HessianOperator(model, F.cross_entropy, data, bn_mode)  # several batches: rebuilt per HVP
    assert b._graphs is None
    assert a.loss() == pytest.approx(b.loss(), rel=1e-14)
    torch.testing.assert_close(a.gradient(), b.gradient(), rtol=0, atol=1e-14)
    v = rand_vec(91, 4)
    torch.testing.assert_close(a @ v, b @ v, rtol=0, atol=1e-13)


def test_hvp_of_a_loss_linear_in_some_parameters_is_zero_there():
    # loss = mean(out): linear in the last layer's bias, whose gradient does not depend on any weight
    model = nn.Linear(4, 1).double()
    data = [(torch.randn(6, 4, dtype=torch.float64), torch.zeros(6))]
    op = HessianOperator(model, lambda out, t: out.mean(), data, "eval")
    assert torch.equal(op @ rand_vec(5, 0), torch.zeros(5, dtype=torch.float64))


def _two_pass_bn(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The layer's former Python forward: (x - mean) / sqrt(var + eps), biased var, per channel."""
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dim=dims, keepdim=True)
    var = (x - mean).square().mean(dim=dims, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


@pytest.mark.parametrize("eps", [0.0, 1e-5])
@pytest.mark.parametrize("shape", [(7, 5), (6, 5, 3, 2)])
def test_fused_batchnorm_matches_the_two_pass_formula_with_gradients(eps, shape):
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 3 + 1
    x.requires_grad_(True)
    layer = BatchNormNoAffine(5, eps=eps)
    out, ref = layer(x), _two_pass_bn(x, eps)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    g = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    (dx,) = torch.autograd.grad((out * g).sum(), x, create_graph=True)
    (dx_ref,) = torch.autograd.grad((ref * g).sum(), x, create_graph=True)
    torch.testing.assert_close(dx, dx_ref, rtol=0, atol=1e-12)
    u = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (ddx,) = torch.autograd.grad((dx * u).sum(), x)  # second order: what an HVP differentiates
    (ddx_ref,) = torch.autograd.grad((dx_ref * u).sum(), x)
    torch.testing.assert_close(ddx, ddx_ref, rtol=0, atol=1e-11)


def test_fused_batchnorm_running_statistics_follow_torch_rule():
    x = torch.randn(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    layer = BatchNormNoAffine(3, eps=0.0, track_running_stats=True, momentum=0.1).double()
    layer(x)
    torch.testing.assert_close(layer.running_mean, 0.1 * x.mean(0), rtol=0, atol=1e-15)
    torch.testing.assert_close(layer.running_var, 0.9 + 0.1 * x.var(0, correction=1), rtol=0, atol=1e-15)
    layer.eval()
    expected = (x - layer.running_mean) / layer.running_var.sqrt()
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-13)


def test_scale_invariant_mlp_hessian_matches_dense_reference_of_the_two_pass_net(monkeypatch):
    """The EoS net (fused BN, eps = 0): operator HVPs vs the dense Hessian of the old formula's net."""
    model = ScaleInvariantMLP(6, widths=(5, 4), num_classes=3, seed=1, dtype=torch.float64)  # N = 50
    g = torch.Generator().manual_seed(6)
    data = [(torch.randn(30, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (30,), generator=g))]
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    monkeypatch.setattr(BatchNormNoAffine, "forward", lambda self, x: _two_pass_bn(x, self.eps))
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    for seed in range(3):
        v = rand_vec(50, seed)
        torch.testing.assert_close(op @ v, H @ v, rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def problem():
    model, data = make_bn_mlp(), [make_data(20, 1)]
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    return model, data, H, torch.linalg.eigvalsh(H).flip(0)


@pytest.mark.parametrize("method", ["lanczos", "arpack"])
@pytest.mark.parametrize("k", [1, 3])
def test_methods_match_dense_eigenvalues(problem, method, k):
    model, data, H, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    res = top_eigenvalues(op, k=k, tol=1e-10, method=method)
    torch.testing.assert_close(torch.tensor(res.eigenvalues, dtype=torch.float64), evals[:k], rtol=1e-8, atol=0)
    lam = torch.tensor(res.eigenvalues, dtype=torch.float64)
    true_res = (H @ res.eigenvectors - res.eigenvectors * lam).norm(dim=0)  # from the dense Hessian
    torch.testing.assert_close(torch.tensor(res.residuals, dtype=torch.float64), true_res, rtol=1e-3, atol=1e-12)
    assert res.matvecs == op.matvec_count


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-6])
def test_lanczos_stops_on_the_relative_residual(problem, tol):
    model, data, H, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    res = top_eigenvalues(op, k=1, tol=tol)
    lam, v = res.eigenvalues[0], res.eigenvectors[:, 0]
    assert (H @ v - lam * v).norm().item() <= tol * lam * (1 + 1e-6)
    assert abs(lam - evals[0].item()) <= tol * lam  # |θ - λ| <= ||r|| for the nearest λ (the top here)


def test_lanczos_thick_restart_and_float32(problem):
    model, data, H, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    small = top_eigenvalues(op, k=2, tol=1e-8, ncv=5)  # restarts every 5 vectors
    torch.testing.assert_close(torch.tensor(small.eigenvalues, dtype=torch.float64), evals[:2], rtol=1e-7, atol=0)
    op32 = HessianOperator(model.float(), F.cross_entropy, [(data[0][0].float(), data[0][1])], "full-batch")
    res = top_eigenvalues(op32, k=1, tol=1e-3)
    assert res.eigenvectors.dtype == torch.float32
    assert res.eigenvalues[0] == pytest.approx(evals[0].item(), rel=1e-3)
    model.double()


def test_warm_start_from_a_nearby_point_is_cheaper(problem):
    model, data, H, _ = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    cold = top_eigenvalues(op, k=1, tol=1e-4)
    point = {n: p.detach() + 1e-3 * torch.randn_like(p, dtype=torch.float64) for n, p in model.named_parameters()}
    moved = HessianOperator(model, F.cross_entropy, data, "full-batch", point=point)
    warm = top_eigenvalues(moved, k=1, tol=1e-4, v0=cold.eigenvectors)
    recold = top_eigenvalues(HessianOperator(model, F.cross_entropy, data, "full-batch", point=point), k=1, tol=1e-4)
    assert warm.eigenvalues[0] == pytest.approx(recold.eigenvalues[0], rel=1e-4)
    assert warm.matvecs < recold.matvecs


def test_unconverged_first_attempt_is_retried_cold_with_a_larger_basis(problem, monkeypatch):
    model, data, _, evals = problem
    calls = []
    real = lanczos_mod.lanczos

    def flaky(op, k, tol, x0, *, max_basis, max_matvecs, generator, stop):
        calls.append((max_basis, x0.clone()))
        out = real(op, k, tol, x0, max_basis=max_basis, max_matvecs=2 if len(calls) == 1 else max_matvecs,
                   generator=generator, stop=stop)
        return out

    monkeypatch.setattr(lanczos_mod, "lanczos", flaky)
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    v0 = rand_vec(91, 9)
    res = top_eigenvalues(op, k=1, tol=1e-6, v0=v0, ncv=10)
    assert [b for b, _ in calls] == [10, 20]
    assert not torch.allclose(calls[1][1], calls[0][1])  # a fresh start, not the warm one again
    assert res.eigenvalues[0] == pytest.approx(evals[0].item(), rel=1e-6)
    assert res.matvecs == op.matvec_count  # both attempts counted


def test_no_convergence_after_the_retry_raises_with_the_partial_result(problem, monkeypatch):
    model, data, _, _ = problem
    real = lanczos_mod.lanczos
    def capped(op, k, tol, x0, *, max_basis, max_matvecs, generator, stop):
        return real(op, k, tol, x0, max_basis=max_basis, max_matvecs=3, generator=generator, stop=stop)

    monkeypatch.setattr(lanczos_mod, "lanczos", capped)
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    with pytest.raises(EigenNotConvergedError, match="a retry") as info:
        top_eigenvalues(op, k=1, tol=1e-12)
    assert info.value.partial is None
    assert op.matvec_count == 6


def test_bad_method_raises(problem):
    model, data, _, _ = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    with pytest.raises(ValueError, match="method must be one of"):
        top_eigenvalues(op, method="eigsh")
