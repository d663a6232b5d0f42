"""`harness new-claim ID`: write a claim file and its smoke test from the templates in templates_claim/.

The new claim starts from an existing claim's experiment and its smoke and cpu configs (`--like`,
written out as code, so the new file holds every value it runs with); its source, statement and
bands are TODO placeholders to fill in from the paper, and its one check cannot hold until they are.
The smoke test passes as written: it runs the smoke tier and checks the plumbing, not the claim.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
from pathlib import Path
from string import Template

from harness.claim.registry import CLAIM_ID, Claim, all_claims, get_claim, module_origin
from harness.errors import ConfigError, HarnessError

TEMPLATES = Path(__file__).resolve().parent / "templates_claim"
MAX_ID_LENGTH = 80  # the file names test_<id>.py and the report's pages stay well under 255 bytes
DEFAULT_LIKE = "ire-toy-figure1"  # deterministic and cheap: its smoke tier runs in about a second


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `harness new-claim` (the CLI owns the parser)."""
    p.add_argument("claim_id", metavar="ID", help="the new claim's id: lower-case words joined by '-'")
    p.add_argument("--like", default=DEFAULT_LIKE, metavar="CLAIM",
                   help=f"start from this claim's experiment and smoke/cpu configs (default: {DEFAULT_LIKE})")
    p.add_argument("--dir", default="claims", help="folder of the claim file (default: claims/)")
    p.add_argument("--tests-dir", default=None,
                   help="folder of the smoke test (default: tests/ for claims/, else the claim's folder)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")


def new_claim(args) -> int:
    """Run `harness new-claim` from parsed arguments; prints the two files written. Returns 0."""
    from harness.run.loader import load_all

    load_all(args.claims_path)
    claim_dir = Path(args.dir)
    check_new_id(args.claim_id, claim_dir)  # before anything is written
    tests_dir = Path(args.tests_dir) if args.tests_dir else (
        Path("tests") if claim_dir == Path("claims") else claim_dir)
    claim_file, test_file = write_claim(args.claim_id, claim_dir, tests_dir, like=args.like, force=args.force)
    print(f"claim: {claim_file}\ntest:  {test_file}")
    print(f"next: fill in every TODO from the paper, then: pytest {test_file}")
    return 0


def write_claim(claim_id: str, claim_dir: Path, tests_dir: Path, like: str = DEFAULT_LIKE,
                force: bool = False) -> tuple[Path, Path]:
    """Write `<claim_dir>/<module>.py` and `<tests_dir>/test_<module>.py` for a new claim.

    Args:
        claim_id: the new id (not registered yet).
        claim_dir: the claims package (`claims/`) or any folder to load with --claims-path.
        tests_dir: where the smoke test goes.
        like: a registered claim whose experiment and smoke/cpu configs the new claim starts from.
        force: overwrite files that exist.

    Returns:
        the claim file and the test file.

    Raises:
        HarnessError: a malformed or taken id, an unknown `like`, files that exist (without force),
            or a config value that cannot be written as Python code.
    """
    check_new_id(claim_id, claim_dir)
    if claim_id in all_claims():
        raise HarnessError(f"claim id '{claim_id}' is taken: registered in "
                           f"{module_origin(all_claims()[claim_id].module)}")
    base = get_claim(like)
    module = check_new_id(claim_id, claim_dir)
    claim_file, test_file = claim_dir / f"{module}.py", tests_dir / f"test_{module}.py"
    for path in (claim_file, test_file):
        if path.exists() and not force:
            raise HarnessError(f"{path} exists; pass --force to overwrite it")
    claim_dir.mkdir(parents=True, exist_ok=True)
    tests_dir.mkdir(parents=True, exist_ok=True)
    claim_file.write_text(_claim_source(claim_id, base))
    test_file.write_text(Template((TEMPLATES / "test_claim.py.tmpl").read_text()).substitute(
        claim_id=claim_id, module=module, imports=_claim_import(claim_id, module, claim_dir, tests_dir)))
    return claim_file, test_file


def check_new_id(claim_id: str, claim_dir: Path) -> str:
    """The module name of a new claim, once its id passes the registry's and the loader's rules.

    Raises:
        ConfigError: not lower-case words joined by '-' (a trailing newline included), longer than
            MAX_ID_LENGTH, a file name the loader skips or refuses (test-x, conftest, class, or json in a
            plain folder), or a ./claims folder that would shadow the claims package.
    """
    shown = json.dumps(claim_id) if not str(claim_id).isprintable() else f"'{claim_id}'"
    if not isinstance(claim_id, str) or not CLAIM_ID.fullmatch(claim_id):
        raise ConfigError(f"{shown} is not a claim id: lower-case words joined by '-' (e.g. my-claim)")
    if len(claim_id) > MAX_ID_LENGTH:
        raise ConfigError(f"claim id '{claim_id[:20]}...' is longer than {MAX_ID_LENGTH} characters")
    from harness.run.loader import new_module_problem

    module = claim_id.replace("-", "_")
    module = f"claim_{module}" if module[0].isdigit() else module
    problem = new_module_problem(module, claim_dir)
    if problem:
        raise ConfigError(f"claim id '{claim_id}' cannot be used: {problem}; choose another id")
    folder = claim_dir.resolve()
    if folder.name == "claims" and folder.parent == Path.cwd().resolve() and _package_name(claim_dir) is None:
        raise ConfigError(f"./{folder.name} in {folder.parent} is not this repository's claims package: it would "
                          "shadow the package for every command run from this folder; pass --dir DIR (then load it with "
                          "--claims-path DIR), or run new-claim in the repository")
    return module


