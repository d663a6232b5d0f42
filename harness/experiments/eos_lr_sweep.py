"""Sharpness at the Edge of Stability across step sizes (Cohen et al. 2021, Fig. 1 and Sec. 3).

Full-batch GD settles at lambda_max ~ 2/lr whatever lr is, so across step sizes log lambda_max falls with
log lr at slope -1. The sweep runs one net (same init, same data) at several step sizes, each through
`gd_sharpness_trajectory` (so through the runner's cache), and reports:

- per arm: the median of lambda_max over a window from the EoS onset (first lr * lambda_max >=
  onset_threshold) that spans the same gradient-flow time in every arm (`window` units of lr * step, i.e.
  window / lr steps), the same as lr * lambda_max, and the onset as a fraction of that arm's steps;
- the slope of log(post-onset median lambda_max) on log lr over the arms (the claim: -1);
- a null from the same runs: the slope of log lambda_max at step 0 on log lr (the init does not depend on
  lr, so a sharpness that never adapted to lr reads 0).
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
from harness.experiments.eos import TRAJECTORY_COLUMNS, GDConfig, gd_sharpness_trajectory, onset_index
from harness.optim import OptimizerSpec


@dataclass(frozen=True)
class LrSweepConfig:
    """The base run at each lr in `lrs`, for the matching entry of `steps` and `measure_every`.

    Raises:
        ConfigError: fewer than two step sizes, unsorted or repeated ones, or lengths that differ.
    """

    base: GDConfig = GDConfig(model="plain_mlp", activation="tanh", loss="mse", optim=OptimizerSpec("sgd", lr=0.2))
    lrs: tuple[float, ...] = (0.2, 0.3, 0.45)
    steps: tuple[int, ...] = (2000, 667, 445)
    measure_every: tuple[int, ...] = (49, 33, 23)   # odd: the period-2 oscillation is not aliased
    # The post-onset median's window, in units of lr * step (gradient-flow time): window / lr steps from the
    # onset in each arm, so every step size is read over the same number of its own time units.
    window: float = 100.0

    def __post_init__(self):
        if len(self.lrs) < 2 or list(self.lrs) != sorted(set(self.lrs)) or any(not lr > 0 for lr in self.lrs):
            raise ConfigError(f"lrs must be >= 2 increasing positive step sizes, got {self.lrs}")
        if not len(self.steps) == len(self.measure_every) == len(self.lrs):
            raise ConfigError(f"steps and measure_every need one entry per lr ({len(self.lrs)}), got "
                              f"{len(self.steps)} and {len(self.measure_every)}")
        if any(s < 1 for s in self.steps) or any(m < 1 for m in self.measure_every):
            raise ConfigError("steps and measure_every must be >= 1")
        if not self.window > 0:
            raise ConfigError(f"window must be > 0 (units of lr * step), got {self.window}")
        if self.base.optim.weight_decay != 0 or self.base.optim.momentum != 0:
            raise ConfigError("the step-size sweep is plain GD: weight_decay and momentum must be 0")

    def arm(self, i: int) -> GDConfig:
        """The i-th arm's run: the base at lrs[i], steps[i], measure_every[i]."""
        return derive(self.base, {"optim.lr": self.lrs[i]}, steps=self.steps[i],
                      measure_every=self.measure_every[i])

    def preflight(self) -> None:
        self.base.preflight()


