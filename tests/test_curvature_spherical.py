"""Spherical sharpness and scale invariance on a tiny scale-invariant BatchNorm net, float64."""

import copy

import pytest
import torch
from curvature_helpers import (
    ignore_jit_script_warning,
)
from torch import nn
from torch.nn import functional as F

from harness.curvature import (
    HessianOperator,
    check_scale_invariance,
    effective_lr,
    spherical_sharpness,
    top_eigenvalues,
    top_hessian_eigenvalue,
)
from harness.curvature.reference import dense_hessian

pytestmark = ignore_jit_script_warning


def scale_invariant_net(seed: int = 0) -> nn.Module:
    """Linear(6, 12, no bias) -> BatchNorm(no affine, eps ~ 0) -> tanh -> fixed Linear(12, 3).

    Only the first weight (N = 72) is trainable, and the loss is invariant to its scale. torch
    2.13 rejects eps = 0 in training, and eps = 1e-30 is ~1e-30 of the pre-BN variance.
    """
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(6, 12, bias=False),
        nn.BatchNorm1d(12, affine=False, eps=1e-30, track_running_stats=False),
        nn.Tanh(),
        nn.Linear(12, 3),
    ).double()
    net[3].requires_grad_(False)
    return net


def plain_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(6, 12, bias=False), nn.Tanh(), nn.Linear(12, 3)).double()
    net[2].requires_grad_(False)
    return net


def make_data():
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(20, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (20,), generator=g))]


def scaled(net: nn.Module, c: float) -> nn.Module:
    out = copy.deepcopy(net)
    with torch.no_grad():
        out[0].weight.mul_(c)
    return out


def test_lambda_max_scales_as_inverse_square():
    net, data = scale_invariant_net(), make_data()
    lam = top_hessian_eigenvalue(net, F.cross_entropy, data, "full-batch", tol=1e-12)
    lam3 = top_hessian_eigenvalue(scaled(net, 3.0), F.cross_entropy, data, "full-batch", tol=1e-12)
    assert lam3.eigenvalues[0] == pytest.approx(lam.eigenvalues[0] / 9.0, rel=1e-6)
    dense = torch.linalg.eigvalsh(dense_hessian(net, F.cross_entropy, data, "full-batch"))[-1].item()
    assert lam.eigenvalues[0] == pytest.approx(dense, rel=1e-6)


def test_rescale_and_product_agree():
    net, data = scale_invariant_net(), make_data()
    net = scaled(net, 2.5)  # ‖w‖ far from 1, so the two methods evaluate different Hessians
    before = copy.deepcopy(net.state_dict())
    res = {
        m: spherical_sharpness(net, F.cross_entropy, data, "full-batch", method=m, tol=1e-12)
        for m in ("rescale", "product")
    }
    assert res["rescale"].value == pytest.approx(res["product"].value, rel=1e-6)
    assert res["rescale"].raw_lambda_max == pytest.approx(res["product"].raw_lambda_max, rel=1e-6)
    assert res["product"].sq_norm == pytest.approx(net[0].weight.square().sum().item(), rel=1e-14)
    for r in res.values():
        assert r.residual < 1e-6 * r.value
        assert r.eigenvector.shape == (72,)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_effective_lr_times_spherical_sharpness_is_lr_times_lambda_max():
    net, data = scaled(scale_invariant_net(), 0.7), make_data()
    lr = 0.1
    s = spherical_sharpness(net, F.cross_entropy, data, "full-batch", tol=1e-12)
    lam = top_hessian_eigenvalue(net, F.cross_entropy, data, "full-batch", tol=1e-12).eigenvalues[0]
    assert effective_lr(lr, [net[0].weight]) * s.value == pytest.approx(lr * lam, rel=1e-6)


def test_spherical_sharpness_warm_start():
    net, data = scale_invariant_net(), make_data()
    cold = spherical_sharpness(net, F.cross_entropy, data, "full-batch", method="product", tol=1e-12)
    warm = spherical_sharpness(net, F.cross_entropy, data, "full-batch", v0=cold.eigenvector, tol=1e-12)
    assert warm.value == pytest.approx(cold.value, rel=1e-6)


def test_check_scale_invariance_detects_invariant_net():
    report = check_scale_invariance(scale_invariant_net(), F.cross_entropy, make_data(), "full-batch")
    assert report.invariant
    assert report.max_rel_dev < 1e-10


def test_check_scale_invariance_detects_non_invariant_net():
    report = check_scale_invariance(plain_net(), F.cross_entropy, make_data(), "eval")
    assert not report.invariant
    assert report.max_rel_dev > 1e-3


def test_effective_lr():
    w = [torch.full((2, 2), 0.5, dtype=torch.float64), torch.ones(1, dtype=torch.float64)]
    assert effective_lr(0.2, w) == pytest.approx(0.2 / 2.0, rel=1e-15)
    with pytest.raises(ValueError, match="nonzero norm"):
        effective_lr(0.1, [torch.zeros(3)])
    with pytest.raises(TypeError, match="iterable of tensors"):
        effective_lr(0.1, {"w": torch.ones(3)})


def test_point_is_used_without_touching_the_model():
    net, data = scale_invariant_net(), make_data()
    w = net[0].weight.detach()
    op = HessianOperator(net, F.cross_entropy, data, "full-batch", point={"0.weight": 3.0 * w})
    lam = top_eigenvalues(op, tol=1e-12).eigenvalues[0]
    lam3 = top_hessian_eigenvalue(
        scaled(net, 3.0), F.cross_entropy, data, "full-batch", tol=1e-12
    ).eigenvalues[0]
    assert lam == pytest.approx(lam3, rel=1e-10)
    assert torch.equal(net[0].weight, w)


def test_bad_arguments_raise():
    net, data = scale_invariant_net(), make_data()
    with pytest.raises(ValueError, match="method must be one of"):
        spherical_sharpness(net, F.cross_entropy, data, "full-batch", method="ratio")
    with pytest.raises(ValueError, match="scales must be"):
        check_scale_invariance(net, F.cross_entropy, data, "full-batch", scales=(0.0,))
    with pytest.raises(ValueError, match="point must have exactly the keys"):
        HessianOperator(net, F.cross_entropy, data, "full-batch", point={"3.weight": net[3].weight})
