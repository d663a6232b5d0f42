"""A seed's way through cache and lock: key it, reuse its stored record, or run it under its lock and store
it.

The runner's serial loop, the process pool (harness.run.parallel), the executors' jobs and the torchrun
launcher all compute a seed through these functions, so they agree on keys, records and locking.
"""
from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from harness.claim.measurement import Measurement, RunContext
from harness.claim.records import SeedRecord
from harness.claim.registry import Claim
from harness.errors import TransientError, is_device_out_of_memory, seed_failure
from harness.run import provenance
from harness.run.planning import RunOptions, seed_count
from harness.run.store import ResultStore

log = logging.getLogger("harness.run.runner")  # the progress display matches the runner's messages


@dataclass
class Session:
    """What every seed of one run shares: options, device, store, run id, seeds lost to dead workers."""

    options: RunOptions
    device: torch.device
    store: ResultStore
    run_id: str | None  # None: seeds stored outside a harness run (the torchrun launcher)
    progress: Callable[[str], None] | None = None
    lost: dict[str, str] = field(default_factory=dict)  # key -> why it has no record
    out_of_memory: set[str] = field(default_factory=set)  # keys in `lost` because a device ran out of memory


def seed_numbers(tier, options: RunOptions, claim: Claim | None = None) -> range:
    """The seed numbers a claim's tier runs: `options.seed_offset` on, as many as seed_count says (or, with
    no claim, --seeds else the tier's pilot)."""
    n = seed_count(claim, tier, options.seeds) if claim is not None else options.seeds or tier.seeds
    return range(options.seed_offset, options.seed_offset + n)


def seed_key(exp, config, seed: int, session: Session) -> str:
    """The store key of one seed of one experiment (config, code, device, step cap and thread count in it)."""
    return session.store.experiment_key(exp.experiment_name, config, seed, session.device.type,
                                        session.options.max_steps, seed_threads(session.device))


def seed_threads(device: torch.device) -> int:
    """The intra-op thread count every seed runs with on `device` (0: not fixed, off the CPU)."""
    return provenance.SEED_THREADS if device.type == "cpu" else 0


def cached_seed(exp, config, seed: int, session: Session, label: str) -> tuple[dict, str, bool]:
    """One seed of one experiment: the stored record if there is one, else run it and store it.

    A seed computed earlier in this same run is reused even with --no-cache (it is fresh). While a
    seed is computed its lock file is held, so a second run on the same store waits for it and
    then reuses it instead of computing it again.

    Returns:
        (record, key, reused): reused is True when the record was stored before this run.
    """
    key = seed_key(exp, config, seed, session)
    if key in session.lost:
        return _lost_record(exp, config, seed, session, session.lost[key]), key, False
    record = usable(session.store.load_seed(key), session)
    if record is not None:
        return record, key, record.get("run") != session.run_id
    lock = session.store.lock_seed(
        key, on_wait=lambda: log.info("  %s seed %d: another process is computing it; waiting", label, seed))
    try:
        record = usable(session.store.load_seed(key), session)  # it may have finished meanwhile
        if record is not None:
            return record, key, record.get("run") != session.run_id
        if lock.stale:
            log.warning("  %s seed %d: an earlier attempt died while computing it; computing it again",
                        label, seed)
        record, transient, out_of_memory = _run_seed(label, exp, config, seed, session)
        _keep_seed(key, record, transient, session)
        if transient and out_of_memory:
            session.out_of_memory.add(key)
    finally:
        lock.release()
    return record, key, False


def usable(record: dict | None, session: Session) -> dict | None:
    """A stored record this run may use: any with the cache on, else only one this run computed."""
    if record is None:
        return None
    return record if session.options.use_cache or record.get("run") == session.run_id else None


def _lost_record(exp, config, seed, session: Session, reason: str) -> dict:
    return SeedRecord(experiment=exp.experiment_name, config=provenance.config_dict(config), seed=seed,
                      tier=session.options.tier, device=str(session.device), max_steps=session.options.max_steps,
                      wall_time_s=0.0, error=reason, measurement=None, run=session.run_id).to_dict()


