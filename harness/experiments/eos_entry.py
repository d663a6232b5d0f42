"""Entry time into the Edge of Stability under initial-norm scaling (Lyu, Li, Arora 2022).

GD + WD on a scale-invariant loss: w_{t+1} = (1 - lr wd) w_t - lr grad L(w_t), and <grad L(w), w> = 0, so
||w_{t+1}||^2 = (1 - lr wd)^2 ||w_t||^2 + lr^2 ||grad L(w_t)||^2. Before the edge the gradient term is small
and ||w_t||^2 ~ ||w_0||^2 exp(-2 tau), tau = lr wd t. lr * lambda_max(w) = lr S_sph / ||w||^2 reaches 2 when
||w||^2 = lr S_sph / 2, i.e. at

    tau_onset = ln ||w_0|| + 1/2 ln(2 / (lr S_sph(onset))).

Scaling the init by c (the loss and the direction are unchanged) shifts tau_onset by ln c, up to how much the
spherical sharpness at the onset differs between the runs (the "sharpening" term): the slope of tau_onset on
ln c is 1 - 1/2 x (the slope of ln S_sph(onset) on ln c).

The experiment runs the base config at each init scale c (to tau = ln c + tau_margin), each through
`gd_sharpness_trajectory`, and reports each arm's onset in tau, S_sph and ||w||^2 at the onset, the slope of
tau_onset on ln c, and the slope the derivation predicts from the measured S_sph at the onset.

The onset is read between measurements (`interpolated_onset_tau`): ln(lr * lambda_max) is interpolated
linearly in tau between the last measurement below the threshold and the first at or above it. Before the
edge lr * lambda_max = lr S_sph / ||w||^2 grows as exp(2 tau) (the decay above), so the interpolation is exact
in the derivation's world; read on the measurement grid instead, seeds whose onsets shift by the same number
of grid points give a slope with no spread at all.
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


@dataclass(frozen=True)
class EntryConfig:
    """The base run (weight decay > 0, a scale-invariant net) at init scales `scales`, each to
    tau = ln c + tau_margin.

    Raises:
        ConfigError: fewer than two scales, unsorted or non-positive ones, no weight decay, tau_margin <= 0.
    """

    base: GDConfig = GDConfig(activation="tanh", loss="ce")
    scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    tau_margin: float = 1.2   # each arm runs this far in tau past ln c (the c = 1 onset plus room)

    def __post_init__(self):
        s = self.scales
        if len(s) < 2 or list(s) != sorted(set(s)) or any(not c > 0 for c in s):
            raise ConfigError(f"scales must be >= 2 increasing positive init scales, got {s}")
        if self.base.optim.weight_decay <= 0:
            raise ConfigError("the entry time needs weight decay > 0 (tau = lr * wd * step)")
        if not self.tau_margin > 0:
            raise ConfigError(f"tau_margin must be > 0, got {self.tau_margin}")

    def arm(self, c: float) -> GDConfig:
        """The base run with its init scaled by c (times the base's own init_scale), to tau = ln c + margin."""
        steps = max(1, round((math.log(c) + self.tau_margin) / self.base.lr_wd))
        return derive(self.base, init_scale=self.base.init_scale * c, steps=steps)

    def preflight(self) -> None:
        self.base.preflight()


def interpolated_onset_tau(table: pd.DataFrame, cfg: GDConfig) -> float:
    """tau at which lr * lambda_max first reaches cfg.onset_threshold, between measurements.

    Args:
        table: a `gd_sharpness_trajectory` trajectory (columns tau, lr_lambda_max), one row per measurement.
        cfg: the run's config (its onset_threshold).

    Returns:
        ln(lr * lambda_max) interpolated linearly in tau between the two measurements that bracket the first
        crossing; the first measurement's tau when that one is already at the threshold; nan without an onset.
    """
    i0 = onset_index(table, cfg)
    if i0 is None:
        return math.nan
    tau = table["tau"].to_numpy(float)
    if i0 == 0:
        return float(tau[0])
    y0, y1 = np.log(table["lr_lambda_max"].to_numpy(float)[i0 - 1:i0 + 1])  # y0 < ln threshold <= y1
    frac = (math.log(cfg.onset_threshold) - y0) / (y1 - y0)
    return float(tau[i0 - 1] + frac * (tau[i0] - tau[i0 - 1]))


@experiment("eos_entry_time", EntryConfig,
            outputs=('c*.scale', 'c*.tau_onset', 'c*.tau_onset_grid', 'c*.onset_fraction', 'c*.onset_fraction_grid',
                     'c*.sph_at_onset',
                     'c*.sq_norm_at_onset', 'c*.lr_lambda_max_initial', 'slope_tau_onset_on_log_scale',
                     'predicted_slope_from_sph', 'slope_log_sph_onset_on_log_scale', 'null_slope_no_shift',
                     'max_onset_fraction', 'max_lambda_residual_rel'),
            curves={'c*.trajectory': TRAJECTORY_COLUMNS})
def eos_entry_time(cfg: EntryConfig, ctx: RunContext) -> Measurement:
    """One GD + WD run per init scale; the onset's shift in tau against ln c, and the derivation's slope."""
    scalars, curves, scale, notes = {}, {}, {}, []
    log_c, tau_on, log_sph, residuals = [], [], [], []
    for i, c in enumerate(cfg.scales):
        arm = cfg.arm(c)
        m = ctx.run(gd_sharpness_trajectory, arm)
        table = m.curves["trajectory"]
        i0 = onset_index(table, arm)
        row = table.iloc[i0 if i0 is not None else len(table) - 1]  # no onset: the last row (tau_onset nan)
        name = f"c{i}"
        # No onset: the run's end stands in for the onset time, so the slope stays finite and reads short.
        tau = interpolated_onset_tau(table, arm) if i0 is not None else m.scalars["tau_end"]
        scalars.update({f"{name}.scale": c, f"{name}.tau_onset": tau,
                        f"{name}.tau_onset_grid": m.scalars["tau_onset"] if i0 is not None else math.nan,
                        # the same onset as the slope's, as a share of the arm's run (no onset: the run's own
                        # reading, which puts it past the end)
                        f"{name}.onset_fraction": tau / m.scale["tau_end"] if i0 is not None
                        else m.scalars["onset_fraction"],
                        f"{name}.onset_fraction_grid": m.scalars["onset_fraction"],
                        f"{name}.sph_at_onset": float(row["spherical_sharpness"]),
                        f"{name}.sq_norm_at_onset": float(row["sq_norm"]),
                        f"{name}.lr_lambda_max_initial": m.scalars["lr_lambda_max_initial"]})
        curves[f"{name}.trajectory"] = table
        scale[name] = {"init_scale": arm.init_scale, "steps": m.scale["steps"], "tau_end": m.scale["tau_end"]}
        notes += [f"{name} (init x {c:g}): {n}" for n in m.notes]
        log_c.append(math.log(c))
        tau_on.append(tau)
        log_sph.append(math.log(float(row["spherical_sharpness"])))
        residuals.append(m.scalars["max_lambda_residual_rel"])
        base_scale = m.scale
    slope_sph = float(stats.linregress(log_c, log_sph).slope)
    scalars.update(slope_tau_onset_on_log_scale=float(stats.linregress(log_c, tau_on).slope),
                   slope_log_sph_onset_on_log_scale=slope_sph,
                   predicted_slope_from_sph=1.0 - 0.5 * slope_sph,
                   # What no effect reads: an onset that does not move with the init norm has slope 0.
                   null_slope_no_shift=0.0,
                   max_onset_fraction=max(scalars[f"c{i}.onset_fraction"] for i in range(len(cfg.scales))),
                   max_lambda_residual_rel=float(np.max(residuals)))
    scale.update({k: base_scale[k] for k in ("model", "activation", "trainable_params", "data", "n_train",
                                             "dtype", "lr_wd", "bn_mode")})
    return Measurement(scalars=scalars, curves=curves, scale=scale, notes=notes)
