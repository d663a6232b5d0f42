"""Expectations: the region a claim's metric must lie in, per tier.

A tolerance may be one number for every tier or a mapping tier -> number; a mapping must name
every tier the claim declares (checked at registration).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from harness.errors import ConfigError

PerTier = Union[float, Mapping[str, float]]
PerTierPair = Union[tuple[float, float], Mapping[str, tuple[float, float]]]


@dataclass(frozen=True)
class Region:
    """A closed interval [lo, hi] of accepted metric values (either end may be infinite)."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False  # True: the lower end itself is not accepted (a strictly positive effect)
    hi_open: bool = False

    def contains(self, x: float) -> bool:
        above = x > self.lo if self.lo_open else x >= self.lo
        below = x < self.hi if self.hi_open else x <= self.hi
        return above and below

    def describe(self) -> str:
        if math.isinf(self.lo) and math.isinf(self.hi):
            return "any value"
        if math.isinf(self.lo):
            return f"{'<' if self.hi_open else '≤'} {_fmt(self.hi)}"
        if math.isinf(self.hi):
            return f"{'>' if self.lo_open else '≥'} {_fmt(self.lo)}"
        return f"{'(' if self.lo_open else '['}{_fmt(self.lo)}, {_fmt(self.hi)}{')' if self.hi_open else ']'}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _for_tier(value, tier: str, what: str):
    if isinstance(value, Mapping):
        if tier not in value:
            raise ConfigError(f"{what} has no value for tier '{tier}' (has: {', '.join(value)})")
        return value[tier]
    return value


def _tiers_of(value) -> set[str] | None:
    return set(value) if isinstance(value, Mapping) else None


class Expectation:
    """Base class: subclasses say which region holds for a tier."""

    def region(self, tier: str) -> Region:
        raise NotImplementedError

    def tiers(self) -> set[str] | None:
        """Tiers this expectation names explicitly, or None when it applies to every tier."""
        return None

    def describe(self, tier: str) -> str:
        return self.region(tier).describe()


@dataclass(frozen=True)
class Within(Expectation):
    """|metric - target| <= rtol * |target|."""

    target: float
    rtol: PerTier

    def region(self, tier: str) -> Region:
        r = float(_for_tier(self.rtol, tier, "Within.rtol"))
        half = r * abs(self.target)
        return Region(self.target - half, self.target + half)

    def tiers(self):
        return _tiers_of(self.rtol)

    def describe(self, tier: str) -> str:
        r = float(_for_tier(self.rtol, tier, "Within.rtol"))
        return f"{_fmt(self.target)} ± {r:.0%} {self.region(tier).describe()}"


@dataclass(frozen=True)
class Between(Expectation):
    """lo <= metric <= hi; `bounds` is (lo, hi) or a mapping tier -> (lo, hi)."""

    bounds: PerTierPair

    def region(self, tier: str) -> Region:
        lo, hi = _for_tier(self.bounds, tier, "Between.bounds")
        if not lo <= hi:
            raise ConfigError(f"Between bounds must have lo <= hi, got ({lo}, {hi})")
        return Region(float(lo), float(hi))

    def tiers(self):
        return _tiers_of(self.bounds)


@dataclass(frozen=True)
class AtLeast(Expectation):
    """metric >= bound."""

    bound: PerTier

    def region(self, tier: str) -> Region:
        return Region(lo=float(_for_tier(self.bound, tier, "AtLeast.bound")))

    def tiers(self):
        return _tiers_of(self.bound)


@dataclass(frozen=True)
class AtMost(Expectation):
    """metric <= bound."""

    bound: PerTier

    def region(self, tier: str) -> Region:
        return Region(hi=float(_for_tier(self.bound, tier, "AtMost.bound")))

    def tiers(self):
        return _tiers_of(self.bound)


@dataclass(frozen=True)
class Above(Expectation):
    """metric > bound, strictly: for "X improves Y" checks, where an effect of exactly the bound (e.g. a
    difference of 0 when the method never switched on) must not read as "holds"."""

    bound: PerTier

    def region(self, tier: str) -> Region:
        return Region(lo=float(_for_tier(self.bound, tier, "Above.bound")), lo_open=True)

    def tiers(self):
        return _tiers_of(self.bound)


@dataclass(frozen=True)
class Below(Expectation):
    """metric < bound, strictly."""

    bound: PerTier

    def region(self, tier: str) -> Region:
        return Region(hi=float(_for_tier(self.bound, tier, "Below.bound")), hi_open=True)

    def tiers(self):
        return _tiers_of(self.bound)
