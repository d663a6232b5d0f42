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

vision_arm: one arm (see ARMS), cached per seed.
ire_generalization: all arms through the runner's cache, and the paired differences.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from harness.components import Registry, check_choice
from harness.config import check_bounds
from harness.curvature import HessianOperator, hutchinson_trace
from harness.data import augment_batch, with_label_noise
from harness.data.datasets import DATASETS, check_data_source, load_dataset
from harness.errors import ConfigError, NumericalError
from harness.losses import accuracy
from harness.measurement import Measurement, RunContext
from harness.models import SmallCNN, resnet20
from harness.optim import IRE, SAM, SAMIRE, OptimizerSpec, require_spec
from harness.registry import experiment

BASES = ("sgd", "sam")
VARIANTS = ("", "_ire", "_ire_random", "_lr_boost", "_null")  # base, IRE, two controls, null
ARMS = tuple(base + v for base in BASES for v in VARIANTS)


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


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    model.eval()
    correct = sum(accuracy(model(x[i:i + batch]), y[i:i + batch]) * len(y[i:i + batch])
                  for i in range(0, len(y), batch))
    return 100.0 * correct / max(len(y), 1)


@torch.no_grad()
def _recompute_bn_stats(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    """Running BN statistics = exact averages over x (momentum None), so eval mode matches the data."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch):
        model(x[i:i + batch])


def final_trace(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, cfg: VisionConfig,
                generator: torch.Generator) -> tuple[float, float]:
    """Hutchinson trace of the training loss's Hessian in BN eval mode, on a copy of the model whose
    running statistics are recomputed on x first. Returns (estimate, standard error)."""
    probe = copy.deepcopy(model)
    _recompute_bn_stats(probe, x, cfg.trace_batch)
    b = cfg.trace_batch
    batches = [(x[i:i + b], y[i:i + b]) for i in range(0, len(x), b)]
    op = HessianOperator(probe, loss_fn, batches, bn_mode="eval")
    tr = hutchinson_trace(op, cfg.trace_probes, generator)
    return tr.estimate, tr.std_error


@experiment("ire_vision_arm", VisionArm)
def vision_arm(acfg: VisionArm, ctx: RunContext) -> Measurement:
    """Train one arm with mini-batch SGD/SAM (+IRE); test accuracy (%) and the final Hessian trace."""
    cfg, arm, dev = acfg.base, acfg.arm, ctx.device
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root, images=True)
    x_train, x_test = split.x_train.to(dev), split.x_test.to(dev)
    y_clean, y_test = split.y_train.to(dev), split.y_test.to(dev)
    y_train = y_clean
    if cfg.label_noise > 0:
        y_train = with_label_noise(split.y_train, cfg.label_noise, ctx.generator("label_noise")).to(dev)
    n = len(y_train)
    model = VISION_MODELS.get(cfg.model)(cfg, x_train.shape[1],
                                         ctx.generator("init").initial_seed() % (2**62)).to(dev)
    batch = min(cfg.batch_size, n)
    per_epoch = n // batch
    total = ctx.steps(cfg.epochs * per_epoch)
    ire_step = int(round(cfg.ire_start * total))
    opt = _build_optimizer(cfg, arm, model, ire_step, ctx.generator("mask").initial_seed() % (2**62))
    g_data, g_aug = ctx.generator("data"), ctx.generator("augment")
    g_null = ctx.generator("data_null")  # the null arm's mini-batch order from the switch step on
    reorder = arm.endswith("_null")
    g_mask = ctx.generator("mask_batch")
    x_mask = x_train[torch.randperm(n, generator=g_mask)[:min(cfg.mask_batch, n)].to(dev)]

    def loss_fn(logits, y):
        return F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)

    model.train()
    perm = None
    for step in range(total):
        if step % per_epoch == 0:
            g = g_null if reorder and step >= ire_step else g_data
            perm = torch.randperm(n, generator=g).to(dev)
        elif reorder and step == ire_step:  # mid-epoch switch: reshuffle the rest of this epoch
            done = (step % per_epoch) * batch
            rest = perm[done:]
            perm = torch.cat([perm[:done], rest[torch.randperm(len(rest), generator=g_null).to(dev)]])
        idx = perm[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
        xb, yb = x_train[idx], y_train[idx]
        if cfg.augment:
            xb = augment_batch(xb, g_aug)
        lr = cosine_lr(cfg.optim.lr, step, total)
        if arm.endswith("_lr_boost") and step >= ire_step:
            lr *= 1 + cfg.optim.kappa * cfg.optim.gamma
        for group in opt.param_groups:
            group["lr"] = lr
        if isinstance(opt, IRE) and opt.should_refresh_mask():
            if opt.mask_kind == "fisher":
                model.eval()  # running statistics: the mask batch leaves no trace in BN buffers
                opt.refresh_mask(lambda: _finite_logits(model(x_mask), arm, step))  # noqa: B023 (called at once)
                model.train()
            else:
                opt.refresh_mask()

        def closure(xb=xb, yb=yb):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            return loss

        if isinstance(opt, (SAM, SAMIRE)):  # SAM calls the closure itself, twice
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
        if not torch.isfinite(loss):  # a diverged run is an error verdict, never a measured accuracy
            raise NumericalError(f"{arm}: training loss became {loss.item()} at step {step} (lr {lr:g})")
        if step % 20 == 0:
            ctx.progress(step, total)
    ctx.progress(total, total)
    _check_finite(model, arm, total)

    s = {"test_acc": _accuracy(model, x_test, y_test, cfg.eval_batch),
         "train_acc": _accuracy(model, x_train, y_clean, cfg.eval_batch)}
    k = min(cfg.trace_examples, n)
    s["trace"], trace_se = final_trace(model, loss_fn, x_train[:k], y_train[:k], cfg, ctx.generator("trace"))
    grad_evals = getattr(opt, "grad_evals", None)
    n_params = sum(p.numel() for p in model.parameters())
    scale = {"model": cfg.model, "params": n_params, "data": cfg.data, "n_train": n, "n_test": len(y_test),
             "steps": total, "ire_from_step": ire_step, "arm": arm,
             "grad_evals": grad_evals if grad_evals is not None else total}
    return Measurement(scalars=s, standard_errors={"trace": trace_se}, scale=scale)


@experiment("ire_generalization", VisionConfig,
            outputs=('null_sam_reorder_minus_sam', 'null_sgd_reorder_minus_sgd', 'sam_ire_minus_lr_boost',
                     'sam_ire_minus_random_mask', 'sam_ire_minus_sam', 'sam_ire_random_minus_sam',
                     'sam_lr_boost_minus_sam', 'sam_minus_sgd', 'sgd_ire_minus_lr_boost',
                     'sgd_ire_minus_random_mask', 'sgd_ire_minus_sgd', 'sgd_ire_random_minus_sgd',
                     'sgd_lr_boost_minus_sgd', 'test_acc_sam', 'test_acc_sam_ire', 'test_acc_sam_ire_random',
                     'test_acc_sam_lr_boost', 'test_acc_sam_null', 'test_acc_sgd', 'test_acc_sgd_ire',
                     'test_acc_sgd_ire_random', 'test_acc_sgd_lr_boost', 'test_acc_sgd_null',
                     'trace_ratio_sam_ire_over_sam', 'trace_ratio_sam_ire_random_over_sam',
                     'trace_ratio_sam_lr_boost_over_sam', 'trace_ratio_sam_null_over_sam',
                     'trace_ratio_sgd_ire_over_sgd', 'trace_ratio_sgd_ire_random_over_sgd',
                     'trace_ratio_sgd_lr_boost_over_sgd', 'trace_ratio_sgd_null_over_sgd', 'trace_sam',
                     'trace_sam_ire', 'trace_sam_ire_random', 'trace_sam_lr_boost', 'trace_sam_null', 'trace_sgd',
                     'trace_sgd_ire', 'trace_sgd_ire_random', 'trace_sgd_lr_boost', 'trace_sgd_null',
                     'train_acc_sam', 'train_acc_sam_ire', 'train_acc_sam_ire_random', 'train_acc_sam_lr_boost',
                     'train_acc_sam_null', 'train_acc_sgd', 'train_acc_sgd_ire', 'train_acc_sgd_ire_random',
                     'train_acc_sgd_lr_boost', 'train_acc_sgd_null'),
            curves={'arms': ('arm', 'test_acc', 'trace')})
def ire_generalization(cfg: VisionConfig, ctx: RunContext) -> Measurement:
    """Every arm for this seed (cached), then paired differences in test accuracy and trace.

    For each base b in (sgd, sam): b_ire_minus_b (the claim), b_ire_minus_random_mask (IRE against its
    random-mask control), b_ire_minus_lr_boost, the controls against b, and null_b_reorder_minus_b
    (the same base with another mini-batch order from the switch step: what "no effect" reads).
    """
    m = {arm: ctx.run(vision_arm, VisionArm(cfg, arm)) for arm in ARMS}
    s = {}
    for arm in ARMS:
        s[f"test_acc_{arm}"] = m[arm].scalars["test_acc"]
        s[f"train_acc_{arm}"] = m[arm].scalars["train_acc"]
        s[f"trace_{arm}"] = m[arm].scalars["trace"]
    for b in BASES:
        acc = {v: s[f"test_acc_{b}{v}"] for v in VARIANTS}
        s[f"{b}_ire_minus_{b}"] = acc["_ire"] - acc[""]
        s[f"{b}_ire_minus_random_mask"] = acc["_ire"] - acc["_ire_random"]
        s[f"{b}_ire_minus_lr_boost"] = acc["_ire"] - acc["_lr_boost"]
        s[f"{b}_ire_random_minus_{b}"] = acc["_ire_random"] - acc[""]
        s[f"{b}_lr_boost_minus_{b}"] = acc["_lr_boost"] - acc[""]
        s[f"null_{b}_reorder_minus_{b}"] = acc["_null"] - acc[""]
        for v in VARIANTS[1:]:
            s[f"trace_ratio_{b}{v}_over_{b}"] = s[f"trace_{b}{v}"] / s[f"trace_{b}"]
    s["sam_minus_sgd"] = s["test_acc_sam"] - s["test_acc_sgd"]
    table = pd.DataFrame({"arm": list(ARMS), "test_acc": [s[f"test_acc_{a}"] for a in ARMS],
                          "trace": [s[f"trace_{a}"] for a in ARMS]})
    first = m["sgd"].scale
    scale = {k: first[k] for k in ("model", "params", "data", "n_train", "n_test", "steps", "ire_from_step")}
    scale["grad_evals"] = {a: m[a].scale["grad_evals"] for a in ARMS}
    scale["trace"] = (f"Hutchinson, {cfg.trace_probes} probes, {min(cfg.trace_examples, first['n_train'])} "
                      "training examples, training loss, bn_mode=eval after recomputing BN statistics")
    notes = []
    if ctx.max_steps is not None and first["steps"] < cfg.epochs * (first["n_train"] // min(cfg.batch_size,
                                                                                           first["n_train"])):
        notes.append(f"capped at {first['steps']} steps (--max-steps): the accuracies are not the recipe's")
    return Measurement(scalars=s, curves={"arms": table}, scale=scale, notes=notes)
