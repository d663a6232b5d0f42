"""IRE's LLM pre-training claims (Wang et al. 2024): the 2x speed-up over AdamW, and IRE's per-step cost.

ire_llm_speedup: the paper's protocol (AdamW for T and 2T steps, AdmIRE for T; speed-up = 2T / first
    evaluation step at which AdmIRE's validation loss reaches AdamW(2T)'s final loss) plus fairness
    controls: AdamW(T) at as many peak LRs as AdmIRE gets (κ) settings, the speed-up of the best AdmIRE
    against the best AdamW ("fair"), a random-mask IRE control, a speed-up curve over target losses,
    and the same comparison counted in gradient evaluations and wall-clock. Every arm is a cached
    sub-run (`llm_pretrain_arm`).
ire_step_overhead: wall-clock per step of AdmIRE over AdamW, alternated in one process, and peak memory.
"""
from __future__ import annotations

import ctypes
import gc
import math
import time
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from harness.errors import ConfigError
from harness.experiments.ddp import Comm
from harness.experiments.llm_train import (
    ArmConfig,
    PretrainSetup,
    autocast_for,
    build_model,
    build_optimizer,
    llm_pretrain_arm,
    load_text_data,
    model_logits,
    refresh_mask,
    setup_fields,
    train_step,
)
from harness.measurement import Measurement, RunContext, stream_seed
from harness.optim import IRE
from harness.registry import experiment

PAPER_STEP_TIME_RATIO = 0.185 / 0.165  # ≈ 1.12: AdmIRE vs AdamW seconds per step on one A800 (paper)


# ---------------------------------------------------------------------------------------------------
# Speed-up arithmetic on validation curves (pure functions; tested on known curves)
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """Validation loss at evaluation steps (increasing, step 0 = initialisation)."""

    steps: np.ndarray   # (n,)
    losses: np.ndarray  # (n,)

    @classmethod
    def of(cls, m: Measurement) -> Curve:
        table = m.curves["val"]
        return cls(table["step"].to_numpy(dtype=float), table["val_loss"].to_numpy(dtype=float))


def first_step_reaching(curve: Curve, target: float) -> float | None:
    """The first evaluation step after initialisation with loss <= target, or None (NaN never counts)."""
    hit = np.flatnonzero((curve.steps > 0) & (curve.losses <= target))
    return float(curve.steps[hit[0]]) if len(hit) else None


@dataclass(frozen=True)
class SpeedupPoint:
    speedup: float
    reached: bool
    method_steps: float     # first step at which the method reached the target (its horizon if never)
    reference_steps: float  # steps the reference needed


def steps_speedup(reference: Curve, method: Curve, target: float, horizon: int, eval_every: int,
                  reference_steps: float | None = None) -> SpeedupPoint:
    """Steps the reference needs to reach `target` over the steps the method needs.

    If the method never reaches the target within its `horizon`, its crossing lies beyond the horizon,
    so the speed-up is below reference_steps / horizon. We report a finite, conservative value: the
    smaller of (a) the reference's steps to reach the method's best loss, over the horizon (what the
    method's whole run was worth in reference steps) and (b) reference_steps / (horizon + eval_every)
    (the method reaching the target at its next evaluation). A method with no finite loss gets 0.

    Args:
        reference, method: the two validation curves.
        target: the loss to reach; the reference must reach it.
        horizon: the method's number of steps. eval_every: its evaluation interval.
        reference_steps: the reference's steps to the target if given by protocol (the paper's 2T),
            else its first evaluation step at or below the target.

    Raises:
        ValueError: the reference never reaches the target.
    """
    s_ref = reference_steps if reference_steps is not None else first_step_reaching(reference, target)
    if s_ref is None:
        raise ValueError(f"the reference never reaches the target loss {target:.4g}")
    t = first_step_reaching(method, target)
    if t is not None:
        return SpeedupPoint(s_ref / t, True, t, s_ref)
    losses = method.losses[(method.steps > 0) & np.isfinite(method.losses)]
    if len(losses) == 0:
        return SpeedupPoint(0.0, False, float(horizon), s_ref)
    s_best = first_step_reaching(reference, float(losses.min()))
    bound = s_ref / (horizon + eval_every)
    return SpeedupPoint(min(bound, s_best / horizon) if s_best is not None else bound, False,
                        float(horizon), s_ref)


