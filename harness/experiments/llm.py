"""IRE's LLM pre-training speed-up claim (Wang et al. 2024, Fig. 4): 2x fewer steps than AdamW.

ire_llm_speedup: the paper's protocol (AdamW for T and 2T steps, AdmIRE for T; speed-up = 2T / first
    evaluation step at which AdmIRE's validation loss reaches AdamW(2T)'s final loss) plus fairness
    controls: AdamW(T) at as many peak LRs as AdmIRE gets (κ) settings, the speed-up of the best AdmIRE
    against the best AdamW ("fair"), a random-mask IRE control, a speed-up curve over target losses,
    and the same comparison counted in gradient evaluations and wall-clock; every speed-up has a null
    row (plain AdamW(T) scored as the method), and a seed that never reaches the target scores 0 with
    its bound kept apart. Every arm is a cached sub-run (`llm_pretrain_arm`).

IRE's per-step cost (ire_step_overhead) lives in `harness.experiments.llm_overhead`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError
from harness.experiments.llm_train import PretrainSetup, llm_pretrain_arm


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
    speedup: float          # reference steps / method steps if reached; 0 if not (its crossing may never come)
    upper: float            # the speed-up if reached; else reference steps / (horizon + eval_every)
    reached: bool
    method_steps: float     # first step at which the method reached the target (its horizon if never)
    reference_steps: float  # steps the reference needed


def steps_speedup(reference: Curve, method: Curve, target: float, horizon: int, eval_every: int,
                  reference_steps: float | None = None) -> SpeedupPoint:
    """Steps the reference needs to reach `target` over the steps the method needs.

    A method that never reaches the target within its `horizon` scores `speedup` 0, the lower end of
    what its run shows (a crossing after the horizon may never come), so such a seed cannot count
    towards an "at least" check; `upper` keeps its bound apart: reference_steps / (horizon + eval_every),
    what it would read had it reached the target at its next evaluation. A method with no finite loss
    scores 0 and upper 0.

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
        return SpeedupPoint(s_ref / t, s_ref / t, True, t, s_ref)
    finite = np.isfinite(method.losses[method.steps > 0]).any()
    return SpeedupPoint(0.0, s_ref / (horizon + eval_every) if finite else 0.0, False, float(horizon), s_ref)


def speedup_curve(reference: Curve, method: Curve, lo: float, hi: float, n: int, horizon: int,
                  eval_every: int) -> pd.DataFrame:
    """Speed-up (reference steps / method steps to each target) for n targets from hi down to lo.

    Typically lo = AdamW(2T)'s final loss and hi = AdamW(T)'s: every target the longer AdamW run reaches.
    The reference's steps to a target above its final loss are read off the middle of its schedule, where
    its LR is not yet annealed, while the method reaches it annealed: this favours the method, so the
    claim shows the same curve with AdamW(T) as the method (the null curve) beside it.
    """
    targets = np.linspace(max(lo, hi), lo, n)
    points = [steps_speedup(reference, method, float(t), horizon, eval_every) for t in targets]
    return pd.DataFrame({"target_loss": targets, "speedup": [p.speedup for p in points],
                         "upper": [p.upper for p in points], "reached": [float(p.reached) for p in points]})


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
class SpeedupConfig:
    """The comparison: T = `base.steps`; κ settings for AdmIRE and as many peak-LR multipliers for AdamW.

    `base` is the AdamW(T) arm at ×1; every arm is derived from it (its optimizer from `base.optim`, AdmIRE's
    warm-up equal to the LR warm-up). The default AdamW grid ×{1, 3.4} reaches IRE's largest mean step gain
    1 + κγ (3.4 at κ 4, γ 0.6), so "IRE is only a larger step" is tested with as many trials as AdmIRE gets.
    """

    base: PretrainSetup = PretrainSetup()
    kappas: tuple[float, ...] = (3.0, 4.0)          # kappas[0]: the paper-protocol κ
    lr_multipliers: tuple[float, ...] = (1.0, 3.4)  # must start with 1.0: the paper-protocol AdamW
    gamma: float = 0.6
    mask_every: int = 10
    n_targets: int = 11

    def __post_init__(self):
        if len(self.kappas) != len(self.lr_multipliers) or not self.kappas:
            raise ConfigError(f"same tuning budget: as many lr_multipliers as kappas, got "
                              f"{self.lr_multipliers} and {self.kappas}")
        if self.lr_multipliers[0] != 1.0 or min(self.lr_multipliers) <= 0 or min(self.kappas) <= 0:
            raise ConfigError("lr_multipliers must start with 1.0 (the paper's AdamW) and be > 0; kappas > 0")
        if len(set(self.lr_multipliers)) != len(self.lr_multipliers) or len(set(self.kappas)) != len(self.kappas):
            raise ConfigError("lr_multipliers and kappas must not repeat")
        if self.n_targets < 2:
            raise ConfigError(f"n_targets must be >= 2, got {self.n_targets}")
        speedup_arms(self)  # every arm's optimizer is valid (e.g. gamma in (0, 1)) before any seed runs

    def preflight(self) -> None:
        """The base setup's: missing data files, or a tokenizer that cannot load."""
        self.base.preflight()


