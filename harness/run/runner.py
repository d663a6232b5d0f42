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
from collections.abc import Callable, Sequence
from dataclasses import asdict

from harness.claim.checks import STEP_CAPPED, evaluate_check, scale_that_ran  # noqa: F401 (STEP_CAPPED: public here too)
from harness.claim.measurement import Measurement
from harness.claim.records import CheckResult, ClaimResult, RunSummary, SeedEntry
from harness.claim.registry import Claim
from harness.claim.verdict import FAILS, combine, family_confidence
from harness.errors import on_signal
from harness.run import provenance
from harness.run.parallel import precompute
from harness.run.planning import RunOptions, pick_device, plan_claims, step_capped  # noqa: F401 (public here too)
from harness.run.seeds import Session, cached_seed, seed_numbers, seed_threads
from harness.run.store import ResultStore

log = logging.getLogger(__name__)


def run_claims(claims: Sequence[Claim], options: RunOptions, store: ResultStore,
               progress: Callable[[str], None] | None = None, run_id: str | None = None) -> dict:
    """Run every claim at one tier; returns (and stores, after each claim) the run summary.

    `run_id`: finish a run whose seeds were submitted earlier (harness.run.executors, --detach).

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
                 "use_cache": options.use_cache, "jobs": options.jobs, "per_gpu": options.per_gpu,
                 "seed_offset": options.seed_offset, "threads": seed_threads(device),
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


def run_one_claim(claim: Claim, tier, config, session: Session) -> ClaimResult:
    """Run (or reuse) a claim's seeds and decide its checks; seeds chosen by power when the tier
    declares max_seeds (harness.claim.sequential: a pilot, then at most one second look)."""
    from harness.claim.sequential import LOOKS, second_look_size

    options = session.options
    exp = claim.experiment
    seeds, measurements = [], []
    numbers = seed_numbers(tier, options, claim)
    max_seeds = tier.max_seeds or tier.seeds
    adaptive = options.seeds is None and max_seeds > tier.seeds and not claim.deterministic
    family = len(claim.checks) + len(claim.regime)  # one family of tests (harness.claim.verdict.FAMILY_RULE)
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
