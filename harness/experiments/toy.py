"""IRE's Figure 1 toy (Wang et al. 2024): GD and ideal IRE on L(u, v) = (1 + u²) v² / 2.

figure1_toy runs, from the paper's start (1, 0.01):
  - GD with η = 1 (which sits at the edge of stability: η·λ_max = 2 at the start) and η = 2 (diverges);
  - ideal IRE (η = 1, exact projection onto the flat u axis, refreshed every step) for each κ;
  - the same comparison on RotatedToy, where the flat directions are not coordinate axes, with the
    practical diagonal mask (the γ-fraction of coordinates with the smallest Hessian diagonal) next to
    the exact projection: how much of the exact projection's trace reduction survives.
Everything here is deterministic; the seed only draws the rotated toy's matrices.

The metric helpers first_divergence and loglog_slope are shared with sam_flat.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
from scipy import stats

from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError, NumericalError
from harness.models.toys import Figure1Toy, RotatedToy
from harness.optim import CONSTANT_LR, OptimizerSpec, flat_mask_from_scores, require_spec

# ---------------------------------------------------------------- metric helpers


def first_divergence(losses: np.ndarray, cap: float) -> int | None:
    """Index of the first loss that is non-finite or above `cap`, or None if there is none.

    Args:
        losses: (T,) losses along a run.
        cap: a loss above this counts as diverged.
    """
    bad = ~np.isfinite(losses) | (losses > cap)
    idx = np.flatnonzero(bad)
    return int(idx[0]) if len(idx) else None


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log y on log x and its standard error.

    Args:
        x, y: (n,) positive values, n >= 3 (two points leave no residual to estimate the error from).

    Returns:
        (slope, standard error of the slope).

    Raises:
        ValueError: fewer than 3 points or a non-positive value.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need >= 3 (x, y) pairs of equal length, got {len(x)} and {len(y)}")
    if (x <= 0).any() or (y <= 0).any():
        raise ValueError("log-log fit needs positive x and y")
    fit = stats.linregress(np.log(x), np.log(y))
    return float(fit.slope), float(fit.stderr)


# ---------------------------------------------------------------- the experiment


@dataclass(frozen=True)
class RotatedToyConfig:
    """The rotated-toy comparison: GD, exact-projection IRE and diagonal-mask IRE at each κ."""

    p: int = 4                           # RotatedToy: 2p parameters, p flat directions
    lr_sharpness: float = 2.0            # η = this / λ_max(θ0): Figure 1's η·λ_max at its start
    gamma: float = 0.5                   # mask size = the true flat fraction p / 2p
    kappas: tuple[float, ...] = (90.0,)  # Figure 1's smallest κ; at κ = 3 the exact gain is ~0.3%

    def __post_init__(self):
        if self.lr_sharpness <= 0:
            raise ConfigError(f"rotated lr_sharpness must be > 0, got {self.lr_sharpness}")
        if any(k < 0 for k in self.kappas):
            raise ConfigError(f"rotated kappas must be >= 0, got {self.kappas}")
        if not 0 < self.gamma < 1:
            raise ConfigError(f"rotated gamma must be in (0, 1), got {self.gamma}")
        check_bounds(self, at_least_one=("p",))


@dataclass(frozen=True)
class ToyConfig:
    """Figure 1 toy settings (paper values) and the rotated-toy comparison (`rotated`). `optim` is GD's
    spec; the IRE arms are `optim.as_kind("ire_projected", kappa=κ)`, GD at lr_unstable replaces lr, and
    the rotated toy's arms derive from it at their own lr (rotated.lr_sharpness / λ_max)."""

    steps: int = 1000                    # not in the paper; GD at η = 1 has |v| < 1e-6 by then
    u0: float = 1.0                      # Figure 1's start
    v0: float = 0.01
    optim: OptimizerSpec = OptimizerSpec("sgd", lr=1.0)
    lr_unstable: float = 2.0
    kappas: tuple[float, ...] = (90.0, 900.0, 9000.0)
    divergence_cap: float = 1e10         # a loss above this (or non-finite) counts as diverged
    rotated: RotatedToyConfig = RotatedToyConfig()
    record_floor: float = 1e-12          # |v| below this is not drawn on the log plot

    def __post_init__(self):
        require_spec("optim", self.optim, ("sgd",), role="GD; the IRE arms derive from it",
                     fixed=CONSTANT_LR, set_by="the experiment (it runs at a constant lr)")
        if self.steps < 1 or self.lr_unstable <= 0:
            raise ConfigError("steps must be >= 1 and learning rates > 0")
        if not self.kappas or any(k < 0 for k in self.kappas):
            raise ConfigError(f"kappas must be non-empty and >= 0, got {self.kappas}")
        check_bounds(self, positive=("divergence_cap", "record_floor"))


