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


@dataclass(frozen=True)
class Effect(Expectation):
    """A comparative claim ("A improves on B") with a smallest effect of interest, so that both outcomes
    are reachable (the rule, EFFECT_RULE, is decided in harness.claim.verdict.decide):

    - holds: the interval excludes "no effect" (`null`) in the claimed direction and does not exclude
      an effect of the smallest size of interest;
    - fails: the interval lies entirely short of the smallest effect of interest (null + smallest in
      the claimed direction): whatever the effect is, it is smaller than the paper's smallest reported one;
    - inconclusive: neither (more seeds decide: as the interval shrinks it ends on one side).

    Args:
        smallest: the smallest effect of interest (> 0), in the metric's units; its source goes in the
            Check's `source` (e.g. the smallest gain the paper reports).
        null: the metric's value under no effect (0 for a difference, 1 for a ratio).
        direction: +1 when the claim is that the metric exceeds `null`, -1 when it is below.
    """

    smallest: PerTier
    null: float = 0.0
    direction: int = 1

    def __post_init__(self):
        if self.direction not in (1, -1):
            raise ConfigError(f"Effect.direction must be +1 or -1, got {self.direction!r}")
        values = self.smallest.values() if isinstance(self.smallest, Mapping) else [self.smallest]
        for v in values:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"Effect.smallest must be a positive finite number, got {v!r}")

    def effect_threshold(self, tier: str) -> float:
        """null + direction * smallest: the edge an interval must lie short of to read "fails"."""
        return self.null + self.direction * float(_for_tier(self.smallest, tier, "Effect.smallest"))

    def region(self, tier: str) -> Region:
        """The side of `null` the claim names (strictly): where the whole interval must lie to hold."""
        if self.direction > 0:
            return Region(lo=self.null, lo_open=True)
        return Region(hi=self.null, hi_open=True)

    def tiers(self):
        return _tiers_of(self.smallest)

    def describe(self, tier: str) -> str:
        edge = self.effect_threshold(tier)
        side = "<" if self.direction > 0 else ">"
        return f"{self.region(tier).describe()}; fails if {side} {_fmt(edge)} (smallest effect of interest)"


EFFECT_RULE = ("A comparative check names the smallest effect of interest d from its paper. It holds when the "
               "interval excludes no effect in the claimed direction and does not exclude an effect of size d; "
               "it fails when the whole interval lies short of d (whatever the effect is, it is smaller than "
               "the smallest effect of interest); otherwise it is inconclusive. Both outcomes are reachable.")
