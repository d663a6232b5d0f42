"""Edge-of-Stability experiments (Cohen et al. 2021; Lyu, Li, Arora 2022) with full-batch GD.

gd_sharpness_trajectory: one net, GD (+ weight decay), curvature recorded along the way; metrics
    for EoS entry, the share of post-onset measurements near 2, and sharpness reduction, the latter on
    the theory's clock tau = lr * wd * step with the EoS onset as origin.
sharpness_reduction_runs: that run plus the same net with wd = 0, whose S_sph over the same steps is
    what the reduction reads without weight decay (cross-entropy flattens as margins grow).
normalization_arms: the same scale-invariant net with and without weight decay, plus the
    non-normalized twin, for the "normalization + WD reduces sharpness" comparison.
The (lr, wd) collapse of the direction's trajectory is in harness.experiments.eos_collapse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from harness.claim.components import check_choice
from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.curvature.lanczos import STOPS
from harness.data.datasets import DATASETS, check_data_source, load_dataset
from harness.errors import ConfigError
from harness.losses import LOSSES
from harness.models.cnn import POOLS
from harness.models.factory import CLASSIFIERS, build_classifier, takes_images
from harness.models.mlp import ACTIVATIONS
from harness.optim import CONSTANT_LR, OptimizerSpec, optimizer_names, require_spec
from harness.train import GDResult, train_full_batch_gd


@dataclass(frozen=True)
class GDConfig:
    """Everything one full-batch GD run needs. Defaults are the cpu-tier probe settings."""

    model: str = "si_mlp"            # si_mlp | plain_mlp | si_cnn | plain_cnn
    widths: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    pool: str = "max"                # conv nets only: max | avg (avg with tanh: a smooth net)
    bn_eps: float = 0.0              # eps > 0 breaks exact scale invariance once WD shrinks w
    data: str = "digits"             # digits | mnist5k | cifar10
    data_root: str = ""              # for cifar10: folder or archive
    n_train: int = 1000
    n_test: int = 797
    loss: str = "ce"                 # ce | mse (0.5 * sum over classes, Cohen's convention)
    # The optimizer (built by _run_arm): sgd (GD; heavy ball with momentum; Nesterov) | sam | ire | sam_ire,
    # with its lr, weight decay and the fields its kind reads (a field it does not read keeps its default).
    optim: OptimizerSpec = OptimizerSpec("sgd", lr=0.1, weight_decay=5e-3)
    init_scale: float = 1.0          # trainable weights multiplied by this at init (||w0|| -> c ||w0||)
    steps: int = 3000
    measure_every: int = 25          # odd, so period-2 oscillation is not aliased
    lanczos_tol: float = 1e-3
    dtype: str = "float64"           # training (and, by default, curvature) dtype
    # lambda_max's Lanczos stop: "residual" (||Hv - lv|| <= tol l) or "value" (the eigenvalue's error bound
    # min(r, r^2 / gap) <= tol l: fewer HVPs for the same accuracy of l); see harness.curvature.top_eigenvalues.
    lanczos_stop: str = "residual"
    curvature_dtype: str = "model"   # the dtype of the operator copy lambda_max is solved on: model | float32
    onset_threshold: float = 1.8     # EoS onset: first measurement with lr*lambda_max >= this
    band: tuple[float, float] = (1.8, 2.3)  # "near 2": lr*lambda_max in this band
    tail_fraction: float = 0.3       # metrics over the last 30% of measurements
    # EoS relative to the optimizer's own stability threshold T (2/lr for GD, (2+2b)/lr heavy ball,
    # (2+2b)/((1+2b)lr) Nesterov): onset at lambda_max/T >= threshold_onset, "at the threshold" within
    # threshold_band. For GD these are onset_threshold/2 and band/2.
    threshold_onset: float = 0.9
    threshold_band: tuple[float, float] = (0.9, 1.15)

    def __post_init__(self):
        # lr > 0, weight_decay >= 0, the optimizer's name (did you mean), the fields it reads: the spec's.
        if not isinstance(self.optim, OptimizerSpec):
            raise ConfigError(f"optim must be an OptimizerSpec, got {type(self.optim).__name__}")
        require_spec("optim", self.optim, tuple(optimizer_names()), fixed=CONSTANT_LR,
                     set_by="the full-batch loop (it runs at a constant lr)")
        if self.steps < 1 or self.measure_every < 1:
            raise ConfigError("steps and measure_every must be >= 1")
        if not self.init_scale > 0:
            raise ConfigError(f"init_scale must be > 0, got {self.init_scale}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")
        check_choice("lanczos_stop", self.lanczos_stop, STOPS)
        check_choice("curvature_dtype", self.curvature_dtype, ("model", "float32", "float64"))
        # Names checked through their registries when the config is built (before any seed): did you mean.
        CLASSIFIERS.check(self.model)
        DATASETS.check(self.data)
        LOSSES.check(self.loss)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("pool", self.pool, POOLS)
        if self.n_train < 1 or self.n_test < 1:
            raise ConfigError(f"n_train and n_test must be >= 1, got {self.n_train} and {self.n_test}")
        if not 0 < self.tail_fraction <= 1:
            raise ConfigError(f"tail_fraction must be in (0, 1], got {self.tail_fraction}")
        check_bounds(self, positive=("lanczos_tol", "onset_threshold", "threshold_onset"),
                     non_negative=("bn_eps",))
        if any(w < 1 for w in self.widths):
            raise ConfigError(f"widths must be >= 1, got {self.widths}")
        for name in ("band", "threshold_band"):  # its length: planning.validate_config names the arity
            value = getattr(self, name)
            if len(value) == 2 and not 0 < value[0] < value[1]:
                raise ConfigError(f"{name} must be (lo, hi) with 0 < lo < hi, got {getattr(self, name)}")

    @property
    def lr_wd(self) -> float:
        """lr * wd: the rate of the theory's clock tau = lr * wd * step."""
        return self.optim.lr * self.optim.weight_decay

    def preflight(self) -> None:
        """Fail fast on a missing data source, before any seed runs."""
        check_data_source(self.data, self.data_root)


