"""SAM and SAM-IRE against hand-computed steps on a quadratic L = ½ θᵀAθ (float64)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from harness.optim import SAM, SAMIRE

RHO, LR = 0.05, 0.1


def _quadratic() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    B = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    A = B @ B.T + 0.1 * torch.eye(5, dtype=torch.float64)  # (5, 5) SPD
    theta0 = torch.randn(5, generator=gen, dtype=torch.float64)  # (5,)
    return A, theta0


def _closure(theta: nn.Parameter, A: torch.Tensor, opt: torch.optim.Optimizer):
    def closure():
        opt.zero_grad()
        loss = 0.5 * theta @ A @ theta
        loss.backward()
        return loss

    return closure


def _sam_reference_step(A: torch.Tensor, theta: torch.Tensor, rho: float) -> torch.Tensor:
    g = A @ theta  # ∇L(θ)
    eps = rho * g / g.norm()
    return A @ (theta + eps)  # g′ = ∇L(θ + ε)


def test_sam_matches_hand_computed_step_on_quadratic():
    A, theta0 = _quadratic()
    theta = nn.Parameter(theta0.clone())
    opt = SAM(torch.optim.SGD([theta], lr=LR), rho=RHO)
    theta.grad = torch.full_like(theta0, 123.0)  # stale .grad: step must use the closure's gradient
    loss = opt.step(_closure(theta, A, opt))
    expected = theta0 - LR * _sam_reference_step(A, theta0, RHO)
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(loss.detach(), 0.5 * theta0 @ A @ theta0)  # loss at the unperturbed θ
    assert opt.grad_evals == 2


def test_sam_with_momentum_matches_two_hand_computed_steps():
    A, theta0 = _quadratic()
    theta = nn.Parameter(theta0.clone())
    opt = SAM(torch.optim.SGD([theta], lr=LR, momentum=0.9), rho=RHO)
    for _ in range(2):
        opt.step(_closure(theta, A, opt))
    buf = _sam_reference_step(A, theta0, RHO)
    theta1 = theta0 - LR * buf
    buf = 0.9 * buf + _sam_reference_step(A, theta1, RHO)
    torch.testing.assert_close(theta.detach(), theta1 - LR * buf, rtol=1e-12, atol=1e-14)
    assert opt.grad_evals == 4


def test_sam_zero_gradient_means_no_perturbation():
    A, _ = _quadratic()
    theta = nn.Parameter(torch.zeros(5, dtype=torch.float64))  # the minimum: g = 0
    opt = SAM(torch.optim.SGD([theta], lr=LR), rho=RHO)
    opt.step(_closure(theta, A, opt))
    assert torch.equal(theta.detach(), torch.zeros(5, dtype=torch.float64))


def test_samire_matches_hand_computed_step_with_given_mask():
    A, theta0 = _quadratic()
    m = torch.tensor([True, False, False, True, False])
    kappa = 1 / RHO
    theta = nn.Parameter(theta0.clone())
    opt = SAMIRE(torch.optim.SGD([theta], lr=LR), rho=RHO, kappa=kappa, gamma=0.4)
    opt.set_mask([m])
    opt.step(_closure(theta, A, opt))
    delta = -LR * _sam_reference_step(A, theta0, RHO)  # SAM's realised displacement
    expected = theta0 + delta + kappa * m * delta
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-12, atol=1e-14)
    assert opt.grad_evals == 2


def test_samire_mask_is_computed_at_unperturbed_point_and_counted():
    torch.manual_seed(0)
    model = nn.Linear(3, 4).double()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (8,))
    opt = SAMIRE(torch.optim.SGD(model.parameters(), lr=LR), rho=RHO, kappa=1 / RHO, gamma=0.5, mask_every=2)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    seen = []
    for _ in range(4):
        if opt.should_refresh_mask():
            seen.append([p.detach().clone() for p in model.parameters()])
            opt.refresh_mask(lambda: model(x))
            assert all(torch.equal(a, b) for a, b in zip(seen[-1], model.parameters()))  # θ, not θ + ε
        opt.step(closure)
    assert len(seen) == 2 and opt.grad_evals == 4 * 2 + 2


def test_sam_state_dict_resume_is_bit_identical():
    A, theta0 = _quadratic()

    def run(split: int | None) -> torch.Tensor:
        theta = nn.Parameter(theta0.clone())
        opt = SAM(torch.optim.SGD([theta], lr=LR, momentum=0.9), rho=RHO)
        for t in range(8):
            if t == split:
                buffer = io.BytesIO()
                torch.save(opt.state_dict(), buffer)
                buffer.seek(0)
                opt = SAM(torch.optim.SGD([theta], lr=LR, momentum=0.9), rho=RHO)
                opt.load_state_dict(torch.load(buffer))
            opt.step(_closure(theta, A, opt))
        assert opt.grad_evals == 16
        return theta.detach()

    assert torch.equal(run(None), run(3))


def test_samire_state_dict_resume_is_bit_identical():
    torch.manual_seed(0)
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (8,))

    def run(split: int | None) -> tuple[list[torch.Tensor], int]:
        model = nn.Linear(3, 4).double()
        model.load_state_dict({"weight": torch.ones(4, 3, dtype=torch.float64) * 0.1, "bias": torch.zeros(4)})

        def build():
            base = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
            return SAMIRE(base, rho=RHO, kappa=1 / RHO, gamma=0.5, mask_every=3, ema_beta=0.5, seed=2)

        opt = build()
        for t in range(10):
            if t == split:
                buffer = io.BytesIO()
                torch.save(opt.state_dict(), buffer)
                buffer.seek(0)
                opt = build()
                opt.load_state_dict(torch.load(buffer))
            if opt.should_refresh_mask():
                opt.refresh_mask(lambda: model(x))

            def closure(opt=opt):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x), y)
                loss.backward()
                return loss

            opt.step(closure)
        return [p.detach().clone() for p in model.parameters()], opt.grad_evals

    (full, evals_full), (resumed, evals) = run(None), run(4)
    assert all(torch.equal(a, b) for a, b in zip(full, resumed))
    assert evals == evals_full == 10 * 2 + 4  # SAM: 2 per step; masks at steps 0, 3, 6, 9


def test_sam_rejects_bad_inputs():
    theta = nn.Parameter(torch.zeros(2))
    for rho in (0.0, -0.1):
        with pytest.raises(ValueError, match="rho must be > 0"):
            SAM(torch.optim.SGD([theta], lr=LR), rho=rho)
    with pytest.raises(TypeError, match="base_optimizer"):
        SAM([theta], rho=RHO)
    with pytest.raises(ValueError, match="rho must be > 0"):
        SAMIRE(torch.optim.SGD([theta], lr=LR), rho=0.0, kappa=1.0, gamma=0.5)
    with pytest.raises(ValueError, match="needs a closure"):
        SAM(torch.optim.SGD([theta], lr=LR), rho=RHO).step()
