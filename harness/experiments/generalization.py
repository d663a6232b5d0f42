"""IRE's generalization claim in vision (Wang et al. 2024, Tables 1-4): SGD vs SGD-IRE, SAM vs SAM-IRE.

Every arm of one seed starts from the same initialisation and sees the same mini-batches (and the same
augmentation draws) in the same order, so per-seed differences are paired. IRE is switched on late,
at `ire_start` of training (the authors' CIFAR default: epoch 70 of 200). Controls, for both bases
(SGD and SAM): IRE with a random mask of the same γ, and the base optimizer whose learning rate is
multiplied by (1 + κγ) from the same step on (the average extra step IRE gives when a γ share of
coordinates moves (1 + κ)×). Null arm, for both bases: the base optimizer with the same config whose
mini-batch order from the switch step on comes from another random stream: a perturbation of the
trajectory at the same step with no systematic effect, so its difference to the base is what "no
benefit" reads on the same metric.

So the arms of a base share their first ire_step steps exactly: `vision_base_arms` trains that prefix
once and continues each arm from a copy of its state (model and BN buffers, optimizer state, data
streams, the epoch's order), bit-identical to training each arm from step 0 (`vision_arm`).

vision_arm: one arm (see ARMS) from step 0.
vision_base_arms: the five arms of one base (sgd or sam) from one shared prefix, cached per seed.
The claim's experiment (both bases through the runner's cache, and the paired differences) is
`harness.experiments.ire_vision.ire_generalization`.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.optim import Optimizer

from harness.claim.components import Registry, check_choice
from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.data import augment_batch, with_label_noise
from harness.data.datasets import DATASETS, check_data_source, load_dataset
from harness.errors import ConfigError, NumericalError
from harness.experiments.vision_eval import accuracy_percent, final_trace
from harness.models import SmallCNN, resnet20
from harness.optim import IRE, SAM, SAMIRE, OptimizerSpec, require_spec

BASES = ("sgd", "sam")
VARIANTS = ("", "_ire", "_ire_random", "_lr_boost", "_null")  # base, IRE, two controls, null
ARMS = tuple(base + v for base in BASES for v in VARIANTS)
BASE_OF = {base + v: base for base in BASES for v in VARIANTS}  # arm -> the base whose prefix it shares


# The recipe's nets, 10 classes: builder(cfg, in_channels, seed).
VISION_MODELS: Registry[Callable[[VisionConfig, int, int], torch.nn.Module]] = Registry("vision model")


@VISION_MODELS.register("small_cnn")
def _small_cnn(cfg: VisionConfig, in_channels: int, seed: int) -> torch.nn.Module:
    return SmallCNN(in_channels, 10, width=cfg.width, seed=seed)


@VISION_MODELS.register("resnet20")
def _resnet20(cfg: VisionConfig, in_channels: int, seed: int) -> torch.nn.Module:
    return resnet20(10, seed=seed)


# The recipe's spec (VisionConfig.optim's default), every arm's optimizer derives from it.
OPTIM_DEFAULTS = OptimizerSpec("sam_ire", lr=0.1, momentum=0.9, weight_decay=5e-4, rho=0.05, kappa=2.0, gamma=0.6,
                               mask_every=10)


@dataclass(frozen=True)
class VisionConfig:
    """One training recipe shared by every arm. Optimizer defaults: the paper's CIFAR code (SGD lr 0.1,
    momentum 0.9, WD 5e-4, batch 128, cosine, label smoothing 0.1, SAM ρ = 0.05); κ, γ: see the claim."""

    model: str = "small_cnn"          # small_cnn | resnet20
    width: int = 8                    # small_cnn only
    data: str = "digits"              # digits | cifar10
    data_root: str = ""
    n_train: int = 1000
    n_test: int = 797
    label_noise: float = 0.0
    augment: bool = False             # random crop (pad 4) + flip
    epochs: int = 20
    batch_size: int = 128
    # The spec every arm derives from (`optim.as_kind`): lr (cosine from it), momentum, coupled WD,
    # SAM's rho, IRE's kappa, gamma and refresh period K.
    optim: OptimizerSpec = OPTIM_DEFAULTS
    label_smoothing: float = 0.1
    mask_batch: int = 128             # one fixed batch of training images drawn once (paper's CIFAR rule)
    ire_start: float = 0.35           # IRE on from this fraction of the steps (authors: epoch 70/200)
    trace_examples: int = 256         # training examples for the final Hessian trace
    trace_batch: int = 256
    trace_probes: int = 8
    eval_batch: int = 1000

    def __post_init__(self):
        VISION_MODELS.check(self.model)
        DATASETS.check(self.data)
        if not 0.0 <= self.ire_start < 1.0 or not 0.0 <= self.label_noise < 1.0:
            raise ConfigError("ire_start and label_noise must lie in [0, 1)")
        require_spec("optim", self.optim, ("sam_ire",), role="every arm derives from it",
                     fixed=("schedule", "lr_warmup_steps", "final_lr_fraction", "warmup_steps", "mask"),
                     set_by="the recipe (cosine from optim.lr, IRE from ire_start, the mask per arm)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs}, {self.batch_size}")
        check_bounds(self, at_least_one=("width", "n_train", "n_test", "mask_batch", "trace_examples",
                                         "trace_batch", "trace_probes", "eval_batch"),
                     fraction=("label_smoothing",))

    def preflight(self) -> None:
        """Fail fast on a missing data source, before any seed runs."""
        check_data_source(self.data, self.data_root)


@dataclass(frozen=True)
class VisionArm:
    """One arm of the comparison: the shared recipe `base` and the arm's name (see ARMS)."""

    base: VisionConfig = VisionConfig()
    arm: str = "sgd"

    def __post_init__(self):
        check_choice("arm", self.arm, ARMS)

    def preflight(self) -> None:
        self.base.preflight()


