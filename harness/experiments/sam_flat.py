"""SAM vs SAM-IRE: how fast each drifts to flat minima (Wang et al. 2024, Section 5).

Theory: near a manifold of minima, standard (normalised) SAM moves along it like Riemannian GD on
Tr ∇²L at rate ηρ², SAM-IRE with κ ~ 1/ρ and the exact projection at rate ηρ. So on the Figure 1 toy
the number of steps to reach the flat region scales like ρ^-2 for SAM and ρ^-1 for SAM-IRE.

sam_ire_flat_convergence:
  toy part: for each ρ, steps until |u| < flat_u for SAM, SAM-IRE with the exact flat projection (κ = 1/ρ,
      mask = the u axis set by hand) and the practical SAM-IRE (κ = 1/ρ, the sampled-Fisher diagonal mask
      with one global threshold, refreshed every K steps); log-log slopes with the regression's standard
      error. A diverged toy run raises NumericalError; a count that hit the step cap is only a lower bound,
      so that slope gets an infinite standard error (not decidable) instead of a number that could pass.
  net part: full-batch SAM vs SAM-IRE (sampled-Fisher mask) on a small BN CNN on digits, same budget of
      gradient evaluations; the Hessian trace (Hutchinson, bn_mode="full-batch", the training loss) along
      the way, and the evaluations SAM-IRE needs to reach SAM's final trace.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from harness.claim.config import check_bounds
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.curvature import HessianOperator, hutchinson_trace
from harness.data.datasets import load_dataset
from harness.errors import ConfigError, NumericalError
from harness.experiments.toy import loglog_slope
from harness.models.cnn import SmallCNN
from harness.models.toys import Figure1Toy
from harness.optim import CONSTANT_LR, OptimizerSpec, flat_mask_from_scores, require_spec


@dataclass(frozen=True)
class SamToyConfig:
    """The toy part, from the paper's check: normalised SAM at η = `lr` from (u0, v0) for each radius in
    `rhos`, SAM-IRE with κ = 1/ρ and γ = 1/2 (the mask refreshed every `mask_every` steps), until
    |u| < flat_u. The optimizer is built per radius, so its values are plain fields here (ρ is swept,
    κ follows it)."""

    rhos: tuple[float, ...] = (0.05, 0.03, 0.02, 0.01)
    lr: float = 0.5
    u0: float = 1.0
    v0: float = 0.01
    flat_u: float = 0.5
    step_cap: int = 100_000           # a run that never reaches |u| < flat_u counts as cap + 1 steps
    mask_every: int = 10              # K for the practical (Fisher-mask) SAM-IRE arm, the paper's default
    divergence_cap: float = 1e10      # a toy loss above this (or non-finite) is a diverged run
    oblique_deg: float = 4.0          # the oblique toy: the valley turned by this angle off the first axis

    def __post_init__(self):
        if len(self.rhos) < 3 or any(r <= 0 for r in self.rhos):
            raise ConfigError(f"rhos needs >= 3 positive radii for a slope with an error, got {self.rhos}")
        if self.lr <= 0:
            raise ConfigError(f"toy lr must be > 0, got {self.lr}")
        check_bounds(self, at_least_one=("step_cap", "mask_every"), positive=("divergence_cap", "flat_u"))
        if not 0 < self.oblique_deg < 45:
            raise ConfigError(f"oblique_deg must lie in (0, 45), got {self.oblique_deg}")


@dataclass(frozen=True)
class SamNetConfig:
    """The net part: full-batch SAM vs SAM-IRE on a small BN CNN on digits. `optim` is SAM-IRE's spec;
    the SAM arm is `optim.as_kind("sam")` (same lr and ρ)."""

    grad_evals: int = 400             # gradient-evaluation budget per arm
    n_train: int = 256                # full batch
    mask_batch: int = 128             # held-out digits for the Fisher mask, never used for the update
    width: int = 8
    # the paper's CIFAR SAM radius, κ = 1/ρ as in the theory, the paper's default flat fraction, K = 10
    optim: OptimizerSpec = OptimizerSpec("sam_ire", lr=0.1, rho=0.05, kappa=20.0, gamma=0.6, mask_every=10)
    measure_every: int = 25           # steps between trace measurements
    trace_probes: int = 8

    def __post_init__(self):
        require_spec("net.optim", self.optim, ("sam_ire",), role="the SAM arm derives from it",
                     fixed=CONSTANT_LR, set_by="the experiment (it runs at a constant lr)")
        check_bounds(self, at_least_one=("n_train", "mask_batch", "width", "measure_every", "trace_probes"))
        if self.grad_evals < 2:
            raise ConfigError(f"net grad_evals must be >= 2, got {self.grad_evals}")


@dataclass(frozen=True)
class SamFlatConfig:
    """The toy part (`toy`) and the small-net comparison (`net`)."""

    toy: SamToyConfig = SamToyConfig()
    net: SamNetConfig = SamNetConfig()


def first_below_after_peak(values: np.ndarray, target: float) -> int | None:
    """Index of the first value <= target at or after the maximum of `values`, or None.

    The trace of a freshly initialised net first rises (progressive sharpening), so "reaching a trace"
    is counted on the way down from the peak, not at initialisation.
    """
    values = np.asarray(values, dtype=float)
    peak = int(np.nanargmax(values))
    idx = np.flatnonzero(values[peak:] <= target)
    return peak + int(idx[0]) if len(idx) else None


TOY_ARMS = ("sam", "samire", "samire_fisher", "samire_fisher_oblique")


class ObliqueToy:
    """Figure 1's valley L = (1 + u²) v² / 2 turned by `deg` degrees in the plane of the parameters (a, b):
    u = a cos φ + b sin φ, v = -a sin φ + b cos φ. No coordinate is the valley's direction, so a diagonal
    mask (one coordinate flat) is not the flat projection: it amplifies a share sin² φ of the sharp v step.
    """

    def __init__(self, u0: float, v0: float, deg: float):
        self.phi = math.radians(deg)
        c, s = math.cos(self.phi), math.sin(self.phi)
        self.a = torch.tensor(u0 * c - v0 * s, dtype=torch.float64, requires_grad=True)
        self.b = torch.tensor(u0 * s + v0 * c, dtype=torch.float64, requires_grad=True)
        self.params = [self.a, self.b]

    def uv(self) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = math.cos(self.phi), math.sin(self.phi)
        return self.a * c + self.b * s, -self.a * s + self.b * c

    def loss(self) -> torch.Tensor:
        u, v = self.uv()
        return (1 + u ** 2) * v ** 2 / 2

    def u_now(self) -> float:
        with torch.no_grad():
            return float(self.uv()[0])

    def sampled_fisher_scores(self, generator: torch.Generator) -> list[torch.Tensor]:
        """h = g̃ ⊙ g̃ with one label ŷ ~ N(f, 1), f = √(1 + u²) v (as Figure1Toy.sampled_fisher_scores)."""
        with torch.enable_grad():
            u, v = self.uv()
            f = torch.sqrt(1 + u ** 2) * v
            y = f.detach() + torch.randn((), generator=generator, dtype=f.dtype)
            ga, gb = torch.autograd.grad((f - y) ** 2 / 2, self.params)
        return [ga.detach().square(), gb.detach().square()]


class _AxisToy:
    """Figure1Toy seen through ObliqueToy's interface (params, loss, u_now, sampled_fisher_scores)."""

    def __init__(self, u0: float, v0: float):
        self.toy = Figure1Toy(u0, v0)
        self.params = [self.toy.u, self.toy.v]
        self.loss, self.sampled_fisher_scores = self.toy.loss, self.toy.sampled_fisher_scores

    def u_now(self) -> float:
        return self.toy.u.item()


