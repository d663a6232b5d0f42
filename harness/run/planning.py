"""Planning a run: everything checked before any compute (options, device, claims, configs, step cap).

A bad input found here is one line and a non-zero exit, with nothing computed or stored.
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from harness.claim.config import apply_overrides
from harness.claim.registry import Claim
from harness.errors import ConfigError

MAX_SEEDS = 10_000  # more is a typo, not a plan
MAX_SEED = 2**31 - 1  # the largest seed number: any RNG (torch, numpy's legacy seed) takes it


@dataclass
class RunOptions:
    tier: str
    seeds: int | None = None  # None: the tier's own seed count
    overrides: Mapping[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    device: str | None = None  # None: cuda for gpu/paper tiers when available, else cpu
    use_cache: bool = True
    jobs: int = 1  # seeds run in this many processes at once; results are identical
    per_gpu: int | None = None  # --per-gpu: of those processes, how many share one GPU (recorded; None: not given)
    seed_offset: int = 0  # seeds are seed_offset .. seed_offset + n - 1 (fresh, disjoint seeds)
    executor: object | None = None  # a harness.run.executors.Executor computing missing seeds; None: local pool

    def __post_init__(self):
        def positive(x):
            return isinstance(x, int) and not isinstance(x, bool) and x >= 1
        if self.seeds is not None and not positive(self.seeds):
            raise ConfigError(f"--seeds must be a positive integer, got {self.seeds!r}")
        if self.seeds is not None and self.seeds > MAX_SEEDS:
            raise ConfigError(f"--seeds {self.seeds} is more than {MAX_SEEDS}; give a count you mean to run")
        if not positive(self.jobs):
            raise ConfigError(f"--jobs must be a positive integer, got {self.jobs!r}")
        if self.per_gpu is not None and not positive(self.per_gpu):
            raise ConfigError(f"--per-gpu must be a positive integer, got {self.per_gpu!r}")
        limit = max(8, 4 * (os.cpu_count() or 1))
        if self.jobs > limit:
            raise ConfigError(f"--jobs {self.jobs} is more than {limit} (4 per CPU core here, "
                              f"{os.cpu_count()} cores)")
        if self.max_steps is not None and not positive(self.max_steps):
            raise ConfigError(f"--max-steps must be a positive integer, got {self.max_steps!r}")
        if not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise ConfigError(f"--seed-offset must be a non-negative integer, got {self.seed_offset!r}")
        if self.seed_offset + (self.seeds or MAX_SEEDS) - 1 > MAX_SEED:  # a second look's seeds too
            raise ConfigError(f"--seed-offset {self.seed_offset} is too large: seed numbers must stay "
                              f"<= {MAX_SEED} (offset + seeds - 1)")
        if not isinstance(self.tier, str) or not self.tier.strip():
            raise ConfigError("--tier must name a tier, got an empty string")


def pick_device(tier: str, requested: str | None) -> torch.device:
    """The device seeds run on; a requested one is tried with a tiny computation first.

    Raises:
        ConfigError: a malformed device, CUDA asked for without CUDA, or a device that cannot
            compute (e.g. 'meta', which has no values, or a GPU index that does not exist).
    """
    if requested is not None:
        if not requested.strip():
            raise ConfigError("--device must name a device (cpu, cuda, cuda:1), got an empty string")
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device '{requested}' requested but CUDA is not available here")
        try:
            device = torch.device(requested)
        except RuntimeError as e:
            raise ConfigError(f"bad device '{requested}': {e}") from None
        try:
            ok = float((torch.ones(2, device=device) * 2).sum().cpu().item()) == 4.0
        except (RuntimeError, NotImplementedError, AssertionError, ValueError) as e:
            raise ConfigError(f"device '{requested}' cannot compute here: {str(e).splitlines()[0]}") from None
        if not ok:
            raise ConfigError(f"device '{requested}' computes wrong numbers (2 + 2 != 4)")
        return device
    if tier in ("gpu", "paper") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def validate_config(config, base, where: str) -> None:
    """Generic checks on a (possibly overridden) config, before any compute.

    Every float field is finite, and a tuple field the tier declares non-empty is not emptied by an
    override. The config's own __post_init__ has already run (dataclasses.replace calls it).

    Raises:
        ConfigError: naming the field and the value.
    """
    import typing

    try:
        hints = typing.get_type_hints(type(config))
    except Exception:  # an unresolvable annotation: skip the arity check, keep the others
        hints = {}
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), getattr(base, f.name, None)
        args = typing.get_args(hints.get(f.name))
        if isinstance(value, tuple) and args and Ellipsis not in args and len(value) != len(args):
            raise ConfigError(f"{where}: config key '{f.name}' needs {len(args)} values, got {len(value)} "
                              f"({value!r})")
        if dataclasses.is_dataclass(value):
            validate_config(value, default if dataclasses.is_dataclass(default) else value, f"{where}.{f.name}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{where}: config key '{f.name}' must be a finite number, got {value}")
        elif isinstance(value, tuple):
            if not value and default:
                raise ConfigError(f"{where}: config key '{f.name}' must not be empty (tier value {default!r})")
            bad = [x for x in value if isinstance(x, float) and not math.isfinite(x)]
            if bad:
                raise ConfigError(f"{where}: config key '{f.name}' must hold finite numbers, got {value!r}")


def plan_claims(claims: Sequence[Claim], options: RunOptions) -> list[tuple]:
    """Resolve every claim's tier and config (and check them) before any compute."""
    if not claims:
        raise ConfigError("no claims to run: the claims package registered none")
    ids = [c.id for c in claims]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"claim(s) given more than once: {', '.join(twice)}")
    plans = []
    for claim in claims:
        tier = claim.tier(options.tier)
        config = apply_overrides(tier.config, options.overrides)
        validate_config(config, tier.config, f"{claim.id} ({options.tier} tier)")
        preflight = getattr(config, "preflight", None)
        if callable(preflight):
            preflight()  # e.g. a data path that does not exist: one line now, not a crash later
        plans.append((claim, tier, config))
    return plans


def seed_count(claim: Claim, tier, requested: int | None = None) -> int:
    """Seeds a claim's tier runs: `requested` (--seeds) when given, else one for a deterministic claim
    (its seeds would repeat the same numbers: a point interval either way), else the tier's pilot."""
    if requested:
        return requested
    return 1 if claim.deterministic else tier.seeds


def step_fields(config) -> list[int]:
    """Every int `steps` field of a (nested) dataclass config: one per training run it holds."""
    out = []
    if dataclasses.is_dataclass(config):
        for f in dataclasses.fields(config):
            v = getattr(config, f.name)
            if dataclasses.is_dataclass(v):
                out += step_fields(v)
            elif f.name == "steps" and isinstance(v, int) and not isinstance(v, bool):
                out.append(v)
    return out


def step_capped(config, max_steps: int | None) -> bool:
    """True when --max-steps may have cut this config short (every `steps` field must fit the cap)."""
    if max_steps is None:
        return False
    steps = step_fields(config)
    return not steps or any(s > max_steps for s in steps)