def post_onset_median(table: pd.DataFrame, cfg: GDConfig, window: float = math.inf) -> tuple[float, float]:
    """Median lambda_max over the measurements from the EoS onset to window / lr steps after it.

    Args:
        table: a `gd_sharpness_trajectory` trajectory (columns step, lambda_max, lr_lambda_max).
        cfg: the run's config (its lr, onset_threshold and tail_fraction).
        window: the window's length in units of lr * step (inf: to the end of the run).

    Returns:
        (median, covered): covered is the share of the window the run holds (1 when it ran past the
        window's end). Without an onset: the median over the last tail_fraction (which then lies below
        the onset level, so a run that never reached the edge reads below 2/lr) and covered 0.
    """
    i0 = onset_index(table, cfg)
    lam, step = table["lambda_max"].to_numpy(), table["step"].to_numpy(float)
    if i0 is None:
        return float(np.median(lam[int(len(lam) * (1 - cfg.tail_fraction)):])), 0.0
    end = step[i0] + window / cfg.optim.lr
    inside = (step >= step[i0]) & (step <= end)
    covered = 1.0 if math.isinf(window) else min(1.0, (step[-1] - step[i0]) / (end - step[i0]))
    return float(np.median(lam[inside])), covered


def log_log_slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y on log x."""
    return float(stats.linregress(np.log(x), np.log(y)).slope)


@experiment("eos_lr_sweep", LrSweepConfig,
            outputs=('a*.lr', 'a*.lambda_max_post_onset_median', 'a*.lr_lambda_max_post_onset_median',
                     'a*.lambda_max_initial', 'a*.onset_fraction', 'a*.window_covered',
                     'a*.max_lambda_residual_rel',
                     'slope_log_lambda_on_log_lr', 'null_slope_initial_lambda_on_log_lr', 'max_onset_fraction',
                     'min_window_covered', 'max_lambda_residual_rel'),
            curves={'a*.trajectory': TRAJECTORY_COLUMNS})
def eos_lr_sweep(cfg: LrSweepConfig, ctx: RunContext) -> Measurement:
    """One GD run per step size; the log-log slope of the post-onset sharpness on lr, and its null."""
    scalars, curves, scale, notes = {}, {}, {}, []
    settled, initial = [], []
    for i, lr in enumerate(cfg.lrs):
        arm = cfg.arm(i)
        m = ctx.run(gd_sharpness_trajectory, arm)
        table = m.curves["trajectory"]
        name = f"a{i}"
        median, covered = post_onset_median(table, arm, cfg.window)
        lam0 = float(table["lambda_max"].iloc[0])
        scalars.update({f"{name}.lr": lr, f"{name}.lambda_max_post_onset_median": median,
                        f"{name}.lr_lambda_max_post_onset_median": lr * median,
                        f"{name}.lambda_max_initial": lam0,
                        f"{name}.onset_fraction": m.scalars["onset_fraction"],
                        f"{name}.window_covered": covered,
                        f"{name}.max_lambda_residual_rel": m.scalars["max_lambda_residual_rel"]})
        curves[f"{name}.trajectory"] = table
        scale[name] = {"lr": lr, "steps": m.scale["steps"], "measure_every": arm.measure_every,
                       "window_steps": cfg.window / lr}
        notes += [f"{name} (lr {lr:g}): {n}" for n in m.notes]
        settled.append(median)
        initial.append(lam0)
        base_scale = m.scale
    scalars["slope_log_lambda_on_log_lr"] = log_log_slope(list(cfg.lrs), settled)
    scalars["null_slope_initial_lambda_on_log_lr"] = log_log_slope(list(cfg.lrs), initial)
    scalars["max_onset_fraction"] = max(scalars[f"a{i}.onset_fraction"] for i in range(len(cfg.lrs)))
    scalars["min_window_covered"] = min(scalars[f"a{i}.window_covered"] for i in range(len(cfg.lrs)))
    scalars["max_lambda_residual_rel"] = max(scalars[f"a{i}.max_lambda_residual_rel"] for i in range(len(cfg.lrs)))
    scale.update({k: base_scale[k] for k in ("model", "activation", "trainable_params", "data", "n_train", "dtype")})
    if not all(math.isfinite(v) for v in settled):
        raise FloatingPointError("a post-onset median lambda_max is not finite")
    return Measurement(scalars=scalars, curves=curves, scale=scale, notes=notes)