def _kname(kappa: float) -> str:
    return f"{kappa:g}".replace(".", "p")


def run_toy(model: torch.nn.Module, opt: torch.optim.Optimizer, steps: int, cap: float,
            before_step: Callable[[], None] = lambda: None,
            record: Callable[[], dict] = lambda: {}) -> tuple[pd.DataFrame, int | None]:
    """Plain loop on a toy loss: record, refresh (before_step), gradient, step; stop on divergence.

    Returns:
        (table with one row per step 0..T: step, loss and whatever `record` returns; the step at which
        the loss first exceeded `cap` or became non-finite, else None).
    """
    rows, diverged = [], None
    for step in range(steps + 1):
        loss = model.loss()
        rows.append({"step": step, "loss": loss.item(), **record()})
        if first_divergence(np.array([loss.item()]), cap) is not None:
            diverged = step
            break
        if step == steps:
            break
        before_step()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return pd.DataFrame(rows), diverged


def _figure1_arm(cfg: ToyConfig, lr: float, kappa: float | None) -> tuple[pd.DataFrame, int | None]:
    """GD (kappa None) or ideal IRE with P onto the u axis, from (u0, v0)."""
    toy = Figure1Toy(cfg.u0, cfg.v0)
    params = [toy.u, toy.v]
    if kappa is None:
        opt, refresh = replace(cfg.optim, lr=lr).build(params), (lambda: None)
    else:
        opt = cfg.optim.as_kind("ire_projected", lr=lr, kappa=kappa, mask_every=1).build(params)
        basis = toy.flat_projection()[:, :1]  # (2, 1): e_u, the tangent of the valley v = 0

        def refresh():
            if opt.should_refresh_mask():
                opt.refresh_mask(lambda: basis)
    return run_toy(toy, opt, cfg.steps, cfg.divergence_cap, refresh,
                   lambda: {"u": toy.u.item(), "v": toy.v.item()})


def _rotated_arm(cfg: ToyConfig, seed: int, kind: str, kappa: float) -> tuple[pd.DataFrame, int | None]:
    """RotatedToy with GD ("gd"), exact-projection IRE ("exact") or diagonal-mask IRE ("mask")."""
    toy = RotatedToy(cfg.rotated.p, seed=seed, u0=cfg.u0, v0=cfg.v0)
    lr = cfg.rotated.lr_sharpness / toy.sharpness()
    params = [toy.u, toy.v]
    p, gamma = cfg.rotated.p, cfg.rotated.gamma
    if kind == "gd":
        opt, refresh = replace(cfg.optim, lr=lr).build(params), (lambda: None)
    elif kind == "exact":
        opt = cfg.optim.as_kind("ire_projected", lr=lr, kappa=kappa, mask_every=1).build(params)
        U = torch.linalg.eigh(toy.flat_projection()).eigenvectors[:, p:]  # (2p, p): eigenvalue-1 block

        def refresh():
            opt.refresh_mask(lambda: U)
    elif kind == "mask":
        # The practical rule with the toy's exact Hessian diagonal as the score (the quantity the
        # paper's sampled Fisher diagonal estimates), refreshed every step like the projection.
        opt = cfg.optim.as_kind("ire", lr=lr, kappa=kappa, gamma=gamma, mask_every=1).build(params, seed=0)

        def refresh():
            d = torch.diagonal(toy.hessian())  # (2p,)
            opt.set_mask(flat_mask_from_scores([d[:p].clone(), d[p:].clone()], gamma))
    else:
        raise ValueError(f"unknown rotated arm {kind!r}")
    return run_toy(toy, opt, cfg.steps, cfg.divergence_cap, refresh, lambda: {"trace": toy.hessian_trace()})


