"""The opt-in curvature paths against dense float64 references: Lanczos's value stop (Kato-Temple bound with
a capped Ritz gap) and the operator's copy in another dtype (float32 solve of a float64 model)."""

import pytest
import torch
from curvature_helpers import ignore_jit_script_warning, make_bn_mlp, make_data
from torch.nn import functional as F

from harness.curvature import HessianOperator, spherical_sharpness, top_eigenvalues, top_hessian_eigenvalue
from harness.curvature.krylov import GAP_CAP, error_bounds
from harness.curvature.reference import dense_hessian

pytestmark = ignore_jit_script_warning


@pytest.fixture(scope="module")
def problem():
    """5 -> 8 (BatchNorm, tanh) -> 3 MLP, N = 91 (> the dense fallback's 64), float64, and its spectrum."""
    model, data = make_bn_mlp(0), [make_data(20, 1)]
    H = dense_hessian(model, F.cross_entropy, data, "full-batch")
    return model, data, H, torch.linalg.eigvalsh(H).flip(0)


@pytest.mark.parametrize("tol", [1e-2, 1e-3, 1e-5])
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_value_stop_eigenvalue_within_tol_of_dense(problem, tol, start):
    model, data, H, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch")
    v0 = None
    if start == "warm":  # the top eigenvector, perturbed as one measurement to the next moves it
        v0 = torch.linalg.eigh(H).eigenvectors[:, -1] + 0.05 * torch.randn(
            91, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    res = top_eigenvalues(op, tol=tol, v0=v0, stop="value")
    lam = evals[0].item()
    assert abs(res.eigenvalues[0] - lam) <= tol * lam
    assert res.error_bounds[0] <= tol * res.eigenvalues[0]
    v = res.eigenvectors[:, 0]  # the reported residual is the true one
    true_residual = (H @ v - res.eigenvalues[0] * v).norm().item()
    assert true_residual == pytest.approx(res.residuals[0], rel=1e-6, abs=1e-12)
    again = top_eigenvalues(HessianOperator(model, F.cross_entropy, data, "full-batch"), tol=tol, v0=v0,
                            stop="value")
    assert again.eigenvalues == res.eigenvalues and again.matvecs == res.matvecs


def test_value_stop_needs_no_more_hvps_than_residual_stop(problem):
    model, data, _, _ = problem
    counts = {stop: top_eigenvalues(HessianOperator(model, F.cross_entropy, data, "full-batch"), tol=1e-3,
                                    stop=stop).matvecs for stop in ("residual", "value")}
    assert counts["value"] <= counts["residual"]


def test_error_bounds_kato_temple_with_capped_gap():
    theta = torch.tensor([10.0, 9.0, 1.0], dtype=torch.float64)
    res = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    assert error_bounds(theta, res, 1, "residual").tolist() == [0.1]
    # gap 10 - 9 - 0.2 = 0.8, capped at GAP_CAP * 10: r^2 / gap
    expected = 0.1**2 / min(0.8, GAP_CAP * 10)
    assert error_bounds(theta, res, 1, "value").item() == pytest.approx(expected)
    # no positive gap: the residual itself (Weyl)
    assert error_bounds(theta, torch.tensor([0.1, 2.0], dtype=torch.float64), 1, "value").item() == 0.1


def test_value_stop_rejects_arpack(problem):
    model, data, _, _ = problem
    with pytest.raises(ValueError, match="stop"):
        top_eigenvalues(HessianOperator(model, F.cross_entropy, data, "full-batch"), stop="value",
                        method="arpack")
    with pytest.raises(ValueError, match="stop must be one of"):
        top_eigenvalues(HessianOperator(model, F.cross_entropy, data, "full-batch"), stop="gap")


def test_float32_copy_matches_dense_float64(problem):
    model, data, H, evals = problem
    op = HessianOperator(model, F.cross_entropy, data, "full-batch", dtype=torch.float32)
    assert op.dtype == torch.float32 and next(model.parameters()).dtype == torch.float64  # a copy
    v = torch.randn(91, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    hv = op @ v.float()
    assert (hv.double() - H @ v).norm() <= 1e-5 * (H @ v).norm()
    assert abs(op.loss() - HessianOperator(model, F.cross_entropy, data, "full-batch").loss()) < 1e-6
    for stop in ("residual", "value"):
        res = top_hessian_eigenvalue(model, F.cross_entropy, data, "full-batch", tol=1e-3, stop=stop,
                                     dtype=torch.float32)
        assert res.eigenvectors.dtype == torch.float32
        assert abs(res.eigenvalues[0] - evals[0].item()) <= 1e-3 * evals[0].item()


def test_float32_copy_spherical_and_bad_dtype(problem):
    model, data, _, _ = problem
    names = ["0.weight"]
    ref = spherical_sharpness(model, F.cross_entropy, data, "full-batch", params=names, tol=1e-8)
    fast = spherical_sharpness(model, F.cross_entropy, data, "full-batch", params=names, tol=1e-3,
                               stop="value", dtype=torch.float32)
    assert fast.value == pytest.approx(ref.value, rel=1e-3)
    with pytest.raises(TypeError, match="floating torch.dtype"):
        HessianOperator(model, F.cross_entropy, data, "full-batch", dtype=torch.int64)


def test_training_loop_fast_curvature_path_matches_the_default_within_tol():
    from harness.train import train_full_batch_gd

    x, y = make_data(40, 2)
    tables = {}
    for label, kwargs in (("default", {}), ("fast", {"lanczos_stop": "value", "curvature_dtype": torch.float32})):
        model = make_bn_mlp(0)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=1e-2)
        tables[label] = train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=opt, steps=20, measure_every=5,
                                            lanczos_tol=1e-3, **kwargs).table
    a, b = tables["default"]["lambda_max"], tables["fast"]["lambda_max"]
    assert len(a) == len(b) == 5
    assert ((a - b).abs() / a).max() <= 2e-3  # each within 1e-3 of the true λ_max
