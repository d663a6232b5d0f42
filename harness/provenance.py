"""Where a result came from: code, versions, machine, config."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

PACKAGE_ROOT = Path(__file__).resolve().parent
PACKAGES = ("torch", "numpy", "scipy", "pandas", "jinja2", "scikit-learn")


_code_hash_override: str | None = None


def pin_code_hash(value: str) -> None:
    """Use the parent's code hash in a worker process, so both agree on cache keys even if a
    source file changed after the run started."""
    global _code_hash_override
    _code_hash_override = value


def code_hash() -> str:
    """sha256 over the harness package's source files: the 'code version' part of a cache key."""
    return _code_hash_override or _hash_sources()


# What can change a measurement. The CLI, report, history and notebooks only read results, so
# editing them keeps every stored seed valid.
MEASUREMENT_CODE = ("curvature", "data", "experiments", "models", "optim", "losses.py",
                    "measurement.py", "train.py")


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


def config_hash(config) -> str:
    """A stable hash of a (dataclass) config."""
    payload = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


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