def speedup_curve(reference: Curve, method: Curve, lo: float, hi: float, n: int, horizon: int,
                  eval_every: int) -> pd.DataFrame:
    """Speed-up (reference steps / method steps to each target) for n targets from hi down to lo.

    Typically lo = AdamW(2T)'s final loss and hi = AdamW(T)'s: every target the longer AdamW run reaches.
    """
    targets = np.linspace(max(lo, hi), lo, n)
    points = [steps_speedup(reference, method, float(t), horizon, eval_every) for t in targets]
    return pd.DataFrame({"target_loss": targets, "speedup": [p.speedup for p in points],
                         "reached": [float(p.reached) for p in points]})


def cost_at(m: Measurement, column: str, step: float) -> float:
    """A cumulative cost column of an arm's curve (grad_evals, train_time_s, tokens) at a step."""
    table = m.curves["val"]
    return float(np.interp(step, table["step"], table[column]))


def cost_speedup(point: SpeedupPoint, reference: Measurement, method: Measurement, column: str) -> float:
    """The steps speed-up converted by each arm's average cost per step over its span to the target."""
    ref_rate = cost_at(reference, column, point.reference_steps) / point.reference_steps
    method_rate = cost_at(method, column, point.method_steps) / point.method_steps
    return point.speedup * ref_rate / method_rate if method_rate > 0 else math.nan


# ---------------------------------------------------------------------------------------------------
# The speed-up claim
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeedupConfig(PretrainSetup):
    """The comparison: T = `steps`; κ settings for AdmIRE and as many peak-LR multipliers for AdamW."""

    kappas: tuple[float, ...] = (3.0, 4.0)          # kappas[0]: the paper-protocol κ
    lr_multipliers: tuple[float, ...] = (1.0, 2.0)  # must start with 1.0: the paper-protocol AdamW
    gamma: float = 0.6
    mask_every: int = 10
    n_targets: int = 11

    def __post_init__(self):
        super().__post_init__()
        if len(self.kappas) != len(self.lr_multipliers) or not self.kappas:
            raise ConfigError(f"same tuning budget: as many lr_multipliers as kappas, got "
                              f"{self.lr_multipliers} and {self.kappas}")
        if self.lr_multipliers[0] != 1.0 or min(self.lr_multipliers) <= 0 or min(self.kappas) <= 0:
            raise ConfigError("lr_multipliers must start with 1.0 (the paper's AdamW) and be > 0; kappas > 0")
        if len(set(self.lr_multipliers)) != len(self.lr_multipliers) or len(set(self.kappas)) != len(self.kappas):
            raise ConfigError("lr_multipliers and kappas must not repeat")
        if self.n_targets < 2:
            raise ConfigError(f"n_targets must be >= 2, got {self.n_targets}")


def speedup_arms(cfg: SpeedupConfig) -> dict[str, ArmConfig]:
    """Every arm the comparison may run, by name (AdamW at 2T only at ×1 and at the best ×m)."""
    base = setup_fields(cfg)
    arms = {}
    for m in cfg.lr_multipliers:
        for horizon, tag in ((cfg.steps, "T"), (2 * cfg.steps, "2T")):
            arms[f"adamw_{tag}_x{m:g}"] = ArmConfig(**{**base, "steps": horizon, "lr": cfg.lr * m})
    for k in cfg.kappas:
        arms[f"admire_k{k:g}"] = ArmConfig(**base, optimizer="ire", mask="fisher", kappa=k, gamma=cfg.gamma,
                                           mask_every=cfg.mask_every)
    arms[f"ire_random_k{cfg.kappas[0]:g}"] = replace(arms[f"admire_k{cfg.kappas[0]:g}"], mask="random")
    return arms


def _best(runs: dict[str, Measurement], names: list[str]) -> str:
    """The arm with the lowest final validation loss (a diverged arm's loss is inf)."""
    return min(names, key=lambda n: (runs[n].scalars["final_val_loss"], names.index(n)))


