"""Where a result came from: code, versions, machine, config."""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import platform
import subprocess
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path

import torch

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the harness package (this file is in harness/run/)
PACKAGES = ("torch", "numpy", "scipy", "pandas", "jinja2", "scikit-learn")


_code_hash_override: dict[str, str] | None = None

# Every CPU seed runs with this many intra-op threads, whatever --jobs and the core count: the
# thread count changes the order of floating-point reductions, so it is fixed (and in the key).
SEED_THREADS = 1


def pin_code_hash(value: dict[str, str]) -> None:
    """Use the parent's code hashes (experiment name -> hash) in a worker process, so both agree on
    cache keys even if a source file changed after the run started."""
    global _code_hash_override
    _code_hash_override = dict(value)


def code_hashes(names) -> dict[str, str]:
    """experiment name -> experiment_code_hash, for pinning in worker processes."""
    return {n: experiment_code_hash(n) for n in names}


# Modules that only read, decide or display results: editing them keeps every stored seed valid.
# (The seed -> RNG rule lives in measurement.py, which is not listed, so it does count.)
NOT_MEASUREMENT = ("harness", "harness.__main__", "harness.views.cli", "harness.run.runner", "harness.run.seeds",
                   "harness.run.history", "harness.run.store", "harness.run.provenance", "harness.claim.registry",
                   "harness.run.progress", "harness.atomic", "harness.run.perf", "harness.claim.verdict", "harness.claim.expect",
                   "harness.errors", "harness.claim.sequential", "harness.claim.outputs", "harness.report",
                   "harness.experiments")


def experiment_code_hash(name: str) -> str:
    """The 'code version' part of a cache key for one experiment.

    sha256 over the source of the experiment's own module and of every harness module it imports,
    transitively (read statically from the import statements, lazy imports inside functions too),
    minus the modules that only read or display results (NOT_MEASUREMENT). Adding another
    experiment module, or editing the report, the CLI or the runner, keeps this hash.

    Args:
        name: a registered experiment name (unregistered names hash the whole measurement code).
    """
    if _code_hash_override is not None and name in _code_hash_override:
        return _code_hash_override[name]
    from harness.claim.registry import all_experiments

    fn = all_experiments().get(name)
    if fn is None:
        return code_hash()
    return _module_closure_hash(fn.__module__)


def code_hash() -> str:
    """sha256 over all the measurement code of the harness package (recorded in run provenance)."""
    return _hash_sources()


# What can change a measurement, as folders: the run-level provenance hash.
MEASUREMENT_CODE = ("curvature", "data", "experiments", "models", "optim", "claim/components.py", "distributed.py",
                    "losses.py", "claim/measurement.py", "train.py")