def _run_seed(label, exp, config, seed, session: Session) -> tuple[dict, bool, bool]:
    options, device, progress = session.options, session.device, session.progress
    last = [0.0]

    def report(step: int, total: int) -> None:
        now = time.monotonic()
        if progress and (now - last[0] > 1.0 or step >= total):
            last[0] = now
            progress(f"{label} seed {seed}: step {step}/{total}")

    def cached_run(sub_exp, sub_config) -> Measurement:
        record, sub_key, _ = cached_seed(sub_exp, sub_config, seed, session, f"{label}/{sub_exp.experiment_name}")
        if record["error"]:  # a sub-run's error of the environment is this seed's too (not stored)
            raise (TransientError if sub_key in session.lost else RuntimeError)(
                f"sub-run {sub_exp.experiment_name} failed: {record['error']}")
        return Measurement.from_dict(record["measurement"])

    ctx = RunContext(seed=seed, tier=options.tier, device=device, max_steps=options.max_steps,
                     progress=report, cached_run=cached_run)
    start = time.perf_counter()
    error, measurement, transient, out_of_memory = None, None, False, False
    with _fixed_threads(device) as threads:
        try:
            measurement = exp(config, ctx)
            if not isinstance(measurement, Measurement):
                raise TypeError(f"experiment returned {type(measurement).__name__}, not Measurement")
            error = diverged(measurement)
        except BaseException as e:  # a crash is an 'error' verdict with its reason, never a 'fails'
            error, transient = seed_failure(e)  # re-raises an input error and the user's Ctrl-C
            out_of_memory = is_device_out_of_memory(e)
            log.warning("%s seed %d crashed:\n%s", label, seed, traceback.format_exc())
    record = seed_record(exp, config, seed, session, threads=threads, wall_time_s=time.perf_counter() - start,
                         error=error, measurement=measurement)
    return record, transient, out_of_memory


def _keep_seed(key: str, record: dict, transient: bool, session: Session) -> None:
    """Store a computed seed's record; an error of the environment is this run's only (session.lost)."""
    if transient:
        session.lost[key] = record["error"]
        return
    session.store.save_seed(key, record)


def seed_record(exp, config, seed: int, session: Session, *, threads: int, wall_time_s: float,
                error: str | None, measurement: Measurement | None) -> dict:
    """The record stored for one computed seed (the runner's, and the torchrun launcher's).

    Args:
        exp, config, seed: what was run.
        session: the run it belongs to (tier, step cap, device, run id).
        threads: the intra-op thread count it ran with.
        wall_time_s: its wall-clock seconds.
        error: why it has no usable measurement (a crash, a divergence), else None.
        measurement: what it measured (None after a crash).

    Returns:
        the record, as ResultStore.save_seed stores it (without schema, key and digest).
    """
    options, device = session.options, session.device
    return SeedRecord(
        experiment=exp.experiment_name, config=provenance.config_dict(config), seed=seed,
        tier=options.tier, device=str(device), max_steps=options.max_steps, threads=threads,
        wall_time_s=wall_time_s, error=error,
        measurement=measurement.to_dict() if measurement else None,
        environment=provenance.environment(device), run=session.run_id,
        recorded=time.strftime("%Y-%m-%d %H:%M:%S"),
    ).to_dict()


def diverged(m: Measurement) -> str | None:
    """The error of a measurement that says it diverged (a truthy 'diverged' scalar), else None."""
    flag = m.scalars.get("diverged")
    if flag is None or (isinstance(flag, (int, float)) and not isinstance(flag, bool) and flag == 0):
        return None
    return "diverged: " + ("; ".join(map(str, m.notes)) or "the experiment reported diverged = " + str(flag))


@contextlib.contextmanager
def _fixed_threads(device: torch.device):
    """Every CPU seed runs with provenance.SEED_THREADS threads (also with --jobs 1), then restores."""
    if device.type != "cpu":
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    torch.set_num_threads(provenance.SEED_THREADS)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
