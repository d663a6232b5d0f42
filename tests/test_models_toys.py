"""Toy losses: closed-form Hessians, traces and flat projections against torch.func references."""
import pytest
import torch
from torch.func import functional_call, hessian

from harness.models import Figure1Toy, RotatedToy, toy_trace

# torch.func.hessian's forward-mode pass loads decompositions through torch.jit.script (torch's own warning)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _dense_hessian(model):
    """Hessian of model.loss() with respect to θ = cat(flattened u, v), from torch.func."""
    shapes = {name: p.shape for name, p in model.named_parameters()}
    sizes = [p.numel() for p in model.parameters()]

    def f(theta):
        u, v = torch.split(theta, sizes)
        return functional_call(model, {"u": u.reshape(shapes["u"]), "v": v.reshape(shapes["v"])}, ())

    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return hessian(f)(theta)


@pytest.mark.parametrize("u0,v0", [(1.0, 0.01), (-0.7, 0.5), (2.0, 0.0)])
def test_figure1toy_hessian_matches_torch_func(u0, v0):
    toy = Figure1Toy(u0, v0)
    H = toy.hessian()
    torch.testing.assert_close(H, _dense_hessian(toy), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(H, H.T, rtol=0, atol=0)
    assert toy.hessian_trace() == pytest.approx(torch.trace(H).item(), rel=1e-12)
    assert toy.sharpness() == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-12)
    assert toy() == toy.loss()


def test_figure1toy_minimum_sharpness_and_flat_projection():
    toy = Figure1Toy(1.5, 0.0)
    assert toy.sharpness() == pytest.approx(1 + 1.5 ** 2, rel=1e-12)
    assert toy_trace(toy) == pytest.approx(1 + 1.5 ** 2, rel=1e-12)
    P = toy.flat_projection()
    torch.testing.assert_close(toy.hessian() @ P, torch.zeros(2, 2, dtype=torch.float64))


def test_figure1toy_gd_matches_paper():
    # IRE paper, Figure 1: GD with η = 1 from (1, 0.01) ends near u ≈ 0.993 (barely moves along the valley)
    toy = Figure1Toy()
    opt = torch.optim.SGD(toy.parameters(), lr=1.0)
    for _ in range(2000):
        opt.zero_grad()
        toy.loss().backward()
        opt.step()
    assert toy.u.item() == pytest.approx(0.993, abs=1e-3)
    assert abs(toy.v.item()) < 1e-8


@pytest.mark.parametrize("u0,v0", [(1.0, 0.0), (0.8, 0.3)])
@pytest.mark.parametrize("p", [1, 3])
def test_rotated_toy_hessian_and_trace_match_torch_func(p, u0, v0):
    toy = RotatedToy(p, seed=2, u0=u0, v0=v0)
    H = toy.hessian()
    dense = _dense_hessian(toy)
    assert H.shape == (2 * p, 2 * p)
    torch.testing.assert_close(H, dense, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(H, H.T, rtol=1e-12, atol=1e-12)
    assert toy_trace(toy) == pytest.approx(torch.trace(dense).item(), rel=1e-10)
    assert toy.sharpness() == pytest.approx(torch.linalg.eigvalsh(dense)[-1].item(), rel=1e-10)


def test_rotated_toy_flat_projection_annihilates_sharp_directions_at_a_minimum():
    p = 4
    toy = RotatedToy(p, seed=0, u0=1.0, v0=0.0)
    assert toy.loss().item() == pytest.approx(0.0, abs=1e-24)
    H, P = toy.hessian(), toy.flat_projection()
    torch.testing.assert_close(H @ P, torch.zeros(2 * p, 2 * p, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(P @ P, P, rtol=0, atol=1e-12)  # an orthogonal projection of rank p
    torch.testing.assert_close(P, P.T, rtol=0, atol=1e-14)
    assert torch.trace(P).item() == pytest.approx(p, abs=1e-12)
    # the Hessian's null space is exactly range(P): its top p eigenvalues are positive (sharp block)
    evals = torch.linalg.eigvalsh(H)
    assert evals[:p].abs().max() < 1e-12 and evals[p:].min() > 0.5
    # flat directions are not coordinate axes: P's diagonal is nowhere 0 or 1
    diag = torch.diagonal(P)
    assert ((diag > 1e-3) & (diag < 1 - 1e-3)).all()
    # trace at a minimum: (1 + ‖A a‖²) ‖B‖_F²
    a, _ = toy.rotated()
    expected = (1 + (toy.A @ a).square().sum()) * toy.B.square().sum()
    assert toy_trace(toy) == pytest.approx(expected.item(), rel=1e-12)


def test_rotated_toy_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a, b, c = RotatedToy(3, seed=5), RotatedToy(3, seed=5), RotatedToy(3, seed=6)
    assert torch.equal(torch.get_rng_state(), state)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.Q, c.Q)
    ua, ub = a.rotated()
    assert ua.norm().item() == pytest.approx(1.0) and ub.norm().item() == pytest.approx(0.01)
    torch.testing.assert_close(a.Q @ a.Q.T, torch.eye(6, dtype=torch.float64))


def test_toys_reject_bad_input():
    with pytest.raises(TypeError, match="Figure1Toy or RotatedToy"):
        toy_trace(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="p must be a positive int"):
        RotatedToy(0)
    with pytest.raises(TypeError, match="seed"):
        RotatedToy(2, seed="1")
