"""What runs inside a data-parallel SLURM job: one seed whose arms train in a group of SLURM tasks.

A claim declares that an arm runs data-parallel in its config (`launch = "torchrun"`, `nproc` ranks; for
a comparison, its base's). `--executor slurm` submits such a seed as one job of `nproc` tasks (`srun`
ranks: submitit starts the function once per task). Each task joins the group (gloo on CPU, nccl on
GPUs) from SLURM's variables and runs the torchrun launcher's own code (harness.run.ddp
.compute_seed): the same keys, records, locks and checkpoints, so the seed is stored exactly as a
`torchrun -m harness.run.ddp` launch stores it, under the key the runner looks for.

Preemption and time limits follow submitit's checkpointing protocol: the job's callable is a
`submitit.helpers.Checkpointable`; when SLURM signals the job (USR2, before its time limit or when it
is preempted), submitit calls `checkpoint()`, which resubmits the same call, and requeues the job. The
state lives in the store: each arm's checkpoint (written every --slurm-checkpoint-every steps), and arms
already finished are stored records, so the requeued job skips those and resumes the arm in progress
from its last checkpoint (the steps after it are computed again, with the same random streams).
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import zlib

import submitit

from harness.errors import Interrupted

log = logging.getLogger("harness.run.executors")
PORTS = (20000, 60000)  # MASTER_PORT range; the port hashes the job id and restart count (requeue: new)


def data_parallel_payload(task, options, device: str, root: str, run_id: str | None, hashes: dict,
                          sources: tuple[str, ...], checkpoint_every: int) -> tuple[tuple[str, ...], bytes]:
    """What the job's tasks need, as (claim folders, pickled rest), as harness.run.executors.job.seed_payload."""
    return tuple(sources), pickle.dumps((task, options, device, root, run_id, hashes, checkpoint_every))


def export_group_env() -> tuple[int, int]:
    """Set torch.distributed's env:// variables from SLURM's (this task's rank, the job's tasks, node 0's
    host). Returns (rank, world)."""
    env = submitit.JobEnvironment()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    low, high = PORTS
    port = low + (zlib.crc32(f"{env.job_id}/{restarts}".encode()) % (high - low))
    os.environ.update({"MASTER_ADDR": env.hostnames[0], "MASTER_PORT": str(port),
                       "RANK": str(env.global_rank), "WORLD_SIZE": str(env.num_tasks),
                       "LOCAL_RANK": str(env.local_rank),
                       "LOCAL_WORLD_SIZE": str(env.num_tasks // max(1, env.num_nodes))})
    return env.global_rank, env.num_tasks


class _Requeued(Interrupted):
    """submitit requeued the job (it would sys.exit inside the experiment): not the seed's error."""


class _Unfinished(Interrupted):
    """submitit will not requeue the job again (it raised UncompletedJobError inside the experiment)."""


def requeue_is_not_a_crash() -> None:
    """Wrap submitit's handler of SLURM's signal so that what it raises inside the training code (SystemExit
    once it has requeued the job, UncompletedJobError once the job timed out too often) is never stored as
    the seed's error: both become Interrupted (harness.errors.seed_failure re-raises those)."""
    from submitit.core.utils import UncompletedJobError

    sig = submitit.JobEnvironment._usr_sig()
    before = signal.getsignal(sig)
    if not callable(before):
        return

    def handler(signum, frame):
        try:
            before(signum, frame)
        except SystemExit:
            raise _Requeued("SLURM requeued the job") from None
        except UncompletedJobError as e:
            raise _Unfinished(str(e)) from None

    signal.signal(sig, handler)


class DataParallelSeedJob(submitit.helpers.Checkpointable):
    """The job's callable: every task runs it; rank 0 stores the arms and the seed."""

    def __call__(self, payload: tuple[tuple[str, ...], bytes]) -> str:
        """Join the group and compute the seed (resuming stored arms and checkpoints).

        Returns:
            "ok", or the seed's stored error (a crash inside the experiment, stored like a local crash).
        """
        import torch

        from harness.distributed import process_group
        from harness.run import provenance
        from harness.run.ddp import compute_seed
        from harness.run.loader import experiment_named, load_all
        from harness.run.seeds import Session, seed_key
        from harness.run.store import ResultStore

        rank, world = export_group_env()
        requeue_is_not_a_crash()
        logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
        sources, blob = payload
        if sources:
            load_all(sources)
        task, options, device, root, run_id, hashes, every = pickle.loads(blob)
        provenance.pin_code_hash(hashes)
        experiment = experiment_named(task.experiment, task.module)
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        log.info("%s seed %d: rank %d of %d (start %s of this job)", task.label, task.seed, rank, world,
                 int(restarts or 0) + 1)
        try:
            with process_group(device) as (comm, rank_device):
                if rank_device.type == "cpu":
                    torch.set_num_threads(provenance.SEED_THREADS)
                session = Session(options, rank_device, ResultStore(root), run_id)
                key = seed_key(experiment, task.config, task.seed, session)
                if key != task.key:  # the runner would never find it: stop before training anything
                    raise RuntimeError(f"the job's key {key} is not the runner's {task.key} (code changed?)")
                code = compute_seed(experiment, task.config, task.seed, session, comm, every)
                comm.barrier()
        except _Requeued:
            sys.exit(-1)  # as submitit's own handler ends a requeued job (no result: the job runs again)
        except _Unfinished as e:
            raise RuntimeError(str(e)) from None  # the job's result: the seed's failure names it, unstored
        record = ResultStore(root).load_seed(task.key) if rank == 0 else None
        if rank == 0 and record is None:
            raise RuntimeError(f"{task.label} seed {task.seed} ended (exit {code}) without storing it")
        return (record or {}).get("error") or "ok"

    def checkpoint(self, payload) -> submitit.helpers.DelayedSubmission:
        """submitit calls this on USR2 (preemption or the time limit): the same call again, requeued; it
        resumes from the store (stored arms, the arm in progress's last checkpoint)."""
        log.warning("SLURM signalled the job (preemption or time limit): requeued; it resumes from the "
                    "last checkpoint in the store")
        return submitit.helpers.DelayedSubmission(DataParallelSeedJob(), payload)
