"""Edges of stability that are not GD's 2/lr, read from one full-batch trajectory (`gd_sharpness_trajectory`).

adam_edge_trajectory: full-batch Adam (AdamW with weight decay 0). Its edge is on the preconditioned
    sharpness λ_max(P⁻¹H), P = diag(√v̂ + ε): (2 + 2β₁)/((1 − β₁)η), 38/η at β₁ = 0.9 (Cohen, Ghorbani,
    Krishnan, Agarwal et al. 2022, abstract). Nulls: the raw λ_max on the same run, read as lr·λ_max/2
    (GD's edge) and against the same threshold.
sam_edge_trajectory: full-batch SAM over GD. Its edge (Long & Bartlett 2024, the "SAM-edge" of their
    abstract: the calculation behind GD's 2/η on a local quadratic, repeated for SAM; the closed form here
    is our re-derivation) is where SAM's update on the quadratic, with the gradient norm held fixed, has
    multiplier −1 along the top eigenvector: ηλ(1 + ρλ/‖∇L‖) = 2, i.e. λ_SAM = ‖∇L‖/(2ρ) · (√(1 + 8ρ/(η‖∇L‖)) − 1) < 2/η. It moves
    with ‖∇L(w_t)‖, so it is computed per measurement from that row's gradient norm. Null: the same
    λ_max against GD's 2/η.
Both report the onset (first upward crossing of sharpness / edge = `onset`) and the median of sharpness / edge from the
onset on (no onset: over the last 30% of measurements).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.optim import OptimizerSpec, require_spec

TAIL = 0.3  # without an onset, medians are over the last 30% of measurements


def adam_threshold(lr: float, beta1: float) -> float:
    """(2 + 2β₁)/((1 − β₁)η): full-batch Adam's edge on λ_max(P⁻¹H) (Cohen et al. 2022; 38/η at β₁ = 0.9)."""
    return (2 + 2 * beta1) / ((1 - beta1) * lr)


def sam_edge(lr: float, rho: float, grad_norm: np.ndarray) -> np.ndarray:
    """‖g‖/(2ρ) · (√(1 + 8ρ/(η‖g‖)) − 1): the λ at which ηλ(1 + ρλ/‖g‖) = 2 (Long & Bartlett 2024's SAM-edge).

    Tends to 2/η as ρ/‖g‖ -> 0 and lies below it for ρ > 0. Written as 4/(η(1 + √(1 + x))), x = 8ρ/(η‖g‖)
    (the same value, without cancellation when x is small).
    """
    x = 8 * rho / (lr * np.asarray(grad_norm, dtype=float))
    return 4 / (lr * (1 + np.sqrt(1 + x)))


def edge_metrics(step: np.ndarray, rel: np.ndarray, onset: float) -> tuple[dict, np.ndarray]:
    """Onset and post-onset median of rel = sharpness / edge per measurement.

    The onset is the first upward crossing of `onset`: the first measurement >= onset that follows one below
    it. A run that starts at or above the level (Adam's step 0, whose P is |g_0| + eps from one gradient)
    has to fall below it and rise again; for a run that starts below, it is the first measurement >= onset.

    Returns:
        (scalars, mask of the measurements the medians are taken over: from the onset on, or the last
        30% without one). Scalars: over_edge_initial (step 0), over_edge_pre_onset_min (smallest rel
        before the onset; over the whole run without one), onset_step (nan without onset), onset_fraction
        (1 without onset), over_edge_post_onset_median, over_edge_tail_median.
    """
    below = np.flatnonzero(rel < onset)
    hit = np.flatnonzero(rel >= onset)
    hit = hit[hit > below[0]] if len(below) else hit[:0]
    window = np.zeros(len(rel), dtype=bool)
    window[hit[0] if len(hit) else int(len(rel) * (1 - TAIL)):] = True
    total = max(int(step[-1]), 1)
    return {"over_edge_initial": float(rel[0]),
            "over_edge_pre_onset_min": float(rel[: hit[0]].min() if len(hit) else rel.min()),
            "onset_step": float(step[hit[0]]) if len(hit) else math.nan,
            "onset_fraction": float(step[hit[0]]) / total if len(hit) else 1.0,
            "over_edge_post_onset_median": float(np.median(rel[window])),
            "over_edge_tail_median": float(np.median(rel[int(len(rel) * (1 - TAIL)):]))}, window


def _common(m: Measurement, table: pd.DataFrame) -> dict:
    return {"train_loss_final": m.scalars["train_loss_final"],
            "max_lambda_residual_rel": m.scalars["max_lambda_residual_rel"],
            "lambda_max_initial": float(table["lambda_max"].iloc[0])}


@dataclass(frozen=True)
class AdamEdgeConfig:
    """A full-batch Adam run (base.optim: "adamw", weight decay 0) and its onset level on λ_max(P⁻¹H)/T."""

    base: GDConfig = GDConfig(optim=OptimizerSpec("adamw", lr=1e-3))
    onset: float = 0.9

    def __post_init__(self):
        if not isinstance(self.base, GDConfig):
            raise ConfigError(f"base must be a GDConfig, got {type(self.base).__name__}")
        require_spec("base.optim", self.base.optim, ("adamw",), role="full-batch Adam")
        if self.base.optim.weight_decay != 0:
            raise ConfigError("base.optim.weight_decay must be 0: the edge (2 + 2 beta1)/((1 - beta1) lr) is Adam's")
        check_bounds(self, positive=("onset",))

    def preflight(self) -> None:
        self.base.preflight()


