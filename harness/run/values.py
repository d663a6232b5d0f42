"""Command-line values read and checked: integers with bounds, KEY=VALUE overrides, folders, seconds.

Each returns the value or raises a one-line ConfigError naming the option and what arrived.
"""
from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError


def int_at_least(text: str, least: int, what: str) -> int:
    """int(text) if it is >= least, else a one-line ConfigError '<what>, got <text>'."""
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{what}, got '{text}'") from None
    if value < least:
        raise ConfigError(f"{what}, got '{text}'")
    return value


def positive_int(text: str, option: str = "") -> int:
    """int(text) if it is >= 1, else a one-line ConfigError naming `option`."""
    return int_at_least(text, 1, f"{option} expects a positive integer" if option else "expected a positive integer")


def overrides(pairs: list[str]) -> dict[str, str]:
    """--set KEY=VALUE pairs as a dict of strings (harness.claim.config parses them to the fields' types)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got '{pair}'")
        out[key.strip()] = value.strip()
    return out


def notebook_timeout(args) -> float:
    """--notebook-timeout as positive, finite seconds."""
    import math

    try:
        timeout = float(args.notebook_timeout)
    except ValueError:
        raise ConfigError(f"--notebook-timeout expects seconds, got '{args.notebook_timeout}'") from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"--notebook-timeout must be a positive, finite number of seconds, "
                          f"got '{args.notebook_timeout}'")
    return timeout


def folder(text: str, option: str) -> Path:
    """A folder option as a Path; '' (which Path reads as the current folder) is refused."""
    if not str(text).strip():
        raise ConfigError(f"{option} must name a folder, got an empty string")
    return Path(text)


def non_negative_int(text: str, option: str) -> int:
    """int(text) if it is >= 0, else a one-line ConfigError naming `option`."""
    return int_at_least(text, 0, f"{option} expects a non-negative integer")


def default_tier() -> str:
    """The tier a run gets without --tier: gpu where CUDA is available, else cpu."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def default_jobs(tier: str, device: str | None) -> int:
    """One process per core on CPU (small models gain nothing from a second thread); 1 on CUDA."""
    import os

    import torch

    on_cuda = meant_for_cuda(tier, device) and (device is not None or torch.cuda.is_available())
    return 1 if on_cuda else max(1, min(os.cpu_count() or 1, 4))


def meant_for_cuda(tier: str, device: str | None) -> bool:
    """Whether a run of `tier` on `device` is meant for CUDA: a cuda device named, or no device named and a
    tier sized for one GPU (gpu, paper)."""
    return (device or "").startswith("cuda") or (device is None and tier in ("gpu", "paper"))