def _run_arm(cfg: GDConfig, ctx: RunContext) -> tuple[GDResult, dict]:
    dtype = getattr(torch, cfg.dtype)
    split = load_dataset(cfg.data, n_train=cfg.n_train, n_test=cfg.n_test, root=cfg.data_root,
                         dtype=dtype, images=takes_images(cfg.model))
    model = build_classifier(cfg.model, split, widths=cfg.widths, activation=cfg.activation,
                             bn_eps=cfg.bn_eps, seed=ctx.seed, pool=cfg.pool).to(dtype=dtype, device=ctx.device)
    if cfg.init_scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.mul_(cfg.init_scale)
    dev = ctx.device
    optimizer = cfg.optim.build([p for p in model.parameters() if p.requires_grad],
                           seed=ctx.generator("mask").initial_seed() % (1 << 62))
    result = train_full_batch_gd(
        model, LOSSES.get(cfg.loss), split.x_train.to(dev), split.y_train.to(dev),
        optimizer=optimizer, steps=ctx.steps(cfg.steps),
        measure_every=cfg.measure_every, x_test=split.x_test.to(dev), y_test=split.y_test.to(dev),
        lanczos_tol=cfg.lanczos_tol, bn_mode="full-batch", progress=ctx.progress, lanczos_stop=cfg.lanczos_stop,
        curvature_dtype=None if cfg.curvature_dtype == "model" else getattr(torch, cfg.curvature_dtype))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    scale = {"model": cfg.model, "activation": cfg.activation, "trainable_params": n_params,
             "data": cfg.data, "n_train": len(split.y_train), "n_test": len(split.y_test),
             "steps": result.steps_run, "lr_wd": cfg.lr_wd, "tau_end": cfg.lr_wd * result.steps_run,
             "bn_mode": "train mode, full-batch statistics", "dtype": cfg.dtype,
             "curvature": f"{cfg.curvature_dtype if cfg.curvature_dtype != 'model' else cfg.dtype} Lanczos, "
                          f"{cfg.lanczos_stop} stop at tol {cfg.lanczos_tol:g}",
             "data_provenance": split.provenance}
    return result, scale


def onset_index(table: pd.DataFrame, cfg: GDConfig) -> int | None:
    """Row of the EoS onset (first lr*lambda_max >= cfg.onset_threshold), None if never reached."""
    idx = np.flatnonzero(table["lr_lambda_max"].to_numpy() >= cfg.onset_threshold)
    return int(idx[0]) if len(idx) else None