def rotated_gain_fraction(trace_gd: float, trace_exact: float, trace_mask: float,
                          mask_diverged: bool) -> float:
    """Share of the exact projection's trace reduction (relative to GD) that the mask achieves.

    1: as flat as the exact projection; 0: no flatter than GD; < 0: sharper than GD. A diverged mask run
    achieves none of the reduction and counts 0 (its divergence is reported separately).
    """
    if mask_diverged:
        return 0.0
    gain = trace_gd - trace_exact
    if not gain > 0:
        return math.nan  # the exact projection did not flatten anything: no gain to share
    return (trace_gd - trace_mask) / gain


@experiment("figure1_toy", ToyConfig,
            outputs=('abs_v_final_gd', 'abs_v_final_ire*', 'gd_lr*_diverge_step', 'gd_lr*_diverged',
                     'null_u_final_ire_k*', 'rot_mask_diverged_k*', 'rot_mask_gain_fraction_k*',
                     'rot_trace_exact_k*', 'rot_trace_gd', 'rot_trace_mask_k*', 'u_final_gd', 'u_final_ire*'),
            curves={'abs_v_steps': ('abs_v_gd', 'abs_v_gd_lr*', 'abs_v_ire*', 'step'), 'rotated_trace': ('step',
                    'trace_exact_k*', 'trace_gd', 'trace_mask_k*'), 'u_steps': ('step', 'u_gd', 'u_ire*'),
                    'uv_plane': ('abs_v_gd', 'abs_v_ire*', 'u')})
