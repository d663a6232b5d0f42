"""The lr*wd ladder of GD + WD on a scale-invariant net (Lyu, Li, Arora 2022, Thm. 1.1).

The theorem is a statement about the limit lr * wd -> 0: the iterate enters the Edge of Stability and
eta_eff * S_sph = lr * lambda_max -> 2. At a finite lr * wd the product sits above 2 by a correction that
shrinks with lr * wd. The ladder runs the same net, init and lr at several lr * wd (weight decay scaled),
each to the same tau_end = lr * wd * steps and with the same measurements per unit tau, and reports:

- per rung: the tail median of lr * lambda_max (over the last `tail_fraction` of its measurements), its
  mean over whole slow oscillation cycles of the tail, and the share of post-onset measurements in the band;
- the slope of the excess (tail median - 2) against log2(lr * wd): the excess gained per doubling of
  lr * wd (a finite-lr*wd correction reads > 0).

The rung with factor 1 is the base run itself (shared with the other claims through the cache), cut to
tau_end when that is shorter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from harness.claim.config import derive
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError
from harness.experiments.eos import TRAJECTORY_COLUMNS, GDConfig, gd_sharpness_trajectory, trajectory_metrics

EDGE = 2.0  # the theorem's limit of lr * lambda_max (Thm. 1.1)


def rung(base: GDConfig, factor: float, tau_end: float | None = None) -> GDConfig:
    """The base run with lr * wd scaled by `factor` (weight decay scaled; lr and init kept), run to
    tau_end (default: the base run's) and measured at the base run's tau spacing (measure_every rounded
    to an odd count, so the period-2 oscillation is not aliased). factor 1 is the base config itself
    (with its steps cut to tau_end)."""
    steps = base.steps if tau_end is None else round(tau_end / base.lr_wd)
    if factor == 1.0:
        return base if steps == base.steps else derive(base, steps=steps)
    return derive(base, {"optim.weight_decay": base.optim.weight_decay * factor},
                  steps=max(1, round(steps / factor)),
                  measure_every=max(1, round(base.measure_every / factor)) | 1)


def truncated_run(base: GDConfig, steps: int, ctx: RunContext) -> tuple[pd.DataFrame, dict, dict]:
    """The first `steps` steps of the base run, read from the base run itself (GD is deterministic and
    the curvature probes never change the iterate, so this is the shorter run's trajectory).

    Returns:
        (trajectory table up to `steps`, its trajectory metrics, the base run's scale).
    """
    m = ctx.run(gd_sharpness_trajectory, base)
    table = m.curves["trajectory"]
    table = table[table["step"] <= steps].reset_index(drop=True)
    scalars, _ = trajectory_metrics(table, derive(base, steps=steps), [])
    return table, scalars, {**m.scale, "steps": int(table["step"].iloc[-1]),
                            "tau_end": base.lr_wd * float(table["step"].iloc[-1])}


@dataclass(frozen=True)
class LadderConfig:
    """Rungs at lr * wd = factor x the base run's; the base (factor 1) must be among them."""

    base: GDConfig = GDConfig()
    factors: tuple[float, ...] = (0.25, 0.5, 1.0)
    # Every rung runs to this tau = lr * wd * step (None: the base run's). Shorter than the base run:
    # the factor-1 rung is the base run's first steps (no run of its own).
    tau_end: float | None = None
    # The tail statistic: median of lr * lambda_max over the last tail_fraction of each rung's measurements.
    tail_fraction: float = 0.3

    def __post_init__(self):
        f = self.factors
        if len(f) < 2 or 1.0 not in f or any(not x > 0 for x in f) or list(f) != sorted(set(f)):
            raise ConfigError(f"factors must be >= 2 increasing positive values including 1.0, got {f}")
        if self.base.optim.weight_decay <= 0:
            raise ConfigError("the lr*wd ladder needs weight decay > 0")
        if not 0 < self.tail_fraction <= 1:
            raise ConfigError(f"tail_fraction must be in (0, 1], got {self.tail_fraction}")
        if self.tau_end is not None and not 0 < self.tau_end <= self.base.lr_wd * self.base.steps:
            raise ConfigError(f"tau_end must be in (0, the base run's {self.base.lr_wd * self.base.steps:g}], "
                              f"got {self.tau_end}")

    def preflight(self) -> None:
        self.base.preflight()


def whole_cycle_mean(values: np.ndarray) -> tuple[float, int]:
    """Mean of a series over whole cycles of its slow oscillation.

    The period-2 alternation is first removed by a two-point running mean; the cycles are delimited by the
    upward crossings of that smoothed series through its median, and the raw values from the first
    crossing up to (not including) the last are averaged.

    Returns:
        (the mean, the number of whole cycles); with fewer than 2 crossings the plain mean and 0.
    """
    x = np.asarray(values, dtype=float)
    if len(x) < 4:
        return float(np.mean(x)), 0
    smooth = 0.5 * (x[1:] + x[:-1])  # smooth[i] sits between x[i] and x[i+1]
    above = smooth >= np.median(smooth)
    up = np.flatnonzero(~above[:-1] & above[1:]) + 1  # smooth index of each upward crossing
    if len(up) < 2:
        return float(np.mean(x)), 0
    return float(np.mean(x[up[0]:up[-1]])), len(up) - 1


def _rung_name(i: int) -> str:
    return f"r{i}"


@experiment("eos_lr_wd_ladder", LadderConfig,
            outputs=('r*.in_band_fraction', 'r*.lr_lambda_max_tail_median', 'r*.lr_lambda_max_whole_cycle_mean',
                     'r*.whole_cycles', 'r*.lr_wd', 'r*.tau_onset', 'r*.onset_fraction', 'r*.tau_end',
                     'r*.max_lambda_residual_rel', 'smallest.lr_lambda_max_tail_median',
                     'smallest.lr_lambda_max_whole_cycle_mean', 'smallest.in_band_fraction',
                     'excess_slope_per_doubling', 'whole_cycle_excess_slope_per_doubling',
                     'in_band_fraction', 'lr_lambda_max_tail_median', 'tau_onset', 'onset_step',
                     'max_lambda_residual_rel'),
            curves={'r*.trajectory': TRAJECTORY_COLUMNS})
def eos_lr_wd_ladder(cfg: LadderConfig, ctx: RunContext) -> Measurement:
    """One run per rung; per-rung EoS metrics and the excess's slope against log2(lr * wd)."""
    scalars, curves, scale, notes = {}, {}, {}, []
    x, excess, cycle_excess = [], [], []
    for i, f in enumerate(cfg.factors):
        arm = rung(cfg.base, f, cfg.tau_end)
        if f == 1.0 and arm.steps < cfg.base.steps:
            table, s, run_scale = truncated_run(cfg.base, arm.steps, ctx)
            run_notes = []
        else:
            m = ctx.run(gd_sharpness_trajectory, arm)
            table, s, run_scale, run_notes = m.curves["trajectory"], m.scalars, m.scale, m.notes
        name = _rung_name(i)
        tail = table["lr_lambda_max"].to_numpy()[int(len(table) * (1 - cfg.tail_fraction)):]
        cycle_mean, cycles = whole_cycle_mean(tail)
        median = float(np.median(tail))
        scalars.update({f"{name}.lr_lambda_max_tail_median": median,
                        f"{name}.lr_lambda_max_whole_cycle_mean": cycle_mean,
                        f"{name}.whole_cycles": float(cycles),
                        f"{name}.in_band_fraction": s["in_band_fraction"],
                        f"{name}.lr_wd": arm.lr_wd, f"{name}.tau_onset": s["tau_onset"],
                        f"{name}.onset_fraction": s["onset_fraction"], f"{name}.tau_end": s["tau_end"],
                        f"{name}.max_lambda_residual_rel": s["max_lambda_residual_rel"]})
        curves[f"{name}.trajectory"] = table
        scale[name] = {k: run_scale[k] for k in ("steps", "lr_wd", "tau_end")} | {"measure_every": arm.measure_every}
        notes += [f"{name} (lr*wd {arm.lr_wd:g}): {n}" for n in run_notes]
        x.append(math.log2(arm.lr_wd))
        excess.append(median - EDGE)
        cycle_excess.append(cycle_mean - EDGE)
        if f == 1.0:  # the base run's own rows, under their usual names
            base_scale = run_scale
            for k in ("in_band_fraction", "tau_onset", "onset_step"):
                scalars[k] = s[k]
            scalars["lr_lambda_max_tail_median"] = median
    scalars["max_lambda_residual_rel"] = max(scalars[f"{_rung_name(i)}.max_lambda_residual_rel"]
                                             for i in range(len(cfg.factors)))
    for k in ("lr_lambda_max_tail_median", "lr_lambda_max_whole_cycle_mean", "in_band_fraction"):
        scalars[f"smallest.{k}"] = scalars[f"r0.{k}"]
    scalars["excess_slope_per_doubling"] = float(stats.linregress(x, excess).slope)
    scalars["whole_cycle_excess_slope_per_doubling"] = float(stats.linregress(x, cycle_excess).slope)
    base = cfg.base
    scale.update({k: v for k, v in base_scale.items()
                  if k in ("model", "activation", "trainable_params", "data", "n_train", "dtype", "bn_mode")})
    scale["rungs"] = [f"lr={base.optim.lr:g}, wd={base.optim.weight_decay * f:g}" for f in cfg.factors]
    return Measurement(scalars=scalars, curves=curves, scale=scale, notes=notes)