def trajectory_metrics(table: pd.DataFrame, cfg: GDConfig, angles: list[float]) -> tuple[dict, dict]:
    """EoS and sharpness-reduction metrics from a trajectory table. Returns (scalars, std errors).

    Sharpness reduction is measured from the EoS onset (not from the global S_sph maximum, which in
    ordinary early training is often the step-0 value): the peak is the largest S_sph at or after the
    onset, the log-slope is fitted from the onset on, per unit of tau = lr * wd * step.

    Metrics are defined for failed runs too (no onset: in-band fraction 0, onset fraction 1, reduction
    over the last 30%), so a claim that does not hold gets 'fails', not 'error'.
    """
    prod = table["lr_lambda_max"].to_numpy()
    steps = table["step"].to_numpy().astype(float)
    total = max(int(steps[-1]), 1)
    i0 = onset_index(table, cfg)
    tail = table.iloc[int(len(table) * (1 - cfg.tail_fraction)):]
    s, se = {}, {}
    s["lr_lambda_max_tail_median"] = float(np.median(tail["lr_lambda_max"]))
    s["lr_lambda_max_initial"] = float(prod[0])
    s["lambda_max_final"] = float(tail["lambda_max"].median())
    s["two_over_lr"] = 2.0 / cfg.optim.lr
    s["train_loss_final"] = float(table["loss"].iloc[-1])
    s["test_acc_final"] = float(table["test_acc"].iloc[-1]) if "test_acc" in table else math.nan
    s["max_lambda_residual_rel"] = float((table["lambda_residual"] / table["lambda_max"].abs()).max())
    sph = table["spherical_sharpness"].to_numpy()
    s["sph_final"] = float(np.median(tail["spherical_sharpness"].iloc[-max(3, len(tail) // 3):]))
    s["sph_initial"] = float(sph[0])
    s["tau_end"] = cfg.lr_wd * float(steps[-1])
    if i0 is None:
        s.update(onset_step=math.nan, onset_fraction=1.0, in_band_fraction=0.0, tau_onset=math.nan,
                 tau_after_onset=0.0)
        start = int(len(table) * (1 - cfg.tail_fraction))  # no EoS: the reduction over the last 30%
    else:
        post = prod[i0:]
        s["onset_step"] = float(steps[i0])
        s["onset_fraction"] = float(steps[i0]) / total
        s["in_band_fraction"] = float(np.mean((post >= cfg.band[0]) & (post <= cfg.band[1])))
        s["tau_onset"] = cfg.lr_wd * float(steps[i0])
        s["tau_after_onset"] = s["tau_end"] - s["tau_onset"]
        start = i0
    start = max(0, min(start, len(sph) - 3))
    s["sph_peak"] = float(sph[start:].max())  # post-onset peak: pre-onset values never enter
    s["sph_final_over_peak"] = s["sph_final"] / s["sph_peak"]
    if len(sph) - start >= 3:
        x = steps[start:] * (cfg.lr_wd if cfg.lr_wd > 0 else 1e-3)  # per tau; per 1k steps when wd = 0
        fit = stats.linregress(x, np.log(sph[start:]))
        s["sph_log_slope_per_tau"], se["sph_log_slope_per_tau"] = float(fit.slope), float(fit.stderr)
    else:
        s["sph_log_slope_per_tau"] = math.nan  # fewer than 3 measurements: nothing to fit
    s.update(equilibrium_metrics(tail, cfg, angles))
    return s, se


def equilibrium_metrics(tail: pd.DataFrame, cfg: GDConfig, angles: list[float]) -> dict:
    """The norm's equilibrium, a prediction that does not restate lr * lambda_max.

    For a scale-invariant loss <grad L(w), w> = 0, so ||w_{t+1}||^2 = (1 - lr wd)^2 ||w_t||^2
    + lr^2 ||grad L(w_t)||^2; at a stationary norm the squared angular update per step, about
    lr^2 ||grad L(w)||^2 / ||w||^2, averages to 1 - (1 - lr wd)^2 ~ 2 lr wd. The angle is accumulated
    every step (the curvature measurements, every k steps, would alias the period-2 oscillation).

    Returns:
        rms_angle_over_sqrt_2lr_wd: RMS angular update over the tail / sqrt(2 lr wd) (nan without wd).
    """
    out = {"rms_angle_over_sqrt_2lr_wd": math.nan}
    if cfg.optim.weight_decay > 0 and angles:
        tail_angles = np.asarray(angles[int(len(angles) * (1 - cfg.tail_fraction)):])
        out["rms_angle_over_sqrt_2lr_wd"] = float(np.sqrt(np.mean(tail_angles**2)) / math.sqrt(2 * cfg.lr_wd))
    return out


# The columns of a run's trajectory table (one row per measurement), declared by every experiment that
# passes the run's table on.
TRAJECTORY_COLUMNS = ('eff_lr', 'grad_sq_norm', 'hvps', 'lambda_max', 'lambda_residual', 'loss',
                      'lr_lambda_max', 'spherical_sharpness', 'sq_norm', 'step', 'tau', 'test_acc', 'train_acc')


@experiment("gd_sharpness_trajectory", GDConfig,
            outputs=('in_band_fraction', 'lambda_max_final', 'lambda_over_threshold_initial',
                     'lambda_over_threshold_post_onset_median', 'lambda_over_threshold_tail_median',
                     'lr_lambda_max_initial', 'lr_lambda_max_tail_median', 'max_lambda_residual_rel',
                     'null_lambda_over_gd_threshold_post_onset_median', 'onset_fraction', 'onset_step',
                     'rms_angle_over_sqrt_*lr_wd', 'sph_final', 'sph_final_over_peak', 'sph_initial',
                     'sph_log_slope_per_tau', 'sph_peak', 'stability_threshold', 'tau_after_onset', 'tau_end',
                     'tau_onset', 'test_acc_final', 'threshold_in_band_fraction', 'threshold_onset_fraction',
                     'threshold_onset_step', 'train_loss_final', 'two_over_lr'),
            curves={'trajectory': TRAJECTORY_COLUMNS})
def gd_sharpness_trajectory(cfg: GDConfig, ctx: RunContext) -> Measurement:
    """One full-batch GD (+WD) run with lambda_max, spherical sharpness and eta_eff recorded."""
    result, scale = _run_arm(cfg, ctx)
    notes = []
    if result.diverged_at is not None:
        raise FloatingPointError(f"loss became non-finite at step {result.diverged_at}")
    table = result.table.assign(tau=result.table["step"] * cfg.lr_wd)
    scalars, ses = trajectory_metrics(table, cfg, result.angles)
    if math.isnan(scalars["onset_step"]):
        notes.append(f"never reached lr*lambda_max >= {cfg.onset_threshold}")
    threshold = cfg.optim.stability_threshold()
    if threshold is not None:  # EoS relative to the optimizer's own threshold T (None: SAM, IRE)
        rel = result.table["lambda_max"].to_numpy() / threshold  # lambda_max / T per measurement
        at = result.table["step"].to_numpy()
        hit = np.flatnonzero(rel >= cfg.threshold_onset)
        post, (lo, hi) = rel[hit[0]:] if len(hit) else rel[:0], cfg.threshold_band
        scalars.update(
            stability_threshold=threshold,
            lambda_over_threshold_initial=float(rel[0]),
            lambda_over_threshold_tail_median=float(np.median(rel[int(len(rel) * (1 - cfg.tail_fraction)):])),
            threshold_onset_step=float(at[hit[0]]) if len(hit) else math.nan,
            threshold_onset_fraction=float(at[hit[0]]) / max(int(at[-1]), 1) if len(hit) else 1.0,
            threshold_in_band_fraction=float(np.mean((post >= lo) & (post <= hi))) if len(hit) else 0.0)
        # The median of lambda / T from the onset on (no onset: the tail's, which then lies below the
        # onset level), and the same lambda read against plain GD's threshold 2/lr: a null that tells
        # which threshold the run hovers at (T * lr / 2 is 1.9 for heavy ball at beta 0.9, 0.68 Nesterov).
        settled = post if len(hit) else rel[int(len(rel) * (1 - cfg.tail_fraction)):]
        scalars["lambda_over_threshold_post_onset_median"] = float(np.median(settled))
        scalars["null_lambda_over_gd_threshold_post_onset_median"] = float(
            np.median(settled) * threshold * cfg.optim.lr / 2.0)
        if not len(hit):
            notes.append(f"never reached lambda_max >= {cfg.threshold_onset} x threshold {threshold:.4g}")
    return Measurement(scalars=scalars, standard_errors=ses, curves={"trajectory": table},
                       scale=scale, notes=notes)


def log_interp(x_new: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y (positive) at x_new, interpolated linearly in log y; nan outside [x[0], x[-1]]."""
    return np.exp(np.interp(x_new, x, np.log(y), left=np.nan, right=np.nan))
