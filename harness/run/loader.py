"""Where claims come from: this repository's `claims` package, the `claim_harness.claims` entry points
of installed packages, and folders named with `--claims-path`. All of them feed one strict registry.

Every source goes through harness.claim.registry.register, so one claim id registered by two files is an
error naming both, wherever they live; a module that fails to import is an error naming its file; a
source that registers no claim is an error (a mistyped path never silently reads as an empty set).

A `--claims-path` folder is either a plain folder of claim files, or a package (a folder with an
`__init__.py`, loaded like `claims/`). Files named `_*.py`, `test_*.py`, `*_test.py` or `conftest.py`
are not claim files: claim files may import them as helpers, and pytest runs the tests. The folder
(for a package, its parent) is appended to sys.path, so its files import each other by their plain
names, and worker processes (spawned with the parent's sys.path) can unpickle configs defined there.
A file whose name is already taken by another module is refused rather than shadowed.
"""
from __future__ import annotations

import importlib
import importlib.util
import keyword
import pkgutil
import sys
import traceback
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from harness.claim.registry import Claim, Experiment, all_claims, all_experiments, claims_from
from harness.errors import HarnessError, describe, is_user_interrupt

ENTRY_POINT_GROUP = "claim_harness.claims"  # each entry point names a module or package of claims

# The --claims-path folders this process loaded, in order: the runner hands them to its workers.
_SOURCES: list[str] = []


def load_all(paths: Iterable[str | Path] = (), *, entry_points: bool = True,
             package: str = "claims") -> dict[str, Claim]:
    """Load every claim source: the repository's package, installed entry points, then each folder.

    Args:
        paths: `--claims-path` folders, in order.
        entry_points: also load the modules named by the `claim_harness.claims` entry points.
        package: the repository's claims package.

    Returns:
        every registered claim, id -> Claim, sorted by id.

    Raises:
        HarnessError: a source that fails to import (naming the file), registers no claim, or
            registers an id another file registered too (naming both).
    """
    load_package(package)
    if entry_points:
        load_entry_points()
    for path in paths:
        load_folder(path)
    return all_claims()


def load_claims(package: str = "claims") -> dict[str, Claim]:
    """Import every module of a claims package (each registers its claims); fail loudly on errors.

    Args:
        package: a package (its modules are imported in name order) or a single module.

    Returns:
        every registered claim, id -> Claim, sorted by id (not only this package's).

    Raises:
        HarnessError: the package or one of its modules fails to import (naming the file), or the
            package registers no claim at all (an empty or misnamed folder is not silently skipped).
    """
    load_package(package)
    return all_claims()


def experiment_named(name: str, module: str) -> Experiment:
    """The registered experiment `name`, in a process that may not have imported it yet (a worker, a job).

    Args:
        name: its registered name.
        module: the module that defines it, imported when the name is not registered yet; where that
            module cannot be imported by name, the claims package is loaded instead.

    Raises:
        KeyError: neither registers `name`.
    """
    if name not in all_experiments():
        try:
            importlib.import_module(module)
        except ImportError:
            load_claims()
    return all_experiments()[name]


def loaded_sources() -> tuple[str, ...]:
    """The `--claims-path` folders loaded in this process (resolved, in order).

    A process of its own (not a spawned worker, which inherits sys.path and imports experiment
    modules by name) passes these to `load_all` to see the same claims.
    """
    return tuple(_SOURCES)


def load_package(package: str, what: str = "the claims package") -> list[str]:
    """Import a package of claims and each of its claim modules, in name order.

    Args:
        package: the dotted name of a package, or of a single module.
        what: how errors name it.

    Returns:
        the ids of the claims its modules registered.

    Raises:
        HarnessError: it or one of its modules fails to import, or it registers no claim.
    """
    pkg = import_claim_module(package, what)
    if getattr(pkg, "__file__", None) is None:  # e.g. a claims/ folder in the working directory
        raise HarnessError(f"{what} '{package}' is a folder without __init__.py "
                           f"({', '.join(getattr(pkg, '__path__', []))}), not a package of claims: it "
                           "shadows the package of that name; run harness from another folder (pass this one "
                           "with --claims-path)")
    for mod in sorted(pkgutil.iter_modules(getattr(pkg, "__path__", [])), key=lambda m: m.name):
        if _is_claim_module(mod.name):
            import_claim_module(f"{package}.{mod.name}")
    ids = claims_from(package)
    if not ids:
        raise HarnessError(f"{what} '{package}' ({pkg.__file__}) registers no claims")
    return ids


