"""HessianOperator against dense float64 Hessians (`reference.dense_hessian`, autograd double backward)."""

import numpy as np
import pytest
import torch
from curvature_helpers import (
    ignore_jit_script_warning,
    make_bn_mlp,
    make_data,
)
from torch import nn
from torch.nn import functional as F

from harness.curvature import HessianOperator, flatten_params, unflatten_like
from harness.curvature.reference import dense_hessian

pytestmark = ignore_jit_script_warning


def populate_running_stats(model: nn.Module) -> None:
    with torch.no_grad():
        model.train()
        for s in range(3):
            model(make_data(16, seed=10 + s)[0] * 2 + 1)


def rand_vec(n: int, seed: int, k: int | None = None) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if k is None else (n, k)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


CASES = {
    "full-batch": lambda x, y: [(x, y)],
    "ghost": lambda x, y: [(x[:12], y[:12]), (x[12:], y[12:])],
    "eval": lambda x, y: [(x[:7], y[:7]), (x[7:], y[7:])],
}


@pytest.mark.parametrize("bn_mode", list(CASES))
def test_hvp_matches_dense(bn_mode):
    model = make_bn_mlp()
    populate_running_stats(model)
    data = CASES[bn_mode](*make_data())
    op = HessianOperator(model, F.cross_entropy, data, bn_mode)
    H = dense_hessian(model, F.cross_entropy, data, bn_mode)
    assert op.bn_mode == bn_mode
    assert op.shape == H.shape == (91, 91)
    assert (op.dtype, op.device) == (torch.float64, torch.device("cpu"))
    for seed in range(3):
        v = rand_vec(91, seed)
        torch.testing.assert_close(op @ v, H @ v, rtol=0, atol=1e-10)


def test_hvp_matrix_input_matches_dense():
    model = make_bn_mlp()
    data = CASES["ghost"](*make_data())
    op = HessianOperator(model, F.cross_entropy, data, "ghost")
    H = dense_hessian(model, F.cross_entropy, data, "ghost")
    V = rand_vec(91, 0, k=3)
    out = op @ V
    assert out.shape == (91, 3)
    torch.testing.assert_close(out, H @ V, rtol=0, atol=1e-10)
    assert op.matvec_count == 3


def test_hvp_symmetric():
    op = HessianOperator(make_bn_mlp(), F.cross_entropy, [make_data()], "full-batch")
    u, v = rand_vec(91, 1), rand_vec(91, 2)
    assert torch.dot(u, op @ v).item() == pytest.approx(torch.dot(v, op @ u).item(), rel=1e-12)


def test_hvp_deterministic_even_with_dropout():
    model = make_bn_mlp(dropout=0.3)
    op = HessianOperator(model, F.cross_entropy, CASES["ghost"](*make_data()), "ghost")
    v = rand_vec(91, 3)
    assert torch.equal(op @ v, op @ v)
    assert torch.equal((op @ v[:, None])[:, 0], op @ v)  # same dropout masks in both formats
    assert torch.equal(op.gradient(), op.gradient())


def test_hvp_leaves_model_state_unchanged():
    model = make_bn_mlp(dropout=0.3)
    populate_running_stats(model)
    model.train()
    model[2].eval()  # mixed flags must be restored per submodule
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    for bn_mode, data in [("ghost", CASES["ghost"](*make_data())), ("eval", [make_data()])]:
        op = HessianOperator(model, F.cross_entropy, data, bn_mode)
        op @ rand_vec(91, 0)
        op @ rand_vec(91, 0, k=2)
        op.gradient()
        op.to_scipy().matvec(np.ones(91))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [m.training for m in model.modules()] == flags
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_hvp_multibatch_equals_full_data_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(torch.float64)
    x, y = make_data()
    batches = [(x[:3], y[:3]), (x[3:12], y[3:12]), (x[12:], y[12:])]  # unequal sizes
    H_full = dense_hessian(model, F.cross_entropy, [(x, y)], "full-batch")
    for bn_mode in ("ghost", "eval"):
        op = HessianOperator(model, F.cross_entropy, batches, bn_mode)
        V = rand_vec(op.shape[0], 5, k=2)
        torch.testing.assert_close(op @ V, H_full @ V, rtol=0, atol=1e-10)
        assert op.loss() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-12)


def test_hvp_params_subset_is_block_of_full_hessian():
    model = make_bn_mlp()
    data = [make_data()]
    names = ["3.weight", "3.bias"]  # the last layer: 27 parameters at the end of the flat order
    op = HessianOperator(model, F.cross_entropy, data, "full-batch", params=names)
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    v = rand_vec(27, 0)
    torch.testing.assert_close(op @ v, H[-27:, -27:] @ v, rtol=0, atol=1e-10)


