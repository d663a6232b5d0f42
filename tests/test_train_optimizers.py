"""train_full_batch_gd with built torch optimizers: the same GD as the hand-written update, the recorded
gradient norm, measurement that leaves the trajectory alone, SAM and IRE in the loop, bad input."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from curvature_helpers import ignore_jit_script_warning, make_bn_mlp, make_data

from harness.optim import IRE, SAM, IREProjected, OptimizerSpec
from harness.train import train_full_batch_gd

pytestmark = ignore_jit_script_warning
LR, WD = 0.3, 1e-2


def _train(model, spec: OptimizerSpec, steps: int = 12, measure_every: int = 5, **kw):
    x, y = make_data(24)
    opt = spec.build([p for p in model.parameters() if p.requires_grad], seed=0)
    result = train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=opt, steps=steps,
                                 measure_every=measure_every, **kw)
    return result, opt


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_train_sgd_with_weight_decay_is_the_hand_written_gd_update():
    """torch SGD(weight_decay) is w - lr (g + wd w); the old loop did (1 - lr wd) w - lr g: same math."""
    model, ref = make_bn_mlp(0), make_bn_mlp(0)
    result, _ = _train(model, OptimizerSpec("sgd", lr=LR, weight_decay=WD), steps=12)
    x, y = make_data(24)
    ref.train()
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(ref(x), y)
        losses.append(loss.item())
        grads = torch.autograd.grad(loss, list(ref.parameters()))
        with torch.no_grad():
            for p, g in zip(ref.parameters(), grads):
                p.mul_(1 - LR * WD).sub_(LR * g)
    torch.testing.assert_close(_flat(model), _flat(ref), rtol=1e-12, atol=1e-13)
    recorded = result.table.set_index("step")["loss"]
    assert recorded[0] == losses[0] and recorded[10] == pytest.approx(losses[10], rel=1e-12)
    assert len(result.angles) == 12 and result.steps_run == 12 and result.diverged_at is None


def test_train_records_grad_sq_norm_of_the_loss_without_weight_decay():
    model = make_bn_mlp(1)
    x, y = make_data(24)
    model.train()
    g0 = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    expected = sum(g.pow(2).sum() for g in g0).item()
    result, _ = _train(model, OptimizerSpec("sgd", lr=LR, weight_decay=0.5), steps=6, measure_every=3)
    table = result.table
    assert list(table["step"]) == [0, 3, 6]
    assert table["grad_sq_norm"].iloc[0] == pytest.approx(expected, rel=1e-12)  # no wd * w term
    assert (table["grad_sq_norm"] > 0).all() and table["grad_sq_norm"].nunique() == 3


@pytest.mark.parametrize("spec", [OptimizerSpec("sgd", lr=LR, weight_decay=WD, momentum=0.9),
                                  OptimizerSpec("sam", lr=LR, rho=0.05),
                                  OptimizerSpec("adamw", lr=1e-2)], ids=["heavy_ball", "sam", "adam"])
def test_train_measurement_leaves_the_trajectory_unchanged(spec):
    """Curvature probes every step vs only at the end: bit-identical parameters and angles."""
    dense, sparse = make_bn_mlp(2), make_bn_mlp(2)
    a, _ = _train(dense, spec, steps=8, measure_every=1)
    b, _ = _train(sparse, spec, steps=8, measure_every=100)
    assert torch.equal(_flat(dense), _flat(sparse)) and a.angles == b.angles
    assert len(a.table) == 9 and list(b.table["step"]) == [0, 8]
    # Same point, different Lanczos warm starts: equal to the solver's tolerance, not bit for bit.
    assert a.table["lambda_max"].iloc[-1] == pytest.approx(b.table["lambda_max"].iloc[-1], rel=1e-4)


def test_train_adam_records_the_preconditioned_sharpness_of_its_next_step():
    """Under Adam a row holds lambda_max(P^-1 H) with P the denominator of the step taken from that point."""
    from harness.curvature import HessianOperator, PreconditionedHessianOperator, top_eigenvalues

    model, replay = make_bn_mlp(4), make_bn_mlp(4)
    result, _ = _train(model, OptimizerSpec("adamw", lr=1e-2), steps=6, measure_every=3, lanczos_tol=1e-9)
    table = result.table.set_index("step")
    assert list(table.index) == [0, 3, 6] and (table["precond_lambda_max"] > table["lambda_max"]).all()
    assert table["lr_precond_lambda_max"].to_numpy() == pytest.approx(1e-2 * table["precond_lambda_max"].to_numpy())
    # Replay 3 steps by hand, then P from torch's own state after one more gradient: the same eigenvalue.
    x, y = make_data(24)
    opt = torch.optim.AdamW(replay.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(4):
        opt.zero_grad()
        F.cross_entropy(replay(x), y).backward()
        if _ < 3:
            opt.step()
    P = torch.cat([(opt.state[p]["exp_avg_sq"] * 0.999 + 1e-3 * p.grad.square()).div(1 - 0.999 ** 4).sqrt()
                   .add(1e-8).reshape(-1) for p in replay.parameters()])
    op = PreconditionedHessianOperator(HessianOperator(replay, F.cross_entropy, [(x, y)], "full-batch"), P)
    assert table["precond_lambda_max"][3] == pytest.approx(top_eigenvalues(op, tol=1e-10).eigenvalues[0], rel=1e-7)
    sgd, _ = _train(make_bn_mlp(4), OptimizerSpec("sgd", lr=LR), steps=3, measure_every=3)
    assert "precond_lambda_max" not in sgd.table


def test_train_sam_steps_through_a_closure_like_a_manual_sam_loop():
    model, ref = make_bn_mlp(3), make_bn_mlp(3)
    spec = OptimizerSpec("sam", lr=LR, rho=0.05)
    _, opt = _train(model, spec, steps=5)
    assert isinstance(opt, SAM) and opt.grad_evals == 10  # two closure calls per step
    x, y = make_data(24)
    ref.train()
    ref_opt = spec.build(list(ref.parameters()))

    def closure():
        loss = F.cross_entropy(ref(x), y)
        loss.backward()
        return loss

    for _ in range(5):
        ref_opt.step(closure)
    assert torch.equal(_flat(model), _flat(ref))


@pytest.mark.parametrize("mask", ["fisher", "random"])
def test_train_refreshes_an_ire_mask_on_its_schedule(mask):
    model = make_bn_mlp(4)
    spec = OptimizerSpec("ire", lr=LR, kappa=1.0, gamma=0.5, mask=mask, mask_every=3)
    _, opt = _train(model, spec, steps=7)
    assert isinstance(opt, IRE) and opt.num_steps == 7
    assert opt.flat_fraction() == pytest.approx(0.5, abs=0.02)
    assert opt.extra_grad_evals == (3 if mask == "fisher" else 0)  # refreshes before steps 0, 3, 6


def test_train_ire_with_kappa_zero_is_plain_gd():
    ire_model, gd_model = make_bn_mlp(5), make_bn_mlp(5)
    _train(ire_model, OptimizerSpec("ire", lr=LR, kappa=0.0, gamma=0.5), steps=4)
    _train(gd_model, OptimizerSpec("sgd", lr=LR), steps=4)
    assert torch.equal(_flat(ire_model), _flat(gd_model))


def test_train_records_divergence_without_raising():
    """lr * lambda_max ~ 1e5 on a linear model: the loss overflows within ~60 steps."""
    x, y = make_data(24)
    plain = torch.nn.Sequential(torch.nn.Linear(5, 3)).to(torch.float64)
    opt = OptimizerSpec("sgd", lr=1e3).build(list(plain.parameters()))
    result = train_full_batch_gd(plain, lambda out, t: F.mse_loss(out, F.one_hot(t, 3).double()) * 1e3,
                                 x, y, optimizer=opt, steps=200, measure_every=1000)
    assert result.diverged_at is not None and result.steps_run == result.diverged_at < 200
    assert math.isfinite(result.table["loss"].iloc[0])


def test_train_rejects_optimizers_it_cannot_drive():
    model = make_bn_mlp(7)
    x, y = make_data(24)
    params = list(model.parameters())
    with pytest.raises(TypeError, match="built torch.optim.Optimizer"):
        train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=OptimizerSpec("sgd", lr=LR),
                            steps=1, measure_every=1)
    two_lrs = torch.optim.SGD([{"params": params[:2], "lr": 0.1}, {"params": params[2:]}], lr=0.2)
    with pytest.raises(ValueError, match="share one lr"):
        train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=two_lrs, steps=1, measure_every=1)
    with pytest.raises(ValueError, match="exactly the model's trainable parameters"):
        train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=torch.optim.SGD(params[:2], lr=0.1),
                            steps=1, measure_every=1)
    projected = IREProjected(torch.optim.SGD(params, lr=0.1), kappa=1.0)
    with pytest.raises(ValueError, match="pass refresh="):
        train_full_batch_gd(model, F.cross_entropy, x, y, optimizer=projected, steps=1, measure_every=1)


def test_train_calls_the_refresh_hook_on_the_flat_schedule():
    """IREProjected takes its flat directions from the caller: the hook runs before steps 0, 2, 4."""
    model = make_bn_mlp(8)
    n = sum(p.numel() for p in model.parameters())
    U = torch.eye(n, dtype=torch.float64)[:, :5]  # (n, 5): five coordinate directions, orthonormal
    calls = []

    def refresh(opt):
        calls.append(opt.num_steps)
        opt.refresh_mask(lambda: U)

    spec = OptimizerSpec("ire_projected", lr=LR, kappa=1.0, mask_every=2)
    _, opt = _train(model, spec, steps=5, refresh=refresh)
    assert isinstance(opt, IREProjected) and calls == [0, 2, 4]
