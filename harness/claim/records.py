"""Typed records of the results store: a seed's record, one claim's result (its seeds, checks and
reported rows) and a run summary.

Each class mirrors the JSON the runner writes: `to_dict()` gives exactly that JSON (same keys, same
order), and `from_dict()` reads what this or any earlier version of the harness wrote. A key an
older version did not write takes the default its readers used before these classes existed; a
list or mapping stored as null reads as empty (the readers iterated over `… or []`). Keys a record
does not know (the DDP launcher's `world_size`, a newer harness's additions) are kept in `extra` and
written back after the known ones, so reading and writing a record never drops anything.

The store adds `schema` and `key` in front of a seed record and `digest` after it, and `schema` in
front of a run summary: those are fields here too, written only when set, so a file read back
writes out the same. Records are frozen; only a RunSummary changes (the runner fills it as claims
finish). Estimates, configs, measurements and provenance stay plain dicts: other modules own them.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.errors import HarnessError


def _kwargs(cls, d: Mapping) -> dict:
    """Constructor arguments of a record class from a stored dict (see the module docstring).

    Raises:
        HarnessError: d is not a mapping, or lacks a field that has no default.
    """
    if not isinstance(d, Mapping):
        raise HarnessError(f"a {cls.__name__} is stored as an object, got {type(d).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
    out: dict[str, Any] = {"extra": {k: v for k, v in d.items() if k not in known}}
    for name, f in known.items():
        if name in d:
            empty = f.default_factory is not dataclasses.MISSING and d[name] is None
            out[name] = f.default_factory() if empty else d[name]
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise HarnessError(f"a stored {cls.__name__} has no {name!r} (keys: {', '.join(map(str, d))})")
    return out


def _plain(value):
    """A field's JSON value: records become dicts, lists of records lists of dicts."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


