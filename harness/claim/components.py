"""One registry for the named components a config can choose: models, data sets, losses, optimizers.

    LOSSES = Registry("loss", "losses")

    @LOSSES.register("ce")
    def cross_entropy(logits, y): ...

    LOSSES.get("ce")     # the function
    LOSSES.check("cee")  # ConfigError: unknown loss 'cee'; did you mean ce? (losses: ce, mse)

Each module that owns a kind of component holds its registry (harness.models.factory.CLASSIFIERS,
harness.data.datasets.DATASETS, harness.losses.LOSSES, harness.optim.spec.OPTIMIZERS), so a registry is
complete once its module is imported. Configs call `check` in `__post_init__`: a misspelled name fails
when the config is built (a `--set` override included), before any seed runs.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")


def unknown_name(kind: str, name: object, known: Iterable[str], plural: str | None = None) -> ConfigError:
    """The one-line error for a name that is not among `known`: the closest names, then all of them.

    Args:
        kind: what the name names, singular ("model", "schedule").
        name: the name that arrived.
        known: the names that exist.
        plural: `kind`'s plural for the list (default kind + "s").

    Returns:
        A ConfigError to raise, e.g. "unknown model 'si_mpl'; did you mean si_mlp? (models: ...)".
    """
    known = sorted(known)
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown {kind} {name!r}{hint} ({plural or kind + 's'}: {', '.join(known)})")


def check_choice(kind: str, value: object, choices: Iterable[str], plural: str | None = None) -> None:
    """Raise `unknown_name`'s error unless `value` is one of a fixed set of strings (no builders).

    Raises:
        ConfigError: value not in choices, with "did you mean" and the list.
    """
    choices = tuple(choices)
    if value not in choices:
        raise unknown_name(kind, value, choices, plural)


class Registry(Generic[T]):
    """Names mapped to components (builders, specs, functions), strict about both sides.

    Args:
        kind: what a name names, singular, for messages ("model", "data set").
        plural: its plural (default kind + "s").
    """

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or kind + "s"
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register `item` under `name`.

        Returns:
            `item`, so `add` can be used as a decorator's body.

        Raises:
            TypeError: a name that is not a non-empty string. ValueError: a name already registered.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._items[name] = item
        return item

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`: `@MODELS.register("si_mlp")` above a builder."""
        return lambda item: self.add(name, item)

    def get(self, name: str) -> T:
        """The component registered as `name`.

        Raises:
            ConfigError: unknown name, with the closest names and the list of all.
        """
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        raise unknown_name(self.kind, name, self._items, self.plural)

    def check(self, name: str) -> None:
        """Validate a config's name now (what `get` would raise later, without building anything).

        Raises:
            ConfigError: as `get`.
        """
        self.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        """(name, component) pairs, sorted by name."""
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