def test_dense_reference_matches_finite_differences():
    # Validates the reference itself where torch.func.hessian is wrong (BatchNorm, train mode).
    model = make_bn_mlp()
    data = CASES["ghost"](*make_data())
    H = dense_hessian(model, F.cross_entropy, data, "ghost")
    theta = flatten_params(dict(model.named_parameters())).detach()
    eps = 1e-5
    for j in (3, 45, 50, 60, 90):  # first layer, its bias, BatchNorm weight and bias, last layer
        e = torch.zeros_like(theta)
        e[j] = eps
        g_plus = HessianOperator(
            model,
            F.cross_entropy,
            data,
            "ghost",
            point=unflatten_like(theta + e, dict(model.named_parameters())),
        ).gradient()
        g_minus = HessianOperator(
            model,
            F.cross_entropy,
            data,
            "ghost",
            point=unflatten_like(theta - e, dict(model.named_parameters())),
        ).gradient()
        torch.testing.assert_close(H[:, j], (g_plus - g_minus) / (2 * eps), rtol=0, atol=1e-7)


def test_dense_reference_matches_torch_func_hessian_without_batchnorm():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(torch.float64)
    x, y = make_data()
    params = dict(model.named_parameters())
    theta = flatten_params(params).detach()

    def loss(t):
        return F.cross_entropy(torch.func.functional_call(model, unflatten_like(t, params), (x,)), y)

    H = dense_hessian(model, F.cross_entropy, [(x, y)], "eval")
    torch.testing.assert_close(H, torch.func.hessian(loss)(theta), rtol=0, atol=1e-12)


def test_gradient_matches_autograd():
    model = make_bn_mlp()
    x, y = make_data()
    op = HessianOperator(model, F.cross_entropy, [(x[:8], y[:8]), (x[8:], y[8:])], "eval")
    model.eval()
    loss = F.cross_entropy(model(x), y)
    expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])
    torch.testing.assert_close(op.gradient(), expected, rtol=0, atol=1e-12)


def test_to_scipy_matches_dense():
    model = make_bn_mlp()
    op = HessianOperator(model, F.cross_entropy, [make_data()], "full-batch")
    H = dense_hessian(model, F.cross_entropy, [make_data()], "full-batch").numpy()
    A = op.to_scipy()
    v = rand_vec(91, 4).numpy()
    np.testing.assert_allclose(A @ v, H @ v, rtol=0, atol=1e-10)
    np.testing.assert_allclose(A @ np.stack([v, 2 * v], 1), H @ np.stack([v, 2 * v], 1), atol=1e-10)


def test_flatten_unflatten_roundtrip():
    params = dict(make_bn_mlp().named_parameters())
    flat = flatten_params(params)
    assert flat.shape == (91,)
    back = unflatten_like(flat, params)
    assert all(torch.equal(back[k], params[k]) for k in params)
    with pytest.raises(ValueError, match="length 91"):
        unflatten_like(flat[:-1], params)


def test_full_batch_rejects_several_batches():
    with pytest.raises(ValueError, match="exactly one batch"):
        HessianOperator(make_bn_mlp(), F.cross_entropy, CASES["ghost"](*make_data()), "full-batch")


def test_invalid_bn_mode_raises():
    with pytest.raises(ValueError, match="bn_mode must be one of"):
        HessianOperator(make_bn_mlp(), F.cross_entropy, [make_data()], "train")


def test_unknown_param_name_raises():
    with pytest.raises(ValueError, match="Did you mean '3.weight'"):
        HessianOperator(make_bn_mlp(), F.cross_entropy, [make_data()], "eval", params=["3.weigth"])


def test_bad_vector_raises():
    op = HessianOperator(make_bn_mlp(), F.cross_entropy, [make_data()], "eval")
    with pytest.raises(TypeError, match="dtype torch.float64"):
        op @ torch.ones(91, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"expected shape \(91,\)"):
        op @ torch.ones(90, dtype=torch.float64)


def test_bad_data_raises():
    with pytest.raises(ValueError, match="data is empty"):
        HessianOperator(make_bn_mlp(), F.cross_entropy, [], "eval")
    with pytest.raises(TypeError, match=r"\(x, y\) pair"):
        HessianOperator(make_bn_mlp(), F.cross_entropy, [make_data()[0]], "eval")
