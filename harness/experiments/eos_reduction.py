"""The sharpness-reduction experiments on the full-batch GD run (Lyu, Li, Arora 2022): the run against its
weight-decay-free twin over tau-windows (`sharpness_reduction_runs`), and normalized against unnormalized
nets at the same recipe (`normalization_arms`). The run itself is `harness.experiments.eos`."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from harness.claim.config import check_bounds, derive
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.experiments.eos import TRAJECTORY_COLUMNS, GDConfig, gd_sharpness_trajectory, log_interp
from harness.models.factory import CLASSIFIERS


@dataclass(frozen=True)
class ReductionConfig:
    """The sharpness-reduction run (the eos-scale-invariant run) and its wd = 0 twin."""

    base: GDConfig = GDConfig()
    # The wd = 0 twin needs only its S_sph at the onset and at the end: sparse measurements.
    other_arms_measure_every: int = 199

    def __post_init__(self):
        check_bounds(self, at_least_one=("other_arms_measure_every",))

    def preflight(self) -> None:
        self.base.preflight()


def no_wd_arm(base: GDConfig, measure_every: int) -> GDConfig:
    """The wd = 0 twin of a run (shared by sharpness-reduction and normalization-reduces-sharpness)."""
    return derive(base, {"optim.weight_decay": 0.0}, measure_every=measure_every)


@experiment("sharpness_reduction_runs", ReductionConfig,
            outputs=('in_band_fraction', 'lambda_max_final', 'lambda_over_threshold_initial',
                     'lambda_over_threshold_tail_median', 'lr_lambda_max_initial', 'lr_lambda_max_tail_median',
                     'max_lambda_residual_rel', 'null_wd*_sph_final_over_onset', 'null_wd*_sph_window_fall',
                     'sph_window_fall', 'sph_window_fall_over_wd*', 'trend_fall', 'onset_fraction', 'onset_step',
                     'rms_angle_over_sqrt_*lr_wd', 'sph_final',
                     'sph_final_over_peak', 'sph_initial', 'sph_log_slope_per_tau', 'sph_peak',
                     'stability_threshold', 'tau_after_onset', 'tau_end', 'tau_onset', 'test_acc_final',
                     'threshold_in_band_fraction', 'threshold_onset_fraction', 'threshold_onset_step',
                     'train_loss_final', 'two_over_lr', 'wd*.sph_final'),
            curves={'trajectory': TRAJECTORY_COLUMNS,
                    'wd*': TRAJECTORY_COLUMNS})
def sharpness_reduction_runs(cfg: ReductionConfig, ctx: RunContext) -> Measurement:
    """The WD run's reduction metrics, plus null_wd0_sph_final_over_onset: the wd = 0 twin's final
    S_sph over its S_sph at the WD run's onset step, the fall that needs no weight decay."""
    m = ctx.run(gd_sharpness_trajectory, cfg.base)
    null = ctx.run(gd_sharpness_trajectory, no_wd_arm(cfg.base, cfg.other_arms_measure_every))
    scalars = dict(m.scalars)
    onset = m.scalars["onset_step"] if math.isfinite(m.scalars["onset_step"]) else 0.0
    t0 = null.curves["trajectory"]
    at_onset = log_interp(np.array([onset]), t0["step"].to_numpy(float), t0["spherical_sharpness"].to_numpy())[0]
    scalars["null_wd0_sph_final_over_onset"] = float(null.scalars["sph_final"] / at_onset)
    scalars["wd0.sph_final"] = null.scalars["sph_final"]
    scalars.update(window_fall_metrics(m.curves["trajectory"], t0, onset, cfg.base.steps, cfg.base.lr_wd))
    return Measurement(scalars=scalars, standard_errors=dict(m.standard_errors),
                       curves={"trajectory": m.curves["trajectory"], "wd0": t0},
                       scale={**m.scale, "wd0_arm_steps": null.scale["steps"]}, notes=list(m.notes))


