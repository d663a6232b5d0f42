"""Seeds as SLURM jobs, through submitit: one job array per claim and resource request.

Each job computes one seed into the run's store (harness.run.executors.job), so the store must be on a file
system the compute nodes share with the submitting machine. While a job is queued or running its marker
`<store>/slurm/jobs/<key>.json` (job id, log path) lets any later `harness run` on the same store adopt it
instead of submitting the seed again; logs go to `<store>/slurm/logs/`. A job that ends without storing
its seed (cancelled, out of time or memory, node failure, a crash outside the experiment) is that seed's
`error` in the run that sees it, with the SLURM state and the log path; its marker is then removed, so the
next run submits that seed again (and only it).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from harness.errors import HarnessError
from harness.run import provenance
from harness.run.executors.base import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Executor,
    Submitted,
    format_counts,
    per_claim,
)
from harness.run.executors.resources import (
    SlurmResources,
    data_parallel_ranks,
    data_parallel_request,
    read_config,
    resources_for,
)
from harness.run.executors.slurm_state import (
    ACTIVE,
    QUEUED_STATES,
    UNKNOWN,
    SlurmUnavailable,
    check_reachable,
    check_request,
    job_states,
    state_from_log,
)
from harness.run.store import atomic_write_json

log = logging.getLogger("harness.run.executors")
SIGNAL_DELAY_S = 30  # submitit's warning before the time limit (its default, 90 s, exceeds short test jobs)


def require_submitit():
    """The submitit module, or a one-line HarnessError saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise HarnessError("--executor slurm needs submitit: pip install 'claim-harness[slurm]' "
                           "(or pip install submitit)") from None
    return submitit


class SlurmExecutor(Executor):
    """Runs each missing seed as a SLURM job (arrays per claim); the store is where results meet."""

    name = "slurm"

    def __init__(self, flags: dict | None = None, config_path: str | None = None, detach: bool = False,
                 poll_s: float = 3.0, checkpoint_every: int = 1000):
        """
        Args:
            flags: command-line overrides of SlurmResources fields (None values: not given).
            config_path: a TOML file of per-tier and per-claim requests (harness.run.executors.resources).
            detach: return after submitting (a later `harness run` or `harness status` collects).
            poll_s: seconds between two looks at the queue while waiting.
            checkpoint_every: a data-parallel arm checkpoints every this many steps (the launcher's
                --checkpoint-every), so a preempted or timed-out job resumes from there.
        """
        self.flags, self.config, self.detach, self.poll_s = dict(flags or {}), read_config(config_path), \
            detach, poll_s
        self.checkpoint_every = checkpoint_every

    def resources(self, tier: str, claim_id: str, config=None) -> SlurmResources:
        """One seed's request; a data-parallel config's (data_parallel_ranks) has a task per rank."""
        res = resources_for(tier, claim_id, self.config, self.flags)
        ranks = data_parallel_ranks(config)
        return data_parallel_request(res, ranks, f"{claim_id} ({tier} tier)") if ranks else res

    def preflight(self, plans, options) -> None:
        """One line, before anything is submitted: submitit missing, no cluster, or a request refused."""
        require_submitit()
        check_reachable()
        seen = set()
        for claim, _, config in plans:
            res = self.resources(options.tier, claim.id, config)
            if res not in seen:
                seen.add(res)
                check_request(sbatch_args(res), f"the request for {claim.id} ({describe(res)})")

    # --- the interface ------------------------------------------------------------------------
    def submit(self, tasks: list, session) -> list[Submitted]:
        submitted, fresh = [], []
        for task in tasks:
            marker = read_marker(session.store, task.key)
            if marker is not None:
                log.info("  %s seed %d: adopting SLURM job %s (submitted %s)", task.label, task.seed,
                         marker["job_id"], marker.get("submitted", "earlier"))
                submitted.append(Submitted(task, marker["job_id"], marker["log"]))
            else:
                fresh.append(task)
        groups: dict[tuple, list] = {}
        for task in fresh:
            res = self.resources(session.options.tier, task.label, task.config)
            groups.setdefault((task.label, res, bool(data_parallel_ranks(task.config))), []).append(task)
        for (label, res, parallel), group in groups.items():
            submitted += self._submit_array(label, res, group, session, parallel)
        return submitted

    def poll(self, submitted: list[Submitted], session) -> dict[str, str]:
        return {key: state for key, (state, _) in self._look(submitted, session).items()}

    def collect(self, submitted: list[Submitted], session) -> None:
        shown: dict = {}
        try:
            while True:
                looks = self._look(submitted, session)
                counts = per_claim(submitted, {k: s for k, (s, _) in looks.items()})
                for claim_id, c in counts.items():
                    if shown.get(claim_id) != c:
                        shown[claim_id] = c
                        log.info("  slurm %s: %s", claim_id, format_counts(c))
                if all(state in (DONE, FAILED) for state, _ in looks.values()):
                    break
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            log.warning("the SLURM jobs keep running; `harness run` with the same arguments collects them")
            raise
        for s in submitted:
            state, reason = looks[s.key]
            if state == FAILED:
                session.lost[s.key] = reason
                log.warning("  %s seed %d: %s", s.task.label, s.task.seed, reason)
            remove_marker(session.store, s.key)

    # --- helpers ------------------------------------------------------------------------------
    def _submit_array(self, label: str, res: SlurmResources, tasks: list, session,
                      parallel: bool = False) -> list[Submitted]:
        """One job array: a job per seed (parallel: a data-parallel seed's job, a task per rank)."""
        from harness.claim.registry import all_experiments
        from harness.run.executors.job import run_seed_job, seed_payload
        from harness.run.loader import loaded_sources

        submitit = require_submitit()
        folder = logs_folder(session.store)
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        executor.update_parameters(name=f"harness-{label}", slurm_signal_delay_s=SIGNAL_DELAY_S,
                                   slurm_array_parallelism=len(tasks), **res.submitit_parameters())
        options = dataclasses.replace(session.options, executor=None)  # a job computes its seed in process
        root, hashes = str(session.store.root.resolve()), provenance.code_hashes(all_experiments())
        if parallel:
            from harness.run.executors.ddp_job import DataParallelSeedJob, data_parallel_payload

            function = DataParallelSeedJob()
            payloads = [data_parallel_payload(t, options, str(session.device), root, session.run_id, hashes,
                                              loaded_sources(), self.checkpoint_every) for t in tasks]
        else:
            function = run_seed_job
            payloads = [seed_payload(t, options, str(session.device), root, session.run_id, hashes,
                                     loaded_sources()) for t in tasks]
        try:
            jobs = executor.map_array(function, payloads)
        except Exception as e:  # sbatch refused it after all (limits changed since the preflight)
            raise SlurmUnavailable(f"--executor slurm: sbatch refused {label}'s jobs: "
                                   f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}"
                                   ) from None
        out = []
        for task, job in zip(tasks, jobs):
            entry = Submitted(task, str(job.job_id), str(job.paths.stderr))
            write_marker(session.store, entry)
            out.append(entry)
        log.info("  %s: submitted %d seed(s) as SLURM job %s (%s)", label, len(jobs),
                 str(jobs[0].job_id).split("_")[0] if jobs else "-", describe(res))
        return out

    def _look(self, submitted: list[Submitted], session) -> dict[str, tuple[str, str]]:
        """key -> (state, reason when failed)."""
        states = job_states([s.job_id for s in submitted])
        out = {}
        for s in submitted:
            slurm = states[s.job_id]
            if session.store.load_seed(s.key) is not None:
                out[s.key] = (DONE, "")
            elif slurm in ACTIVE:
                out[s.key] = (QUEUED if slurm in QUEUED_STATES else RUNNING, "")
            else:
                out[s.key] = (FAILED, failure_reason(s, slurm))
        return out