class _Record:
    """to_dict for the record classes: fields in order, `_IF_SET` fields only when not None, then
    `extra`, then the `_LAST` fields (the store's digest comes after everything it covers)."""

    _IF_SET: ClassVar[frozenset[str]] = frozenset()
    _LAST: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        """The record as the JSON the store holds (known keys in the runner's order, then extra keys)."""
        out, last = {}, {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or (f.name in self._IF_SET and value is None):
                continue
            (last if f.name in self._LAST else out)[f.name] = _plain(value)
        return {**out, **self.extra, **last}

    @classmethod
    def from_dict(cls, d: Mapping):
        """Read a stored record; missing keys take their defaults, unknown keys are kept in `extra`.

        Raises:
            HarnessError: d is not a mapping, or lacks a key that has no default (e.g. a claim's id).
        """
        return cls(**_kwargs(cls, d))


@dataclass(frozen=True, kw_only=True)
class SeedRecord(_Record):
    """One seed of one experiment, as stored under cache/<key>.json.

    A seed that never ran (its worker died, see harness.run.parallel) has no threads, environment or
    recorded time; those keys are then left out, as before.
    """

    schema: int | None = None  # set by ResultStore.save_seed
    key: str | None = None  # set by ResultStore.save_seed
    experiment: str | None = None
    config: dict = field(default_factory=dict)
    seed: int | None = None
    tier: str | None = None
    device: str | None = None
    max_steps: int | None = None
    threads: int | None = None
    wall_time_s: float | None = None
    error: str | None = None  # why it has no usable measurement (a crash, a divergence)
    measurement: dict | None = None  # Measurement.to_dict(); None after a crash
    environment: dict | None = None
    run: str | None = None  # the run that computed it
    recorded: str | None = None
    extra: dict = field(default_factory=dict)
    digest: str | None = None  # set by ResultStore.save_seed, over everything above

    _IF_SET: ClassVar[frozenset[str]] = frozenset({"schema", "key", "threads", "environment", "recorded",
                                                  "digest"})
    _LAST: ClassVar[tuple[str, ...]] = ("digest",)


@dataclass(frozen=True, kw_only=True)
class SeedEntry(_Record):
    """One seed as a claim result lists it: where its record is and what it said."""

    seed: int | None = None
    key: str | None = None  # its SeedRecord's key in the store (None: not stored)
    cached: bool = False  # reused from an earlier run
    wall_time_s: float | None = None
    error: str | None = None
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CheckResult(_Record):
    """One check of a claim (with its accepted region and verdict) or one reported row (without).

    A reported row has no expectation, region or seeds_needed, and a verdict only when it could not
    be computed (`error`); a check or row without an estimate has the reason instead.
    """

    metric: str = "?"
    label: str = ""
    expectation: str | None = None  # None: a reported row
    region: list | None = None  # [lo, hi] of the accepted region
    estimate: dict | None = None  # harness.claim.verdict.Estimate.as_dict(); None: no values
    verdict: str | None = None
    seeds_needed: int | None = None  # set only for an inconclusive check of a random claim
    reason: str | None = None
    source: str | None = None  # where the band comes from (harness.claim.registry.Check.source), when declared
    paper: str | None = None  # the paper's own number and where it is printed, when declared
    effect_edge: float | None = None  # an Effect check: null + smallest effect; wholly short of it: fails
    extra: dict = field(default_factory=dict)

    @property
    def is_check(self) -> bool:
        """True for a check (it has an accepted region), False for a reported row."""
        return self.expectation is not None

    def to_dict(self) -> dict:
        """The entry as the runner writes it: an errored entry gives its verdict before the estimate."""
        out = {"metric": self.metric, "label": self.label}
        if self.is_check:
            out.update(expectation=self.expectation, region=self.region)
        for name in ("source", "paper", "effect_edge"):
            if getattr(self, name) is not None and getattr(self, name) != "":
                out[name] = getattr(self, name)
        if self.estimate is None:
            out.update(verdict=self.verdict, estimate=None)
        else:
            out["estimate"] = self.estimate
            if self.is_check:
                out.update(verdict=self.verdict, seeds_needed=self.seeds_needed)
            elif self.verdict is not None:
                out["verdict"] = self.verdict
        if self.reason is not None:
            out["reason"] = self.reason
        return {**out, **self.extra}


@dataclass(frozen=True, kw_only=True)
class ClaimResult(_Record):
    """One claim of a run: what it claims, how it ran, its seeds, checks, reported rows and verdict."""

    id: str
    version: int | None = None
    source: str = ""
    statement: str = ""
    paper_value: str = ""
    tuning: str = ""
    notes: str = ""
    changes: list = field(default_factory=list)  # change log: dicts of date, what, why, results_seen
    tier: str = ""
    scale: str = ""
    measured_scale: dict = field(default_factory=dict)
    experiment: str = ""
    config: dict = field(default_factory=dict)
    config_hash: str = ""
    deterministic: bool = False
    code_hash: str = ""
    step_capped: bool = False
    sampling: dict = field(default_factory=dict)  # adaptive, looks, pilot_seeds, max_seeds, confidence
    seeds: list[SeedEntry] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    reported: list[CheckResult] = field(default_factory=list)
    regime: list[CheckResult] = field(default_factory=list)  # the claim's premise at this tier (verdict gates)
    verdict: str = "error"
    wall_time_s: float | None = None
    plots: list = field(default_factory=list)  # harness.claim.registry.Plot as dicts
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Mapping) -> ClaimResult:
        """Read a stored claim entry (see _Record.from_dict); its seeds and checks become records."""
        kw = _kwargs(cls, d)
        for name, record in (("seeds", SeedEntry), ("checks", CheckResult), ("reported", CheckResult),
                             ("regime", CheckResult)):
            if name in kw:
                kw[name] = [record.from_dict(x) for x in kw[name]]
        return cls(**kw)


