"""The (lr, wd) collapse of GD + WD on a scale-invariant net (Lyu, Li, Arora 2022).

For a scale-invariant loss, grad L(c w) = grad L(w) / c, so with w' = c w, lr' = c^2 lr, wd' = wd / c^2:
    w'_{t+1} = (1 - lr wd) c w_t - c^2 lr grad L(w_t) / c = c w_{t+1}.
The direction theta = w / ||w|| (and with it S_sph = ||w||^2 lambda_max) follows one trajectory for every
(lr, wd, ||w0||) with the same lr * wd and lr / ||w0||^2; plotted against tau = lr * wd * t the runs must
collapse. The experiment runs one setting per c^2 in `scales` (c^2 = 1 is the base run, shared with
eos-scale-invariant through the cache) and a null run whose lr * wd differs by `null_product_factor`
(wd scaled, lr and w0 kept), and compares them two ways:

- before the base run's EoS onset, pointwise: the largest relative spread of S_sph at matched steps.
  Exact in exact arithmetic; in floating point GD below the stability edge does not amplify rounding,
  so only the eigen-solver's accuracy separates the settings.
- after the onset, on the slow part: GD at the edge of stability amplifies rounding differences (the
  sqrt(c^2)-scaled inits differ in their last bits) into O(1) pointwise differences, so the rescaled
  runs become different realizations of one chaotic process. What the theory then fixes is the slow
  quantity: the mean of log S_sph over windows of tau. The metric is the largest difference of that
  window mean over windows and pairs of settings.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.config import derive
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory, log_interp
from harness.measurement import Measurement, RunContext
from harness.registry import experiment


@dataclass(frozen=True)
class CollapseConfig:
    """Settings (lr c^2, wd / c^2, ||w0|| c) for c^2 in scales; 1.0 must be among them (the base run)."""

    base: GDConfig = GDConfig()
    # No two scales a power of two apart: such settings differ by an exact rescaling in floating point
    # too, and would be one realization counted twice.
    scales: tuple[float, ...] = (0.5, 1.0, 3.0)
    # The other settings measure at every k-th of the base run's measurement steps (k odd: no aliasing).
    # 1: window means need the base run's density (the EoS fluctuation of S_sph is ~0.3 in log).
    other_measure_factor: int = 1
    null_product_factor: float = 2.0
    window_tau: float = 1.0          # width of the post-onset windows, in tau = lr * wd * step
    min_window_points: int = 3       # a run with fewer measurements in a window leaves it out

    def __post_init__(self):
        if len(self.scales) < 3 or 1.0 not in self.scales or any(not c > 0 for c in self.scales):
            raise ConfigError(f"scales needs >= 3 positive values including 1.0, got {self.scales}")
        if self.base.optim.weight_decay <= 0:
            raise ConfigError("the collapse needs weight decay > 0 (tau = lr * wd * t)")
        if self.other_measure_factor < 1 or self.null_product_factor <= 0 or self.null_product_factor == 1:
            raise ConfigError("other_measure_factor must be >= 1 and null_product_factor > 0 and != 1")
        if not self.window_tau > 0 or self.min_window_points < 1:
            raise ConfigError("window_tau must be > 0 and min_window_points >= 1")

    def preflight(self) -> None:
        self.base.preflight()


def setting(base: GDConfig, c2: float, measure_every: int) -> GDConfig:
    """The run with lr * c2, wd / c2 and init scaled by sqrt(c2): same lr*wd and lr/||w0||^2."""
    if c2 == 1.0:
        return base
    return derive(base, optim={"lr": base.optim.lr * c2, "weight_decay": base.optim.weight_decay / c2},
                  init_scale=base.init_scale * math.sqrt(c2), measure_every=measure_every)


def max_rel_spread(curves: list[pd.DataFrame], tau: np.ndarray) -> tuple[float, np.ndarray]:
    """Largest (max - min) / median of S_sph across curves at the given tau points (interpolated in
    log S_sph where a curve was not measured there).

    Returns:
        (the largest spread, spread per point with a finite value in every curve).

    Raises:
        ValueError: when the curves share no tau point.
    """
    vals = np.stack([log_interp(tau, c["tau"].to_numpy(float), c["spherical_sharpness"].to_numpy())
                     for c in curves])  # (settings, points)
    ok = np.all(np.isfinite(vals), axis=0)
    if not ok.any():
        raise ValueError("the runs share no tau range to compare on")
    v = vals[:, ok]
    spread = (v.max(axis=0) - v.min(axis=0)) / np.median(v, axis=0)
    return float(spread.max()), spread


def window_edges(tau_start: float, tau_end: float, width: float) -> np.ndarray:
    """Edges of the full windows of the given width from tau_start up to tau_end; one window
    [tau_start, tau_end] when not even one full window fits (short runs: the smoke tier)."""
    n = int(math.floor((tau_end - tau_start) / width + 1e-9))
    if n < 1:
        return np.array([tau_start, tau_end], dtype=float)
    return tau_start + width * np.arange(n + 1, dtype=float)


def window_means(curve: pd.DataFrame, edges: np.ndarray, column: str = "spherical_sharpness",
                 log: bool = True, min_points: int = 3) -> np.ndarray:
    """Mean of a curve's column (of its log when log) over each window [edges[i], edges[i+1]) of tau,
    from the curve's own measurements; nan where it has fewer than min_points there."""
    tau = curve["tau"].to_numpy(float)
    y = curve[column].to_numpy(float)
    y = np.log(y) if log else y
    out = np.full(len(edges) - 1, np.nan)
    # tau = step * lr * wd: the settings' lr * wd agree only to an ulp, so a point on an edge must
    # fall on the same side in every run.
    eps = 1e-9 * max(1.0, float(np.abs(edges).max()))
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (tau >= lo - eps) & ((tau < hi - eps) if i < len(edges) - 2 else (tau <= hi + eps))
        if sel.sum() >= min_points:
            out[i] = float(y[sel].mean())
    return out


