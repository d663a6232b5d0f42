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


# Seed processes sharing one GPU by default. Our choice, because the gpu-tier nets are small full-batch
# MLP/CNNs (and a ~1M-parameter Llama) whose steps are kernel-launch bound on an H100: one process leaves the
# device idle between its kernels, and other processes' kernels fill those gaps. Unmeasured: tools/gpu-check's
# sharing stage times 1, 2 and 4 seeds at once on the device; revisit this value with its first figures.
PER_GPU = 4


def visible_gpus(device: str | None) -> int:
    """GPUs a run on `device` spreads its seed processes over: 1 for an indexed device ('cuda:1'), else every
    GPU this process sees (CUDA_VISIBLE_DEVICES decides which); 0 without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return 0
    return 1 if device and ":" in device else torch.cuda.device_count()


def meant_for_cuda(tier: str, device: str | None) -> bool:
    """Whether a run of `tier` on `device` is meant for CUDA: a cuda device named, or no device named and a
    tier sized for one GPU (gpu, paper)."""
    return (device or "").startswith("cuda") or (device is None and tier in ("gpu", "paper"))


def on_cuda(tier: str, device: str | None) -> bool:
    """True when a run at `tier` on `device` (None: by tier and hardware) computes on CUDA."""
    import torch

    return meant_for_cuda(tier, device) and (device is not None or torch.cuda.is_available())


def default_jobs(tier: str, device: str | None, per_gpu: int | None = None) -> int:
    """Processes running seeds at once: one per core on CPU (small models gain nothing from a second thread,
    at most 4); on CUDA `per_gpu` (default PER_GPU) per visible GPU.

    Raises:
        ConfigError: `per_gpu` given for a run that does not compute on CUDA (nothing would read it).
    """
    import os

    if not on_cuda(tier, device):
        if per_gpu is not None:
            raise ConfigError(f"--per-gpu applies to runs on CUDA; this run computes on "
                              f"{device or 'cpu'} (use --jobs for CPU processes)")
        return max(1, min(os.cpu_count() or 1, 4))
    return (per_gpu or PER_GPU) * max(1, visible_gpus(device))


def pool_size(jobs: str | None, per_gpu: str | None, tier: str, device: str | None) -> tuple[int, int | None]:
    """(processes running seeds at once, --per-gpu as an int or None) from the --jobs and --per-gpu texts: one
    of them sets the pool size, else default_jobs.

    Raises:
        ConfigError: both given, a value that is not a positive integer, or --per-gpu off CUDA.
    """
    if jobs is not None and per_gpu is not None:
        raise ConfigError("--jobs and --per-gpu both set how many seeds run at once; give one of them")
    if jobs is not None:
        return positive_int(jobs, "--jobs"), None
    k = positive_int(per_gpu, "--per-gpu") if per_gpu is not None else None
    return default_jobs(tier, device, k), k
