"""The (lr, wd) collapse of GD + WD on a scale-invariant net (Lyu, Li, Arora 2022), in two parts.

Symmetry of the implementation. For a scale-invariant loss, grad L(c w) = grad L(w) / c, so with w' = c w,
lr' = c^2 lr, wd' = wd / c^2:
    w'_{t+1} = (1 - lr wd) c w_t - c^2 lr grad L(w_t) / c = c w_{t+1}.
The direction, and with it S_sph = ||w||^2 lambda_max, is the same at every step for every such setting.
Before the EoS onset GD does not amplify rounding, so the settings must agree pointwise to the
eigen-solver's accuracy: a check of the net's scale invariance and of the measurement, not of the theory's
dynamics. The rescaled settings run only until shortly after the onset (`symmetry_tau`).

The clock. Lyu et al.'s flow runs on tau = lr * wd * t: runs at different lr * wd (here the base run and
the lr*wd ladder's run at `clock_factor` x lr*wd, same lr and init) follow the same slow curve of S_sph
against tau after the onset. After the onset GD at the edge amplifies rounding into O(1) pointwise
differences, so the curves are compared by window means of log S_sph (windows of `window_tau` from the
later onset). The null compares the same two runs at matched *steps* (the wrong clock): if the clock were
steps, it would read what the check reads. `clock_null_separates` is 1 when the null exceeds the margin
(the check's bound, pre-registered in the claim), the claim's validity gate.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.claim.config import derive
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory, log_interp
from harness.experiments.eos_ladder import rung, truncated_run


@dataclass(frozen=True)
class CollapseConfig:
    """Settings (lr c^2, wd / c^2, ||w0|| c) for c^2 in scales (1.0 among them: the base run), run to
    symmetry_tau; and the clock pair: the base run and its lr*wd ladder rung at clock_factor, both to
    clock_tau_end (the rung is the ladder's run, shared through the cache)."""

    base: GDConfig = GDConfig()
    # No two scales a power of two apart: such settings differ by an exact rescaling in floating point
    # too, and would be one realization counted twice.
    scales: tuple[float, ...] = (0.5, 1.0, 3.0)
    symmetry_tau: float | None = None   # the rescaled settings' run length in tau (None: the base run's)
    clock_factor: float = 0.5           # the clock pair's second run: lr * wd x this (wd scaled)
    clock_tau_end: float | None = None  # the clock pair's common tau_end (None: the base run's)
    clock_margin: float = 0.2           # the check's bound on the window difference (the claim's band)
    window_tau: float = 1.0             # width of the post-onset windows, in tau = lr * wd * step
    min_window_points: int = 3          # a run with fewer measurements in a window leaves it out

    def __post_init__(self):
        if len(self.scales) < 3 or 1.0 not in self.scales or any(not c > 0 for c in self.scales):
            raise ConfigError(f"scales needs >= 3 positive values including 1.0, got {self.scales}")
        if self.base.optim.weight_decay <= 0:
            raise ConfigError("the collapse needs weight decay > 0 (tau = lr * wd * t)")
        if not 0 < self.clock_factor < 1:
            raise ConfigError(f"clock_factor must be in (0, 1) (a slower clock), got {self.clock_factor}")
        full = self.base.lr_wd * self.base.steps
        for name in ("symmetry_tau", "clock_tau_end"):
            v = getattr(self, name)
            if v is not None and not 0 < v <= full:
                raise ConfigError(f"{name} must be in (0, the base run's tau_end {full:g}], got {v}")
        if not self.window_tau > 0 or self.min_window_points < 1 or not self.clock_margin > 0:
            raise ConfigError("window_tau and clock_margin must be > 0 and min_window_points >= 1")

    def preflight(self) -> None:
        self.base.preflight()


def setting(base: GDConfig, c2: float, measure_every: int, steps: int | None = None) -> GDConfig:
    """The run with lr * c2, wd / c2 and init scaled by sqrt(c2): same lr*wd and lr/||w0||^2 (and
    `steps` steps, default the base run's)."""
    if c2 == 1.0:
        return base
    return derive(base, optim={"lr": base.optim.lr * c2, "weight_decay": base.optim.weight_decay / c2},
                  init_scale=base.init_scale * math.sqrt(c2), measure_every=measure_every,
                  steps=base.steps if steps is None else steps)


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


def on_step_clock(curve: pd.DataFrame, lr_wd: float) -> pd.DataFrame:
    """The curve with its tau column replaced by step * lr_wd: compared with another run's curve on
    this axis, the two are matched at equal steps (the wrong clock when their lr * wd differ)."""
    return curve.assign(tau=curve["step"].to_numpy(float) * lr_wd)


@experiment("eos_intrinsic_time_collapse", CollapseConfig,
            outputs=('clock_log_sph_window_diff', 'null_clock_log_sph_window_diff_matched_steps',
                     'clock_null_separates', 'clock_windows', 'clock_tau_onset', 'clock_tau_end',
                     'clock_lr_lambda_max_window_diff', 'sph_max_rel_spread_before_onset',
                     'sph_max_rel_spread_before_onset_null_product', 'matched_points_before_onset',
                     'tau_onset', 'c*_*.lr_lambda_max_tail_median'),
            curves={'collapse': ('sph_c*_*', 'tau'), 'clock': ('sph_base', 'sph_slow_matched_tau',
                                                               'sph_slow_matched_steps', 'tau')})
def eos_intrinsic_time_collapse(cfg: CollapseConfig, ctx: RunContext) -> Measurement:
    """The symmetry check (rescaled settings before the onset, pointwise) and the clock check (two lr*wd
    after the onset, window means at matched tau, against the same at matched steps)."""
    base = cfg.base
    sym_steps = base.steps if cfg.symmetry_tau is None else round(cfg.symmetry_tau / base.lr_wd)
    runs = {c2: ctx.run(gd_sharpness_trajectory, setting(base, c2, base.measure_every, sym_steps))
            for c2 in cfg.scales}
    base_run = runs[1.0]
    curves = [m.curves["trajectory"] for m in runs.values()]
    curves = [c[c["step"] <= sym_steps] for c in curves]  # the base run is longer: same range for all
    # Symmetry: matched tau = matched step (lr*wd is shared), up to the base run's onset.
    common = set.intersection(*(set(c["step"].tolist()) for c in curves))
    tau = base.lr_wd * np.array(sorted(common), dtype=float)
    _, per_point = max_rel_spread(curves, tau)
    onset = base_run.scalars["onset_step"]
    tau_onset = base.lr_wd * onset if math.isfinite(onset) else float(tau[-1])
    pre = tau <= tau_onset
    # The clock pair: base (cut to clock_tau_end) and the slower rung, on tau and on steps.
    slow_cfg = rung(base, cfg.clock_factor, cfg.clock_tau_end)
    slow = ctx.run(gd_sharpness_trajectory, slow_cfg)
    slow_curve = slow.curves["trajectory"]
    fast_steps = rung(base, 1.0, cfg.clock_tau_end).steps
    fast_curve, fast_scalars, _ = truncated_run(base, fast_steps, ctx)
    ons = [fast_scalars["tau_onset"], slow.scalars["tau_onset"]]
    clock_end = base.lr_wd * fast_steps
    start = max(ons) if all(math.isfinite(o) for o in ons) else 0.0
    edges = window_edges(start, clock_end, cfg.window_tau)
    npts = cfg.min_window_points
    matched_tau = max_window_diff([fast_curve, slow_curve], edges, min_points=npts)
    matched_steps = max_window_diff([on_step_clock(base_run.curves["trajectory"], base.lr_wd),
                                     on_step_clock(slow_curve, base.lr_wd)], edges, min_points=npts)
    base_tau = fast_curve["tau"].to_numpy(float)
    null_pre, _ = max_rel_spread([fast_curve, slow_curve], base_tau[base_tau <= tau_onset])
    scalars = {
        "sph_max_rel_spread_before_onset": float(per_point[pre].max()) if pre.any() else math.nan,
        "sph_max_rel_spread_before_onset_null_product": null_pre,
        "matched_points_before_onset": float(pre.sum()), "tau_onset": tau_onset,
        "clock_log_sph_window_diff": matched_tau,
        "null_clock_log_sph_window_diff_matched_steps": matched_steps,
        "clock_null_separates": float(matched_steps > cfg.clock_margin),
        "clock_lr_lambda_max_window_diff": max_window_diff([fast_curve, slow_curve], edges, "lr_lambda_max",
                                                           False, npts),
        "clock_windows": float(len(edges) - 1), "clock_tau_onset": start, "clock_tau_end": clock_end}
    for c2, m in runs.items():
        if c2 != 1.0:
            scalars[f"c2_{c2:g}.lr_lambda_max_tail_median"] = m.scalars["lr_lambda_max_tail_median"]
    wide = pd.DataFrame({"tau": tau})
    for c2, c in zip(runs, curves):
        wide[f"sph_c2_{c2:g}"] = log_interp(tau, c["tau"].to_numpy(float), c["spherical_sharpness"].to_numpy())
    grid = fast_curve["tau"].to_numpy(float)
    clock = pd.DataFrame({"tau": grid, "sph_base": fast_curve["spherical_sharpness"].to_numpy()})
    slow_steps = on_step_clock(slow_curve, base.lr_wd)
    for name, c in (("sph_slow_matched_tau", slow_curve), ("sph_slow_matched_steps", slow_steps)):
        clock[name] = log_interp(grid, c["tau"].to_numpy(float), c["spherical_sharpness"].to_numpy())
    lr, wd = base.optim.lr, base.optim.weight_decay
    scale = {"settings": [f"lr={lr * c:g}, wd={wd / c:g}, ||w0|| x {math.sqrt(c):.3g}" for c in cfg.scales],
             "settings_steps": sym_steps,
             "clock_pair": f"lr={lr:g}, wd={wd:g} and wd={slow_cfg.optim.weight_decay:g} (lr*wd x "
                           f"{cfg.clock_factor:g}), to tau {clock_end:g}",
             "windows": f"{len(edges) - 1} of tau width {edges[1] - edges[0]:.3g} from tau {start:.3g}",
             "lr_wd": base.lr_wd, "steps": base_run.scale["steps"], "tau_end": base_run.scale["tau_end"],
             **{key: base_run.scale[key] for key in ("model", "activation", "data", "n_train", "dtype")}}
    return Measurement(scalars=scalars, curves={"collapse": wide, "clock": clock}, scale=scale)
