"""Edge-of-Stability experiments (Cohen et al. 2021; Lyu, Li, Arora 2022) with full-batch GD.

gd_sharpness_trajectory: one net, GD (+ weight decay), curvature recorded along the way; metrics
    for EoS entry, the share of post-onset measurements near 2, and sharpness reduction.
normalization_arms: the same scale-invariant net with and without weight decay, plus the
    non-normalized twin, for the "normalization + WD reduces sharpness" comparison.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats

from harness.data.datasets import check_data_source, load_dataset
from harness.errors import ConfigError
from harness.losses import get_loss
from harness.measurement import Measurement, RunContext
from harness.models.factory import build_classifier
from harness.registry import experiment
from harness.train import GDResult, train_full_batch_gd


@dataclass(frozen=True)
class GDConfig:
    """Everything one full-batch GD run needs. Defaults are the cpu-tier probe settings."""

    model: str = "si_mlp"            # si_mlp | plain_mlp | si_cnn
    widths: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    bn_eps: float = 0.0              # eps > 0 breaks exact scale invariance once WD shrinks w
    data: str = "digits"             # digits | mnist5k | cifar10
    data_root: str = ""              # for cifar10: folder or archive
    n_train: int = 1000
    n_test: int = 797
    loss: str = "ce"                 # ce | mse (0.5 * sum over classes, Cohen's convention)
    lr: float = 0.1
    weight_decay: float = 5e-3
    steps: int = 3000
    measure_every: int = 25          # odd, so period-2 oscillation is not aliased
    lanczos_tol: float = 1e-3
    dtype: str = "float64"
    onset_threshold: float = 1.8     # EoS onset: first measurement with lr*lambda_max >= this
    band: tuple[float, float] = (1.8, 2.3)  # "near 2": lr*lambda_max in this band
    tail_fraction: float = 0.3       # metrics over the last 30% of measurements

    def __post_init__(self):
        if self.lr <= 0 or self.steps < 1 or self.measure_every < 1:
            raise ConfigError("lr must be > 0, steps and measure_every >= 1")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")

    def preflight(self) -> None:
        """Fail fast on a missing data source, before any seed runs."""
        check_data_source(self.data, self.data_root)


def _run_arm(cfg: GDConfig, ctx: RunContext) -> tuple[GDResult, dict]:
    dtype = getattr(torch, cfg.dtype)
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root,
                         dtype=dtype, images=cfg.model == "si_cnn")
    model = build_classifier(cfg.model, split, widths=cfg.widths, activation=cfg.activation,
                             bn_eps=cfg.bn_eps, seed=ctx.seed).to(dtype=dtype, device=ctx.device)
    dev = ctx.device
    result = train_full_batch_gd(
        model, get_loss(cfg.loss), split.x_train.to(dev), split.y_train.to(dev),
        lr=cfg.lr, weight_decay=cfg.weight_decay, steps=ctx.steps(cfg.steps),
        measure_every=cfg.measure_every, x_test=split.x_test.to(dev), y_test=split.y_test.to(dev),
        lanczos_tol=cfg.lanczos_tol, bn_mode="full-batch", progress=ctx.progress)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    scale = {"model": cfg.model, "trainable_params": n_params, "data": cfg.data,
             "n_train": len(split.y_train), "n_test": len(split.y_test), "steps": result.steps_run,
             "bn_mode": "train mode, full-batch statistics", "dtype": cfg.dtype,
             "data_provenance": split.provenance}
    return result, scale


def trajectory_metrics(table: pd.DataFrame, cfg: GDConfig, angles: list[float]) -> tuple[dict, dict]:
    """EoS and sharpness-reduction metrics from a trajectory table. Returns (scalars, std errors).

    Metrics are defined for failed runs too (no onset: in-band fraction 0, onset fraction 1), so a
    claim that does not hold gets 'fails', not 'error'.
    """
    prod = table["lr_lambda_max"].to_numpy()
    steps = table["step"].to_numpy()
    total = max(int(steps[-1]), 1)
    onset_idx = np.flatnonzero(prod >= cfg.onset_threshold)
    tail = table.iloc[int(len(table) * (1 - cfg.tail_fraction)):]
    s, se = {}, {}
    s["lr_lambda_max_tail_median"] = float(np.median(tail["lr_lambda_max"]))
    s["lambda_max_final"] = float(tail["lambda_max"].median())
    s["two_over_lr"] = 2.0 / cfg.lr
    s["train_loss_final"] = float(table["loss"].iloc[-1])
    s["test_acc_final"] = float(table["test_acc"].iloc[-1]) if "test_acc" in table else math.nan
    s["max_lambda_residual_rel"] = float((table["lambda_residual"] / table["lambda_max"].abs()).max())
    sph = table["spherical_sharpness"].to_numpy()
    s["sph_final"] = float(np.median(tail["spherical_sharpness"].iloc[-max(3, len(tail) // 3):]))
    s["sph_peak"] = float(sph.max())
    s["sph_final_over_peak"] = s["sph_final"] / s["sph_peak"]
    if len(onset_idx) == 0:
        s.update(onset_step=math.nan, onset_fraction=1.0, in_band_fraction=0.0)
        start = int(len(table) * (1 - cfg.tail_fraction))  # no EoS: the slope of the last 30%
    else:
        i0 = int(onset_idx[0])
        post = prod[i0:]
        s["onset_step"] = float(steps[i0])
        s["onset_fraction"] = float(steps[i0]) / total
        s["in_band_fraction"] = float(np.mean((post >= cfg.band[0]) & (post <= cfg.band[1])))
        start = i0 + int(np.argmax(sph[i0:]))  # the reduction phase starts at the post-onset peak
    start = min(start, len(sph) - 3)
    if start >= 0:
        fit = stats.linregress(steps[start:] / 1000.0, np.log(sph[start:]))
        s["sph_log_slope_per_1k"], se["sph_log_slope_per_1k"] = float(fit.slope), float(fit.stderr)
    else:
        s["sph_log_slope_per_1k"] = math.nan  # fewer than 3 measurements: nothing to fit
    tail_sq = tail["sq_norm"].to_numpy()
    s["norm_equilibrium_ratio"] = float(np.median(tail_sq / (cfg.lr * tail["spherical_sharpness"] / 2)))
    if cfg.weight_decay > 0 and angles:
        tail_angles = np.asarray(angles[int(len(angles) * (1 - cfg.tail_fraction)):])
        s["rms_angle_over_sqrt_2lr_wd"] = float(np.sqrt(np.mean(tail_angles**2))
                                                / math.sqrt(2 * cfg.lr * cfg.weight_decay))
    else:
        s["rms_angle_over_sqrt_2lr_wd"] = math.nan
    return s, se


@experiment("gd_sharpness_trajectory", GDConfig)
def gd_sharpness_trajectory(cfg: GDConfig, ctx: RunContext) -> Measurement:
    """One full-batch GD (+WD) run with lambda_max, spherical sharpness and eta_eff recorded."""
    result, scale = _run_arm(cfg, ctx)
    notes = []
    if result.diverged_at is not None:
        raise FloatingPointError(f"loss became non-finite at step {result.diverged_at}")
    scalars, ses = trajectory_metrics(result.table, cfg, result.angles)
    if math.isnan(scalars["onset_step"]):
        notes.append(f"never reached lr*lambda_max >= {cfg.onset_threshold}")
    return Measurement(scalars=scalars, standard_errors=ses, curves={"trajectory": result.table},
                       scale=scale, notes=notes)


@dataclass(frozen=True)
class ArmsConfig:
    """The normalization comparison: scale-invariant net with WD, the same with WD = 0, and the
    non-normalized twin (same widths, same lr and WD)."""

    base: GDConfig = GDConfig()
    plain_model: str = "plain_mlp"
    # The two comparison arms need only their end state, so they measure curvature less often.
    other_arms_measure_every: int = 199

    def preflight(self) -> None:
        self.base.preflight()


@experiment("normalization_arms", ArmsConfig)
def normalization_arms(cfg: ArmsConfig, ctx: RunContext) -> Measurement:
    """Three GD runs through the runner's cache (the BN+WD arm is the eos-scale-invariant run)."""
    sparse = replace(cfg.base, measure_every=cfg.other_arms_measure_every)
    arms = {"bn_wd": cfg.base, "bn_no_wd": replace(sparse, weight_decay=0.0),
            "plain_wd": replace(sparse, model=cfg.plain_model)}
    scalars, curves, scale = {}, [], {}
    for name, arm_cfg in arms.items():
        m = ctx.run(gd_sharpness_trajectory, arm_cfg)
        for k in ("sph_final", "test_acc_final", "lr_lambda_max_tail_median", "lambda_max_final",
                  "norm_equilibrium_ratio", "rms_angle_over_sqrt_2lr_wd", "train_loss_final"):
            scalars[f"{name}.{k}"] = m.scalars[k]
        curves.append(m.curves["trajectory"].assign(arm=name))
        scale[name] = {k: m.scale[k] for k in ("model", "trainable_params", "steps")}
        scale.update({k: m.scale[k] for k in ("data", "n_train", "n_test", "bn_mode", "dtype")})
    scalars["sph_ratio_wd_over_no_wd"] = scalars["bn_wd.sph_final"] / scalars["bn_no_wd.sph_final"]
    scalars["test_acc_wd_minus_no_wd"] = scalars["bn_wd.test_acc_final"] - scalars["bn_no_wd.test_acc_final"]
    scalars["test_acc_bn_minus_plain"] = scalars["bn_wd.test_acc_final"] - scalars["plain_wd.test_acc_final"]
    table = pd.concat(curves, ignore_index=True)
    wide = table.pivot_table(index="step", columns="arm", values="spherical_sharpness").reset_index()
    wide.columns = ["step"] + [f"sph_{c}" for c in wide.columns[1:]]
    return Measurement(scalars=scalars, curves={"arms": wide}, scale=scale)