def failure_reason(s: Submitted, slurm_state: str) -> str:
    """The seed's error for a job that ended without storing it: SLURM state, what the job raised, log."""
    if slurm_state in (UNKNOWN, "COMPLETED", "FAILED"):
        slurm_state = state_from_log(s.log_path) or slurm_state
    raised = _raised(s)
    what = f"SLURM job {s.job_id} ended {slurm_state}" + (f" ({raised})" if raised else "")
    return f"{what} without storing the seed; log: {s.log_path} (a rerun submits it again)"


def _raised(s: Submitted) -> str:
    """The last line of the exception the job's function raised, from submitit's result file ('' if none)."""
    from submitit.core.utils import JobPaths, pickle_load

    path = JobPaths(Path(s.log_path).parent, s.job_id).result_pickle
    try:
        outcome, value = pickle_load(path)
    except Exception:  # no result file (killed) or unreadable: the state and the log say the rest
        return ""
    if outcome != "error":
        return ""
    lines = [line.strip() for line in str(value).splitlines() if line.strip()]
    return lines[-1] if lines else "it raised"


def sbatch_args(res: SlurmResources) -> list[str]:
    """The sbatch options of a request (for `sbatch --test-only`)."""
    args = ["-t", str(res.time_min), "-c", str(res.cpus_per_task), f"--mem={max(1, int(res.mem_gb * 1024))}M",
            "-N", str(res.nodes), f"--ntasks-per-node={res.tasks_per_node}"]
    if res.gpus_per_node:
        args.append(f"--gpus-per-node={res.gpus_per_node}")
    for flag, value in (("-p", res.partition), ("-A", res.account), ("-q", res.qos)):
        if value is not None:
            args += [flag, value]
    return args


def describe(res: SlurmResources) -> str:
    """'partition debug, 1 CPU, 2 GB, 15 min' and GPUs / nodes / tasks when asked for."""
    parts = [f"partition {res.partition or '(default)'}"]
    parts += [f"account {res.account}"] if res.account else []
    parts += [f"qos {res.qos}"] if res.qos else []
    parts += [f"{res.cpus_per_task} CPU", f"{res.mem_gb:g} GB", f"{res.time_min} min"]
    parts += [f"{res.gpus_per_node} GPU/node"] if res.gpus_per_node else []
    parts += [f"{res.nodes} nodes x {res.tasks_per_node} tasks"] if res.nodes > 1 or res.tasks_per_node > 1 else []
    return ", ".join(parts)


# --- markers: which job computes which seed, kept in the store ------------------------------------
def logs_folder(store) -> Path:
    return (store.root / "slurm" / "logs").resolve()


def _marker_path(store, key: str) -> Path:
    return store.root / "slurm" / "jobs" / f"{store.seed_path(key).stem}.json"


def write_marker(store, s: Submitted) -> None:
    atomic_write_json(_marker_path(store, s.key), {
        "job_id": s.job_id, "log": s.log_path, "claim": s.task.label, "seed": s.task.seed,
        "submitted": time.strftime("%Y-%m-%d %H:%M:%S")})


def read_marker(store, key: str) -> dict | None:
    """The job that was computing this seed, or None (no marker, or one that cannot be read)."""
    path = _marker_path(store, key)
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("job_id"), str) \
            or not isinstance(marker.get("log"), str):
        return None
    return marker


def remove_marker(store, key: str) -> None:
    _marker_path(store, key).unlink(missing_ok=True)