def figure1_toy(cfg: ToyConfig, ctx: RunContext) -> Measurement:
    """Final u of GD and ideal IRE on the Figure 1 toy; divergence of GD at η = 2; rotated-toy mask test."""
    cfg_steps = ctx.steps(cfg.steps)
    run_cfg = replace(cfg, steps=cfg_steps)  # --max-steps caps every arm
    scalars, notes, traj = {}, [], {}
    lr = cfg.optim.lr
    arms = [("gd", None)] + [(f"ire{_kname(k)}", k) for k in cfg.kappas]
    for i, (name, kappa) in enumerate(arms):
        table, diverged = _figure1_arm(run_cfg, lr, kappa)
        if diverged is not None:  # must not happen at η = 1: an error verdict, never a measured u
            raise NumericalError(f"{name} (lr {lr:g}) diverged at step {diverged}: the loss passed "
                                 f"{cfg.divergence_cap:g} or became non-finite")
        last = table.iloc[-1]
        scalars[f"u_final_{name}"] = float(last["u"])
        scalars[f"abs_v_final_{name}"] = abs(float(last["v"]))
        traj[name] = table
        ctx.progress(i + 1, len(arms) + 1 + 2 * len(cfg.rotated.kappas))
    # Null: the IRE wrapper with κ = 0 amplifies nothing, so its final u is what "no drift" reads
    null, null_div = _figure1_arm(run_cfg, lr, 0.0)
    if null_div is not None:
        raise NumericalError(f"IRE kappa=0 (lr {lr:g}) diverged at step {null_div}")
    scalars["null_u_final_ire_k0"] = float(null["u"].iloc[-1])
    table2, diverged2 = _figure1_arm(run_cfg, cfg.lr_unstable, None)
    scalars["gd_lr2_diverged"] = float(diverged2 is not None)
    scalars["gd_lr2_diverge_step"] = float(diverged2) if diverged2 is not None else float(run_cfg.steps + 1)
    notes.append(f"GD eta={cfg.lr_unstable}: " + (
        f"loss > {cfg.divergence_cap:g} or non-finite at step {diverged2}" if diverged2 is not None
        else "did not diverge"))

    # rotated toy: GD, exact projection and diagonal mask at each κ
    gd_rot, gd_rot_div = _rotated_arm(run_cfg, ctx.seed, "gd", 0.0)
    scalars["rot_trace_gd"] = float(gd_rot["trace"].iloc[-1]) if gd_rot_div is None else math.nan
    rot_curves = {"step": gd_rot["step"], "trace_gd": gd_rot["trace"]}
    for kappa in cfg.rotated.kappas:
        k = _kname(kappa)
        exact, exact_div = _rotated_arm(run_cfg, ctx.seed, "exact", kappa)
        mask, mask_div = _rotated_arm(run_cfg, ctx.seed, "mask", kappa)
        t_exact = float(exact["trace"].iloc[-1]) if exact_div is None else math.nan
        t_mask = float(mask["trace"].iloc[-1]) if mask_div is None else math.nan
        scalars[f"rot_trace_exact_k{k}"] = t_exact
        scalars[f"rot_trace_mask_k{k}"] = t_mask
        scalars[f"rot_mask_diverged_k{k}"] = float(mask_div is not None)
        scalars[f"rot_mask_gain_fraction_k{k}"] = rotated_gain_fraction(
            scalars["rot_trace_gd"], t_exact, t_mask, mask_div is not None)
        if mask_div is not None:
            notes.append(f"rotated toy, diagonal mask, kappa={kappa:g}: diverged at step {mask_div}")
        rot_curves[f"trace_exact_k{k}"] = exact["trace"]
        rot_curves[f"trace_mask_k{k}"] = mask["trace"]
    ctx.progress(1, 1)

    curves = {"u_steps": _wide(traj, "u", len(traj["gd"])),
              "abs_v_steps": _abs_v_steps(traj, table2, cfg.record_floor),
              "uv_plane": _uv_plane(traj, cfg.record_floor),
              "rotated_trace": pd.DataFrame(rot_curves)}  # shorter columns (a diverged arm) pad with NaN
    scale = {"toy": "Figure1Toy L=(1+u^2)v^2/2, 2 params", "steps": run_cfg.steps, "start": [cfg.u0, cfg.v0],
             "rotated_toy": f"RotatedToy p={cfg.rotated.p} ({2 * cfg.rotated.p} params), seed {ctx.seed}",
             "rotated_lr_times_lambda_max": cfg.rotated.lr_sharpness, "dtype": "float64"}
    return Measurement(scalars=scalars, curves=curves, scale=scale, notes=notes)


def _wide(traj: dict[str, pd.DataFrame], col: str, n: int) -> pd.DataFrame:
    out = {"step": np.arange(n)}
    for name, t in traj.items():
        out[f"{col}_{name}"] = np.pad(t[col].to_numpy(), (0, n - len(t)), constant_values=np.nan)
    return pd.DataFrame(out)


def _floor(x: np.ndarray, floor: float) -> np.ndarray:
    x = np.abs(x)
    return np.where(x >= floor, x, np.nan)  # below the floor: not drawn on a log axis


def _abs_v_steps(traj: dict[str, pd.DataFrame], lr2: pd.DataFrame, floor: float) -> pd.DataFrame:
    n = max(len(traj["gd"]), len(lr2))
    out = {"step": np.arange(n)}
    for name, t in [*traj.items(), ("gd_lr2", lr2)]:
        v = _floor(t["v"].to_numpy(), floor)
        out[f"abs_v_{name}"] = np.pad(v, (0, n - len(v)), constant_values=np.nan)
    return pd.DataFrame(out)


def _uv_plane(traj: dict[str, pd.DataFrame], floor: float) -> pd.DataFrame:
    """Stacked (u, |v|) rows of every arm; column abs_v_<arm> holds that arm's |v| and NaN elsewhere,
    so the report draws each arm as its own curve against the shared x column u."""
    parts = []
    for name, t in traj.items():
        part = pd.DataFrame({"u": t["u"].to_numpy()})
        for other in traj:
            part[f"abs_v_{other}"] = _floor(t["v"].to_numpy(), floor) if other == name else np.nan
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