def _claim_source(claim_id: str, base: Claim) -> str:
    exp = base.experiment
    imports: dict[str, set[str]] = {exp.__module__: {exp.__name__}}
    cpu, smoke = base.tiers["cpu"].config, base.tiers["smoke"].config
    return Template((TEMPLATES / "claim.py.tmpl").read_text()).substitute(
        claim_id=claim_id, like=base.id, experiment_name=exp.experiment_name, experiment_fn=exp.__name__,
        cpu_config=_render(cpu, imports), smoke_config=_render_replace("CPU", cpu, smoke, imports),
        smoke_seeds=base.tiers["smoke"].seeds, cpu_seeds=base.tiers["cpu"].seeds,
        metric=base.checks[0].metric,
        imports="\n".join(f"from {mod} import {', '.join(sorted(names))}"
                          for mod, names in sorted(imports.items())))


def _render(config, imports: dict[str, set[str]]) -> str:
    """`Type(field=value, ...)` with the fields that differ from the type's defaults."""
    cls = type(config)
    imports.setdefault(cls.__module__, set()).add(cls.__qualname__.split(".")[0])
    args = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if default is dataclasses.MISSING or value != default:
            args.append(f"{f.name}={_value(value, imports)}")
    return f"{cls.__qualname__}({', '.join(args)})"


def _render_replace(name: str, base, config, imports: dict[str, set[str]]) -> str:
    """`derive(NAME, {"group.field": value}, field=value)`: the paths where `config` differs from `base`."""
    from harness.claim.config import config_paths

    old, new = dict(config_paths(base)), dict(config_paths(config))
    if type(config) is not type(base) or old.keys() != new.keys():
        return _render(config, imports)
    imports.setdefault("harness.claim.config", set()).add("derive")
    changed = {path: _value(value, imports) for path, value in new.items() if value != old[path]}
    nested = [f'"{path}": {text}' for path, text in changed.items() if "." in path]
    args = [name, *(["{" + ", ".join(nested) + "}"] if nested else []),
            *(f"{path}={text}" for path, text in changed.items() if "." not in path)]
    return f"derive({', '.join(args)})"


def _value(value, imports: dict[str, set[str]]) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _render(value, imports)
    if type(value) in (tuple, list):  # e.g. arms: (("heavy_ball", GDConfig(...)), ...)
        items = [_value(v, imports) for v in value]
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})" if type(value) is tuple \
            else f"[{', '.join(items)}]"
    if type(value) is dict:
        return "{" + ", ".join(f"{_value(k, imports)}: {_value(v, imports)}" for k, v in value.items()) + "}"
    text = repr(value)
    try:
        if ast.literal_eval(text) == value:
            return text
    except (ValueError, SyntaxError):
        pass
    raise HarnessError(f"cannot write the config value {text} as Python code; "
                       "start from another --like claim")


def _claim_import(claim_id: str, module: str, claim_dir: Path, tests_dir: Path) -> str:
    """The test's imports: the claim by module inside a package, else by loading its folder."""
    runner = "from harness.run.runner import RunOptions, run_claims\nfrom harness.run.store import ResultStore"
    package = _package_name(claim_dir)
    if package is not None:
        return f"import math\n\nfrom {package}.{module} import CLAIM\n{runner}"
    rel = Path(os.path.relpath(claim_dir.resolve(), tests_dir.resolve())).as_posix()
    folder = "Path(__file__).resolve().parent" + ("" if rel == "." else f" / {json.dumps(rel)}")
    return ("import math\nfrom pathlib import Path\n\n"
            f"from harness.run.loader import load_folder\nfrom harness.claim.registry import get_claim\n{runner}\n\n"
            f"load_folder({folder})  # the claim's folder, loaded as --claims-path loads it\n"
            f"CLAIM = get_claim({json.dumps(claim_id)})")


def _package_name(folder: Path) -> str | None:
    """The dotted name a package folder imports as from here (e.g. 'claims'), or None."""
    import importlib.util

    if not (folder / "__init__.py").is_file():
        return None
    try:
        spec = importlib.util.find_spec(folder.resolve().name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or Path(spec.origin).resolve() != (folder / "__init__.py").resolve():
        return None
    return folder.resolve().name
