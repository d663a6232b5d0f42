"""What runs inside a SLURM job: one seed, computed and stored exactly as a local worker does it.

The job reads the store, takes the seed's lock, runs the experiment and saves the record through the
runner's own cached_seed, with the same code hashes (pinned from the submitting process), thread count and
key, so a record a job stores is the record a local run would store (bit-identical measurement on CPU).
"""
from __future__ import annotations

import logging
import pickle
import signal


def seed_payload(task, options, device: str, root: str, run_id: str | None, hashes: dict,
                 sources: tuple[str, ...]) -> tuple[tuple[str, ...], bytes]:
    """What a job needs, as (claim folders, pickled rest): the folders load first in the job, so configs
    defined in `--claims-path` files unpickle there."""
    return tuple(sources), pickle.dumps((task, options, device, root, run_id, hashes))


def run_seed_job(payload: tuple[tuple[str, ...], bytes]) -> str:
    """The SLURM job's function (submitit calls it): compute and store one seed.

    Returns:
        "ok", or the seed's error (a crash inside the experiment, stored like a local crash).
    """
    import os

    import torch

    from harness.run import provenance
    from harness.run.loader import experiment_named, load_all
    from harness.run.seeds import Session, cached_seed
    from harness.run.store import ResultStore

    if os.environ.get("SLURM_PROCID", "0") != "0":  # a request of several tasks: the seed is computed once
        return "ok"
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _no_error_at_time_limit()
    sources, blob = payload
    if sources:
        load_all(sources)
    task, options, device, root, run_id, hashes = pickle.loads(blob)
    provenance.pin_code_hash(hashes)
    torch.set_num_threads(provenance.SEED_THREADS)
    experiment = experiment_named(task.experiment, task.module)
    session = Session(options, torch.device(device), ResultStore(root), run_id)
    record, key, _ = cached_seed(experiment, task.config, task.seed, session, task.label)
    logging.getLogger("harness.run.executors").info("%s seed %d stored as %s", task.label, task.seed, key)
    return record["error"] or "ok"


def _no_error_at_time_limit() -> None:
    """Near its time limit submitit raises UncompletedJobError inside the running code (the seed is not
    checkpointable), where the runner would store it as the seed's own error. Keep computing instead: the
    seed is stored if it finishes in time, else SLURM ends the job (TIMEOUT) and nothing is stored, so the
    seed is that run's error and a rerun submits it again. Preemption still requeues (submitit's handler)."""
    from submitit.core.utils import UncompletedJobError

    before = signal.getsignal(signal.SIGUSR2)
    if not callable(before):
        return

    def handler(signum, frame):
        try:
            before(signum, frame)
        except UncompletedJobError:
            logging.getLogger("harness.run.executors").warning("near the time limit: the seed is stored only "
                                                           "if it finishes before SLURM ends the job")

    signal.signal(signal.SIGUSR2, handler)