@experiment("adam_edge_trajectory", AdamEdgeConfig,
            outputs=("edge", "lambda_max_initial", "max_lambda_residual_rel", "max_precond_residual_rel",
                     "null_lr_lambda_over_2_post_onset_median", "null_raw_lambda_over_edge_post_onset_median",
                     "onset_fraction", "onset_step", "over_edge_initial", "over_edge_post_onset_median",
                     "over_edge_pre_onset_min", "over_edge_tail_median", "train_loss_final"),
            curves={"trajectory": ("edge", "lambda_max", "loss", "lr_lambda_max", "lr_precond_lambda_max",
                                   "over_edge", "precond_lambda_max", "precond_lambda_residual", "step", "*")})
def adam_edge_trajectory(cfg: AdamEdgeConfig, ctx: RunContext) -> Measurement:
    """Full-batch Adam: λ_max(P⁻¹H) against (2 + 2β₁)/((1 − β₁)η), with the raw λ_max on the same run as nulls."""
    m = ctx.run(gd_sharpness_trajectory, cfg.base)
    spec = cfg.base.optim
    T = adam_threshold(spec.lr, spec.betas[0])
    table = m.curves["trajectory"]
    pre, raw, step = (table[c].to_numpy(float) for c in ("precond_lambda_max", "lambda_max", "step"))
    s, window = edge_metrics(step, pre / T, cfg.onset)
    s.update(_common(m, table), edge=T,
             null_lr_lambda_over_2_post_onset_median=float(np.median(spec.lr * raw[window] / 2)),
             null_raw_lambda_over_edge_post_onset_median=float(np.median(raw[window] / T)),
             max_precond_residual_rel=float((table["precond_lambda_residual"] / np.abs(pre)).max()))
    notes = list(m.notes) + ([] if math.isfinite(s["onset_step"]) else
                             [f"never reached lambda_max(P^-1 H) >= {cfg.onset} x {T:.4g}"])
    return Measurement(scalars=s, curves={"trajectory": table.assign(edge=T, over_edge=pre / T)},
                       scale={**m.scale, "edge": T}, notes=notes)


@dataclass(frozen=True)
class SAMEdgeConfig:
    """A full-batch SAM run (base.optim: "sam" over GD) and its onset level on λ_max / SAM-edge."""

    base: GDConfig = GDConfig(optim=OptimizerSpec("sam", lr=0.2, rho=0.1))
    onset: float = 0.9

    def __post_init__(self):
        if not isinstance(self.base, GDConfig):
            raise ConfigError(f"base must be a GDConfig, got {type(self.base).__name__}")
        require_spec("base.optim", self.base.optim, ("sam",), role="full-batch SAM")
        if self.base.optim.momentum != 0 or self.base.optim.weight_decay != 0:
            raise ConfigError("base.optim must be SAM over plain GD (momentum 0, weight_decay 0): the SAM-edge is "
                              "derived for that update")
        check_bounds(self, positive=("onset",))

    def preflight(self) -> None:
        self.base.preflight()


@experiment("sam_edge_trajectory", SAMEdgeConfig,
            outputs=("edge_over_gd_edge_post_onset_median", "grad_norm_post_onset_median", "lambda_max_initial",
                     "max_lambda_residual_rel", "null_lr_lambda_over_2_post_onset_median", "onset_fraction",
                     "onset_step", "over_edge_initial", "over_edge_post_onset_median", "over_edge_pre_onset_min",
                     "over_edge_tail_median", "train_loss_final", "two_over_lr"),
            curves={"trajectory": ("edge", "grad_sq_norm", "lambda_max", "loss", "lr_lambda_max", "over_edge",
                                   "step", "two_over_lr", "*")})
def sam_edge_trajectory(cfg: SAMEdgeConfig, ctx: RunContext) -> Measurement:
    """Full-batch SAM: λ_max against the SAM-edge of each measurement's gradient norm, and against 2/η (null)."""
    m = ctx.run(gd_sharpness_trajectory, cfg.base)
    lr, rho = cfg.base.optim.lr, cfg.base.optim.rho
    table = m.curves["trajectory"]
    lam, step = table["lambda_max"].to_numpy(float), table["step"].to_numpy(float)
    g = np.sqrt(table["grad_sq_norm"].to_numpy(float))  # ‖∇L(w_t)‖: the norm SAM's ascent step divides by
    edge = sam_edge(lr, rho, g)
    s, window = edge_metrics(step, lam / edge, cfg.onset)
    s.update(_common(m, table), two_over_lr=2 / lr,
             null_lr_lambda_over_2_post_onset_median=float(np.median(lr * lam[window] / 2)),
             edge_over_gd_edge_post_onset_median=float(np.median(lr * edge[window] / 2)),
             grad_norm_post_onset_median=float(np.median(g[window])))
    notes = list(m.notes) + ([] if math.isfinite(s["onset_step"]) else
                             [f"never reached lambda_max >= {cfg.onset} x SAM-edge"])
    return Measurement(scalars=s, curves={"trajectory": table.assign(edge=edge, over_edge=lam / edge,
                                                                     two_over_lr=2 / lr)},
                       scale={**m.scale, "rho": rho}, notes=notes)