def max_window_diff(curves: list[pd.DataFrame], edges: np.ndarray, column: str = "spherical_sharpness",
                    log: bool = True, min_points: int = 3) -> float:
    """Largest |difference| of window means over windows and pairs of curves (windows where every
    curve has min_points measurements). nan when no window qualifies."""
    means = np.stack([window_means(c, edges, column, log, min_points) for c in curves])
    ok = np.all(np.isfinite(means), axis=0)
    if not ok.any():
        return math.nan
    m = means[:, ok]
    return float(max(np.abs(m[a] - m[b]).max() for a, b in itertools.combinations(range(len(m)), 2)))


@experiment("eos_intrinsic_time_collapse", CollapseConfig,
            outputs=('c*_*.lr_lambda_max_tail_median', 'log_sph_window_mean_max_diff',
                     'log_sph_window_mean_max_diff_null_product', 'lr_lambda_max_window_mean_max_diff',
                     'lr_lambda_max_window_mean_max_diff_null_product', 'matched_points',
                     'matched_points_before_onset', 'post_onset_windows', 'sph_max_rel_spread',
                     'sph_max_rel_spread_before_onset', 'sph_max_rel_spread_before_onset_null_product',
                     'tau_end', 'tau_onset'),
            curves={'collapse': ('sph_c*_*', 'sph_null_product', 'tau')})
