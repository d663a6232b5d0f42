"""The claim registry: claims are declared as data in `claims/`; the logic lives in the library.

A claim names an experiment (a library function registered with @experiment), one frozen config
per tier, the checks that decide its verdict, and the extra metrics it reports.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.claim.expect import Expectation
from harness.claim.measurement import Measurement, RunContext
from harness.errors import ConfigError, UnknownClaimError

TIERS = ("smoke", "cpu", "gpu", "paper")
REQUIRED_TIERS = ("smoke", "cpu")
CLAIM_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")  # a claim id: lowercase words joined by "-"

Experiment = Callable[[object, RunContext], Measurement]
_EXPERIMENTS: dict[str, Experiment] = {}
_CLAIMS: dict[str, Claim] = {}


def experiment(name: str, config: type, outputs=None, curves=None):
    """Register a library function as an experiment taking (config, ctx) -> Measurement.

    Args:
        name: a stable name; it is part of the cache key, so results are shared by every claim
            that runs the same experiment with the same config and seed.
        config: the frozen dataclass type of its configuration.
        outputs: the scalar names it returns (fnmatch patterns allowed, e.g. "final_val_loss.*");
            when given, register() rejects a claim naming any other metric (harness.claim.outputs).
        curves: its curve tables, table -> column names (patterns allowed); checked the same way
            against the claim's plots.
    """
    if not (dataclasses.is_dataclass(config) and config.__dataclass_params__.frozen):
        raise TypeError(f"experiment {name!r}: config must be a frozen dataclass, got {config!r}")
    from harness.claim.outputs import normalize

    outputs, curves = normalize(name, outputs, curves)

    def wrap(fn):
        if name in _EXPERIMENTS and _EXPERIMENTS[name] is not fn:
            raise ValueError(f"experiment {name!r} is registered twice")
        fn.experiment_name = name
        fn.config_type = config
        fn.outputs, fn.curves = outputs, curves
        _EXPERIMENTS[name] = fn
        return fn

    return wrap


@dataclass(frozen=True)
class Tier:
    """How a claim runs at one tier: seeds, the experiment's config, and a one-line scale note.

    exclusive: timed on wall clock: runs alone on its device (see the field's comment).
    """

    seeds: int
    config: object
    scale: str = ""
    max_seeds: int | None = None  # > seeds: seeds chosen by power, up to this many (harness.claim.sequential)
    # Why no seed count this tier can afford decides some check (its spread against its smallest effect,
    # or one deterministic run): shown beside an inconclusive check whose seeds-needed is over the cap.
    cap_reason: str = ""
    # exclusive: on CUDA its seeds run one at a time after the seeds that share the GPU (harness run
    # --per-gpu); on a CPU it changes nothing (CPU timings read thread CPU time, which sharing leaves intact).
    exclusive: bool = False

    def __post_init__(self):
        if not isinstance(self.exclusive, bool):
            raise ConfigError(f"Tier.exclusive must be True or False, got {self.exclusive!r}")
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ConfigError(f"Tier.seeds must be a positive integer, got {self.seeds!r}")
        if self.max_seeds is not None and (not isinstance(self.max_seeds, int) or self.max_seeds < self.seeds):
            raise ConfigError(f"Tier.max_seeds must be an integer >= seeds ({self.seeds}), got {self.max_seeds!r}")

    @property
    def seeds_label(self) -> str:
        """'5 seeds', or '3-8 seeds (by power)' when seeds are added by power up to max_seeds."""
        if self.max_seeds is not None and self.max_seeds > self.seeds:
            return f"{self.seeds}-{self.max_seeds} seeds (by power)"
        return f"{self.seeds} seed{'' if self.seeds == 1 else 's'}"


@dataclass(frozen=True)
class Check:
    """A metric (a scalar of the Measurement) held against an expectation.

    source: where the band, threshold or smallest effect comes from (a paper's figure, table or
        theorem, the authors' code, or "our choice, because ..."), shown beside the check.
    paper: the paper's own number for this quantity and where it is printed (e.g. "2 (Thm. 1.1)"),
        shown beside the measured value; empty where the paper gives none.
    """

    metric: str
    expect: Expectation
    label: str = ""
    source: str = ""
    paper: str = ""


@dataclass(frozen=True)
class Plot:
    """A plot for the report: curve table `curve`, x column, y columns, optional reference lines.

    hlines: (y, label) pairs; y may be a scalar name of the Measurement (e.g. "two_over_lr").
    """

    curve: str
    x: str
    y: tuple[str, ...]
    title: str
    ylabel: str = ""
    xlabel: str = ""
    ylog: bool = False
    xlog: bool = False
    hlines: tuple[tuple[float | str, str], ...] = ()
    style: str = "line"
    band_check: str = ""  # a check's metric: its accepted band is drawn (in the plot's y units); "": none
    window: float | str = 0.0  # scored window: the last fraction of measurements, or "onset"; 0: none
    onset: str = ""  # a scalar giving the onset's x, drawn as a dotted line (NaN in every seed: "no onset")


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Change:
    """One dated entry of a claim's change log: what changed in its setup, bands, seeds or metric
    definitions, why, and whether results of the claim (at any tier) had been seen before the change.

    Pre-registration: a band or setup is written down before the claim runs at that tier; a change
    after seeing results is allowed only with an entry here saying so (results_seen=True).
    """

    date: str            # YYYY-MM-DD
    what: str
    why: str
    results_seen: bool

    def __post_init__(self):
        if not _DATE.match(self.date):
            raise ValueError(f"Change.date must be YYYY-MM-DD, got {self.date!r}")
        if not self.what.strip() or not self.why.strip():
            raise ValueError("Change needs a non-empty 'what' and 'why'")
        if not isinstance(self.results_seen, bool):
            raise TypeError("Change.results_seen must be True or False")


@dataclass(frozen=True)
class Claim:
    """A paper claim as a runnable check."""

    id: str
    source: str
    statement: str
    paper_value: str
    experiment: Experiment
    tiers: Mapping[str, Tier]
    checks: tuple[Check, ...]
    reported: tuple[tuple[str, str], ...] = ()  # (metric, label): shown with a CI, no verdict
    # Regime checks: the claim's premise at a tier (e.g. "doubling the steps still improves the loss by at
    # least X"), pre-registered like any check. One that fails makes the verdict "out-of-regime" (the
    # checks say nothing about this setting); one that is inconclusive leaves the verdict inconclusive.
    regime: tuple[Check, ...] = ()
    plots: tuple[Plot, ...] = ()
    tuning: str = "none: every arm runs the fixed settings declared in this claim; nothing was tuned"
    deterministic: bool = False
    version: int = 1     # 1 + the number of change-log entries: bumped with each entry
    notes: str = ""
    changes: tuple[Change, ...] = ()  # the dated change log, oldest first
    module: str = field(default="", compare=False)

    def tier(self, name: str) -> Tier:
        if name not in TIERS:
            raise ConfigError(f"unknown tier '{name}'; tiers are: {', '.join(TIERS)}")
        if name not in self.tiers:
            raise ConfigError(f"claim '{self.id}' has no '{name}' tier; it has: {', '.join(self.tiers)}")
        return self.tiers[name]


def register(claim: Claim) -> Claim:
    """Validate and add a claim; returns it so a module can write CLAIM = register(Claim(...)).

    Raises:
        ValueError/TypeError: malformed claim (duplicate id, unknown tier, config of the wrong type,
            an expectation missing a tier).
    """
    if not CLAIM_ID.match(claim.id):
        raise ValueError(f"claim id {claim.id!r} must be lower-case words joined by '-'")
    claim = _with_module(claim)
    if claim.id in _CLAIMS and not _same_origin(_CLAIMS[claim.id].module, claim.module):
        raise ValueError(f"claim id {claim.id!r} is registered twice: in "
                         f"{module_origin(_CLAIMS[claim.id].module)} and in {module_origin(claim.module)}")
    if getattr(claim.experiment, "experiment_name", None) not in _EXPERIMENTS:
        raise TypeError(f"claim {claim.id!r}: experiment must be a function registered with @experiment")
    unknown = set(claim.tiers) - set(TIERS)
    if unknown:
        raise ValueError(f"claim {claim.id!r}: unknown tiers {sorted(unknown)}; tiers are {TIERS}")
    missing = [t for t in REQUIRED_TIERS if t not in claim.tiers]
    if missing:
        raise ValueError(f"claim {claim.id!r}: every claim needs tiers {REQUIRED_TIERS}, missing {missing}")
    for name, tier in claim.tiers.items():
        if not isinstance(tier.config, claim.experiment.config_type):
            raise TypeError(f"claim {claim.id!r} tier {name!r}: config must be "
                            f"{claim.experiment.config_type.__name__}, got {type(tier.config).__name__}")
    if not claim.checks:
        raise ValueError(f"claim {claim.id!r} has no checks: a claim must be able to fail")
    from harness.claim.outputs import claim_name_problems

    names = claim_name_problems(claim)  # a typo in a metric name fails now, not after the compute
    if names:
        raise ValueError(f"claim {claim.id!r}: " + "; ".join(names))
    if not all(isinstance(c, Check) for c in claim.checks + claim.regime):
        raise TypeError(f"claim {claim.id!r}: checks and regime must be tuples of Check")
    for check in claim.checks + claim.regime:
        named = check.expect.tiers()
        if named is not None and not set(claim.tiers) <= named:
            raise ValueError(f"claim {claim.id!r}: check on {check.metric!r} has no tolerance for tiers "
                             f"{sorted(set(claim.tiers) - named)}")
    checked = {c.metric for c in claim.checks + claim.regime}
    for plot in claim.plots:
        if plot.band_check and plot.band_check not in checked:
            raise ValueError(f"claim {claim.id!r}: plot {plot.title!r} draws the band of {plot.band_check!r}, "
                             f"which is not one of its checks ({', '.join(sorted(checked))})")
        if not (plot.window == "onset" or (isinstance(plot.window, (int, float)) and 0 <= plot.window < 1)):
            raise ValueError(f"claim {claim.id!r}: plot {plot.title!r} window must be a fraction in [0, 1) "
                             f"or 'onset', got {plot.window!r}")
        if plot.window == "onset" and not plot.onset:
            raise ValueError(f"claim {claim.id!r}: plot {plot.title!r} scores from the onset but names no "
                             "onset scalar (Plot.onset)")
    if not all(isinstance(c, Change) for c in claim.changes):
        raise TypeError(f"claim {claim.id!r}: changes must be a tuple of Change entries")
    if claim.version != 1 + len(claim.changes):
        raise ValueError(f"claim {claim.id!r}: version {claim.version} must be 1 + the number of change-log "
                         f"entries ({len(claim.changes)}): bump the version with each entry")
    if [c.date for c in claim.changes] != sorted(c.date for c in claim.changes):
        raise ValueError(f"claim {claim.id!r}: change-log entries must be in date order, oldest first")
    _CLAIMS[claim.id] = claim
    return claim


def _with_module(claim: Claim) -> Claim:
    """The claim with `module` naming the module whose code called register() (errors name its file).

    A module set by hand is kept, unless it names another loaded module than the caller's (a claim
    copied with dataclasses.replace from a claim of another module).
    """
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    caller = frame.f_globals.get("__name__", "") if frame is not None else ""
    if not caller or claim.module == caller or (claim.module and claim.module not in sys.modules):
        return claim
    return dataclasses.replace(claim, module=caller)


def _module_file(module: str) -> str | None:
    path = getattr(sys.modules.get(module), "__file__", None)
    return str(Path(path).resolve()) if path else None


def module_origin(module: str) -> str:
    """Where a claim was registered, for error messages: the module's file, else its name.

    Args:
        module: a claim's `module` (the module that registered it).

    Returns:
        the module's resolved file path, or its name where it has no file.
    """
    return _module_file(module) or (f"module {module!r}" if module else "an unnamed module")


def _same_origin(a: str, b: str) -> bool:
    """Two registrations come from one place: the same module, or the same file under two names."""
    if a == b:
        return True
    fa, fb = _module_file(a), _module_file(b)
    return fa is not None and fa == fb


def claims_from(module: str) -> list[str]:
    """Ids of the claims registered by `module` or by a module inside it (a package)."""
    return sorted(c.id for c in _CLAIMS.values() if c.module == module or c.module.startswith(module + "."))


def all_experiments() -> dict[str, Experiment]:
    """Every registered experiment, name -> function (a copy: register with @experiment)."""
    return dict(_EXPERIMENTS)


def all_claims() -> dict[str, Claim]:
    return dict(sorted(_CLAIMS.items()))


def get_claim(claim_id: str) -> Claim:
    """The claim with this id, or an UnknownClaimError that suggests the closest ids."""
    if claim_id in _CLAIMS:
        return _CLAIMS[claim_id]
    close = difflib.get_close_matches(claim_id, _CLAIMS, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownClaimError(f"unknown claim '{claim_id}'{hint} (claims: {', '.join(sorted(_CLAIMS))})")