def toy_steps_to_flat(rho: float, cfg: SamToyConfig, arm: str, cap: int,
                      generator: torch.Generator | None = None,
                      kappa: float | None = None) -> tuple[int, float]:
    """Steps of SAM or SAM-IRE on the Figure 1 toy from (u0, v0) until |u| < flat_u.

    Args:
        rho: SAM radius.
        cfg: toy settings (lr, start, flat_u, mask_every, divergence_cap).
        arm: "sam"; "samire" (the mask (u flat, v sharp) set by hand: on this toy the exact flat
            projection); "samire_fisher" (the practical mask: `Figure1Toy.sampled_fisher_scores`, γ = 1/2
            under one global threshold, refreshed every cfg.mask_every steps); "samire_fisher_oblique"
            (the same practical mask on `ObliqueToy`, the valley turned by cfg.oblique_deg: the mask
            marks one coordinate, not the valley's direction).
        cap: most steps to run.
        generator: label draws of the Fisher mask (samire_fisher only).
        kappa: IRE's κ; default 1/ρ (the theory's choice).

    Returns:
        (the first step count t with |u_t| < flat_u, or cap + 1 if not reached within cap steps;
        share of mask refreshes that marked exactly the u axis flat, 1.0 for "samire", nan for "sam").

    Raises:
        NumericalError: the loss became non-finite or exceeded cfg.divergence_cap.
        ValueError: unknown arm, or samire_fisher without a generator.
    """
    if arm not in TOY_ARMS:
        raise ValueError(f"arm must be one of {TOY_ARMS}, got {arm!r}")
    if arm.startswith("samire_fisher") and generator is None:
        raise ValueError("samire_fisher draws labels for its mask: pass a generator")
    oblique = arm == "samire_fisher_oblique"
    toy = ObliqueToy(cfg.u0, cfg.v0, cfg.oblique_deg) if oblique else _AxisToy(cfg.u0, cfg.v0)
    kappa = 1.0 / rho if kappa is None else kappa
    refreshes, hits = 0, 0
    if arm == "sam":
        opt = OptimizerSpec("sam", lr=cfg.lr, rho=rho).build(toy.params)
    else:
        opt = OptimizerSpec("sam_ire", lr=cfg.lr, rho=rho, kappa=kappa, gamma=0.5,
                            mask_every=cfg.mask_every).build(toy.params, seed=0)
        if arm == "samire":  # the u axis is the valley's tangent: the exact flat projection here
            opt.set_mask([torch.tensor(True), torch.tensor(False)])

    def closure():
        loss = toy.loss()
        loss.backward()
        return loss

    for step in range(1, cap + 1):
        if arm.startswith("samire_fisher") and opt.should_refresh_mask():
            mask = flat_mask_from_scores(toy.sampled_fisher_scores(generator), 0.5)
            opt.set_mask(mask)
            refreshes += 1  # the first coordinate: the u axis, or the one nearest the oblique valley
            hits += int(bool(mask[0]) and not bool(mask[1]))
        opt.step(closure)
        with torch.no_grad():
            loss = toy.loss().item()
        if not math.isfinite(loss) or loss > cfg.divergence_cap:  # diverged: an error, never "not reached"
            raise NumericalError(f"toy {arm} (rho {rho:g}, lr {cfg.lr:g}) diverged at step {step}: loss {loss}")
        if abs(toy.u_now()) < cfg.flat_u:
            break
    else:
        step = cap + 1
    share = math.nan if arm == "sam" else (1.0 if arm == "samire" else hits / max(refreshes, 1))
    return step, share


