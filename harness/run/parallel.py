"""Seeds in a pool of processes (`harness run --jobs N`), robust to a worker that dies.

Every missing (experiment, config, seed) of the run is computed by spawned workers, which store
each record as it finishes; the claims then read them (as fresh records of this run, also with
--no-cache). Each worker runs a seed with the same fixed thread count as a serial run
(provenance.SEED_THREADS), so --jobs never changes a number.

A worker that dies (killed, out of memory, os._exit in native code) breaks the pool: the seeds that
finished stay stored; seeds that were only queued go to a fresh pool; a seed that was being computed
(its lock file is left behind, lock free) is retried once, alone in its own process. If it kills
that process too, it is recorded for this run as the seed's `error` ("worker process died ...")
and is not stored, so a later run tries it again. Workers exit when the parent dies (kill -9), and
Ctrl-C in the parent stops them at once instead of waiting for the queue.

On CUDA several workers share a GPU (`--per-gpu`; `--jobs` workers in all, their seeds round-robin over the
visible GPUs when the device names none). A seed that runs out of device memory while others share its GPU is
retried once, alone, the same way as a seed whose worker died. Seeds of a tier declared `exclusive` (timed on
wall clock) never enter the pool on CUDA: the claim's serial loop computes them after it, one at a time. On a
CPU nothing here depends on the device: the pool runs as it always has.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context

import torch

from harness.errors import HarnessError
from harness.run import provenance
from harness.run.seeds import Session, cached_seed, seed_key, seed_numbers, usable

log = logging.getLogger("harness.run.runner")  # the progress display matches the runner's messages


@dataclass(frozen=True)
class _Task:
    label: str
    module: str        # where the experiment is defined (imported by the worker to find it)
    experiment: str
    config: object
    seed: int
    key: str
    exclusive: bool = False  # runs alone on its device: left to the claim's serial loop on CUDA


def precompute(plans, session, seeds: range | None = None) -> None:
    """Compute every missing seed of `plans` in `session.options.jobs` processes.

    `seeds` replaces the tier's seed numbers (a second look's added seeds). A single missing seed is
    left to the claim's serial loop (no pool is started for it).

    Seeds lost to a worker that died twice end up in session.lost (key -> reason).

    Raises:
        HarnessError: an input error raised inside a worker (the run stops as a serial run would).
    """
    run_tasks(missing_tasks(plans, session, seeds), session)


def missing_tasks(plans, session, seeds: range | None = None) -> list[_Task]:
    """The seeds of `plans` with no usable record in the store, one task each (no key twice).

    `seeds` replaces the tier's seed numbers (a second look's added seeds). A task is exclusive when
    any claim that needs its key declares an exclusive tier and the run computes on CUDA.
    """
    tasks: dict[str, _Task] = {}
    alone = exclusive_applies(session.device)
    for claim, tier, config in plans:
        exp = claim.experiment
        for seed in seed_numbers(tier, session.options, claim) if seeds is None else seeds:
            key = seed_key(exp, config, seed, session)
            if key in tasks:
                if alone and tier.exclusive:
                    tasks[key] = dataclasses.replace(tasks[key], exclusive=True)
                continue
            if usable(session.store.load_seed(key), session) is not None:
                continue
            tasks[key] = _Task(claim.id, exp.__module__, exp.experiment_name, config, seed, key,
                               exclusive=alone and tier.exclusive)
    return list(tasks.values())


def exclusive_applies(device: torch.device) -> bool:
    """True where an exclusive tier's seeds must keep the device to themselves: on CUDA, where they time
    wall clock. On a CPU they time thread CPU time, which other processes leave intact."""
    return device.type == "cuda"


def run_tasks(tasks: list[_Task], session) -> None:
    """Compute `tasks` in `session.options.jobs` processes (precompute's pool, for a given task list).

    Exclusive tasks are left to the claims' serial loops (alone on the device, after the pool)."""
    alone = [t for t in tasks if t.exclusive]
    if alone:
        log.info("%d seed(s) timed on wall clock will run alone on %s after the others (%s)", len(alone),
                 session.device, ", ".join(sorted({t.label for t in alone})))
        tasks = [t for t in tasks if not t.exclusive]
    if len(tasks) <= 1:
        # one seed gains nothing from a pool: a worker would spend seconds importing torch, pandas and
        # scipy while the parent waits; the claim's serial loop computes it in this process instead
        return
    from harness.claim.registry import all_experiments

    hashes = provenance.code_hashes(all_experiments())
    jobs = session.options.jobs
    log.info("running %d seed(s) in %d processes (%d thread(s) each)", len(tasks), jobs,
             provenance.SEED_THREADS)
    progress = [0, len(tasks)]
    pending, retry = tasks, []  # retry: (task, why), each once more alone
    while pending:
        unfinished, no_memory = _pool(pending, jobs, session, hashes, progress)
        shared_by = min(jobs, len(pending))
        retry += [(t, f"out of device memory with {shared_by} processes sharing {session.device}")
                  for t in no_memory]
        died = [t for t in unfinished if session.store.seed_died_computing(t.key)]
        # none started (died at start-up): retry each alone
        retry += [(t, "its worker process died") for t in died or unfinished]
        pending = [t for t in unfinished if t not in died] if died else []
    for task, why in retry:  # once more, alone: a seed that kills its worker again is lost
        log.warning("  %s seed %d: %s; retrying it once alone in a fresh process", task.label, task.seed, why)
        if _pool([task], 1, session, hashes, progress)[0]:
            session.lost[task.key] = ("worker process died while computing this seed (twice; killed, out "
                                      "of memory, or a crash in native code); it was not stored")
            log.warning("  %s seed %d: worker died again; the seed is an error for this run",
                        task.label, task.seed)


def _pool(tasks: list[_Task], jobs: int, session, hashes: dict,
          progress: list) -> tuple[list[_Task], list[_Task]]:
    """Run tasks in one pool; returns (the tasks that did not finish because the pool broke, the tasks that
    ran out of device memory while the pool shared the device: not yet counted, not in session.lost)."""
    opts, device, root, run_id = session.options, str(session.device), str(session.store.root), session.run_id
    size = min(jobs, len(tasks))
    gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
    pool = ProcessPoolExecutor(size, mp_context=get_context("spawn"),
                               initializer=worker_init, initargs=(hashes, os.getpid()))
    unfinished, no_memory = [], []
    try:
        # seeds go round-robin over the visible GPUs in the order they are queued, so the ones running at once
        # spread evenly
        futures = {pool.submit(_worker_run, t, opts, worker_device(device, i, gpus), root, run_id): t
                   for i, t in enumerate(tasks)}
        for fut in as_completed(futures):
            task = futures[fut]
            try:
                transient, out_of_memory = fut.result()
            except BrokenProcessPool:
                unfinished.append(task)
                continue
            except HarnessError:
                raise  # an input error: stop the run, as a serial run would
            except Exception as e:  # e.g. a config that cannot be pickled: that seed's error
                session.lost[task.key] = f"could not run in a worker process: {type(e).__name__}: {e}"
                continue
            if out_of_memory and size > 1:  # it may fit alone: the caller retries it
                no_memory.append(task)
                continue
            if transient:  # an error of the environment: this run's error for the seed, not stored
                session.lost[task.key] = transient
            progress[0] += 1
            log.info("  [%d/%d] %s seed %d done", progress[0], progress[1], task.label, task.seed)
    except BaseException:
        _kill_workers(pool)  # Ctrl-C / an input error: do not wait for the queued seeds
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return unfinished, no_memory


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    processes = dict(getattr(pool, "_processes", None) or {})  # no public API for this
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes.values():
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + 5
    for p in processes.values():
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()


def worker_device(device: str, slot: int, gpus: int) -> str:
    """The device of the pool's task number `slot`: on CUDA without an index, GPU slot % gpus (seeds spread
    round-robin, about --per-gpu of them on each at once); any other device as given."""
    parsed = torch.device(device)
    if parsed.type != "cuda" or parsed.index is not None or gpus < 1:
        return device
    return f"cuda:{slot % gpus}"


def worker_init(hashes: dict, parent_pid: int) -> None:
    """Set up a spawned seed process: Ctrl-C left to the parent, SEED_THREADS threads, the parent's code
    hashes, and an exit as soon as the parent is gone (also used by `harness plan`'s probe processes)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(provenance.SEED_THREADS)
    provenance.pin_code_hash(hashes)
    logging.basicConfig(level=logging.WARNING)

    def watch_parent() -> None:  # kill -9 of the parent: do not finish the queue, do not hang
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch_parent, daemon=True, name="watch-parent").start()


def _worker_run(task: _Task, options, device: str, root: str, run_id: str) -> tuple[str | None, bool]:
    """Compute one seed in a worker; returns (the error of a seed that failed for a reason of the
    environment, else None; whether that was the device running out of memory). Such a seed is not
    stored: the parent records it in session.lost, or retries it alone."""
    from harness.run.loader import experiment_named
    from harness.run.store import ResultStore

    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))  # an unindexed "cuda" in the experiment is this GPU
    exp = experiment_named(task.experiment, task.module)
    session = Session(options, torch.device(device), ResultStore(root), run_id)
    cached_seed(exp, task.config, task.seed, session, task.label)
    return session.lost.get(task.key), task.key in session.out_of_memory