def eos_intrinsic_time_collapse(cfg: CollapseConfig, ctx: RunContext) -> Measurement:
    """Runs the settings and the null run; compares S_sph before the onset pointwise and after it in
    tau windows."""
    base = cfg.base
    other_every = base.measure_every * cfg.other_measure_factor
    runs = {c2: ctx.run(gd_sharpness_trajectory, setting(base, c2, other_every)) for c2 in cfg.scales}
    curves = [m.curves["trajectory"] for m in runs.values()]
    # Matched tau: the steps every setting measured (lr*wd is shared, so matched tau = matched step).
    common = set.intersection(*(set(c["step"].tolist()) for c in curves))
    tau = base.lr_wd * np.array(sorted(common), dtype=float)
    spread, per_point = max_rel_spread(curves, tau)
    # Null: lr*wd scaled by the factor (wd scaled; lr and w0 kept), over the same tau range and with
    # the same measurements per unit tau.
    k = cfg.null_product_factor
    null_cfg = derive(base, {"optim.weight_decay": base.optim.weight_decay * k},
                      steps=max(1, round(base.steps / k)),
                      measure_every=max(1, round(other_every / k)) | 1)  # odd; compared interpolated
    null = ctx.run(gd_sharpness_trajectory, null_cfg)
    base_curve, null_curve = runs[1.0].curves["trajectory"], null.curves["trajectory"]
    onset = runs[1.0].scalars["onset_step"]
    tau_end = float(tau[-1])
    tau_onset = base.lr_wd * onset if math.isfinite(onset) else tau_end
    # Before the onset: pointwise (the settings must agree to the eigen-solver's accuracy).
    pre = tau <= tau_onset
    base_tau = base_curve["tau"].to_numpy(float)
    null_pre, _ = max_rel_spread([base_curve, null_curve], base_tau[base_tau <= tau_onset])
    # After the onset: window means of log S_sph (and of lr * lambda_max = eta_eff * S_sph).
    start = tau_onset if math.isfinite(onset) else 0.0
    edges = window_edges(start, tau_end, cfg.window_tau)
    npts = cfg.min_window_points
    scalars = {
        "sph_max_rel_spread_before_onset": float(per_point[pre].max()) if pre.any() else math.nan,
        "sph_max_rel_spread_before_onset_null_product": null_pre,
        "log_sph_window_mean_max_diff": max_window_diff(curves, edges, min_points=npts),
        "log_sph_window_mean_max_diff_null_product": max_window_diff([base_curve, null_curve], edges,
                                                                     min_points=npts),
        "lr_lambda_max_window_mean_max_diff": max_window_diff(curves, edges, "lr_lambda_max", False, npts),
        "lr_lambda_max_window_mean_max_diff_null_product": max_window_diff(
            [base_curve, null_curve], edges, "lr_lambda_max", False, npts),
        "sph_max_rel_spread": spread, "matched_points": float(len(tau)),
        "matched_points_before_onset": float(pre.sum()), "post_onset_windows": float(len(edges) - 1),
        "tau_onset": tau_onset, "tau_end": tau_end}
    for c2, m in runs.items():
        scalars[f"c2_{c2:g}.lr_lambda_max_tail_median"] = m.scalars["lr_lambda_max_tail_median"]
    wide = pd.DataFrame({"tau": tau})
    for c2, m in runs.items():
        t = m.curves["trajectory"]
        wide[f"sph_c2_{c2:g}"] = log_interp(tau, t["tau"].to_numpy(float), t["spherical_sharpness"].to_numpy())
    wide["sph_null_product"] = log_interp(tau, null_curve["tau"].to_numpy(float),
                                          null_curve["spherical_sharpness"].to_numpy())
    lr, wd = base.optim.lr, base.optim.weight_decay
    scale = {"settings": [f"lr={lr * c:g}, wd={wd / c:g}, ||w0|| x {math.sqrt(c):.3g}" for c in cfg.scales],
             "null": f"lr={lr:g}, wd={null_cfg.optim.weight_decay:g} (lr*wd x {k:g}), {null_cfg.steps} steps",
             "windows": f"{len(edges) - 1} of tau width {edges[1] - edges[0]:.3g} from tau {start:.3g}",
             "lr_wd": base.lr_wd, "steps": runs[1.0].scale["steps"], "tau_end": runs[1.0].scale["tau_end"],
             **{key: runs[1.0].scale[key] for key in ("model", "activation", "data", "n_train", "dtype")}}
    return Measurement(scalars=scalars, curves={"collapse": wide}, scale=scale)
