"""One way to compose configs.

A config is a frozen dataclass. Each field is a value (a number, a string, a tuple of them) or a *group*:
a frozen dataclass in its own right. Groups are named by their role, the same in every experiment:

    optim   the `harness.optim.OptimizerSpec` the run trains with (in an experiment with several arms,
            the spec the arms derive from: each arm changes the name and the fields its optimizer reads)
    base    the config of the experiment a composite experiment runs once per arm
    net     (and other parts) a part of an experiment with its own settings, e.g. the SAM-IRE net run

There is no inheritance between configs and no flattened prefix (`net_lr`): a field is reached by its
path, "steps", "optim.lr", "base.optim.momentum". The same path works in a claim file and on the
command line:

    derive(CPU, {"optim.lr": 0.2}, steps=60)       # a claim's tier from another tier
    derive(CPU, optim={"lr": 0.2, "momentum": 0.9}) # a dict updates the fields of a group
    harness run --claim ID --set optim.lr=0.2       # strings, parsed to the field's type
    harness config ID                               # every path and its value

Every change goes through `dataclasses.replace`, so each config's `__post_init__` validates the result.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Iterator, Mapping

from harness.errors import ConfigError


def derive(config, changes: Mapping[str, object] | None = None, /, **fields):
    """A copy of `config` with fields changed; `config` itself is unchanged.

    Args:
        config: a frozen dataclass config.
        changes: path -> value, e.g. {"optim.lr": 0.2, "steps": 60}.
        **fields: top-level field -> value; a dict value for a group field updates that group's fields.

    Raises:
        ConfigError: an unknown path (with "did you mean"), or a value the config rejects.
    """
    merged: dict[str, object] = dict(changes or {})
    for key, value in fields.items():
        if isinstance(value, Mapping):
            merged.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            merged[key] = value
    return _apply(config, merged, parse=False)


def apply_overrides(config, overrides: Mapping[str, str]):
    """`derive` for command-line strings: each value is converted to its field's type.

    Raises:
        ConfigError: unknown path (with suggestions) or a value that does not parse.
    """
    return _apply(config, dict(overrides or {}), parse=True)


def config_paths(config, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(path, value) for every settable field, groups walked into, in declaration order."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            yield from config_paths(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def refuse_unread(config, unread: Mapping[str, str]) -> None:
    """For a config's `__post_init__`: each declared path that the experiment never reads keeps its default.

    A composite config that holds a whole setup (`base`) but runs only part of it declares the rest here, so
    `--set base.steps=...` on it is one line instead of a run that changes nothing. The default of a path is
    the value at that path in the config class's own field default (e.g. the `PretrainSetup()` of `base`).

    Args:
        config: the config being built.
        unread: path -> who ignores it and why, e.g. {"base.steps": "the timed blocks (blocks x mask_every)"}.

    Raises:
        ConfigError: "<path> is not read by <why>: leave it at its default <value>".
    """
    for path, why in unread.items():
        value, default = _at(config, path), _at(_field_default(type(config), path.partition(".")[0]),
                                                path.partition(".")[2])
        if value != default:
            raise ConfigError(f"{path} is not read by {why}: leave it at its default {default!r}")


def _field_default(cls, name: str):
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    if field.default is dataclasses.MISSING:
        raise TypeError(f"{cls.__name__}.{name} has no default, so it cannot be declared unread")
    return field.default


def _at(config, path: str):
    for part in path.split(".") if path else ():
        config = getattr(config, part)
    return config


def _apply(config, changes: dict[str, object], *, parse: bool):
    if not changes:
        return config
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        raise ConfigError(f"cannot set {', '.join(changes)} on a {type(config).__name__} (not a config)")
    names = [f.name for f in dataclasses.fields(config)]
    direct: dict[str, object] = {}
    nested: dict[str, dict[str, object]] = {}
    for key, value in changes.items():
        head, dot, rest = key.partition(".")
        if head not in names:
            close = difflib.get_close_matches(head, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown config key '{key}' for {type(config).__name__}{hint} "
                              f"(keys: {', '.join(names)})")
        current = getattr(config, head)
        is_group = dataclasses.is_dataclass(current) and not isinstance(current, type)
        if dot:
            if not is_group:
                raise ConfigError(f"config key '{head}' of {type(config).__name__} is a value, not a group: "
                                  f"set it as {head}=VALUE")
            nested.setdefault(head, {})[rest] = value
        elif is_group and (parse or not dataclasses.is_dataclass(value)):
            raise ConfigError(f"config key '{key}' is a group; set its fields as {key}.FIELD=VALUE")
        else:
            direct[key] = _parse_value(key, value, config) if parse else value
    for head, sub in nested.items():
        direct[head] = _apply(getattr(config, head), sub, parse=parse)
    try:
        return dataclasses.replace(config, **direct)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config change: {e}") from None


def _parse_value(key: str, raw, config):
    current = getattr(config, key)
    try:
        hint = typing.get_type_hints(type(config)).get(key)
    except Exception:  # an unresolvable annotation: name the current value's type instead
        hint = type(current)
    kind = type(current)
    try:
        if kind is bool:
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1")
        if kind in (int, float, str):
            return kind(raw)
        if kind is tuple and not (current and isinstance(current[0], tuple)):
            elem = type(current[0]) if current else str
            return tuple(elem(x) for x in raw.split(",") if x)
        if current is None:
            return None if raw.lower() == "none" else str(raw)
    except ValueError:
        raise ConfigError(f"config key '{key}' expects {_type_name(hint)}, got '{raw}'") from None
    raise ConfigError(f"config key '{key}' of type {_type_name(hint)} cannot be set from the command line")


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def check_bounds(config, *, at_least_one: tuple[str, ...] = (), positive: tuple[str, ...] = (),
                 non_negative: tuple[str, ...] = (), fraction: tuple[str, ...] = ()) -> None:
    """A config's range checks in one call from its `__post_init__` (so every override is checked
    when the tier's config is built, before any seed runs).

    Args:
        config: the config being built.
        at_least_one: int fields that count something (steps, sizes, periods): >= 1.
        positive: number fields that must be > 0 (tolerances, thresholds, caps).
        non_negative: number fields that may be 0 but not below.
        fraction: number fields in [0, 1).

    Raises:
        ConfigError: naming the field, its value and the range.
    """
    rules = [(at_least_one, lambda v: v >= 1, ">= 1"), (positive, lambda v: v > 0, "> 0"),
             (non_negative, lambda v: v >= 0, ">= 0"), (fraction, lambda v: 0 <= v < 1, "in [0, 1)")]
    for names, ok, what in rules:
        for name in names:
            value = getattr(config, name)
            if not ok(value):
                raise ConfigError(f"{type(config).__name__}.{name} must be {what}, got {value!r}")