def _net_arm(cfg: SamNetConfig, ctx: RunContext, split, x_mask: torch.Tensor,
             ire: bool) -> tuple[pd.DataFrame, float]:
    """Full-batch SAM or SAM-IRE on SmallCNN; a row of (step, grad_evals, loss, trace, trace_se) every
    measure_every steps and at the end, until the gradient-evaluation budget is spent. Also the final
    trace re-estimated with an independent probe stream (the null of a trace ratio; SAM only, else nan)."""
    dev = ctx.device
    x, y = split.x_train.to(dev), split.y_train.to(dev)
    model = SmallCNN(x.shape[1], 10, width=cfg.width, seed=ctx.seed).to(dev)
    if ire:
        opt = cfg.optim.build(model.parameters(), seed=ctx.generator("mask").initial_seed() % (2**62))
    else:
        opt = cfg.optim.as_kind("sam").build(model.parameters())
    probes = ctx.generator("trace")  # the same probe stream for both arms: a paired comparison
    model.train()  # BatchNorm on full-batch statistics, in training and in the Hessian alike

    def closure():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def measure(step: int) -> dict:
        op = HessianOperator(model, F.cross_entropy, [(x, y)], bn_mode="full-batch")  # buffers are copied
        tr = hutchinson_trace(op, cfg.trace_probes, probes)
        with torch.no_grad():  # BN makes the loss invariant to each conv kernel's scale: H shrinks as 1/norm²
            conv_sq = sum(c.weight.square().sum() for c in model.convs).item()
        return {"step": step, "grad_evals": opt.grad_evals, "loss": op.loss(), "trace": tr.estimate,
                "trace_se": tr.std_error, "conv_sq_norm": conv_sq}

    # --max-steps caps SAM steps, i.e. about two gradient evaluations each
    budget = cfg.grad_evals if ctx.max_steps is None else min(cfg.grad_evals, 2 * ctx.max_steps)
    rows, step = [], 0
    while True:
        if step % cfg.measure_every == 0:
            rows.append(measure(step))
        cost = 2 + (1 if ire and opt.should_refresh_mask() else 0)
        if opt.grad_evals + cost > budget:
            break
        if ire and opt.should_refresh_mask():
            model.eval()  # running statistics: no batch-statistics side effect of the mask batch
            opt.refresh_mask(lambda: model(x_mask))
            model.train()
        loss = opt.step(closure).item()
        if not math.isfinite(loss):
            raise NumericalError(f"{'SAM-IRE' if ire else 'SAM'} loss became {loss} at step {step}")
        step += 1
        ctx.progress(opt.grad_evals, budget)
    if rows[-1]["step"] != step:
        rows.append(measure(step))
    null_trace = math.nan
    if not ire:
        op = HessianOperator(model, F.cross_entropy, [(x, y)], bn_mode="full-batch")
        null_trace = hutchinson_trace(op, cfg.trace_probes, ctx.generator("trace_null")).estimate
    return pd.DataFrame(rows), null_trace


