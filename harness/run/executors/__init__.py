"""Where missing seeds are computed: `--executor local` (a process pool here, the default) or `slurm`.

Every executor shares one interface (base.Executor: submit seeds, poll them, collect them) and meets the
runner in the store, so a seed computed anywhere is the same record under the same key.
"""
from __future__ import annotations

import argparse

from harness.errors import ConfigError
from harness.run.executors.base import DONE, FAILED, QUEUED, RUNNING, Executor, LocalExecutor, Submitted
from harness.run.executors.resources import SlurmResources

__all__ = ["DONE", "FAILED", "QUEUED", "RUNNING", "Executor", "LocalExecutor", "SlurmResources", "Submitted",
           "add_arguments", "from_args"]
EXECUTORS = ("local", "slurm")


def add_arguments(p: argparse.ArgumentParser, sub) -> None:
    """The `harness run` options that choose and configure the executor, and the `status` subcommand."""
    status = sub.add_parser("status", help="a detached SLURM run: jobs per claim; finish it once all have ended")
    status.add_argument("run_id")
    status.add_argument("--wait", action="store_true", help="wait for the jobs, then finish the run")
    p.add_argument("--executor", default="local", help="where seeds run: local (process pool, default) or slurm")
    p.add_argument("--detach", action="store_true",
                   help="slurm: return after submitting; `harness status RUN` or the same command collects")
    p.add_argument("--slurm-config", default=None, metavar="FILE",
                   help="TOML: per-tier and per-claim SLURM requests (see docs/slurm.md)")
    for name, what in (("partition", "partition"), ("account", "account"), ("qos", "QOS")):
        p.add_argument(f"--slurm-{name}", default=None, help=f"SLURM {what} for every job")
    p.add_argument("--slurm-time", default=None, metavar="MIN", help="time limit of one job, minutes")
    p.add_argument("--slurm-gpus", default=None, metavar="N", help="GPUs per node of one job")
    p.add_argument("--slurm-cpus", default=None, metavar="N", help="CPUs of one job")
    p.add_argument("--slurm-mem", default=None, metavar="GB", help="memory of one job, GB")
    p.add_argument("--slurm-checkpoint-every", default=None, metavar="STEPS",
                   help="a data-parallel arm's job checkpoints every STEPS steps (default 1000); a preempted "
                        "or timed-out job is requeued and resumes from its last checkpoint")


def _number(text: str | None, option: str, kind=int, least: float = 1):
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ConfigError(f"{option} expects a number, got '{text}'") from None
    if value < least:
        raise ConfigError(f"{option} must be at least {least:g}, got '{text}'")
    return value


def from_args(args: argparse.Namespace) -> Executor | None:
    """The executor `harness run` options ask for (None: the local pool, as before)."""
    if args.executor not in EXECUTORS:
        raise ConfigError(f"unknown --executor '{args.executor}'; executors are: {', '.join(EXECUTORS)}")
    slurm_only = [o for o, v in (("--detach", args.detach), ("--slurm-config", args.slurm_config),
                                 *((f"--slurm-{n.replace('_', '-')}", getattr(args, f"slurm_{n}"))
                                   for n in ("partition", "account", "qos", "time", "gpus", "cpus", "mem",
                                             "checkpoint_every")))
                  if v]
    if args.executor == "local":
        if slurm_only:
            raise ConfigError(f"{', '.join(slurm_only)} need(s) --executor slurm")
        return None
    from harness.run.executors.slurm import SlurmExecutor

    flags = {"partition": args.slurm_partition, "account": args.slurm_account, "qos": args.slurm_qos,
             "time_min": _number(args.slurm_time, "--slurm-time"),
             "gpus_per_node": _number(args.slurm_gpus, "--slurm-gpus", least=0),
             "cpus_per_task": _number(args.slurm_cpus, "--slurm-cpus"),
             "mem_gb": _number(args.slurm_mem, "--slurm-mem", float, least=0.001)}
    every = _number(args.slurm_checkpoint_every, "--slurm-checkpoint-every")
    return SlurmExecutor(flags, args.slurm_config, detach=args.detach, checkpoint_every=every or 1000)
