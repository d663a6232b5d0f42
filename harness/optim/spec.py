"""One optimizer spec: a frozen description of an optimizer, built through one registry.

    spec = OptimizerSpec("sgd", lr=0.2, momentum=0.9, nesterov=True)
    opt = spec.build(model.parameters())      # a torch.optim.SGD
    spec.stability_threshold()                # (2 + 2β) / ((1 + 2β) η) = 6.79

Every training loop takes the built `torch.optim.Optimizer`; the spec is what a config holds. A name
is a registered `OptimizerKind` that says which spec fields it reads: a field it does not read must
keep its default (so `rho` on plain SGD is an error, not a silently ignored value, and two configs
that build the same optimizer are equal). κ is spelled `kappa` everywhere.

Stability threshold (the largest loss-Hessian eigenvalue at which the method is stable on a quadratic;
Cohen et al. 2021, Sec. 3 and its momentum appendix): GD 2/η, heavy ball (2 + 2β)/η, Nesterov
(2 + 2β)/((1 + 2β)η). torch's SGD momentum (b ← βb + g, θ ← θ − ηb) is heavy ball with v = −ηb, and
its `nesterov=True` form has the same threshold (derived: for g = a·θ the iteration's characteristic
polynomial z² − (1 + β − ηa(1 + β))z + β(1 − ηa) has a root at −1 exactly when ηa = (2 + 2β)/(1 + 2β)).
Coupled weight decay adds wd to every Hessian eigenvalue; the threshold is on λ_max of the loss
alone, as the papers state it (the difference, wd, is tiny next to 2/η).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch.optim import Optimizer

from harness.claim.components import Registry, check_choice
from harness.errors import ConfigError
from harness.optim.ire import IRE, MASK_KINDS
from harness.optim.projected import IREProjected
from harness.optim.sam import SAM, SAMIRE

SCHEDULES = ("constant", "cosine")
# The schedule fields (read only through `lr_at`): a loop that runs at a fixed lr refuses them set.
CONSTANT_LR = ("schedule", "lr_warmup_steps", "final_lr_fraction")
# Fields every kind reads: the step size, the weight decay and the learning-rate schedule.
COMMON_FIELDS = frozenset({"name", "lr", "weight_decay", "schedule", "lr_warmup_steps", "final_lr_fraction"})
_IRE_FIELDS = frozenset({"kappa", "gamma", "mask", "mask_every", "warmup_steps", "kappa_decay_with_lr"})
_SGD_FIELDS = frozenset({"momentum", "nesterov"})
_ADAM_FIELDS = frozenset({"betas", "eps"})


@dataclass(frozen=True)
class OptimizerSpec:
    """A frozen, validated description of one optimizer; `build` makes the torch optimizer.

    Args:
        name: a registered kind (`optimizer_names()`): sgd, adamw, sam, ire, sam_ire, adamw_ire,
            ire_projected.
        lr: peak step size η > 0.
        momentum, nesterov: SGD's β in [0, 1) and Nesterov's form (needs β > 0).
        weight_decay: ≥ 0; coupled for SGD (g + wd·θ), decoupled for AdamW (torch's conventions).
        betas, eps: AdamW's (β1, β2) and ε.
        rho: SAM radius ρ > 0 (sam, sam_ire).
        kappa: IRE amplification κ ≥ 0; gamma: flat fraction γ in (0, 1); mask: "fisher" | "random";
        mask_every: refresh period K; warmup_steps: plain base steps before IRE starts;
        kappa_decay_with_lr: κ_t = κ · lr_t / lr_max (all as in `IRE`).
        schedule: "constant" or "cosine" (to lr · final_lr_fraction at the horizon), after a linear
            warm-up of lr_warmup_steps updates; read through `lr_at`.

    Raises:
        ConfigError: an unknown name (with "did you mean"), a value out of range, or a field the
            named kind does not read set away from its default.
    """

    name: str
    lr: float
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    rho: float = 0.0
    kappa: float = 0.0
    gamma: float = 0.0
    mask: str = "fisher"
    mask_every: int = 10
    warmup_steps: int = 0
    kappa_decay_with_lr: bool = False
    schedule: str = "constant"
    lr_warmup_steps: int = 0
    final_lr_fraction: float = 0.0

    def __post_init__(self):
        kind = optimizer_kind(self.name)
        _check_number("lr", self.lr, 0.0, open_low=True)
        _check_number("momentum", self.momentum, 0.0, 1.0)
        _check_number("weight_decay", self.weight_decay, 0.0)
        _check_number("eps", self.eps, 0.0, open_low=True)
        if not (isinstance(self.betas, tuple) and len(self.betas) == 2):
            raise ConfigError(f"betas must be a pair (beta1, beta2), got {self.betas!r}")
        for i, b in enumerate(self.betas):
            _check_number(f"betas[{i}]", b, 0.0, 1.0)
        _check_number("rho", self.rho, 0.0)
        _check_number("kappa", self.kappa, 0.0)
        _check_number("gamma", self.gamma, 0.0, 1.0)
        _check_number("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0, closed_high=True)
        for field, low in (("mask_every", 1), ("warmup_steps", 0), ("lr_warmup_steps", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"{field} must be an int >= {low}, got {value!r}")
        for field in ("nesterov", "kappa_decay_with_lr"):
            if not isinstance(getattr(self, field), bool):
                raise ConfigError(f"{field} must be True or False, got {getattr(self, field)!r}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov=True needs momentum > 0 (torch's rule); set momentum, e.g. 0.9")
        if self.mask not in MASK_KINDS:
            raise ConfigError(f"mask must be one of {MASK_KINDS}, got {self.mask!r}")
        check_choice("schedule", self.schedule, SCHEDULES)
        if "rho" in kind.uses and self.rho == 0:
            raise ConfigError(f"optimizer {self.name!r} needs a SAM radius rho > 0")
        if "gamma" in kind.uses and self.gamma == 0:
            raise ConfigError(f"optimizer {self.name!r} needs a flat fraction gamma in (0, 1)")
        self._check_unused(kind)

    def _check_unused(self, kind: OptimizerKind) -> None:
        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.default is not dataclasses.MISSING}
        for field, default in defaults.items():
            if field in COMMON_FIELDS or field in kind.uses or getattr(self, field) == default:
                continue
            users = [name for name, k in OPTIMIZERS.items() if field in k.uses]
            raise ConfigError(f"optimizer {self.name!r} does not read {field}={getattr(self, field)!r} "
                              f"(leave it at {default!r}, or use one of: {', '.join(users)})")

    def as_kind(self, name: str, **changes) -> OptimizerSpec:
        """This spec as optimizer `name`: the fields `name` does not read back at their defaults.

        An experiment with several arms holds one spec with every hyper-parameter (e.g. a "sam_ire"
        spec: lr, momentum, weight decay, ρ, κ, γ, K) and derives each arm's optimizer from it:
        `spec.as_kind("sgd")` keeps lr, momentum and weight decay and drops ρ, κ, γ, K.

        Args:
            name: a registered kind; changes: further field values (they win over this spec's).

        Raises:
            ConfigError: an unknown name, or a value the kind rejects.
        """
        kind = optimizer_kind(name)
        keep = COMMON_FIELDS | kind.uses
        values = {f.name: (getattr(self, f.name) if f.name in keep else f.default)
                  for f in dataclasses.fields(self) if f.name != "name"}
        return OptimizerSpec(name, **{**values, **changes})

    def build(self, params: Iterable[torch.Tensor] | Iterable[dict], *, seed: int = 0) -> Optimizer:
        """The torch optimizer this spec describes, over `params`.

        Args:
            params: tensors, or torch param-group dicts (a group's own "weight_decay" overrides the
                spec's, e.g. no decay on gains and biases).
            seed: seeds an IRE optimizer's own generator (label sampling, random masks); unused otherwise.

        Returns:
            A constructed `torch.optim.Optimizer` with lr = `self.lr`.
        """
        return optimizer_kind(self.name).build(self, list(params), seed)

    def stability_threshold(self) -> float | None:
        """The largest stable sharpness at lr (see the module docstring), or None if not known.

        Returns:
            2/η (GD), (2 + 2β)/η (heavy ball), (2 + 2β)/((1 + 2β)η) (Nesterov) for "sgd"; None for
            kinds with no registered threshold (SAM, IRE, AdamW, whose sharpness is preconditioned).
        """
        kind = optimizer_kind(self.name)
        return None if kind.threshold is None else kind.threshold(self)

    def lr_at(self, step: int, horizon: int) -> float:
        """Learning rate of update `step` (0-based) for a run of `horizon` updates.

        Linear warm-up lr · (step + 1)/lr_warmup_steps, then constant lr or a cosine decay that reaches
        lr · final_lr_fraction exactly at `horizon`.
        """
        if step < self.lr_warmup_steps:
            return self.lr * (step + 1) / self.lr_warmup_steps
        if self.schedule == "constant":
            return self.lr
        progress = min(1.0, (step - self.lr_warmup_steps) / max(1, horizon - self.lr_warmup_steps))
        f = self.final_lr_fraction
        return self.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * progress)))


def require_spec(where: str, spec: object, kinds: tuple[str, ...], *, role: str = "",
                 fixed: tuple[str, ...] = (), set_by: str = "") -> None:
    """For a config's `__post_init__`: `spec` is an OptimizerSpec of one of `kinds`, and each field in `fixed`
    (set by the experiment itself, e.g. its lr schedule) is at its default.

    Args:
        where: the spec's path in messages ("optim", "net.optim"); role: why that kind, for the message.
        set_by: who sets the `fixed` fields, for the message ("the recipe (cosine from optim.lr)").

    Raises:
        ConfigError: "<where> must be a 'sgd' OptimizerSpec (<role>), got ...", or
            "<where>.<field> is set by <set_by>: leave it at its default".
    """
    if not isinstance(spec, OptimizerSpec) or spec.name not in kinds:
        names = " or ".join(repr(k) for k in kinds)
        raise ConfigError(f"{where} must be a {names} OptimizerSpec{f' ({role})' if role else ''}, "
                          f"got {spec!r}")
    defaults = {f.name: f.default for f in dataclasses.fields(OptimizerSpec)}
    changed = [f for f in fixed if getattr(spec, f) != defaults[f]]
    if changed:
        raise ConfigError(f"{where}.{changed[0]} is set by {set_by}: leave it at its default")


def sgd_stability_threshold(lr: float, momentum: float = 0.0, nesterov: bool = False) -> float:
    """2/η, (2 + 2β)/η or (2 + 2β)/((1 + 2β)η): the stability threshold of GD, heavy ball, Nesterov.

    Args:
        lr: η > 0; momentum: β in [0, 1); nesterov: Nesterov's form.

    Returns:
        The largest Hessian eigenvalue of a quadratic on which the iteration does not diverge.
    """
    b = momentum
    return (2 + 2 * b) / ((1 + 2 * b) * lr) if nesterov else (2 + 2 * b) / lr


@dataclass(frozen=True)
class OptimizerKind:
    """A registered optimizer name: its builder, the spec fields it reads, its stability threshold."""

    name: str
    build: Callable[[OptimizerSpec, list, int], Optimizer]
    uses: frozenset[str]
    threshold: Callable[[OptimizerSpec], float] | None = None
    summary: str = ""


OPTIMIZERS: Registry[OptimizerKind] = Registry("optimizer")


def register_optimizer(kind: OptimizerKind) -> OptimizerKind:
    """Add an optimizer kind to the registry (OPTIMIZERS), after checking the fields it reads.

    Raises:
        ValueError: a name already registered, or `uses` naming a field OptimizerSpec does not have.
    """
    unknown = set(kind.uses) - {f.name for f in dataclasses.fields(OptimizerSpec)}
    if unknown:
        raise ValueError(f"optimizer {kind.name!r} uses unknown spec fields {sorted(unknown)}")
    return OPTIMIZERS.add(kind.name, kind)


def optimizer_kind(name: str) -> OptimizerKind:
    """The registered kind called `name`.

    Raises:
        ConfigError: unknown name, with the closest names and the list of all.
    """
    return OPTIMIZERS.get(name)


def optimizer_names() -> list[str]:
    """Every registered optimizer name, sorted."""
    return OPTIMIZERS.names()


def _check_number(name, value, low, high=math.inf, *, open_low=False, closed_high=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    above = value > low if open_low else value >= low
    below = value <= high if closed_high else value < high
    if not (math.isfinite(value) and above and below):
        lo, hi = "(" if open_low else "[", "]" if closed_high else ")"
        raise ConfigError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")


def _sgd(spec: OptimizerSpec, params: list) -> torch.optim.SGD:
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                           weight_decay=spec.weight_decay)


def _adamw(spec: OptimizerSpec, params: list) -> torch.optim.AdamW:
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


def _ire_args(spec: OptimizerSpec, seed: int) -> dict:
    return dict(kappa=spec.kappa, gamma=spec.gamma, mask=spec.mask, mask_every=spec.mask_every,
                warmup_steps=spec.warmup_steps, kappa_decay_with_lr=spec.kappa_decay_with_lr, seed=seed)


def _sgd_threshold(spec: OptimizerSpec) -> float:
    return sgd_stability_threshold(spec.lr, spec.momentum, spec.nesterov)


for _kind in (
    OptimizerKind("sgd", lambda s, p, seed: _sgd(s, p), _SGD_FIELDS, _sgd_threshold,
                  "torch SGD: GD (momentum 0), heavy ball, Nesterov"),
    OptimizerKind("adamw", lambda s, p, seed: _adamw(s, p), _ADAM_FIELDS, None, "torch AdamW"),
    OptimizerKind("sam", lambda s, p, seed: SAM(_sgd(s, p), rho=s.rho), _SGD_FIELDS | {"rho"}, None,
                  "SAM over SGD"),
    OptimizerKind("ire", lambda s, p, seed: IRE(_sgd(s, p), **_ire_args(s, seed)), _SGD_FIELDS | _IRE_FIELDS,
                  None, "IRE over SGD"),
    OptimizerKind("sam_ire", lambda s, p, seed: SAMIRE(_sgd(s, p), rho=s.rho, **_ire_args(s, seed)),
                  _SGD_FIELDS | _IRE_FIELDS | {"rho"}, None, "SAM-IRE: IRE around SAM over SGD"),
    OptimizerKind("adamw_ire", lambda s, p, seed: IRE(_adamw(s, p), **_ire_args(s, seed)),
                  _ADAM_FIELDS | _IRE_FIELDS, None, "AdmIRE: IRE over AdamW"),
    OptimizerKind("ire_projected",
                  lambda s, p, seed: IREProjected(_sgd(s, p), kappa=s.kappa, mask_every=s.mask_every,
                                                  warmup_steps=s.warmup_steps,
                                                  kappa_decay_with_lr=s.kappa_decay_with_lr),
                  _SGD_FIELDS | {"kappa", "mask_every", "warmup_steps", "kappa_decay_with_lr"}, None,
                  "ideal IRE (flat directions from the caller) over SGD"),
):
    register_optimizer(_kind)


def requires_closure(opt: Optimizer) -> bool:
    """Whether `opt.step` needs a closure that re-evaluates the loss (SAM and anything wrapping it).

    Args:
        opt: a constructed optimizer.

    Returns:
        True for SAM, SAM-IRE and an IRE wrapper whose base needs a closure.
    """
    if isinstance(opt, SAM):
        return True
    base = getattr(opt, "base_optimizer", None)
    return isinstance(base, Optimizer) and requires_closure(base)