def speedup_arms(cfg: SpeedupConfig) -> dict[str, PretrainSetup]:
    """Every arm the comparison may run, by name (AdamW at 2T only at ×1 and at the best ×m)."""
    base, spec = cfg.base, cfg.base.optim
    arms = {}
    for m in cfg.lr_multipliers:
        adamw = spec.as_kind("adamw", lr=spec.lr * m)
        for horizon, tag in ((base.steps, "T"), (2 * base.steps, "2T")):
            arms[f"adamw_{tag}_x{m:g}"] = replace(base, steps=horizon, optim=adamw)
    for k in cfg.kappas:
        admire = spec.as_kind("adamw_ire", kappa=k, gamma=cfg.gamma, mask="fisher", mask_every=cfg.mask_every,
                              warmup_steps=spec.lr_warmup_steps)
        arms[f"admire_k{k:g}"] = replace(base, optim=admire)
    first = arms[f"admire_k{cfg.kappas[0]:g}"]
    arms[f"ire_random_k{cfg.kappas[0]:g}"] = replace(first, optim=replace(first.optim, mask="random"))
    return arms


def regime_and_loss_rows(runs: dict[str, Measurement], admire: str, random_ire: str,
                         best_adamw: str) -> dict[str, float]:
    """The premise of a steps speed-up and the early-training loss differences, from the arms' runs.

    tokens_per_param_T: training tokens of AdamW(T) per model parameter (the paper's WikiText-103 run: ~25).
    doubling_gain_share: (L(AdamW T) - L(AdamW 2T)) / L(AdamW T) at lr x1: what doubling the steps buys,
        as a share of the loss (the paper's runs: 2-10%).
    rel_loss_*: paired final-validation-loss differences as a share of AdamW(T, x1)'s loss (negative:
        AdmIRE lower), against AdamW(T) x1, the random-mask IRE (same kappa, gamma) and the best AdamW(T)
        of the LR grid.
    """
    loss = {n: m.scalars["final_val_loss"] for n, m in runs.items()}
    ref = loss["adamw_T_x1"]
    tokens, params = runs["adamw_T_x1"].scalars["tokens"], runs["adamw_T_x1"].scale["params"]
    return {"tokens_per_param_T": tokens / params,
            "doubling_gain_share": (ref - loss["adamw_2T_x1"]) / ref,
            "rel_loss_admire_minus_adamw_T": (loss[admire] - ref) / ref,
            "rel_loss_admire_minus_random_mask": (loss[admire] - loss[random_ire]) / ref,
            "rel_loss_admire_minus_best_adamw": (loss[admire] - loss[best_adamw]) / ref}


def _best(runs: dict[str, Measurement], names: list[str]) -> str:
    """The arm with the lowest final validation loss (a diverged arm's loss is inf)."""
    return min(names, key=lambda n: (runs[n].scalars["final_val_loss"], names.index(n)))