@lru_cache(maxsize=1)
def _hash_sources() -> str:
    h = hashlib.sha256()
    for name in MEASUREMENT_CODE:
        root = PACKAGE_ROOT / name
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            if "__pycache__" not in path.parts:
                h.update(str(path.relative_to(PACKAGE_ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _harness_file(module: str) -> Path | None:
    """The source file of a harness module (package -> its __init__.py), or None."""
    parts = module.split(".")
    if parts[0] != "harness":
        return None
    base = PACKAGE_ROOT.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file() and len(parts) > 1:
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports_of(path: Path, module: str) -> set[str]:
    """Absolute names of every module an import statement in `path` may load (static)."""
    is_pkg = path.name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                head = ".".join(base + ([node.module] if node.module else []))
            else:
                head = node.module or ""
            out.add(head)
            out.update(f"{head}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    # importing a.b.c runs a/__init__ and a/b/__init__ too
    return out | {".".join(m.split(".")[:i]) for m in out for i in range(1, m.count(".") + 1)}


def _excluded(module: str) -> bool:
    return module in NOT_MEASUREMENT or module.startswith("harness.report.")


def _user_root(own: Path, module: str) -> Path | None:
    """The folder an outside experiment's own modules live in (None for an installed package): its
    file's folder for a top-level module, else its top package's folder (so `from mypkg._helper import
    x` is followed too)."""
    dots = module.count(".")
    root = own.resolve().parent
    for _ in range(dots if own.name == "__init__.py" else max(dots - 1, 0)):
        root = root.parent
    return None if _installed(root) else root


def _installed(path: Path) -> bool:
    """True under site-packages or the standard library: versioned code, not the user's own files."""
    import sysconfig

    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    libs = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(path.is_relative_to(Path(lib).resolve()) for lib in libs if lib)


def _user_file(module: str, root: Path | None) -> Path | None:
    """The source file of `module` when it lies under `root` (an outside experiment's folder), else None."""
    if root is None:
        return None
    import importlib.util
    import sys

    mod = sys.modules.get(module)
    file = getattr(mod, "__file__", None) if mod is not None else None
    if file is None and "." not in module:  # a top-level name: finding it imports nothing
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        file = spec.origin if spec is not None and spec.has_location else None
    if file is None or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    return path if path.is_relative_to(root) and not _installed(path) else None


@cache
def _module_closure_hash(module: str) -> str:
    import sys

    mod = sys.modules.get(module)
    own = Path(mod.__file__) if mod is not None and getattr(mod, "__file__", None) else _harness_file(module)
    if own is None or not own.is_file():
        return code_hash()
    files: dict[str, Path] = {module: own}
    # An experiment outside the package (a --claims-path folder): its helpers there are its code too.
    user_root = None if module.split(".")[0] == "harness" else _user_root(own, module)
    todo = [module]
    while todo:
        name = todo.pop()
        for dep in _imports_of(files[name], name):
            if dep in files or _excluded(dep):
                continue
            path = _harness_file(dep) or _user_file(dep, user_root)
            if path is not None:
                files[dep] = path
                todo.append(dep)
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return h.hexdigest()[:16]


# Fields that say where data lives, not what it is: run options, so they are left out of the config hash
# (each record's provenance carries the data's content hash: sha256 of the arrays or of the text).
LOCATION_FIELDS = frozenset({"data_root", "cache_dir"})


def config_hash(config) -> str:
    """A stable hash of what a (dataclass) config sets: its identity, the config part of a seed's key.

    Only fields away from their defaults are hashed (groups walked into), and no LOCATION_FIELDS, so
    adding a defaulted field to a config, or moving the data, keeps every stored seed. The defaults live in
    the config classes, which are measurement code, so a changed default still changes the key (through
    `experiment_code_hash`).
    """
    payload = json.dumps(config_identity(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def config_identity(config) -> dict:
    """The fields of a config that `config_hash` hashes: path-nested, away from their defaults, no locations.

    Args:
        config: a dataclass config (or a plain mapping, hashed as it is).
    """
    if not (dataclasses.is_dataclass(config) and not isinstance(config, type)):
        return dict(config)
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in LOCATION_FIELDS:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            inner = config_identity(value)
            if inner or type(value) is not type(_default(f)):
                out[f.name] = inner
        else:
            default = _default(f)
            if default is dataclasses.MISSING or value != default or type(value) is not type(default):
                out[f.name] = _plain(value)
    return out


def _default(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _plain(value):
    """A field value for JSON: dataclasses inside tuples by class and identity."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"class": type(value).__name__, **config_identity(value)}
    return value


def config_dict(config) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


@lru_cache(maxsize=1)
def git_state() -> dict:
    """The commit of the working tree (and whether it had uncommitted changes), if git is there."""
    def git(*args):
        proc = subprocess.run(["git", *args], cwd=PACKAGE_ROOT, capture_output=True, text=True,
                              timeout=10)
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip())
        return proc.stdout.strip()
    try:
        commit = git("rev-parse", "--verify", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = torch.__version__ if name == "torch" else "not installed"
    return out


def device_info(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"device": "cuda", "name": torch.cuda.get_device_name(device),
                "cuda": torch.version.cuda}
    return {"device": "cpu", "name": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}


def environment(device: torch.device) -> dict:
    """Everything about the environment worth recording once per run."""
    return {"git": git_state(), "code_hash": code_hash(), "versions": versions(),
            "platform": platform.platform(), **device_info(device)}