def window_fall_metrics(run: pd.DataFrame, twin: pd.DataFrame, onset_step: float, steps: int,
                        lr_wd: float, width_tau: float = 1.0) -> dict:
    """The fall of S_sph from the first post-onset tau window to the last, as a ratio of window means
    (geometric means: log S_sph averaged over the run's own measurements in each window), for the run
    and for its twin over the same steps (the twin's log S_sph interpolated at the run's measurement
    steps: a wd = 0 run has no EoS oscillation, so sparse measurements suffice).

    Windows: [onset, onset + w) and [end - w, end] in tau, w = min(width_tau, (tau_end - tau_onset) / 2),
    so they never overlap. Robust to the EoS spikes that a final / peak ratio divides by.

    Returns:
        sph_window_fall (last / first window mean, the run), null_wd0_sph_window_fall (the twin's),
        sph_window_fall_over_wd0 (their ratio: < 1 when the run falls more than the twin),
        trend_fall (exp(slope of log S_sph per tau x tau from onset to end), from the run's fit).
    """
    step = run["step"].to_numpy(float)
    log_sph = np.log(run["spherical_sharpness"].to_numpy())
    end = float(step[-1])
    w = min(width_tau / lr_wd, (end - onset_step) / 2)
    first = (step >= onset_step) & (step < onset_step + w)
    last = step >= end - w
    twin_log = np.log(log_interp(step, twin["step"].to_numpy(float), twin["spherical_sharpness"].to_numpy()))
    fall = float(np.exp(log_sph[last].mean() - log_sph[first].mean()))
    twin_fall = float(np.exp(np.nanmean(twin_log[last]) - np.nanmean(twin_log[first])))
    x = step[step >= onset_step] * lr_wd
    slope = stats.linregress(x, log_sph[step >= onset_step]).slope if len(x) >= 3 else math.nan
    return {"sph_window_fall": fall, "null_wd0_sph_window_fall": twin_fall,
            "sph_window_fall_over_wd0": fall / twin_fall,
            "trend_fall": float(np.exp(slope * (end - onset_step) * lr_wd))}


@dataclass(frozen=True)
class ArmsConfig:
    """The normalization comparison: scale-invariant net with WD, the same with WD = 0, and the
    non-normalized twin (same widths, same lr and WD)."""

    base: GDConfig = GDConfig()
    plain_model: str = "plain_mlp"
    # The two comparison arms need only their end state, so they measure curvature less often.
    other_arms_measure_every: int = 199

    def __post_init__(self):
        CLASSIFIERS.check(self.plain_model)
        check_bounds(self, at_least_one=("other_arms_measure_every",))

    def preflight(self) -> None:
        self.base.preflight()


@experiment("normalization_arms", ArmsConfig,
            outputs=('bn_no_wd.*', 'bn_wd.*', 'plain_wd.*', 'sph_ratio_null_at_onset', 'sph_ratio_wd_over_no_wd',
                     'test_acc_bn_minus_plain', 'test_acc_wd_minus_no_wd'),
            curves={'arms': ('sph_bn_no_wd', 'sph_bn_wd', 'sph_plain_wd', 'step')})
def normalization_arms(cfg: ArmsConfig, ctx: RunContext) -> Measurement:
    """Three GD runs through the runner's cache (the BN+WD arm is the eos-scale-invariant run)."""
    sparse = derive(cfg.base, measure_every=cfg.other_arms_measure_every)
    arms = {"bn_wd": cfg.base, "bn_no_wd": no_wd_arm(cfg.base, cfg.other_arms_measure_every),
            "plain_wd": derive(sparse, model=cfg.plain_model)}
    scalars, curves, scale = {}, [], {}
    for name, arm_cfg in arms.items():
        m = ctx.run(gd_sharpness_trajectory, arm_cfg)
        for k in ("sph_final", "test_acc_final", "lr_lambda_max_tail_median", "lambda_max_final",
                  "rms_angle_over_sqrt_2lr_wd", "train_loss_final", "onset_step"):
            scalars[f"{name}.{k}"] = m.scalars[k]
        curves.append(m.curves["trajectory"].assign(arm=name))
        scale[name] = {k: m.scale[k] for k in ("model", "trainable_params", "steps")}
        scale.update({k: m.scale[k] for k in ("data", "n_train", "n_test", "bn_mode", "dtype", "tau_end")})
    scalars["sph_ratio_wd_over_no_wd"] = scalars["bn_wd.sph_final"] / scalars["bn_no_wd.sph_final"]
    # The same ratio at the WD arm's EoS onset, before the sharpness-reduction flow can act: how much
    # of the final ratio the pre-EoS phase (norm shrinking, eta_eff growing) already gives.
    onset = scalars["bn_wd.onset_step"] if math.isfinite(scalars["bn_wd.onset_step"]) else 0.0
    at = {c["arm"].iloc[0]: log_interp(np.array([onset]), c["step"].to_numpy(float),
                                       c["spherical_sharpness"].to_numpy())[0] for c in curves[:2]}
    scalars["sph_ratio_null_at_onset"] = float(at["bn_wd"] / at["bn_no_wd"])
    scalars["test_acc_wd_minus_no_wd"] = scalars["bn_wd.test_acc_final"] - scalars["bn_no_wd.test_acc_final"]
    scalars["test_acc_bn_minus_plain"] = scalars["bn_wd.test_acc_final"] - scalars["plain_wd.test_acc_final"]
    table = pd.concat(curves, ignore_index=True)
    wide = table.pivot_table(index="step", columns="arm", values="spherical_sharpness").reset_index()
    wide.columns = ["step"] + [f"sph_{c}" for c in wide.columns[1:]]
    return Measurement(scalars=scalars, curves={"arms": wide}, scale=scale)