@experiment("ire_llm_speedup", SpeedupConfig,
            outputs=('best_kappa', 'best_lr_multiplier', 'doubling_gain_share', 'rel_loss_admire_minus_adamw_T',
                     'rel_loss_admire_minus_best_adamw', 'rel_loss_admire_minus_random_mask',
                     'tokens_per_param_T', 'fair_adamw_grad_evals', 'fair_adamw_steps',
                     'fair_adamw_tokens', 'fair_adamw_train_time_s', 'fair_admire_grad_evals', 'fair_admire_steps',
                     'fair_admire_tokens', 'fair_admire_train_time_s', 'final_val_loss.*', 'paper_adamw_grad_evals',
                     'paper_adamw_steps', 'paper_adamw_tokens', 'paper_adamw_train_time_s',
                     'paper_admire_grad_evals', 'paper_admire_steps', 'paper_admire_tokens',
                     'paper_admire_train_time_s', 'reached_fair', 'reached_fair_null', 'reached_paper',
                     'reached_paper_null', 'reached_random', 'speedup_curve_median', 'speedup_curve_median_null',
                     'speedup_curve_min', 'speedup_curve_min_null', 'speedup_fair', 'speedup_fair_curve_median',
                     'speedup_fair_curve_median_null', 'speedup_fair_curve_min', 'speedup_fair_curve_min_null',
                     'speedup_fair_grad_evals', 'speedup_fair_grad_evals_null', 'speedup_fair_null',
                     'speedup_fair_upper', 'speedup_fair_upper_null', 'speedup_fair_wall_clock',
                     'speedup_fair_wall_clock_null', 'speedup_paper_grad_evals', 'speedup_paper_grad_evals_null',
                     'speedup_paper_protocol', 'speedup_paper_protocol_null', 'speedup_paper_upper',
                     'speedup_paper_upper_null', 'speedup_paper_wall_clock', 'speedup_paper_wall_clock_null',
                     'speedup_random_mask', 'speedup_random_upper', 'tuning_grad_evals_adamw',
                     'tuning_grad_evals_admire', 'tuning_trials_adamw', 'tuning_trials_admire'),
            curves={'fair_speedup_vs_target': ('speedup', 'speedup_null', 'speedup_reached', 'speedup_upper',
                    'target_loss'), 'speedup_vs_target': ('speedup', 'speedup_null', 'speedup_random',
                    'speedup_reached', 'speedup_upper', 'target_loss'), 'val_loss': ('adamw_*T', 'adamw_*T_best',
                    'adamw_T', 'adamw_T_best', 'admire', 'admire_best', 'ire_random', 'step')})