def matched_loss_rows(sam: pd.DataFrame, samire: pd.DataFrame) -> dict[str, float]:
    """Both arms read at the same training loss, with the trace made scale-free.

    BN makes the loss invariant to each conv kernel's scale, so the Hessian on those kernels shrinks as
    1/||w||²: trace x ||w_conv||² does not move when the kernels only grow. The matched loss is the larger of
    the two final losses (a level both reach); each arm is read at its first measurement at or below it.
    """
    level = max(float(sam["loss"].iloc[-1]), float(samire["loss"].iloc[-1]))
    out = {"net_matched_loss": level}
    for name, t in (("sam", sam), ("samire", samire)):
        i = int(np.flatnonzero(t["loss"].to_numpy() <= level)[0])
        out[f"net_norm_trace_at_matched_loss_{name}"] = float(t["trace"].iloc[i] * t["conv_sq_norm"].iloc[i])
        out[f"net_grad_evals_at_matched_loss_{name}"] = float(t["grad_evals"].iloc[i])
    out["net_norm_trace_ratio_at_matched_loss"] = (out["net_norm_trace_at_matched_loss_samire"]
                                                   / out["net_norm_trace_at_matched_loss_sam"])
    return out


def _net_part(cfg: SamNetConfig, ctx: RunContext) -> tuple[dict, dict, pd.DataFrame, dict]:
    split = load_dataset("digits", n_train=cfg.n_train + cfg.mask_batch, n_test=0, images=True)
    x_mask = split.x_train[cfg.n_train:].to(ctx.device)
    train = type(split)(split.x_train[:cfg.n_train], split.y_train[:cfg.n_train],
                        split.x_test, split.y_test, split.provenance)
    (sam, sam_reprobed), (samire, _) = (_net_arm(cfg, ctx, train, x_mask, ire=False),
                                        _net_arm(cfg, ctx, train, x_mask, ire=True))
    s, se = {}, {}
    for name, t in (("sam", sam), ("samire", samire)):
        s[f"net_trace_final_{name}"] = float(t["trace"].iloc[-1])
        se[f"net_trace_final_{name}"] = float(t["trace_se"].iloc[-1])
        s[f"net_grad_evals_{name}"] = float(t["grad_evals"].iloc[-1])
        s[f"net_steps_{name}"] = float(t["step"].iloc[-1])
        s[f"net_loss_final_{name}"] = float(t["loss"].iloc[-1])
        s[f"net_conv_sq_norm_final_{name}"] = float(t["conv_sq_norm"].iloc[-1])
    s["net_trace_ratio_samire_over_sam"] = s["net_trace_final_samire"] / s["net_trace_final_sam"]
    s.update(matched_loss_rows(sam, samire))
    # Null: the same SAM net with independent Hutchinson probes; the ratio shows the estimator's noise
    s["net_null_trace_ratio_sam_reprobed_over_sam"] = sam_reprobed / s["net_trace_final_sam"]
    target = s["net_trace_final_sam"]  # the flatness SAM reaches with the whole budget
    s["net_trace_target"] = target
    i_sam = first_below_after_peak(sam["trace"].to_numpy(), target)  # at the latest its last row
    i_ire = first_below_after_peak(samire["trace"].to_numpy(), target)
    s["net_samire_reached_target"] = float(i_ire is not None)
    s["net_sam_evals_to_target"] = float(sam["grad_evals"].iloc[i_sam])
    s["net_sam_steps_to_target"] = float(sam["step"].iloc[i_sam])
    # Not reached: the whole budget is reported (a lower bound), flagged by net_samire_reached_target = 0.
    j = i_ire if i_ire is not None else len(samire) - 1
    s["net_samire_evals_to_target"] = float(samire["grad_evals"].iloc[j])
    s["net_samire_steps_to_target"] = float(samire["step"].iloc[j])
    s["net_evals_speedup_to_target"] = (s["net_sam_evals_to_target"]
                                        / max(s["net_samire_evals_to_target"], 1.0))
    curve = pd.concat([pd.DataFrame({"grad_evals": t["grad_evals"], "step": t["step"],
                                     "trace_sam": t["trace"] if name == "sam" else np.nan,
                                     "trace_samire": t["trace"] if name == "samire" else np.nan})
                       for name, t in (("sam", sam), ("samire", samire))], ignore_index=True)
    n_params = sum(p.numel() for p in SmallCNN(1, 10, width=cfg.width).parameters())
    scale = {"net": f"SmallCNN width {cfg.width} with BatchNorm", "net_params": n_params,
             "net_data": f"{cfg.n_train} digits, full batch (+{cfg.mask_batch} held out, mask)",
             "net_grad_eval_budget": int(s["net_grad_evals_sam"]),
             "trace": f"Hutchinson, {cfg.trace_probes} probes, bn_mode=full-batch (as trained)"}
    return s, se, curve, scale