@dataclass(kw_only=True)
class RunSummary(_Record):
    """One run, as stored in runs/<run-id>/run.json (rewritten after each claim)."""

    schema: int | None = None  # set by ResultStore.save_run
    run_id: str
    status: str = "unknown"  # harness.run.store.STATUSES once read through ResultStore.load_run
    tier: str = "?"
    started: str | None = None
    finished: str | None = None  # None while it runs
    options: dict = field(default_factory=dict)
    writer: dict = field(default_factory=dict)  # pid and host of the process that writes it
    environment: dict = field(default_factory=dict)  # harness.run.provenance.environment()
    claims: list[ClaimResult] = field(default_factory=list)
    status_reason: str | None = None  # why it was interrupted or aborted
    extra: dict = field(default_factory=dict)

    _IF_SET: ClassVar[frozenset[str]] = frozenset({"schema", "status_reason"})

    @classmethod
    def from_dict(cls, d: Mapping) -> RunSummary:
        """Read a stored run summary (see _Record.from_dict); its claims become ClaimResults."""
        kw = _kwargs(cls, d)
        if "claims" in kw:
            kw["claims"] = [ClaimResult.from_dict(c) for c in kw["claims"]]
        return cls(**kw)


def _allowed_types(hint) -> tuple[type, ...]:
    """The JSON types a stored field of this annotation may hold (int for float; never bool for a number)."""
    import types
    import typing

    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    out: list[type] = []
    for arg in args:
        base = typing.get_origin(arg) or arg
        if base is float:
            out += [int, float]
        elif isinstance(base, type):
            out.append(dict if base is dict or issubclass(base, _Record) else base)
    return tuple(out)


def field_type_problem(cls, d: Mapping) -> str | None:
    """Why a stored record's known fields do not have their declared types (None: they do).

    A list or mapping stored as null is fine (it reads as empty); a bool is not a number; a number
    field may hold the store's text for a non-finite value ("nan", "inf", "-inf").
    """
    import typing

    if not isinstance(d, Mapping):
        return f"a {cls.__name__} is not an object but {type(d).__name__}"
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name == "extra" or f.name not in d:
            continue
        value, allowed = d[f.name], _allowed_types(hints[f.name])
        if value is None and (type(None) in allowed or f.default_factory is not dataclasses.MISSING):
            continue
        if float in allowed and value in ("nan", "inf", "-inf"):
            continue
        if isinstance(value, bool) and bool not in allowed:
            ok = False
        else:
            ok = isinstance(value, tuple(t for t in allowed if t is not type(None)))
        if not ok:
            want = " or ".join(t.__name__ for t in allowed if t is not type(None)) or "?"
            return f"{cls.__name__}.{f.name} is {type(value).__name__}, not {want}"
    return None


def run_record_problem(run: Mapping) -> str | None:
    """Why a stored run summary's fields, its claims', seeds' and checks' do not have their declared
    types, or hold an unknown verdict or a malformed region (None: the whole record is sound)."""
    from harness.claim.verdict import VERDICTS

    problem = field_type_problem(RunSummary, run)
    for c in run.get("claims") or []:
        if problem:
            return problem
        problem = field_type_problem(ClaimResult, c)
        if problem is None and c.get("verdict", ERROR_WORD) not in VERDICTS:
            problem = f"claim {c.get('id')!r}: unknown verdict {c.get('verdict')!r}"
        for s in (c.get("seeds") or []) if problem is None else []:
            problem = problem or field_type_problem(SeedEntry, s)
        for k in ((c.get("checks") or []) + (c.get("reported") or [])) if problem is None else []:
            problem = problem or field_type_problem(CheckResult, k) or _check_problem(k, VERDICTS)
    return problem


ERROR_WORD = "error"  # ClaimResult.verdict's default


def _check_problem(k: Mapping, verdicts: tuple[str, ...]) -> str | None:
    if k.get("verdict") is not None and k["verdict"] not in verdicts:
        return f"check {k.get('metric')!r}: unknown verdict {k['verdict']!r}"
    region = k.get("region")
    if region is not None and (len(region) != 2 or not all(
            x is None or x in ("nan", "inf", "-inf") or (isinstance(x, (int, float)) and not isinstance(x, bool))
            for x in region)):
        return f"check {k.get('metric')!r}: region is not [lo, hi] numbers"
    return None
