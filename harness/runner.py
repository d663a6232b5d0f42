"""The runner: for each claim and seed, run (or reuse) the experiment, then decide the verdict.

The runner owns seeds, the clock, the store and the step cap; experiments only see a RunContext.
"""
from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch

from harness import provenance
from harness.errors import ConfigError, HarnessError
from harness.measurement import Measurement, RunContext
from harness.registry import Claim, apply_overrides
from harness.store import ResultStore
from harness.verdict import ERROR, combine, decide, estimate

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    tier: str
    seeds: int | None = None  # None: the tier's own seed count
    overrides: Mapping[str, str] = field(default_factory=dict)
    max_steps: int | None = None
    device: str | None = None  # None: cuda for gpu/paper tiers when available, else cpu
    use_cache: bool = True
    jobs: int = 1  # seeds run in this many processes at once (CPU); results are identical

    def __post_init__(self):
        if self.seeds is not None and (not isinstance(self.seeds, int) or self.seeds < 1):
            raise ConfigError(f"--seeds must be a positive integer, got {self.seeds!r}")
        if not isinstance(self.jobs, int) or self.jobs < 1:
            raise ConfigError(f"--jobs must be a positive integer, got {self.jobs!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"--max-steps must be a positive integer, got {self.max_steps!r}")


def pick_device(tier: str, requested: str | None) -> torch.device:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device '{requested}' requested but CUDA is not available here")
        try:
            return torch.device(requested)
        except RuntimeError as e:
            raise ConfigError(f"bad device '{requested}': {e}") from None
    if tier in ("gpu", "paper") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def run_claims(claims: Sequence[Claim], options: RunOptions, store: ResultStore,
               progress: Callable[[str], None] | None = None) -> dict:
    """Run every claim at one tier; returns (and stores, after each claim) the run summary."""
    device = pick_device(options.tier, options.device)
    # Resolve every tier/config first, so a bad tier or override fails before any compute.
    plans = []
    for claim in claims:
        tier = claim.tier(options.tier)
        config = apply_overrides(tier.config, options.overrides)
        preflight = getattr(config, "preflight", None)
        if callable(preflight):
            preflight()  # e.g. a data path that does not exist: one line now, not a crash later
        plans.append((claim, tier, config))
    run_id = store.new_run_id()
    summary = {
        "run_id": run_id, "status": "running", "tier": options.tier,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "finished": None,
        "options": {"seeds": options.seeds, "overrides": dict(options.overrides),
                    "max_steps": options.max_steps, "device": str(device),
                    "use_cache": options.use_cache, "jobs": options.jobs},
        "environment": provenance.environment(device), "claims": [],
    }
    store.save_run(run_id, summary)
    log.info("run %s: %d claim(s) at tier %s on %s", run_id, len(plans), options.tier, device)
    try:
        # Keys computed during this run: a seed shows as "reused" only if it was stored before.
        fresh = _precompute_in_parallel(plans, options, device, store) if options.jobs > 1 else set()
        for i, (claim, tier, config) in enumerate(plans, 1):
            log.info("[%d/%d] %s (%s tier)", i, len(plans), claim.id, options.tier)
            entry = run_one_claim(claim, tier, config, options, device, store, progress, fresh)
            summary["claims"].append(entry)
            store.save_run(run_id, summary)
            log.info("[%d/%d] %s: %s", i, len(plans), claim.id, entry["verdict"])
        summary["status"] = "complete"
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    finally:
        summary["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        store.save_run(run_id, summary)
    return summary


def _precompute_in_parallel(plans, options: RunOptions, device, store: ResultStore) -> set[str]:
    """Run every missing (experiment, config, seed) in a pool of processes; the claims then read them.

    Each worker process has a fair share of the CPU threads. Workers re-import the claims package
    to find experiments by name, so only experiments of registered claims can run in parallel.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    tasks, seen = [], set()
    for claim, tier, config in plans:
        for seed in range(options.seeds or tier.seeds):
            key = _seed_key(claim.experiment, config, seed, options, device, store)
            if key in seen or (options.use_cache and store.load_seed(key) is not None):
                continue
            seen.add(key)
            tasks.append((claim.id, config, seed))
    if not tasks:
        return seen
    threads = max(1, (os.cpu_count() or 1) // options.jobs)
    log.info("running %d seed(s) in %d processes (%d thread(s) each)", len(tasks), options.jobs, threads)
    with ProcessPoolExecutor(options.jobs, mp_context=get_context("spawn"),
                             initializer=_worker_init, initargs=(threads, provenance.code_hash())) as pool:
        futures = {pool.submit(_worker_run, cid, config, seed, options, str(device), str(store.root)): (cid, seed)
                   for cid, config, seed in tasks}
        for done, fut in enumerate(as_completed(futures), 1):
            cid, seed = futures[fut]
            fut.result()  # re-raises bad-input errors from the worker
            log.info("  [%d/%d] %s seed %d done", done, len(tasks), cid, seed)
    return seen


def _worker_init(threads: int, code_hash: str) -> None:
    torch.set_num_threads(threads)
    provenance.pin_code_hash(code_hash)
    logging.basicConfig(level=logging.WARNING)


def _worker_run(claim_id: str, config, seed: int, options: RunOptions, device: str, root: str) -> None:
    from harness.registry import get_claim, load_claims

    load_claims()
    claim = get_claim(claim_id)
    _cached_seed(claim.experiment, config, seed, options, torch.device(device), ResultStore(root),
                 claim_id, None)


def _seed_key(exp, config, seed, options, device, store) -> str:
    return store.experiment_key(exp.experiment_name, config, seed, device.type, options.max_steps)


def run_one_claim(claim: Claim, tier, config, options: RunOptions, device: torch.device,
                  store: ResultStore, progress=None, fresh: set[str] | None = None) -> dict:
    n_seeds = options.seeds or tier.seeds
    exp = claim.experiment
    seeds, measurements = [], []
    for seed in range(n_seeds):
        record, key, cached = _cached_seed(exp, config, seed, options, device, store, claim.id, progress)
        if fresh is not None:
            cached = cached and key not in fresh
            fresh.add(key)
        seeds.append({"seed": seed, "key": key, "cached": cached, "wall_time_s": record["wall_time_s"],
                      "error": record["error"], "notes": (record.get("measurement") or {}).get("notes", [])})
        measurements.append(None if record["error"] else Measurement.from_dict(record["measurement"]))
        log.info("  seed %d/%d %s in %.1fs%s", seed + 1, n_seeds, "reused" if cached else "ran",
                 record["wall_time_s"], f" ERROR: {record['error']}" if record["error"] else "")
    checks = [_evaluate_check(claim, c.metric, measurements, seeds, options.tier, c) for c in claim.checks]
    reported = [_evaluate_check(claim, m, measurements, seeds, options.tier, None, label)
                for m, label in claim.reported]
    first_ok = next((m for m in measurements if m is not None), None)
    return {
        "id": claim.id, "version": claim.version, "source": claim.source, "statement": claim.statement,
        "paper_value": claim.paper_value, "tuning": claim.tuning, "notes": claim.notes,
        "changes": [asdict(c) for c in claim.changes],
        "tier": options.tier, "scale": tier.scale, "measured_scale": first_ok.scale if first_ok else {},
        "experiment": exp.experiment_name, "config": provenance.config_dict(config),
        "config_hash": provenance.config_hash(config), "deterministic": claim.deterministic,
        "seeds": seeds, "checks": checks, "reported": reported,
        "verdict": combine([c["verdict"] for c in checks]),
        "wall_time_s": sum(s["wall_time_s"] for s in seeds),
        "plots": [asdict(p) for p in claim.plots],
    }


def _cached_seed(exp, config, seed, options, device, store, label, progress) -> tuple[dict, str, bool]:
    """One seed of one experiment: the stored record if there is one, else run it and store it."""
    key = _seed_key(exp, config, seed, options, device, store)
    record = store.load_seed(key) if options.use_cache else None
    if record is not None:
        return record, key, True
    record = _run_seed(label, exp, config, seed, options, device, store, progress)
    store.save_seed(key, record)
    return record, key, False


def _run_seed(label, exp, config, seed, options, device, store, progress) -> dict:
    last = [0.0]

    def report(step: int, total: int) -> None:
        now = time.monotonic()
        if progress and (now - last[0] > 1.0 or step >= total):
            last[0] = now
            progress(f"{label} seed {seed}: step {step}/{total}")

    def cached_run(sub_exp, sub_config) -> Measurement:
        record, _, _ = _cached_seed(sub_exp, sub_config, seed, options, device, store,
                                    f"{label}/{sub_exp.experiment_name}", progress)
        if record["error"]:
            raise RuntimeError(f"sub-run {sub_exp.experiment_name} failed: {record['error']}")
        return Measurement.from_dict(record["measurement"])

    ctx = RunContext(seed=seed, tier=options.tier, device=device, max_steps=options.max_steps,
                     progress=report, cached_run=cached_run)
    start = time.perf_counter()
    error, measurement = None, None
    try:
        measurement = exp(config, ctx)
        if not isinstance(measurement, Measurement):
            raise TypeError(f"experiment returned {type(measurement).__name__}, not Measurement")
    except HarnessError:
        raise  # bad input (config, data path): the user fixes it; nothing is recorded
    except Exception as e:  # a crash is an 'error' verdict with its reason, never a 'fails'
        error = f"{type(e).__name__}: {e}"
        log.warning("%s seed %d crashed:\n%s", label, seed, traceback.format_exc())
    return {
        "experiment": exp.experiment_name, "config": provenance.config_dict(config), "seed": seed,
        "tier": options.tier, "device": str(device), "max_steps": options.max_steps,
        "wall_time_s": time.perf_counter() - start, "error": error,
        "measurement": measurement.to_dict() if measurement else None,
        "environment": provenance.environment(device),
        "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _evaluate_check(claim, metric, measurements, seeds, tier, check=None, label="") -> dict:
    out = {"metric": metric, "label": check.label if check else label}
    if check is not None:
        region = check.expect.region(tier)
        out.update(expectation=check.expect.describe(tier), region=[region.lo, region.hi])
    errors = [f"seed {s['seed']}: {s['error']}" for s in seeds if s["error"]]
    values, ses = [], []
    for s, m in zip(seeds, measurements):
        if m is None:
            continue
        v = m.scalars.get(metric)
        if v is None:
            errors.append(f"seed {s['seed']}: metric '{metric}' missing from the measurement")
        elif not math.isfinite(v):
            errors.append(f"seed {s['seed']}: metric '{metric}' is {v}")
        else:
            values.append(v)
            ses.append(m.standard_errors.get(metric))
    if errors or not values:
        out.update(verdict=ERROR, estimate=None, reason="; ".join(errors) or "no values")
        return out
    est = estimate(values, ses, deterministic=claim.deterministic)
    out["estimate"] = est.as_dict()
    if check is not None:
        out["verdict"] = decide(est, region)
    return out