@experiment("sam_flat_convergence", SamFlatConfig,
            outputs=('fisher_mask_u_share', 'fisher_oblique_mask_u_share', 'net_conv_sq_norm_final_sam',
                     'net_conv_sq_norm_final_samire', 'net_grad_evals_at_matched_loss_sam',
                     'net_grad_evals_at_matched_loss_samire', 'net_matched_loss',
                     'net_norm_trace_at_matched_loss_sam', 'net_norm_trace_at_matched_loss_samire',
                     'net_norm_trace_ratio_at_matched_loss', 'samire_fisher_oblique_slope',
                     'steps_ratio_fisher_oblique_at_smallest_rho',
                     'net_evals_speedup_to_target', 'net_grad_evals_sam', 'net_grad_evals_samire',
                     'net_loss_final_sam', 'net_loss_final_samire', 'net_null_trace_ratio_sam_reprobed_over_sam',
                     'net_sam_evals_to_target', 'net_sam_steps_to_target', 'net_samire_evals_to_target',
                     'net_samire_reached_target', 'net_samire_steps_to_target', 'net_steps_sam', 'net_steps_samire',
                     'net_trace_final_sam', 'net_trace_final_samire', 'net_trace_ratio_samire_over_sam',
                     'net_trace_target', 'null_steps_ratio_kappa*_at_smallest_rho', 'sam_slope',
                     'samire_fisher_slope', 'samire_slope', 'steps_ratio_at_smallest_rho',
                     'steps_ratio_fisher_at_smallest_rho'),
            curves={'net_trace': ('grad_evals', 'step', 'trace_sam', 'trace_samire'), 'toy_steps':
                    ('fisher_mask_u_share', 'fisher_oblique_mask_u_share', 'rho', 'steps_sam', 'steps_samire',
                     'steps_samire_fisher', 'steps_samire_fisher_oblique')})