@experiment("ire_llm_speedup", SpeedupConfig)
def ire_llm_speedup(cfg: SpeedupConfig, ctx: RunContext) -> Measurement:
    """All arms as cached sub-runs, then the paper-protocol, fair and random-mask speed-ups."""
    arms = speedup_arms(cfg)
    k0, names_T = f"{cfg.kappas[0]:g}", [f"adamw_T_x{m:g}" for m in cfg.lr_multipliers]
    grid = names_T + ["adamw_2T_x1"] + [f"admire_k{k:g}" for k in cfg.kappas] + [f"ire_random_k{k0}"]
    runs = {name: ctx.run(llm_pretrain_arm, arms[name]) for name in grid}
    best_T = _best(runs, names_T)
    best_2T = best_T.replace("_T_", "_2T_")
    if best_2T not in runs:
        runs[best_2T] = ctx.run(llm_pretrain_arm, arms[best_2T])
    paper_ref, paper_ire, random_ire = "adamw_2T_x1", f"admire_k{k0}", f"ire_random_k{k0}"
    for name in (paper_ref, paper_ire, "adamw_T_x1"):
        if runs[name].scalars["diverged"]:
            raise FloatingPointError(f"paper-protocol arm {name} diverged: {runs[name].notes}")
    fair_ref = _best(runs, [paper_ref, best_2T])  # the best AdamW at 2T among those run
    fair_ire = _best(runs, [f"admire_k{k:g}" for k in cfg.kappas])
    T, T2 = runs[paper_ire].scalars["steps"], runs[paper_ref].scalars["steps"]  # < cfg.steps when capped
    E = cfg.eval_every

    def speedup(ref: str, method: str) -> SpeedupPoint:
        target = runs[ref].scalars["final_val_loss"]
        return steps_speedup(Curve.of(runs[ref]), Curve.of(runs[method]), target, int(T), E, reference_steps=T2)

    paper, fair, rand = speedup(paper_ref, paper_ire), speedup(fair_ref, fair_ire), speedup(paper_ref, random_ire)
    s = {"speedup_paper_protocol": paper.speedup, "speedup_fair": fair.speedup,
         "speedup_random_mask": rand.speedup, "reached_paper": float(paper.reached),
         "reached_fair": float(fair.reached), "reached_random": float(rand.reached),
         "best_lr_multiplier": float(best_T.rsplit("_x", 1)[1]), "best_kappa": float(fair_ire[len("admire_k"):])}
    for unit, column in (("grad_evals", "grad_evals"), ("wall_clock", "train_time_s")):
        s[f"speedup_paper_{unit}"] = cost_speedup(paper, runs[paper_ref], runs[paper_ire], column)
        s[f"speedup_fair_{unit}"] = cost_speedup(fair, runs[fair_ref], runs[fair_ire], column)
    for label, point, ref, method in (("paper", paper, paper_ref, paper_ire), ("fair", fair, fair_ref, fair_ire)):
        s[f"{label}_adamw_steps"] = point.reference_steps
        s[f"{label}_admire_steps"] = point.method_steps
        for column in ("tokens", "grad_evals", "train_time_s"):
            s[f"{label}_adamw_{column}"] = cost_at(runs[ref], column, point.reference_steps)
            s[f"{label}_admire_{column}"] = cost_at(runs[method], column, point.method_steps)
    for name, m in runs.items():
        s[f"final_val_loss.{name}"] = m.scalars["final_val_loss"]
    lo, hi = runs[paper_ref].scalars["final_val_loss"], runs["adamw_T_x1"].scalars["final_val_loss"]
    curve = speedup_curve(Curve.of(runs[paper_ref]), Curve.of(runs[paper_ire]), lo, hi, cfg.n_targets, int(T), E)
    curve["speedup_random"] = speedup_curve(Curve.of(runs[paper_ref]), Curve.of(runs[random_ire]), lo, hi,
                                            cfg.n_targets, int(T), E)["speedup"]
    fair_hi = runs[best_T].scalars["final_val_loss"]
    fair_curve = speedup_curve(Curve.of(runs[fair_ref]), Curve.of(runs[fair_ire]),
                               runs[fair_ref].scalars["final_val_loss"], fair_hi, cfg.n_targets, int(T), E)
    s["speedup_curve_median"], s["speedup_curve_min"] = float(curve.speedup.median()), float(curve.speedup.min())
    s["speedup_fair_curve_median"] = float(fair_curve.speedup.median())
    chosen = {"adamw_T": "adamw_T_x1", "adamw_2T": paper_ref, "admire": paper_ire, "ire_random": random_ire,
              "adamw_T_best": best_T, "adamw_2T_best": fair_ref, "admire_best": fair_ire}
    losses = pd.concat([runs[n].curves["val"].set_index("step")["val_loss"].rename(c) for c, n in chosen.items()],
                       axis=1).sort_index().reset_index()
    notes = [f"paper protocol {paper.speedup:.2f}x ({'reached' if paper.reached else 'NOT reached: conservative'}); "
             f"fair {fair.speedup:.2f}x (AdamW lr x{s['best_lr_multiplier']:g} vs AdmIRE kappa "
             f"{s['best_kappa']:g}); random mask {rand.speedup:.2f}x"]
    notes += [f"{n}: {note}" for n, m in runs.items() for note in m.notes]
    ref_scale = runs[paper_ref].scale
    scale = {k: ref_scale[k] for k in ("model", "params", "vocab", "seq_len", "batch_size", "tokens_per_step",
                                       "world_size", "device", "precision", "val_tokens", "data")}
    scale.update(T=int(T), two_T=int(T2), eval_every=E, arms=sorted(runs))
    return Measurement(scalars=s, curves={"val_loss": losses, "speedup_vs_target": curve,
                                          "fair_speedup_vs_target": fair_curve},
                       scale=scale, notes=notes)


