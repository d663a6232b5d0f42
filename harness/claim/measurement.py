"""What an experiment returns for one seed, and the context the runner hands it."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch


@dataclass
class Measurement:
    """One seed's result.

    scalars: named metric values (a claim's checks and reported rows pick from these).
    standard_errors: optional within-run standard error for some scalars.
    curves: tidy tables (one row per recorded step) for plots.
    scale: what was run (parameters, data size, steps), printed beside every verdict.
    notes: short remarks a reader should see (e.g. "diverged at step 812").
    """

    scalars: dict[str, float]
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    scale: dict[str, object] = field(default_factory=dict)
    standard_errors: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "scalars": {k: _json_float(v) for k, v in self.scalars.items()},
            "standard_errors": {k: _json_float(v) for k, v in self.standard_errors.items()},
            "curves": {k: {c: [_json_float(x) if isinstance(x, float) else x for x in df[c].tolist()]
                           for c in df.columns} for k, df in self.curves.items()},
            "scale": dict(self.scale),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Measurement:
        return cls(
            scalars={k: _from_json_float(v) for k, v in d["scalars"].items()},
            standard_errors={k: _from_json_float(v) for k, v in d.get("standard_errors", {}).items()},
            curves={k: pd.DataFrame({c: [_from_json_float(x) for x in col] for c, col in cols.items()})
                    for k, cols in d.get("curves", {}).items()},
            scale=d.get("scale", {}),
            notes=d.get("notes", []),
        )


def _json_float(x):
    """JSON has no NaN/inf: store them as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _from_json_float(x):
    if isinstance(x, str) and x in ("nan", "inf", "-inf"):
        return float(x)
    return x


@dataclass
class RunContext:
    """What the runner gives an experiment: seed, device, step cap and a progress callback.

    An experiment owns its model, data, loss and metrics; the runner owns seeds, the clock, the
    store and the step cap (so a gpu/paper configuration can be exercised for a few CPU steps).
    """

    seed: int
    tier: str
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    max_steps: int | None = None
    progress: Callable[[int, int], None] = lambda step, total: None
    cached_run: Callable[[Callable, object], Measurement] | None = None

    def run(self, experiment: Callable, config) -> Measurement:
        """Run another registered experiment for this seed, through the runner's cache.

        Arms shared between claims (e.g. the BN+WD run behind three claims) are computed once.
        """
        if self.cached_run is None:
            return experiment(config, self)
        return self.cached_run(experiment, config)

    def steps(self, n: int) -> int:
        """The number of steps to actually run: n, or the step cap if smaller."""
        return n if self.max_steps is None else min(n, self.max_steps)

    def generator(self, stream: str) -> torch.Generator:
        """A generator seeded from (seed, stream): separate, recorded streams for init, data, masks."""
        g = torch.Generator()
        g.manual_seed(stream_seed(self.seed, stream))
        return g


def stream_seed(seed: int, stream: str) -> int:
    """A stable 63-bit seed for a named random stream of a given seed."""
    import hashlib

    h = hashlib.sha256(f"{seed}:{stream}".encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)