def sam_flat_convergence(cfg: SamFlatConfig, ctx: RunContext) -> Measurement:
    """Log-log slopes of steps-to-flat vs ρ for SAM and SAM-IRE on the toy; trace race on a small net."""
    cap = ctx.steps(cfg.toy.step_cap)
    g_mask = ctx.generator("toy_mask")
    rows = []
    for i, rho in enumerate(sorted(cfg.toy.rhos)):
        row = {"rho": rho}
        for arm in TOY_ARMS:
            row[f"steps_{arm}"], share = toy_steps_to_flat(rho, cfg.toy, arm, cap, g_mask)
            if arm.startswith("samire_fisher"):
                row[f"{arm.replace('samire_', '')}_mask_u_share"] = share
        rows.append(row)
        ctx.progress(i + 1, len(cfg.toy.rhos))
    toy = pd.DataFrame(rows)
    s, se, notes = {}, {}, []
    for name in TOY_ARMS:
        counts = toy[f"steps_{name}"].to_numpy()
        s[f"{name}_slope"], se[f"{name}_slope"] = loglog_slope(toy["rho"].to_numpy(), counts)
        if (counts > cap).any():  # a lower bound, not a count: the slope is not decidable either way
            se[f"{name}_slope"] = math.inf
            notes.append(f"{name}: flat region not reached within {cap} steps for some rho (a capped "
                         "count is a lower bound: the slope gets no finite interval)")
    s["fisher_mask_u_share"] = float(toy["fisher_mask_u_share"].min())
    s["fisher_oblique_mask_u_share"] = float(toy["fisher_oblique_mask_u_share"].min())
    # Null: SAM-IRE's wrapper with kappa = 0 amplifies nothing, so the steps ratio it gives is what
    # "no speed-up" reads (1 exactly, through the same code path), at the smallest rho.
    rho0 = float(toy["rho"].iloc[0])
    null_steps, _ = toy_steps_to_flat(rho0, cfg.toy, "samire", cap, kappa=0.0)
    s["null_steps_ratio_kappa0_at_smallest_rho"] = float(toy["steps_sam"].iloc[0] / null_steps)
    s["steps_ratio_at_smallest_rho"] = float(toy["steps_sam"].iloc[0] / toy["steps_samire"].iloc[0])
    for arm in ("fisher", "fisher_oblique"):
        s[f"steps_ratio_{arm}_at_smallest_rho"] = float(toy["steps_sam"].iloc[0]
                                                         / toy[f"steps_samire_{arm}"].iloc[0])
    net_s, net_se, net_curve, net_scale = _net_part(cfg.net, ctx)
    s.update(net_s)
    se.update(net_se)
    if not s["net_samire_reached_target"]:
        notes.append("net: SAM-IRE never reached SAM's final trace within the budget")
    scale = {"toy": "Figure1Toy, 2 params, float64", "rhos": list(cfg.toy.rhos), "toy_lr": cfg.toy.lr, **net_scale}
    return Measurement(scalars=s, standard_errors=se, curves={"toy_steps": toy, "net_trace": net_curve},
                       scale=scale, notes=notes)
