"""OptimizerSpec: strict construction, one registry, the torch optimizer it builds, and its stability
threshold checked against the iteration itself on quadratics (float64)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from harness.errors import ConfigError
from harness.optim import (
    IRE,
    SAM,
    SAMIRE,
    IREProjected,
    OptimizerKind,
    OptimizerSpec,
    optimizer_kind,
    optimizer_names,
    register_optimizer,
    requires_closure,
    sgd_stability_threshold,
)

# One valid spec per registered name (the fields each kind needs beyond name and lr).
NEEDS = {"sgd": {}, "adamw": {}, "sam": {"rho": 0.05}, "ire": {"kappa": 2.0, "gamma": 0.6},
         "sam_ire": {"rho": 0.05, "kappa": 2.0, "gamma": 0.6}, "adamw_ire": {"kappa": 2.0, "gamma": 0.6},
         "ire_projected": {"kappa": 2.0, "mask_every": 1}}
BUILT = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW, "sam": SAM, "ire": IRE, "sam_ire": SAMIRE,
         "adamw_ire": IRE, "ire_projected": IREProjected}


def _param(n: int = 4) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.linspace(-1, 1, n, dtype=torch.float64))


def test_optimizer_spec_registry_lists_every_kind_once():
    assert optimizer_names() == sorted(NEEDS)


def test_optimizer_spec_unknown_name_suggests_the_closest():
    with pytest.raises(ConfigError, match=r"unknown optimizer 'sdg'; did you mean sgd\?.*optimizers: adamw"):
        OptimizerSpec("sdg", lr=0.1)
    with pytest.raises(ConfigError, match="did you mean sam_ire"):
        optimizer_kind("samire")


@pytest.mark.parametrize("name,field,value,fix", [
    ("sgd", "rho", 0.05, "sam, sam_ire"),
    ("sgd", "kappa", 1.0, "adamw_ire, ire, ire_projected, sam_ire"),
    ("sgd", "betas", (0.9, 0.95), "adamw, adamw_ire"),
    ("adamw", "momentum", 0.9, "ire, ire_projected, sam, sam_ire, sgd"),
    ("sam", "gamma", 0.5, "adamw_ire, ire, sam_ire"),
])
def test_optimizer_spec_rejects_a_field_its_kind_does_not_read(name, field, value, fix):
    with pytest.raises(ConfigError, match=rf"'{name}' does not read {field}=.*one of: {fix}\)"):
        OptimizerSpec(name, lr=0.1, **NEEDS[name], **{field: value})


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="sgd", lr=0.0), r"lr must be in \(0.0"),
    (dict(name="sgd", lr=math.inf), "lr must be in"),
    (dict(name="sgd", lr=True), "lr must be a number"),
    (dict(name="sgd", lr=0.1, momentum=1.0), r"momentum must be in \[0.0, 1.0\)"),
    (dict(name="sgd", lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (dict(name="sgd", lr=0.1, nesterov=1), "nesterov must be True or False"),
    (dict(name="sgd", lr=0.1, weight_decay=-1e-3), "weight_decay must be in"),
    (dict(name="sam", lr=0.1), "needs a SAM radius rho > 0"),
    (dict(name="ire", lr=0.1, kappa=1.0), "needs a flat fraction gamma"),
    (dict(name="ire", lr=0.1, kappa=1.0, gamma=0.5, mask_every=0), "mask_every must be an int >= 1"),
    (dict(name="ire", lr=0.1, kappa=1.0, gamma=0.5, mask="fischer"), "mask must be one of"),
    (dict(name="adamw", lr=0.1, betas=(0.9,)), "betas must be a pair"),
    (dict(name="sgd", lr=0.1, schedule="cosin"), "did you mean cosine"),
    (dict(name="sgd", lr=0.1, final_lr_fraction=1.5), "final_lr_fraction must be in"),
])
def test_optimizer_spec_rejects_bad_values_when_built(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        OptimizerSpec(**kwargs)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_optimizer_spec_builds_its_kind_over_the_given_params(name):
    p = _param()
    opt = OptimizerSpec(name, lr=0.05, weight_decay=1e-3, **NEEDS[name]).build([p], seed=1)
    assert type(opt) is BUILT[name]
    assert [q for g in opt.param_groups for q in g["params"]] == [p]
    assert all(g["lr"] == 0.05 and g["weight_decay"] == 1e-3 for g in opt.param_groups)


def test_optimizer_spec_sgd_carries_momentum_nesterov_and_group_overrides():
    a, b = _param(), _param(3)
    spec = OptimizerSpec("sgd", lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt = spec.build([{"params": [a]}, {"params": [b], "weight_decay": 0.0}])
    assert isinstance(opt, torch.optim.SGD)
    g0, g1 = opt.param_groups
    assert (g0["momentum"], g0["nesterov"], g0["weight_decay"], g1["weight_decay"]) == (0.9, True, 5e-4, 0.0)


def test_optimizer_spec_adamw_and_its_ire_carry_betas_eps_and_ire_fields():
    spec = OptimizerSpec("adamw_ire", lr=6e-4, betas=(0.9, 0.95), eps=1e-16, weight_decay=0.1, kappa=3.0,
                         gamma=0.6, mask="random", mask_every=10, warmup_steps=5)
    opt = spec.build([_param()], seed=3)
    assert isinstance(opt.base_optimizer, torch.optim.AdamW)
    assert opt.param_groups[0]["betas"] == (0.9, 0.95) and opt.param_groups[0]["eps"] == 1e-16
    assert (opt.kappa, opt.gamma, opt.mask_kind, opt.mask_every, opt.warmup_steps) == (3.0, 0.6, "random", 10, 5)
    # The seed is the optimizer's own generator: the same seed draws the same random mask.
    again = spec.build([_param()], seed=3)
    assert torch.equal(opt.generator.get_state(), again.generator.get_state())
    assert not torch.equal(opt.generator.get_state(), spec.build([_param()], seed=4).generator.get_state())


def test_optimizer_spec_is_frozen_and_equal_for_equal_fields():
    a = OptimizerSpec("sgd", lr=0.1, momentum=0.9)
    assert a == OptimizerSpec("sgd", lr=0.1, momentum=0.9) and hash(a) == hash(OptimizerSpec("sgd", lr=0.1, momentum=0.9))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.lr = 0.2  # type: ignore[misc]


def test_stability_threshold_formulas():
    lr, b = 0.2, 0.9
    assert OptimizerSpec("sgd", lr=lr).stability_threshold() == pytest.approx(2 / lr, rel=1e-15)
    assert OptimizerSpec("sgd", lr=lr, momentum=b).stability_threshold() == pytest.approx((2 + 2 * b) / lr)
    nesterov = OptimizerSpec("sgd", lr=lr, momentum=b, nesterov=True).stability_threshold()
    assert nesterov == pytest.approx((2 + 2 * b) / ((1 + 2 * b) * lr))
    for name in ("sam", "ire", "adamw"):
        assert OptimizerSpec(name, lr=lr, **NEEDS[name]).stability_threshold() is None


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.5, False), (0.9, False), (0.5, True), (0.9, True)])
def test_stability_threshold_separates_stable_from_divergent_quadratics(momentum, nesterov):
    """The built torch optimizer on L = a/2 θ²: shrinks for a 5% below the threshold, grows 5% above
    (slowest rates over these cases: |z| = 0.949 and 1.10 per step, so 400 steps separate them by 1e20)."""
    lr = 0.1
    threshold = sgd_stability_threshold(lr, momentum, nesterov)

    def final_abs(a: float, steps: int = 400) -> float:
        theta = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
        opt = OptimizerSpec("sgd", lr=lr, momentum=momentum, nesterov=nesterov).build([theta])
        for _ in range(steps):
            theta.grad = a * theta.detach().clone()  # grad of a/2 θ²
            opt.step()
        return abs(theta.item())

    assert final_abs(0.95 * threshold) < 1e-5
    assert final_abs(1.05 * threshold) > 1e5


def test_lr_at_constant_warmup_and_cosine():
    const = OptimizerSpec("sgd", lr=0.1, lr_warmup_steps=4)
    assert [const.lr_at(t, 100) for t in (0, 3, 4, 99)] == pytest.approx([0.025, 0.1, 0.1, 0.1])
    cos = OptimizerSpec("sgd", lr=0.1, schedule="cosine", final_lr_fraction=0.05)
    assert cos.lr_at(0, 100) == pytest.approx(0.1)
    assert cos.lr_at(50, 100) == pytest.approx(0.1 * (0.05 + 0.95 * 0.5))
    assert cos.lr_at(100, 100) == pytest.approx(0.005) and cos.lr_at(150, 100) == pytest.approx(0.005)
    plain = OptimizerSpec("sgd", lr=0.1, schedule="cosine")  # final 0: lr (1 + cos(pi t / T)) / 2
    assert [plain.lr_at(t, 8) for t in range(9)] == pytest.approx(
        [0.1 * 0.5 * (1 + math.cos(math.pi * t / 8)) for t in range(9)], rel=1e-15)


def test_requires_closure_for_sam_and_what_wraps_it():
    p = _param()
    assert requires_closure(OptimizerSpec("sam", lr=0.1, rho=0.05).build([p]))
    assert requires_closure(OptimizerSpec("sam_ire", lr=0.1, **NEEDS["sam_ire"]).build([p]))
    assert not requires_closure(OptimizerSpec("sgd", lr=0.1).build([p]))
    assert not requires_closure(OptimizerSpec("ire", lr=0.1, **NEEDS["ire"]).build([p]))


def test_register_optimizer_rejects_duplicates_and_unknown_fields():
    with pytest.raises(ValueError, match="registered twice"):
        register_optimizer(OptimizerKind("sgd", lambda s, p, seed: None, frozenset()))
    with pytest.raises(ValueError, match=r"unknown spec fields \['lr_decay'\]"):
        register_optimizer(OptimizerKind("sgd_decay", lambda s, p, seed: None, frozenset({"lr_decay"})))
    assert "sgd_decay" not in optimizer_names()
