"""What an experiment says it returns, and the check that a claim only names what is returned.

An experiment may declare its scalar names (`outputs=`) and curve tables (`curves=`, table ->
columns) in `@experiment(...)`; fnmatch patterns such as "final_val_loss.*" are allowed. When it
does, `register()` rejects a claim whose check, reported row, plot or reference line names
something the experiment does not return, with a "did you mean" — at import time, not after the
compute. Experiments that declare nothing still load (their names are checked after the compute).
"""
from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable, Mapping


def normalize(name: str, outputs, curves) -> tuple[tuple[str, ...] | None, dict[str, tuple[str, ...]] | None]:
    """Validate an experiment's declarations; returns (outputs, curves) as tuples (None: undeclared).

    Raises:
        TypeError: outputs is not a collection of strings, curves not a mapping of table -> columns.
    """
    if outputs is not None:
        if isinstance(outputs, str) or not all(isinstance(o, str) and o for o in outputs):
            raise TypeError(f"experiment {name!r}: outputs must be a tuple of scalar names, got {outputs!r}")
        outputs = tuple(outputs)
    if curves is not None:
        if not isinstance(curves, Mapping) or not all(
                isinstance(t, str) and not isinstance(cols, str) and all(isinstance(c, str) for c in cols)
                for t, cols in curves.items()):
            raise TypeError(f"experiment {name!r}: curves must map a table name to its column names, "
                            f"got {curves!r}")
        curves = {t: tuple(cols) for t, cols in curves.items()}
    return outputs, curves


def covered(name: str, patterns: Iterable[str]) -> bool:
    """True when name equals, or matches an fnmatch pattern of, one of the declared names."""
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _miss(what: str, name: str, declared: Iterable[str]) -> str:
    declared = list(declared)
    close = difflib.get_close_matches(name, declared, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{what} {name!r} is not among what the experiment returns{hint} (it returns: {', '.join(declared)})"


def claim_name_problems(claim) -> list[str]:
    """Every metric, table and column a claim names that its experiment does not declare.

    Returns [] when the experiment declares nothing (names are then checked after the compute).
    """
    exp = claim.experiment
    outputs = getattr(exp, "outputs", None)
    curves = getattr(exp, "curves", None)
    problems = []
    if outputs is not None:
        for check in claim.checks + claim.regime:
            if not covered(check.metric, outputs):
                problems.append(_miss("check metric", check.metric, outputs))
        for metric, _label in claim.reported:
            if not covered(metric, outputs):
                problems.append(_miss("reported metric", metric, outputs))
        for plot in claim.plots:
            for y, _label in plot.hlines:
                if isinstance(y, str) and not covered(y, outputs):
                    problems.append(_miss(f"plot {plot.title!r} reference line", y, outputs))
            if plot.onset and not covered(plot.onset, outputs):
                problems.append(_miss(f"plot {plot.title!r} onset", plot.onset, outputs))
    if curves is not None:
        for plot in claim.plots:
            tables = [t for t in curves if covered(plot.curve, [t])]
            if not tables:
                problems.append(_miss(f"plot {plot.title!r} curve table", plot.curve, curves))
                continue
            columns = [c for t in tables for c in curves[t]]
            for col in (plot.x, *plot.y):
                if not covered(col, columns):
                    problems.append(_miss(f"plot {plot.title!r} column of table {plot.curve!r}", col, columns))
    return problems