@dataclass(frozen=True)
class VisionBase:
    """The five arms of one base optimizer (`arm` in BASES) on the shared recipe `base`."""

    base: VisionConfig = VisionConfig()
    arm: str = "sgd"

    def __post_init__(self):
        check_choice("arm", self.arm, BASES)

    def preflight(self) -> None:
        self.base.preflight()


def cosine_lr(lr: float, step: int, total: int) -> float:
    """lr · (1 + cos(π step / total)) / 2."""
    return lr * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))


def _optimizer_spec(cfg: VisionConfig, arm: str, ire_step: int) -> OptimizerSpec:
    """The arm's optimizer, derived from cfg.optim: SGD (momentum, coupled WD) under SAM and/or IRE (on
    from ire_step). The lr-boost arms build their base's optimizer; the loop multiplies their lr."""
    if arm.endswith(("_ire", "_ire_random")):
        mask = "random" if arm.endswith("_random") else "fisher"
        kind = "sam_ire" if arm.startswith("sam") else "ire"  # sam_ire(_random), sgd_ire(_random)
        return cfg.optim.as_kind(kind, warmup_steps=ire_step, mask=mask)
    return cfg.optim.as_kind("sam" if arm.startswith("sam") else "sgd")  # base, _lr_boost, _null


def _build_optimizer(cfg: VisionConfig, arm: str, model: torch.nn.Module, ire_step: int, mask_seed: int):
    return _optimizer_spec(cfg, arm, ire_step).build(model.parameters(), seed=mask_seed)


@torch.no_grad()
def _check_finite(model: torch.nn.Module, arm: str, step: int) -> None:
    """Raise NumericalError if a step left a non-finite parameter (before the next loss shows it)."""
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise NumericalError(f"{arm}: a parameter became non-finite by step {step} (the run diverged)")


def _finite_logits(logits: torch.Tensor, arm: str, step: int) -> torch.Tensor:
    """The mask batch's logits, or NumericalError if the run has diverged (not a mask-scoring error)."""
    if not bool(torch.isfinite(logits.detach()).all()):
        raise NumericalError(f"{arm}: logits on the mask batch became non-finite at step {step} (diverged)")
    return logits


@dataclass
class _SeedData:
    """What every arm of one seed shares: data, the fixed mask batch, the step counts and the seeds."""

    cfg: VisionConfig
    x_train: torch.Tensor            # (N, C, H, W)
    y_train: torch.Tensor            # (N,) with label noise, if any
    y_clean: torch.Tensor            # (N,)
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_mask: torch.Tensor             # (mask_batch, C, H, W), drawn once
    batch: int
    per_epoch: int
    total: int                       # steps, after the --max-steps cap
    ire_step: int                    # the switch step: IRE, lr boost and reordering act from here on
    init_seed: int
    mask_seed: int

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)


