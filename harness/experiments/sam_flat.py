"""SAM vs SAM-IRE: how fast each drifts to flat minima (Wang et al. 2024, Section 5).

Theory: near a manifold of minima, standard (normalised) SAM moves along it like Riemannian GD on
Tr ∇²L at rate ηρ², SAM-IRE with κ ~ 1/ρ and the exact projection at rate ηρ. So on the Figure 1 toy
the number of steps to reach the flat region scales like ρ^-2 for SAM and ρ^-1 for SAM-IRE.

sam_ire_flat_convergence:
  toy part: for each ρ, steps until |u| < flat_u for SAM and SAM-IRE (κ = 1/ρ, mask = the u axis,
      which on this toy is the exact flat projection); log-log slopes with the regression's standard error.
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

from harness.curvature import HessianOperator, hutchinson_trace
from harness.data.datasets import load_dataset
from harness.errors import ConfigError
from harness.experiments.toy import loglog_slope
from harness.measurement import Measurement, RunContext
from harness.models.cnn import SmallCNN
from harness.models.toys import Figure1Toy
from harness.optim import SAM, SAMIRE
from harness.registry import experiment


@dataclass(frozen=True)
class SamFlatConfig:
    """Toy settings from the paper's check (normalised SAM, η = 0.5, κ = 1/ρ, flat region |u| < 0.5)
    and the small-net comparison."""

    rhos: tuple[float, ...] = (0.05, 0.03, 0.02, 0.01)
    lr: float = 0.5
    u0: float = 1.0
    v0: float = 0.01
    flat_u: float = 0.5
    toy_step_cap: int = 100_000       # a run that never reaches |u| < flat_u counts as cap + 1 steps
    net_grad_evals: int = 400         # gradient-evaluation budget per arm
    net_n_train: int = 256            # full batch
    net_mask_batch: int = 128         # held-out digits for the Fisher mask, never used for the update
    net_width: int = 8
    net_lr: float = 0.1
    net_rho: float = 0.05             # the paper's CIFAR SAM radius
    net_kappa: float = 20.0           # 1/ρ, as in the theory
    net_gamma: float = 0.6            # the paper's default flat fraction
    net_mask_every: int = 10          # K
    net_measure_every: int = 25       # steps between trace measurements
    net_trace_probes: int = 8

    def __post_init__(self):
        if len(self.rhos) < 3 or any(r <= 0 for r in self.rhos):
            raise ConfigError(f"rhos needs >= 3 positive radii for a slope with an error, got {self.rhos}")
        if self.lr <= 0 or self.net_lr <= 0 or self.net_rho <= 0 or self.net_grad_evals < 2:
            raise ConfigError("learning rates and radii must be > 0 and net_grad_evals >= 2")


def first_below_after_peak(values: np.ndarray, target: float) -> int | None:
    """Index of the first value <= target at or after the maximum of `values`, or None.

    The trace of a freshly initialised net first rises (progressive sharpening), so "reaching a trace"
    is counted on the way down from the peak, not at initialisation.
    """
    values = np.asarray(values, dtype=float)
    peak = int(np.nanargmax(values))
    idx = np.flatnonzero(values[peak:] <= target)
    return peak + int(idx[0]) if len(idx) else None


def toy_steps_to_flat(rho: float, cfg: SamFlatConfig, ire: bool, cap: int) -> int:
    """Steps of SAM (or SAM-IRE with κ = 1/ρ on the u axis) from (u0, v0) until |u| < flat_u.

    Returns:
        The first step count t with |u_t| < flat_u, or cap + 1 if it is not reached within cap steps.
    """
    toy = Figure1Toy(cfg.u0, cfg.v0)
    sgd = torch.optim.SGD([toy.u, toy.v], lr=cfg.lr)
    if ire:
        # The u axis is the valley's tangent, so the mask (True, False) is the exact flat projection here.
        opt = SAMIRE(sgd, rho=rho, kappa=1.0 / rho, gamma=0.5)
        opt.set_mask([torch.tensor(True), torch.tensor(False)])
    else:
        opt = SAM(sgd, rho=rho)

    def closure():
        loss = toy.loss()
        loss.backward()
        return loss

    for step in range(1, cap + 1):
        opt.step(closure)
        if abs(toy.u.item()) < cfg.flat_u:
            return step
    return cap + 1


def _net_arm(cfg: SamFlatConfig, ctx: RunContext, split, x_mask: torch.Tensor, ire: bool) -> pd.DataFrame:
    """Full-batch SAM or SAM-IRE on SmallCNN; a row of (step, grad_evals, loss, trace, trace_se) every
    net_measure_every steps and at the end, until the gradient-evaluation budget is spent."""
    dev = ctx.device
    x, y = split.x_train.to(dev), split.y_train.to(dev)
    model = SmallCNN(x.shape[1], 10, width=cfg.net_width, seed=ctx.seed).to(dev)
    base = torch.optim.SGD(model.parameters(), lr=cfg.net_lr)
    if ire:
        opt = SAMIRE(base, rho=cfg.net_rho, kappa=cfg.net_kappa, gamma=cfg.net_gamma,
                     mask_every=cfg.net_mask_every, seed=ctx.generator("mask").initial_seed() % (2**62))
    else:
        opt = SAM(base, rho=cfg.net_rho)
    probes = ctx.generator("trace")  # the same probe stream for both arms: a paired comparison
    model.train()  # BatchNorm on full-batch statistics, in training and in the Hessian alike

    def closure():
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    def measure(step: int) -> dict:
        op = HessianOperator(model, F.cross_entropy, [(x, y)], bn_mode="full-batch")  # buffers are copied
        tr = hutchinson_trace(op, cfg.net_trace_probes, probes)
        with torch.no_grad():  # BN makes the loss invariant to each conv kernel's scale: H shrinks as 1/norm²
            conv_sq = sum(c.weight.square().sum() for c in model.convs).item()
        return {"step": step, "grad_evals": opt.grad_evals, "loss": op.loss(), "trace": tr.estimate,
                "trace_se": tr.std_error, "conv_sq_norm": conv_sq}

    # --max-steps caps SAM steps, i.e. about two gradient evaluations each
    budget = cfg.net_grad_evals if ctx.max_steps is None else min(cfg.net_grad_evals, 2 * ctx.max_steps)
    rows, step = [], 0
    while True:
        if step % cfg.net_measure_every == 0:
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
            raise FloatingPointError(f"{'SAM-IRE' if ire else 'SAM'} loss became {loss} at step {step}")
        step += 1
        ctx.progress(opt.grad_evals, budget)
    if rows[-1]["step"] != step:
        rows.append(measure(step))
    return pd.DataFrame(rows)


def _net_part(cfg: SamFlatConfig, ctx: RunContext) -> tuple[dict, dict, pd.DataFrame, dict]:
    split = load_dataset("digits", n_train=cfg.net_n_train + cfg.net_mask_batch, n_test=0, images=True)
    x_mask = split.x_train[cfg.net_n_train:].to(ctx.device)
    train = type(split)(split.x_train[:cfg.net_n_train], split.y_train[:cfg.net_n_train],
                        split.x_test, split.y_test, split.provenance)
    sam, samire = _net_arm(cfg, ctx, train, x_mask, ire=False), _net_arm(cfg, ctx, train, x_mask, ire=True)
    s, se = {}, {}
    for name, t in (("sam", sam), ("samire", samire)):
        s[f"net_trace_final_{name}"] = float(t["trace"].iloc[-1])
        se[f"net_trace_final_{name}"] = float(t["trace_se"].iloc[-1])
        s[f"net_grad_evals_{name}"] = float(t["grad_evals"].iloc[-1])
        s[f"net_steps_{name}"] = float(t["step"].iloc[-1])
        s[f"net_loss_final_{name}"] = float(t["loss"].iloc[-1])
        s[f"net_conv_sq_norm_final_{name}"] = float(t["conv_sq_norm"].iloc[-1])
    s["net_trace_ratio_samire_over_sam"] = s["net_trace_final_samire"] / s["net_trace_final_sam"]
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
    n_params = sum(p.numel() for p in SmallCNN(1, 10, width=cfg.net_width).parameters())
    scale = {"net": f"SmallCNN width {cfg.net_width} with BatchNorm", "net_params": n_params,
             "net_data": f"{cfg.net_n_train} digits, full batch (+{cfg.net_mask_batch} held out, mask)",
             "net_grad_eval_budget": int(s["net_grad_evals_sam"]),
             "trace": f"Hutchinson, {cfg.net_trace_probes} probes, bn_mode=full-batch (as trained)"}
    return s, se, curve, scale


@experiment("sam_ire_flat_convergence", SamFlatConfig)
def sam_flat_convergence(cfg: SamFlatConfig, ctx: RunContext) -> Measurement:
    """Log-log slopes of steps-to-flat vs ρ for SAM and SAM-IRE on the toy; trace race on a small net."""
    cap = ctx.steps(cfg.toy_step_cap)
    rows = []
    for i, rho in enumerate(sorted(cfg.rhos)):
        rows.append({"rho": rho, "steps_sam": toy_steps_to_flat(rho, cfg, False, cap),
                     "steps_samire": toy_steps_to_flat(rho, cfg, True, cap)})
        ctx.progress(i + 1, len(cfg.rhos))
    toy = pd.DataFrame(rows)
    s, se, notes = {}, {}, []
    for name in ("sam", "samire"):
        counts = toy[f"steps_{name}"].to_numpy()
        if (counts > cap).any():
            notes.append(f"{name}: flat region not reached within {cap} steps for some rho "
                         f"(counted as {cap + 1})")
        s[f"{name}_slope"], se[f"{name}_slope"] = loglog_slope(toy["rho"].to_numpy(), counts)
    s["steps_ratio_at_smallest_rho"] = float(toy["steps_sam"].iloc[0] / toy["steps_samire"].iloc[0])
    net_s, net_se, net_curve, net_scale = _net_part(cfg, ctx)
    s.update(net_s)
    se.update(net_se)
    if not s["net_samire_reached_target"]:
        notes.append("net: SAM-IRE never reached SAM's final trace within the budget")
    scale = {"toy": "Figure1Toy, 2 params, float64", "rhos": list(cfg.rhos), "toy_lr": cfg.lr, **net_scale}
    return Measurement(scalars=s, standard_errors=se, curves={"toy_steps": toy, "net_trace": net_curve},
                       scale=scale, notes=notes)