# ---------------------------------------------------------------------------------------------------
# The per-step overhead claim
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverheadConfig(PretrainSetup):
    """AdmIRE (IRE over AdamW, Fisher mask) vs AdamW: timed blocks of K steps, alternated in one process."""

    kappa: float = 3.0
    gamma: float = 0.6
    mask_every: int = 10   # K; every timed block is K steps, so it holds exactly one mask refresh
    warmup_blocks: int = 1
    blocks: int = 6

    def __post_init__(self):
        super().__post_init__()
        if self.blocks < 2 or self.warmup_blocks < 0 or self.mask_every < 1:
            raise ConfigError("need blocks >= 2, warmup_blocks >= 0, mask_every >= 1")


class TimedArm:
    """A model, its optimizer and its own batch stream (same init and batches for both arms); `block(n)`
    times n training steps (also used by benchmarks/bench_ire_step.py)."""

    def __init__(self, cfg: OverheadConfig, optimizer: str, data, ctx: RunContext):
        self.cfg, self.data, self.device = cfg, data, ctx.device
        self.model = build_model(cfg, data.vocab_size, ctx.generator("init"), ctx.device)
        arm = ArmConfig(**setup_fields(cfg), optimizer=optimizer, kappa=cfg.kappa if optimizer == "ire" else 0.0,
                        gamma=cfg.gamma, mask_every=cfg.mask_every)
        arm = replace(arm, warmup_steps=0)  # IRE active from the first step: every block is steady state
        self.opt = build_optimizer(arm, self.model, seed=stream_seed(ctx.seed, "ire") % (1 << 62))
        self.gen, self.gen_mask = ctx.generator("data"), ctx.generator("mask-data")
        self.autocast = autocast_for(cfg, ctx.device)
        self.loss = math.nan

    def block(self, steps: int) -> float:
        """Seconds for `steps` training steps (synchronised on CUDA)."""
        tic = time.perf_counter()
        for _ in range(steps):
            if isinstance(self.opt, IRE) and self.opt.should_refresh_mask():
                x_mask, _ = self.data.train.get_batch(self.cfg.batch_size, self.cfg.seq_len, self.gen_mask,
                                                      self.device)
                logits_fn = lambda x_mask=x_mask: model_logits(self.model, x_mask, self.autocast)  # noqa: E731
                refresh_mask(self.opt, logits_fn, Comm())
            x, y = self.data.train.get_batch(self.cfg.batch_size, self.cfg.seq_len, self.gen, self.device)
            loss = train_step(self.model, self.opt, x, y, self.cfg.grad_clip, self.autocast)
        self.loss = loss.item()  # also a device sync
        return time.perf_counter() - tic


def _memory_probe(device: torch.device):
    """(reset, peak, method): reset() returns the bytes in use now and restarts the peak; peak() the
    peak since. CUDA: the allocator's peak. CPU: the process's peak resident set on Linux (VmHWM, reset
    through /proc/self/clear_refs after returning freed heap with malloc_trim); NaN where unavailable."""
    if device.type == "cuda":
        def reset():
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            return torch.cuda.memory_allocated(device)
        return reset, lambda: torch.cuda.max_memory_allocated(device), "torch.cuda.max_memory_allocated"

    def status(key: str) -> float:
        try:
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
        except (OSError, StopIteration):
            return math.nan

    def reset():
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return math.nan  # not Linux: the peak cannot be reset
        return status("VmRSS:")
    return reset, lambda: status("VmHWM:"), "peak resident set (Linux VmHWM)"