def load_entry_points(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Import the module or package each entry point of `group` names (e.g. `mine = "my_pkg.claims"`).

    Returns:
        the ids of the claims they registered.

    Raises:
        HarnessError: an entry point's module fails to import or registers no claim.
    """
    ids: set[str] = set()
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: (e.name, e.value)):
        dist = getattr(ep.dist, "name", None)
        ids.update(load_package(ep.module, what=f"entry point '{ep.name}' ({group}"
                                f"{f' of {dist}' if dist else ''})"))
    return sorted(ids)


def load_folder(path: str | Path) -> list[str]:
    """Load the claims of a folder outside this repository (`--claims-path DIR`).

    Args:
        path: a plain folder of claim files, or a package folder (with `__init__.py`).

    Returns:
        the ids of the claims it registered.

    Raises:
        HarnessError: not a folder; a file's name is not a module name or is taken by another
            module; a file fails to import; the folder registers no claim.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise HarnessError(f"--claims-path {path}: no such folder")
    folder = folder.resolve()
    if (folder / "__init__.py").is_file():
        _append_sys_path(folder.parent)
        _check_module_name(folder.name, folder / "__init__.py")
        ids = load_package(folder.name, what="--claims-path package")
    else:
        files = [f for f in sorted(folder.glob("*.py")) if _is_claim_module(f.stem)]
        _append_sys_path(folder)
        for file in files:
            _check_module_name(file.stem, file)
            import_claim_module(file.stem)
        ids = sorted({cid for file in files for cid in claims_from(file.stem)})
        if not ids:
            found = f"files: {', '.join(f.name for f in files)}" if files else "no claim files in it"
            raise HarnessError(f"--claims-path {folder} registers no claims ({found})")
    if str(folder) not in _SOURCES:
        _SOURCES.append(str(folder))
    return ids


def import_claim_module(name: str, what: str = "claim module"):
    """Import one module of claims (it registers them), turning any failure into one line naming its file.

    Args:
        name: the module's dotted name.
        what: how the error names it.

    Returns:
        the module.

    Raises:
        HarnessError: the module is missing, or raised while importing (a syntax error, a failed
            import, a malformed or duplicate claim); the message names its file and, when the error
            comes from another file, where it was raised.
    """
    try:
        spec = importlib.util.find_spec(name)
    except BaseException as e:  # a parent package that fails to import: the import below says why
        if is_user_interrupt(e):
            raise
        spec = None
    file = spec.origin if spec is not None and spec.has_location else None
    try:
        return importlib.import_module(name)
    except HarnessError:
        raise
    except ModuleNotFoundError as e:
        if e.name == name:
            raise HarnessError(f"cannot import {what} '{name}': no such module") from e
        raise HarnessError(f"{what} {name} ({file}) failed to load: {type(e).__name__}: {e}") from e
    except BaseException as e:  # SystemExit, a KeyboardInterrupt it raised itself: still this file's error
        if is_user_interrupt(e):
            raise
        frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<")]
        at = f" (raised at {frames[-1].filename}:{frames[-1].lineno})" \
            if frames and frames[-1].filename != file else ""
        raise HarnessError(f"{what} {name} ({file or 'file unknown'}) failed to load: "
                           f"{_one_line(e)}{at}") from e


def _one_line(exc: BaseException) -> str:
    return describe(exc) if isinstance(exc, SystemExit) else f"{type(exc).__name__}: {exc}"


def new_module_problem(name: str, folder: Path) -> str | None:
    """Why a new claim file `<folder>/<name>.py` would not load as a claim (None: it would), by the rules
    `load_folder` and `load_package` apply: skipped as a helper or test, not an importable name, or (in a
    plain --claims-path folder) a name another module already has."""
    if not _is_claim_module(name):
        return (f"its file {name}.py would be skipped by the loader (files named _*, test_*, *_test or "
                "conftest are helpers and tests, not claims)")
    if not name.isidentifier() or keyword.iskeyword(name):
        return f"'{name}' is a Python keyword, not a module name" if keyword.iskeyword(name) \
            else f"'{name}' is not a Python module name"
    if not (folder / "__init__.py").is_file():
        try:
            _check_module_name(name, folder / f"{name}.py")
        except HarnessError:
            return f"its module name '{name}' is already taken by another module ({_origin(name)})"
    return None


def _origin(name: str) -> str:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    return (spec.origin if spec is not None and spec.has_location else None) or f"the built-in module {name}"


def _is_claim_module(name: str) -> bool:
    return not (name.startswith(("_", "test_")) or name.endswith("_test") or name == "conftest")


def _append_sys_path(folder: Path) -> None:
    # Appended, not prepended: a file never shadows an installed module (_check_module_name refuses it).
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    importlib.invalidate_caches()  # files written since the last import in this folder are seen


def _check_module_name(name: str, file: Path) -> None:
    """Refuse a file whose module name is not an identifier or already belongs to another module."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise HarnessError(f"{file}: '{name}' is not a Python module name; rename the file "
                           f"(letters, digits and '_', e.g. {_suggest(name)}.py)")
    loaded = sys.modules.get(name)
    if loaded is not None:
        other = getattr(loaded, "__file__", None)
    else:
        try:
            spec = importlib.util.find_spec(name)
        except Exception:  # another module of that name that fails to import: still not this file
            spec = None
        if spec is None:
            return  # nothing else has the name; the import finds this file
        other = spec.origin if spec.has_location else None
    if other is None or Path(other).resolve() != file.resolve():
        taken_by = other or f"the built-in or namespace module '{name}'"
        raise HarnessError(f"{file}: its module name '{name}' is already taken by {taken_by}; rename the file")


def _suggest(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "claim"
    return f"claim_{cleaned}" if cleaned[0].isdigit() or keyword.iskeyword(cleaned) else cleaned
