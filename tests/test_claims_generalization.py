"""ire-generalization: smoke tier end to end, the gpu tier's config capped on CPU with a fake CIFAR-10,
paired arms, the LR schedule and the BN-statistics recomputation."""
import math
from dataclasses import replace

import pytest
import torch

from harness.claim.config import apply_overrides, derive
from harness.claim.measurement import RunContext
from harness.claim.registry import get_claim
from harness.errors import ConfigError
from harness.experiments.generalization import (
    ARMS,
    BASES,
    VARIANTS,
    VisionArm,
    VisionBase,
    VisionConfig,
    _optimizer_spec,
    cosine_lr,
    vision_arm,
    vision_base_arms,
)
from harness.experiments.vision_eval import recompute_bn_stats
from harness.optim import OptimizerSpec
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore


def _finite_everywhere(entry):
    for check in entry["checks"]:
        assert check["verdict"] != "error", check
        assert math.isfinite(check["estimate"]["value"])
    assert all(math.isfinite(r["estimate"]["value"]) for r in entry["reported"])


def test_generalization_smoke_tier_runs_end_to_end(tmp_path):
    load_claims()
    summary = run_claims([get_claim("ire-generalization")], RunOptions(tier="smoke"), ResultStore(tmp_path))
    entry = summary["claims"][0]
    assert summary["status"] == "complete" and entry["measured_scale"]["steps"] == 4
    _finite_everywhere(entry)


def test_generalization_gpu_tier_config_runs_capped_on_cpu(fake_cifar10, tmp_path):
    """The gpu tier's own config (ResNet-20, CIFAR-10 pickles, augmentation), 3 steps on a fake archive;
    sizes and the trace's probe count are shrunk so the CPU test stays fast."""
    load_claims()
    claim = get_claim("ire-generalization")
    overrides = {"data_root": str(fake_cifar10), "n_train": "32", "n_test": "20", "trace_probes": "1",
                 "trace_examples": "16"}
    options = RunOptions(tier="gpu", seeds=1, max_steps=3, device="cpu", overrides=overrides)
    entry = run_claims([claim], options, ResultStore(tmp_path))["claims"][0]
    assert all(s["error"] is None for s in entry["seeds"]), entry["seeds"]
    scale = entry["measured_scale"]
    assert scale["model"] == "resnet20" and scale["steps"] == 3 and scale["ire_from_step"] == 1  # round(0.35 * 3)
    assert scale["grad_evals"]["sam_ire"] == 3 * 2 + 1  # SAM's two per step + one Fisher mask at step 1
    assert scale["grad_evals"]["sam_ire_random"] == 3 * 2  # a random mask costs no pass
    _finite_everywhere(entry)


def test_gpu_tier_missing_cifar_fails_before_any_seed(tmp_path):
    from harness.errors import DataError

    load_claims()
    options = RunOptions(tier="gpu", max_steps=1, device="cpu", overrides={"data_root": str(tmp_path / "no")})
    with pytest.raises(DataError, match="does not exist"):
        run_claims([get_claim("ire-generalization")], options, ResultStore(tmp_path / "res"))


TINY = VisionConfig(n_train=100, n_test=60, epochs=2, batch_size=25, trace_examples=32, trace_probes=2)


@pytest.mark.parametrize("base", ["sgd", "sam"])
def test_vision_arms_are_paired_until_ire_switches_on(base):
    ctx = RunContext(seed=3, tier="smoke")
    never = replace(TINY, ire_start=0.99)  # round(0.99 * 8) = 8 steps of warm-up: IRE never acts
    ref = vision_arm(VisionArm(never, base), ctx)
    for v in ("_ire", "_ire_random", "_null"):  # same init, batches, probes; the null reorders from step 8
        assert vision_arm(VisionArm(never, base + v), ctx).scalars == ref.scalars, v
    no_boost = vision_arm(VisionArm(derive(TINY, {"optim.kappa": 0.0}), base + "_lr_boost"), ctx)
    assert no_boost.scalars == vision_arm(VisionArm(TINY, base), ctx).scalars  # lr x (1 + 0 * gamma)
    for v in ("_ire", "_ire_random", "_null"):  # the checks above could fail: each arm acts when on
        active = vision_arm(VisionArm(derive(TINY, {"optim.kappa": 5.0}, ire_start=0.5), base + v), ctx)
        assert active.scalars["trace"] != ref.scalars["trace"], v


@pytest.mark.parametrize(("tier", "max_steps"), [("smoke", None), ("cpu", 30)])
@pytest.mark.parametrize("base", BASES)
def test_vision_base_arms_fork_is_bit_identical_to_each_arm_from_step_0(base, tier, max_steps):
    """Forking every arm from the base run at the switch step gives each arm's numbers exactly (==): the
    smoke tier (4 steps, switch at 1) and the cpu tier capped at 30 steps (switch at 10, mid-epoch: the
    null arm reshuffles the rest of the epoch; Fisher masks at steps 10 and 20)."""
    load_claims()
    cfg = get_claim("ire-generalization").tiers[tier].config
    seen = []
    ctx = RunContext(seed=1000, tier=tier, max_steps=max_steps, progress=lambda k, n: seen.append((k, n)))
    forked = vision_base_arms(VisionBase(cfg, base), ctx)
    total, switch = forked.scale["steps"], forked.scale["ire_from_step"]
    assert (total, switch) == ((4, 1) if tier == "smoke" else (30, 10))
    work = switch + len(VARIANTS) * (total - switch)
    assert forked.scale["steps_trained"] == work and seen[-1] == (work, work)
    assert [k for k, _ in seen] == sorted(k for k, _ in seen)  # progress over the whole sub-run, monotone
    for v in VARIANTS:
        arm = base + v
        alone = vision_arm(VisionArm(cfg, arm), RunContext(seed=1000, tier=tier, max_steps=max_steps))
        for key in ("test_acc", "train_acc", "trace"):
            assert forked.scalars[f"{key}_{arm}"] == alone.scalars[key], (arm, key)
        assert forked.standard_errors[f"trace_{arm}"] == alone.standard_errors["trace"], arm
        assert forked.scale["grad_evals"][arm] == alone.scale["grad_evals"], arm


