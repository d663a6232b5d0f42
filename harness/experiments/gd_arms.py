"""Named arms of the full-batch trajectory experiment, as one measurement.

GDArmsConfig(arms=(("heavy_ball", GDConfig(...)), ("nesterov", GDConfig(...)))) runs each arm as its own
`gd_sharpness_trajectory` through the runner's cache (an arm equal to another claim's config is computed
once) and returns its scalars as "<arm>.<scalar>", its curve tables as "<arm>.<table>" and its scale and
notes under its name. Nothing here knows what the arms differ in (optimizer, model, data): a claim that
compares optimizers or nets on the same loop declares its arms as data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.errors import ConfigError
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory

_ARM = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class GDArmsConfig:
    """(name, GDConfig) pairs, run in this order. Names: lower-case identifiers, unique.

    Raises:
        ConfigError: no arms, a bad or repeated name, or an arm that is not a GDConfig.
    """

    arms: tuple[tuple[str, GDConfig], ...] = ()

    def __post_init__(self):
        if not self.arms:
            raise ConfigError("GDArmsConfig needs at least one (name, GDConfig) arm")
        names = [a[0] if isinstance(a, tuple) and len(a) == 2 else None for a in self.arms]
        for arm, name in zip(self.arms, names, strict=True):
            if not isinstance(name, str) or not _ARM.match(name):
                raise ConfigError(f"arm names must be lower-case identifiers, got {arm!r:.80}")
            if not isinstance(arm[1], GDConfig):
                raise ConfigError(f"arm {name!r} must be a GDConfig, got {type(arm[1]).__name__}")
        if len(set(names)) != len(names):
            raise ConfigError(f"arm names must be unique, got {names}")

    def preflight(self) -> None:
        """Each arm's own preflight (data sources), before any seed runs."""
        for _name, arm in self.arms:
            arm.preflight()


def _prefixed(names):
    return None if names is None else tuple(f"*.{n}" for n in names)


# What an arm returns under any arm name ("*." + each name the trajectory experiment declares), so that
# register() checks a claim's metric names at import time without this module knowing the arm names.
@experiment("gd_arms", GDArmsConfig, outputs=_prefixed(gd_sharpness_trajectory.outputs),
            curves=None if gd_sharpness_trajectory.curves is None else
            {f"*.{t}": cols for t, cols in gd_sharpness_trajectory.curves.items()})
def gd_arms(cfg: GDArmsConfig, ctx: RunContext) -> Measurement:
    """Every arm's gd_sharpness_trajectory, with its outputs prefixed by the arm's name."""
    scalars, ses, curves, scale, notes = {}, {}, {}, {}, []
    for name, arm in cfg.arms:
        m = ctx.run(gd_sharpness_trajectory, arm)
        scalars.update({f"{name}.{k}": v for k, v in m.scalars.items()})
        ses.update({f"{name}.{k}": v for k, v in m.standard_errors.items()})
        curves.update({f"{name}.{k}": v for k, v in m.curves.items()})
        scale[name] = m.scale
        notes += [f"{name}: {n}" for n in m.notes]
    return Measurement(scalars=scalars, standard_errors=ses, curves=curves, scale=scale, notes=notes)