def _state_bytes(opt) -> int:
    """Bytes of the optimizer's persistent state: AdamW's moments, plus IRE's mask."""
    tensors = [t for st in opt.state.values() for t in st.values() if torch.is_tensor(t)]
    tensors += list(opt.mask or []) if isinstance(opt, IRE) else []
    return sum(t.numel() * t.element_size() for t in tensors)


@experiment("ire_step_overhead", OverheadConfig)
def ire_step_overhead(cfg: OverheadConfig, ctx: RunContext) -> Measurement:
    """Seconds per step of AdmIRE over AdamW from alternating K-step blocks (ABBA order), then the peak
    memory of each arm trained alone from a fresh model."""
    data = load_text_data(cfg, Comm())
    arms = {"adamw": TimedArm(cfg, "adamw", data, ctx), "admire": TimedArm(cfg, "ire", data, ctx)}
    K = cfg.mask_every
    for _ in range(cfg.warmup_blocks):
        for arm in arms.values():
            arm.block(K)
    rows = []
    for b in range(ctx.steps(cfg.blocks)):
        order = ("adamw", "admire") if b % 2 == 0 else ("admire", "adamw")
        seconds = {name: arms[name].block(K) for name in order}
        rows.append({"block": b, "adamw_ms_per_step": 1e3 * seconds["adamw"] / K,
                     "admire_ms_per_step": 1e3 * seconds["admire"] / K, "ratio": seconds["admire"] / seconds["adamw"]})
        ctx.progress(b + 1, cfg.blocks)
    table = pd.DataFrame(rows)
    s = {"step_time_ratio": float(table.admire_ms_per_step.sum() / table.adamw_ms_per_step.sum()),
         "adamw_ms_per_step": float(table.adamw_ms_per_step.mean()),
         "admire_ms_per_step": float(table.admire_ms_per_step.mean()), "paper_ratio": PAPER_STEP_TIME_RATIO,
         "final_loss_adamw": arms["adamw"].loss, "final_loss_admire": arms["admire"].loss}
    se = {"step_time_ratio": float(table.ratio.std(ddof=1) / math.sqrt(len(table)))}
    if not (math.isfinite(s["final_loss_adamw"]) and math.isfinite(s["final_loss_admire"])):
        raise FloatingPointError(f"non-finite training loss: {s['final_loss_adamw']}, {s['final_loss_admire']}")
    n_params = sum(p.numel() for p in arms["adamw"].model.parameters())
    del arms
    reset, peak, method = _memory_probe(ctx.device)
    order = ("adamw", "ire") if ctx.seed % 2 == 0 else ("ire", "adamw")  # alternate which goes first
    for optimizer in order:
        start = reset()
        arm = TimedArm(cfg, optimizer, data, ctx)
        arm.block(K + 1)  # builds AdamW's state, one refresh, amplified steps
        name = "admire" if optimizer == "ire" else "adamw"
        s[f"{name}_peak_mb"] = (peak() - start) / 2**20
        s[f"{name}_state_mb"] = _state_bytes(arm.opt) / 2**20
        del arm
    s["peak_memory_ratio"] = s["admire_peak_mb"] / s["adamw_peak_mb"] if s["adamw_peak_mb"] > 0 else math.nan
    scale = {"model": cfg.model, "params": n_params,
             "tokens_per_step": cfg.batch_size * cfg.seq_len, "K": K, "timed_blocks": len(table),
             "timed_steps_per_arm": len(table) * K, "warmup_steps_excluded": cfg.warmup_blocks * K,
             "device": str(ctx.device), "threads": torch.get_num_threads(), "memory": method}
    notes = [f"AdmIRE/AdamW seconds per step {s['step_time_ratio']:.3f} (paper ≈{PAPER_STEP_TIME_RATIO:.2f}); "
             f"peak memory {s['admire_peak_mb']:.1f} vs {s['adamw_peak_mb']:.1f} MB ({method})"]
    return Measurement(scalars=s, standard_errors=se, curves={"blocks": table}, scale=scale, notes=notes)