def test_vision_base_arm_diverging_after_the_switch_is_a_numerical_error():
    """With kappa = 1e30 the base run is untouched (kappa acts from the switch, step 4 of 8) and the first
    IRE arm diverges after it: the base's sub-run raises NumericalError naming that arm and step."""
    from harness.errors import NumericalError

    cfg = replace(derive(TINY, {"optim.kappa": 1e30}), ire_start=0.5)
    with pytest.raises(NumericalError, match=r"^sgd_ire: training loss became nan at step [4-7] "):
        vision_base_arms(VisionBase(cfg, "sgd"), RunContext(seed=3, tier="smoke"))
    alone = vision_arm(VisionArm(cfg, "sgd"), RunContext(seed=3, tier="smoke"))  # the base arm is finite
    assert all(math.isfinite(x) for x in alone.scalars.values())


def test_cosine_lr_runs_from_lr_to_zero():
    assert cosine_lr(0.1, 0, 100) == pytest.approx(0.1)
    assert cosine_lr(0.1, 50, 100) == pytest.approx(0.05)
    assert cosine_lr(0.1, 100, 100) == pytest.approx(0.0, abs=1e-15)


def test_recompute_bn_stats_gives_exact_data_statistics():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3)).double()
    x = torch.randn(40, 1, 6, 6, dtype=torch.float64)
    recompute_bn_stats(model, x, batch=10)
    with torch.no_grad():
        h = model[0](x)  # (40, 3, 4, 4)
    bn = model[1]
    torch.testing.assert_close(bn.running_mean, h.mean(dim=(0, 2, 3)))
    # momentum None averages the per-batch unbiased variances (equal batches): the mean of the four
    per_batch = torch.stack([h[i:i + 10].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 40, 10)])
    torch.testing.assert_close(bn.running_var, per_batch.mean(0))


def test_set_optim_lr_reaches_every_arms_optimizer():
    """`--set optim.lr=0.2` on the claim's tier: every arm's built optimizer starts from 0.2, and each arm's
    spec is the one sam_ire spec reduced to its kind (momentum, WD, rho, kappa, gamma, K carried over)."""
    load_claims()
    cfg = apply_overrides(get_claim("ire-generalization").tiers["cpu"].config, {"optim.lr": "0.2"})
    model = torch.nn.Linear(3, 2)
    kinds = {}
    for arm in ARMS:
        spec = _optimizer_spec(cfg, arm, ire_step=5)
        opt = spec.build(model.parameters(), seed=0)
        groups = getattr(getattr(opt, "base_optimizer", opt), "param_groups", opt.param_groups)
        assert {g["lr"] for g in groups} == {0.2}, arm
        assert (spec.momentum, spec.weight_decay) == (0.9, 5e-4)
        kinds[arm] = (spec.name, spec.mask if "ire" in spec.name else None)
    assert kinds["sgd"] == ("sgd", None) and kinds["sam_null"] == ("sam", None)
    assert kinds["sgd_lr_boost"] == ("sgd", None) and kinds["sam_ire_random"] == ("sam_ire", "random")
    assert kinds["sgd_ire"] == ("ire", "fisher") and _optimizer_spec(cfg, "sgd_ire", 5).warmup_steps == 5


def test_vision_config_rejects_a_spec_the_arms_cannot_derive_from():
    with pytest.raises(ConfigError, match="'sam_ire' OptimizerSpec"):
        derive(VisionConfig(), optim=OptimizerSpec("sgd", lr=0.1))
    for path, value in (("optim.schedule", "cosine"), ("optim.warmup_steps", 3), ("optim.mask", "random")):
        with pytest.raises(ConfigError, match=f"{path} is set by the recipe"):
            derive(VisionConfig(), {path: value})


def test_generalization_checks_are_effects_that_can_fail_below_the_papers_smallest_gain():
    """Each comparative check names the smallest CIFAR gain of its base in the paper and fails when the
    whole interval lies below it (a zero effect measured precisely fails instead of straddling 0)."""
    from harness.claim.expect import Effect
    from harness.claim.verdict import FAILS, HOLDS, decide, estimate

    load_claims()
    claim = get_claim("ire-generalization")
    smallest = {c.metric: c.expect.effect_threshold("cpu") for c in claim.checks}
    assert all(isinstance(c.expect, Effect) and c.source for c in claim.checks)
    assert smallest["sgd_ire_minus_sgd"] == smallest["sgd_ire_minus_random_mask"] == 0.29  # 93.49 -> 93.78
    assert smallest["sam_ire_minus_sam"] == smallest["sam_ire_minus_random_mask"] == 0.12  # 96.58 -> 96.70
    check = claim.checks[2].expect
    assert decide(estimate([0.01, -0.02, 0.0, 0.02, -0.01]), check, "cpu") == FAILS
    assert decide(estimate([1.1, 1.2, 1.0, 1.15, 1.05]), check, "cpu") == HOLDS
    for tier in ("smoke", "cpu", "gpu"):  # the authors' CIFAR default rank 0.1: 90% of coordinates flat
        assert claim.tier(tier).config.optim.gamma == 0.9
