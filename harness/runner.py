"""The runner: for each claim and seed, run (or reuse) the experiment, then decide the verdict.

The runner owns seeds, the clock, the store, the thread count and the step cap; experiments only
see a RunContext.

Errors are kept apart by who can fix them. An input error (a HarnessError such as a bad config or
data path: harness.errors.is_input_error) stops the run with one line before or during the compute;
the run is recorded as 'aborted' with the reason. Anything else raised inside a seed — a crash, a
numerical failure (NumericalError, an eigensolver that did not converge), a measurement that says
it diverged, even a SystemExit — is that seed's `error` with its reason; the others go on. One of the
environment (full disk, MemoryError: harness.errors.is_environment_error) is not stored: rerun, recomputed.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch

from harness import provenance
from harness.checks import STEP_CAPPED, evaluate_check, scale_that_ran  # noqa: F401 (STEP_CAPPED: public here too)
from harness.errors import ConfigError, TransientError, on_signal, seed_failure
from harness.measurement import Measurement, RunContext
from harness.planning import pick_device, plan_claims, seed_count, step_capped  # noqa: F401 (pick_device: public here too)
from harness.records import CheckResult, ClaimResult, RunSummary, SeedEntry, SeedRecord
from harness.registry import Claim
from harness.store import ResultStore
from harness.verdict import FAILS, combine, family_confidence

log = logging.getLogger(__name__)
MAX_SEEDS = 10_000  # more is a typo, not a plan
MAX_SEED = 2**31 - 1  # the largest seed number: any RNG (torch, numpy's legacy seed) takes it


@dataclass
class RunOptions:
    tier: str
    seeds: int | None = None  # None: the tier's own seed count
    overrides: Mapping[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    device: str | None = None  # None: cuda for gpu/paper tiers when available, else cpu
    use_cache: bool = True
    jobs: int = 1  # seeds run in this many processes at once (CPU); results are identical
    seed_offset: int = 0  # seeds are seed_offset .. seed_offset + n - 1 (fresh, disjoint seeds)
    executor: object | None = None  # a harness.executors.Executor computing missing seeds; None: local pool

    def __post_init__(self):
        def positive(x):
            return isinstance(x, int) and not isinstance(x, bool) and x >= 1
        if self.seeds is not None and not positive(self.seeds):
            raise ConfigError(f"--seeds must be a positive integer, got {self.seeds!r}")
        if self.seeds is not None and self.seeds > MAX_SEEDS:
            raise ConfigError(f"--seeds {self.seeds} is more than {MAX_SEEDS}; give a count you mean to run")
        if not positive(self.jobs):
            raise ConfigError(f"--jobs must be a positive integer, got {self.jobs!r}")
        limit = max(8, 4 * (os.cpu_count() or 1))
        if self.jobs > limit:
            raise ConfigError(f"--jobs {self.jobs} is more than {limit} (4 per CPU core here, "
                              f"{os.cpu_count()} cores)")
        if self.max_steps is not None and not positive(self.max_steps):
            raise ConfigError(f"--max-steps must be a positive integer, got {self.max_steps!r}")
        if not isinstance(self.seed_offset, int) or self.seed_offset < 0:
            raise ConfigError(f"--seed-offset must be a non-negative integer, got {self.seed_offset!r}")
        if self.seed_offset + (self.seeds or MAX_SEEDS) - 1 > MAX_SEED:  # a second look's seeds too
            raise ConfigError(f"--seed-offset {self.seed_offset} is too large: seed numbers must stay "
                              f"<= {MAX_SEED} (offset + seeds - 1)")
        if not isinstance(self.tier, str) or not self.tier.strip():
            raise ConfigError("--tier must name a tier, got an empty string")


@dataclass
class Session:
    """What every seed of one run shares: options, device, store, run id, seeds lost to dead workers."""

    options: RunOptions
    device: torch.device
    store: ResultStore
    run_id: str | None  # None: seeds stored outside a harness run (the torchrun launcher)
    progress: Callable[[str], None] | None = None
    lost: dict[str, str] = field(default_factory=dict)  # key -> why it has no record


def run_claims(claims: Sequence[Claim], options: RunOptions, store: ResultStore,
               progress: Callable[[str], None] | None = None, run_id: str | None = None) -> dict:
    """Run every claim at one tier; returns (and stores, after each claim) the run summary.

    `run_id`: finish a run whose seeds were submitted earlier (harness.executors, --detach).

    Raises:
        HarnessError: bad input (before any compute where it can be told in advance); the run is
            then recorded as 'aborted' with the reason.
        KeyboardInterrupt: Ctrl-C or SIGTERM; the run is recorded as 'interrupted'.
    """
    device = pick_device(options.tier, options.device)
    plans = plan_claims(claims, options)
    store.check_writable()
    if options.executor is not None:
        options.executor.preflight(plans, options)
    run_id = run_id or store.new_run_id()
    summary = RunSummary(
        run_id=run_id, status="running", tier=options.tier,
        started=time.strftime("%Y-%m-%d %H:%M:%S"), finished=None,
        options={"seeds": options.seeds, "overrides": dict(options.overrides),
                 "max_steps": options.max_steps, "device": str(device),
                 "use_cache": options.use_cache, "jobs": options.jobs,
                 "seed_offset": options.seed_offset, "threads": _seed_threads(device),
                 "executor": getattr(options.executor, "name", "local")},
        writer={"pid": os.getpid(), "host": socket.gethostname()},
        environment=provenance.environment(device), claims=[],
    )
    session = Session(options, device, store, run_id, progress)
    with store.hold_run(run_id), _sigterm_as_interrupt():
        store.save_run(run_id, summary.to_dict())
        log.info("run %s: %d claim(s) at tier %s on %s", run_id, len(plans), options.tier, device)
        try:
            if options.executor is not None:
                options.executor.precompute(plans, session)
            elif options.jobs > 1:
                from harness.parallel import precompute

                precompute(plans, session)
            for i, (claim, tier, config) in enumerate(plans, 1):
                log.info("[%d/%d] %s (%s tier)", i, len(plans), claim.id, options.tier)
                entry = run_one_claim(claim, tier, config, session)
                summary.claims.append(entry)
                store.save_run(run_id, summary.to_dict())
                log.info("[%d/%d] %s: %s", i, len(plans), claim.id, entry.verdict)
            summary.status = "complete"
        except KeyboardInterrupt:
            summary.status, summary.status_reason = "interrupted", "interrupted (Ctrl-C or SIGTERM)"
            raise
        except BaseException as e:
            summary.status = "aborted"
            summary.status_reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            raise
        finally:
            summary.finished = time.strftime("%Y-%m-%d %H:%M:%S")
            store.save_run(run_id, summary.to_dict())
    return summary.to_dict()


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM (a CI timeout, `kill`) ends the run like Ctrl-C: recorded as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    before = signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def seed_numbers(tier, options: RunOptions, claim: Claim | None = None) -> range:
    n = seed_count(claim, tier, options.seeds) if claim is not None else options.seeds or tier.seeds
    return range(options.seed_offset, options.seed_offset + n)


def seed_key(exp, config, seed: int, session: Session) -> str:
    return session.store.experiment_key(exp.experiment_name, config, seed, session.device.type,
                                        session.options.max_steps, _seed_threads(session.device))


def _seed_threads(device: torch.device) -> int:
    return provenance.SEED_THREADS if device.type == "cpu" else 0


def run_one_claim(claim: Claim, tier, config, session: Session) -> ClaimResult:
    """Run (or reuse) a claim's seeds and decide its checks; seeds chosen by power when the tier
    declares max_seeds (harness.sequential: a pilot, then at most one second look)."""
    from harness.sequential import LOOKS, second_look_size

    options = session.options
    exp = claim.experiment
    seeds, measurements = [], []
    numbers = seed_numbers(tier, options, claim)
    max_seeds = tier.max_seeds or tier.seeds
    adaptive = options.seeds is None and max_seeds > tier.seeds and not claim.deterministic
    family = len(claim.checks) + len(claim.regime)  # one family of tests (harness.verdict.FAMILY_RULE)
    confidence = family_confidence(family, LOOKS if adaptive else 1)
    capped = step_capped(config, options.max_steps)

    def add(numbers: range, total: int) -> None:
        for seed in numbers:
            record, key, cached = cached_seed(exp, config, seed, session, claim.id)
            notes = (record.get("measurement") or {}).get("notes", [])
            seeds.append(SeedEntry(seed=seed, key=key, cached=cached, wall_time_s=record["wall_time_s"],
                                   error=record["error"], notes=notes))
            measurements.append(None if record["error"] else Measurement.from_dict(record["measurement"]))
            log.info("  seed %d/%d %s in %.1fs%s", len(seeds), total, "reused" if cached else "ran",
                     record["wall_time_s"], f" ERROR: {record['error']}" if record["error"] else "")

    def decide_checks() -> list[CheckResult]:
        return [evaluate_check(claim, c.metric, measurements, seeds, options.tier, c, capped=capped,
                                confidence=confidence) for c in claim.checks + claim.regime]

    add(numbers, len(numbers))
    checks, looks = decide_checks(), 1
    # a failed regime check makes the verdict out-of-regime whatever the checks read: more seeds buy nothing
    regime_failed = any(c.verdict == FAILS for c in checks[len(claim.checks):])
    total = second_look_size(checks, len(numbers), max_seeds) \
        if adaptive and not capped and not regime_failed else None
    if total:
        log.info("  %s: the pilot of %d seeds is inconclusive; adding %d seed(s) (second look)",
                 claim.id, len(numbers), total - len(numbers))
        extra = range(numbers.stop, numbers.start + total)
        if options.executor is not None:
            options.executor.precompute([(claim, tier, config)], session, extra)
        elif options.jobs > 1 and len(extra) > 1:  # the added seeds in the pool too, not one by one
            from harness.parallel import precompute

            precompute([(claim, tier, config)], session, extra)
        add(extra, total)
        checks, looks = decide_checks(), 2
    checks, regime = checks[:len(claim.checks)], checks[len(claim.checks):]
    reported = [evaluate_check(claim, m, measurements, seeds, options.tier, None, label, confidence=confidence)
                for m, label in claim.reported]
    first_ok = next((m for m in measurements if m is not None), None)
    return ClaimResult(
        id=claim.id, version=claim.version, source=claim.source, statement=claim.statement,
        paper_value=claim.paper_value, tuning=claim.tuning, notes=claim.notes,
        changes=[asdict(c) for c in claim.changes],
        tier=options.tier, scale=scale_that_ran(tier, config), measured_scale=first_ok.scale if first_ok else {},
        experiment=exp.experiment_name, config=provenance.config_dict(config),
        config_hash=provenance.config_hash(config), deterministic=claim.deterministic,
        code_hash=provenance.experiment_code_hash(exp.experiment_name),  # the code its seeds are keyed on
        step_capped=capped,
        sampling={"adaptive": adaptive, "looks": looks, "pilot_seeds": len(numbers), "max_seeds": max_seeds,
                  "confidence": confidence, "family_tests": family,
                  "cap_reason": tier.cap_reason},
        seeds=seeds, checks=checks, reported=reported, regime=regime,
        verdict=combine([c.verdict for c in checks], [c.verdict for c in regime]),
        wall_time_s=sum(s.wall_time_s for s in seeds),
        plots=[asdict(p) for p in claim.plots],
    )


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
    record = _usable(session.store.load_seed(key), session)
    if record is not None:
        return record, key, record.get("run") != session.run_id
    lock = session.store.lock_seed(
        key, on_wait=lambda: log.info("  %s seed %d: another process is computing it; waiting", label, seed))
    try:
        record = _usable(session.store.load_seed(key), session)  # it may have finished meanwhile
        if record is not None:
            return record, key, record.get("run") != session.run_id
        if lock.stale:
            log.warning("  %s seed %d: an earlier attempt died while computing it; computing it again",
                        label, seed)
        record, transient = _run_seed(label, exp, config, seed, session)
        _keep_seed(key, record, transient, session)
    finally:
        lock.release()
    return record, key, False


def _usable(record: dict | None, session: Session) -> dict | None:
    if record is None:
        return None
    return record if session.options.use_cache or record.get("run") == session.run_id else None


def _lost_record(exp, config, seed, session: Session, reason: str) -> dict:
    return SeedRecord(experiment=exp.experiment_name, config=provenance.config_dict(config), seed=seed,
                      tier=session.options.tier, device=str(session.device), max_steps=session.options.max_steps,
                      wall_time_s=0.0, error=reason, measurement=None, run=session.run_id).to_dict()


def _run_seed(label, exp, config, seed, session: Session) -> dict:
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
    error, measurement, transient = None, None, False
    with _fixed_threads(device) as threads:
        try:
            measurement = exp(config, ctx)
            if not isinstance(measurement, Measurement):
                raise TypeError(f"experiment returned {type(measurement).__name__}, not Measurement")
            error = diverged(measurement)
        except BaseException as e:  # a crash is an 'error' verdict with its reason, never a 'fails'
            error, transient = seed_failure(e)  # re-raises an input error and the user's Ctrl-C
            log.warning("%s seed %d crashed:\n%s", label, seed, traceback.format_exc())
    record = seed_record(exp, config, seed, session, threads=threads, wall_time_s=time.perf_counter() - start,
                         error=error, measurement=measurement)
    return record, transient


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