def ire_llm_speedup(cfg: SpeedupConfig, ctx: RunContext) -> Measurement:
    """All arms as cached sub-runs, then the paper-protocol, fair and random-mask speed-ups, each beside
    its null row (AdamW(T) scored as if it were the method: what "no benefit" reads on the same metric)."""
    arms = speedup_arms(cfg)
    k0, names_T = f"{cfg.kappas[0]:g}", [f"adamw_T_x{m:g}" for m in cfg.lr_multipliers]
    names_ire = [f"admire_k{k:g}" for k in cfg.kappas]
    grid = names_T + ["adamw_2T_x1"] + names_ire + [f"ire_random_k{k0}"]
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
    fair_ire = _best(runs, names_ire)
    T, T2 = runs[paper_ire].scalars["steps"], runs[paper_ref].scalars["steps"]  # < cfg.base.steps when capped
    E = cfg.base.eval_every

    def speedup(ref: str, method: str) -> SpeedupPoint:
        target = runs[ref].scalars["final_val_loss"]
        return steps_speedup(Curve.of(runs[ref]), Curve.of(runs[method]), target, int(T), E, reference_steps=T2)

    # label -> (reference, method, scalar name of the steps speed-up); "_null": AdamW(T) as the method
    rows = {"paper": (paper_ref, paper_ire, "speedup_paper_protocol"),
            "fair": (fair_ref, fair_ire, "speedup_fair"),
            "random": (paper_ref, random_ire, "speedup_random_mask"),
            "paper_null": (paper_ref, "adamw_T_x1", "speedup_paper_protocol_null"),
            "fair_null": (fair_ref, best_T, "speedup_fair_null")}
    points = {label: speedup(ref, method) for label, (ref, method, _) in rows.items()}
    s = {"best_lr_multiplier": float(best_T.rsplit("_x", 1)[1]), "best_kappa": float(fair_ire[len("admire_k"):])}
    for label, (ref, method, name) in rows.items():
        p, base = points[label], label.replace("_null", "")
        null = "_null" if label.endswith("_null") else ""
        s[name], s[f"speedup_{base}_upper{null}"], s[f"reached_{label}"] = p.speedup, p.upper, float(p.reached)
        if base == "random":
            continue
        for unit, column in (("grad_evals", "grad_evals"), ("wall_clock", "train_time_s")):
            s[f"speedup_{base}_{unit}{null}"] = cost_speedup(p, runs[ref], runs[method], column)
        if not null:
            s[f"{base}_adamw_steps"], s[f"{base}_admire_steps"] = p.reference_steps, p.method_steps
            for column in ("tokens", "grad_evals", "train_time_s"):
                s[f"{base}_adamw_{column}"] = cost_at(runs[ref], column, p.reference_steps)
                s[f"{base}_admire_{column}"] = cost_at(runs[method], column, p.method_steps)
    # both tuning budgets: trials, and gradient evaluations spent on the T-step grid (Fisher refreshes count)
    s["tuning_trials_adamw"], s["tuning_trials_admire"] = float(len(names_T)), float(len(names_ire))
    s["tuning_grad_evals_adamw"] = sum(runs[n].scalars["grad_evals"] for n in names_T)
    s["tuning_grad_evals_admire"] = sum(runs[n].scalars["grad_evals"] for n in names_ire)
    for name, m in runs.items():
        s[f"final_val_loss.{name}"] = m.scalars["final_val_loss"]
    s.update(regime_and_loss_rows(runs, paper_ire, random_ire, best_T))

    def curve_of(ref: str, methods: dict[str, str], hi_arm: str) -> pd.DataFrame:
        lo, hi = runs[ref].scalars["final_val_loss"], runs[hi_arm].scalars["final_val_loss"]
        out = None
        for column, method in methods.items():
            c = speedup_curve(Curve.of(runs[ref]), Curve.of(runs[method]), lo, hi, cfg.n_targets, int(T), E)
            if out is None:
                out = c.rename(columns={"upper": f"{column}_upper", "reached": f"{column}_reached"})
            else:
                out[column] = c.speedup.to_numpy()
        return out

    curve = curve_of(paper_ref, {"speedup": paper_ire, "speedup_random": random_ire, "speedup_null": "adamw_T_x1"},
                     "adamw_T_x1")
    fair_curve = curve_of(fair_ref, {"speedup": fair_ire, "speedup_null": best_T}, best_T)
    for c, prefix in ((curve, "speedup_curve"), (fair_curve, "speedup_fair_curve")):
        for stat in ("median", "min"):
            s[f"{prefix}_{stat}"] = float(getattr(c.speedup, stat)())
            s[f"{prefix}_{stat}_null"] = float(getattr(c.speedup_null, stat)())
    chosen = {"adamw_T": "adamw_T_x1", "adamw_2T": paper_ref, "admire": paper_ire, "ire_random": random_ire,
              "adamw_T_best": best_T, "adamw_2T_best": fair_ref, "admire_best": fair_ire}
    losses = pd.concat([runs[n].curves["val"].set_index("step")["val_loss"].rename(c) for c, n in chosen.items()],
                       axis=1).sort_index().reset_index()
    paper, fair, rand, null = points["paper"], points["fair"], points["random"], points["paper_null"]

    def said(p: SpeedupPoint) -> str:
        return f"{p.speedup:.2f}x" if p.reached else f"not reached (0; bound {p.upper:.2f}x)"

    notes = [f"paper protocol {said(paper)}; fair {said(fair)} (AdamW lr x{s['best_lr_multiplier']:g} vs AdmIRE "
             f"kappa {s['best_kappa']:g}); random mask {said(rand)}; null (AdamW(T) as the method) {said(null)}"]
    notes += [f"{n}: {note}" for n, m in runs.items() for note in m.notes]
    ref_scale = runs[paper_ref].scale
    scale = {k: ref_scale[k] for k in ("model", "params", "vocab", "seq_len", "batch_size", "tokens_per_step",
                                       "world_size", "device", "precision", "val_tokens", "data")}
    scale.update(T=int(T), two_T=int(T2), eval_every=E, arms=sorted(runs))
    return Measurement(scalars=s, curves={"val_loss": losses, "speedup_vs_target": curve,
                                          "fair_speedup_vs_target": fair_curve},
                       scale=scale, notes=notes)