def _seed_data(cfg: VisionConfig, ctx: RunContext) -> _SeedData:
    dev = ctx.device
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root, images=True)
    x_train, y_clean = split.x_train.to(dev), split.y_train.to(dev)
    y_train = y_clean
    if cfg.label_noise > 0:
        y_train = with_label_noise(split.y_train, cfg.label_noise, ctx.generator("label_noise")).to(dev)
    n = len(y_train)
    batch = min(cfg.batch_size, n)
    total = ctx.steps(cfg.epochs * (n // batch))
    x_mask = x_train[torch.randperm(n, generator=ctx.generator("mask_batch"))[:min(cfg.mask_batch, n)].to(dev)]
    return _SeedData(cfg, x_train, y_train, y_clean, split.x_test.to(dev), split.y_test.to(dev), x_mask, batch,
                     n // batch, total, int(round(cfg.ire_start * total)),
                     ctx.generator("init").initial_seed() % (2**62), ctx.generator("mask").initial_seed() % (2**62))


@dataclass
class _ArmState:
    """One arm's training state before `step`: everything a fork at that step copies."""

    arm: str
    model: torch.nn.Module
    opt: Optimizer
    generators: dict[str, torch.Generator]  # data, augment, data_null (the null arm's order after the switch)
    perm: torch.Tensor | None = None         # this epoch's order
    step: int = 0
    peak_lr: float = 0.0                     # the largest lr stepped with (an IRE wrapper's lr_max)


def _start(d: _SeedData, arm: str, ctx: RunContext) -> _ArmState:
    """An arm at step 0: the seed's initialisation, its optimizer, fresh data streams."""
    model = VISION_MODELS.get(d.cfg.model)(d.cfg, d.x_train.shape[1], d.init_seed).to(ctx.device)
    opt = _build_optimizer(d.cfg, arm, model, d.ire_step, d.mask_seed)
    return _ArmState(arm, model, opt, {s: ctx.generator(s) for s in ("data", "augment", "data_null")})


def _fork(state: _ArmState, arm: str, d: _SeedData) -> _ArmState:
    """A copy of the base arm's state (not past the switch step) continued as `arm` of the same base.

    Up to the switch every arm of a base is the base run (IRE's warm-up steps are base steps; the lr
    boost and the reordering act from the switch on), so the copy is the arm's own state at that step."""
    assert BASE_OF[arm] == state.arm and state.step <= d.ire_step, (state.arm, arm, state.step)
    model = copy.deepcopy(state.model)  # parameters and BN buffers
    opt = _build_optimizer(d.cfg, arm, model, d.ire_step, d.mask_seed)
    base_state = copy.deepcopy(state.opt.state_dict())  # loading does not copy: momentum is updated in place
    if isinstance(opt, IRE):
        opt.load_warmup_state(base_state, state.step, [state.peak_lr] * len(opt.param_groups))
    else:
        opt.load_state_dict(base_state)
    generators = {}
    for name, g in state.generators.items():
        generators[name] = torch.Generator(device=g.device)
        generators[name].set_state(g.get_state())
    return _ArmState(arm, model, opt, generators, state.perm, state.step, state.peak_lr)


def _train(state: _ArmState, d: _SeedData, stop: int, progress: Callable[[int], None]) -> None:
    """Run `state` from its step to `stop` (in place); progress(steps run here) every 20 steps."""
    cfg, arm, model, opt = d.cfg, state.arm, state.model, state.opt
    g_data, g_aug, g_null = (state.generators[s] for s in ("data", "augment", "data_null"))
    reorder, n, dev, start = arm.endswith("_null"), len(d.y_train), d.x_train.device, state.step
    model.train()
    for step in range(start, stop):
        if step % d.per_epoch == 0:
            g = g_null if reorder and step >= d.ire_step else g_data
            state.perm = torch.randperm(n, generator=g).to(dev)
        elif reorder and step == d.ire_step:  # mid-epoch switch: reshuffle the rest of this epoch
            done = (step % d.per_epoch) * d.batch
            rest = state.perm[done:]
            state.perm = torch.cat([state.perm[:done], rest[torch.randperm(len(rest), generator=g_null).to(dev)]])
        idx = state.perm[(step % d.per_epoch) * d.batch:(step % d.per_epoch + 1) * d.batch]
        xb, yb = d.x_train[idx], d.y_train[idx]
        if cfg.augment:
            xb = augment_batch(xb, g_aug)
        lr = cosine_lr(cfg.optim.lr, step, d.total)
        if arm.endswith("_lr_boost") and step >= d.ire_step:
            lr *= 1 + cfg.optim.kappa * cfg.optim.gamma
        for group in opt.param_groups:
            group["lr"] = lr
        state.peak_lr = max(state.peak_lr, lr)
        if isinstance(opt, IRE) and opt.should_refresh_mask():
            if opt.mask_kind == "fisher":
                model.eval()  # running statistics: the mask batch leaves no trace in BN buffers
                opt.refresh_mask(lambda: _finite_logits(model(d.x_mask), arm, step))  # noqa: B023 (called at once)
                model.train()
            else:
                opt.refresh_mask()

        def closure(xb=xb, yb=yb):
            opt.zero_grad()
            loss = d.loss(model(xb), yb)
            loss.backward()
            return loss

        if isinstance(opt, (SAM, SAMIRE)):  # SAM calls the closure itself, twice
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
        if not torch.isfinite(loss):  # a diverged run is an error verdict, never a measured accuracy
            raise NumericalError(f"{arm}: training loss became {loss.item()} at step {step} (lr {lr:g})")
        state.step = step + 1
        if step % 20 == 0:
            progress(step - start)
    progress(stop - start)


def _finish(state: _ArmState, d: _SeedData, ctx: RunContext) -> tuple[dict[str, float], float, int]:
    """The trained arm's test and train accuracy (%) and final trace; its trace's standard error and
    gradient evaluations (steps for SGD; SAM's two per step and Fisher-mask passes under SAM)."""
    model, cfg = state.model, d.cfg
    _check_finite(model, state.arm, d.total)
    s = {"test_acc": accuracy_percent(model, d.x_test, d.y_test, cfg.eval_batch),
         "train_acc": accuracy_percent(model, d.x_train, d.y_clean, cfg.eval_batch)}
    k = min(cfg.trace_examples, len(d.y_train))
    s["trace"], trace_se = final_trace(model, d.loss, d.x_train[:k], d.y_train[:k], batch=cfg.trace_batch,
                                       probes=cfg.trace_probes, generator=ctx.generator("trace"))
    grad_evals = getattr(state.opt, "grad_evals", None)
    return s, trace_se, grad_evals if grad_evals is not None else d.total


def _scale(d: _SeedData, model: torch.nn.Module) -> dict[str, object]:
    return {"model": d.cfg.model, "params": sum(p.numel() for p in model.parameters()), "data": d.cfg.data,
            "n_train": len(d.y_train), "n_test": len(d.y_test), "steps": d.total, "ire_from_step": d.ire_step}


@experiment("vision_arm", VisionArm)
def vision_arm(acfg: VisionArm, ctx: RunContext) -> Measurement:
    """Train one arm from step 0 with mini-batch SGD/SAM (+IRE); test accuracy (%) and the final Hessian
    trace. The claim runs `vision_base_arms` (the same numbers, the shared prefix trained once)."""
    d = _seed_data(acfg.base, ctx)
    state = _start(d, acfg.arm, ctx)
    _train(state, d, d.total, lambda k: ctx.progress(k, d.total))
    s, trace_se, grad_evals = _finish(state, d, ctx)
    scale = _scale(d, state.model) | {"arm": acfg.arm, "grad_evals": grad_evals}
    return Measurement(scalars=s, standard_errors={"trace": trace_se}, scale=scale)


@experiment("vision_base_arms", VisionBase)
def vision_base_arms(bcfg: VisionBase, ctx: RunContext) -> Measurement:
    """Every arm of one base (b, b_ire, b_ire_random, b_lr_boost, b_null): the base run to the switch step
    once, then each arm from a copy of its state. Scalars test_acc_<arm>, train_acc_<arm>, trace_<arm>,
    bit-identical to `vision_arm` per arm."""
    d = _seed_data(bcfg.base, ctx)
    work = d.ire_step + len(VARIANTS) * (d.total - d.ire_step)  # steps trained (vision_arm: 5 x total)
    done = [0]

    def progress(k: int) -> None:  # k steps run so far in the current segment
        ctx.progress(done[0] + k, work)

    prefix = _start(d, bcfg.arm, ctx)
    _train(prefix, d, d.ire_step, progress)
    done[0] += d.ire_step
    s, se, grad_evals = {}, {}, {}
    for v in VARIANTS:
        arm = bcfg.arm + v
        state = _fork(prefix, arm, d)
        _train(state, d, d.total, progress)
        done[0] += d.total - d.ire_step
        m, se[f"trace_{arm}"], grad_evals[arm] = _finish(state, d, ctx)
        s |= {f"{k}_{arm}": x for k, x in m.items()}
    scale = _scale(d, prefix.model) | {"base": bcfg.arm, "grad_evals": grad_evals, "steps_trained": work}
    return Measurement(scalars=s, standard_errors=se, scale=scale)
