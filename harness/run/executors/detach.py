"""`harness run --executor slurm --detach` and `harness status RUN`: a run whose seeds outlive its process.

A detached run takes a run id, submits every missing seed and writes `runs/<id>/detached.json` (the command
line that started it and each seed's job); it records no run summary yet, so history and the gate never
see a half run. `harness status RUN` shows queued / running / done / failed per claim and, once every job
has ended, finishes the run under the same id: the same command line, now collecting (seeds stored by the
jobs are this run's fresh seeds; a failed job is that seed's error), then the verdicts and the report.
A second `harness run` with the same arguments also picks the jobs up, as a new run.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from harness.errors import HarnessError
from harness.run.executors.base import DONE, FAILED, Submitted, format_counts, per_claim
from harness.run.store import atomic_write_json, check_run_id

log = logging.getLogger("harness.run.executors")


@dataclass(frozen=True)
class _Job:  # a seed of a detached run, as harness.run.parallel's task is seen by the executors
    label: str
    seed: int
    key: str


def submit_detached(claims, options, store, argv: list[str]) -> list[str]:
    """Submit every missing seed of `claims` and return at once.

    Args:
        claims, options, store: as for harness.run.runner.run_claims (options.executor detaches).
        argv: the `harness` command line, kept so that `harness status` can finish the run.

    Returns:
        the lines to show: the run id, the job ids, how to collect.
    """
    from harness.run.planning import pick_device, plan_claims
    from harness.run.seeds import Session

    executor = options.executor
    if executor is None or not executor.detach:
        raise HarnessError("--detach needs --executor slurm (the local pool stops with its process)")
    device = pick_device(options.tier, options.device)
    plans = plan_claims(claims, options)
    store.check_writable()
    executor.preflight(plans, options)
    run_id = store.new_run_id()
    session = Session(options, device, store, run_id)
    submitted = executor.precompute(plans, session)
    atomic_write_json(_path(store, run_id), {
        "run_id": run_id, "tier": options.tier, "argv": [a for a in argv if a != "--detach"],
        "claims": [claim.id for claim, _, _ in plans],
        "jobs": [{"claim": s.task.label, "seed": s.task.seed, "key": s.key, "job_id": s.job_id, "log": s.log_path}
                 for s in submitted]})
    ids = sorted({s.job_id.split("_")[0] for s in submitted})
    return [f"run {run_id}: {len(submitted)} seed(s) in SLURM job(s) {' '.join(ids) or '(none: all stored)'}",
            f"collect with: harness --results {store.root} status {run_id}  (or the same `harness run` again)"]


def _path(store, run_id: str):
    return store.root / "runs" / check_run_id(run_id) / "detached.json"


def load_detached(store, run_id: str) -> dict:
    """The detached run's file.

    Raises:
        HarnessError: no detached run of that id (or it is unreadable).
    """
    path = _path(store, run_id)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        done = " (it is a finished run: harness report " + run_id + ")" if store.run_path(run_id).exists() else ""
        raise HarnessError(f"no detached run '{run_id}' under {store.root}/runs{done}") from None
    except (OSError, ValueError) as e:
        raise HarnessError(f"{path} is unreadable ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("argv"), list) or not isinstance(data.get("jobs"), list):
        raise HarnessError(f"{path} is damaged (no argv or jobs); it was left as is")
    return data


def job_progress(store, data: dict) -> tuple[dict, dict[str, str]]:
    """(claim id -> Counter of states, key -> failure reason) of a detached run's jobs right now."""
    from harness.run.executors.slurm import SlurmExecutor

    submitted = [Submitted(_Job(j["claim"], j["seed"], j["key"]), j["job_id"], j["log"]) for j in data["jobs"]]

    class _View:  # what SlurmExecutor._look reads of a session
        pass

    view = _View()
    view.store = store
    looks = SlurmExecutor()._look(submitted, view)
    states = {k: s for k, (s, _) in looks.items()}
    return per_claim(submitted, states), {k: r for k, (s, r) in looks.items() if s == FAILED}


def status_lines(store, run_id: str, wait: bool = False) -> tuple[list[str], bool]:
    """Lines for `harness status RUN`, and whether every job has ended (the run can be finished)."""
    data = load_detached(store, run_id)
    counts, failed = job_progress(store, data)
    lines = [f"run {run_id} (detached, tier {data.get('tier')}): {len(data['jobs'])} SLURM job(s)"]
    for claim_id in data.get("claims", []):
        c = counts.get(claim_id)
        lines.append(f"  {claim_id}: " + (format_counts(c) if c else "nothing submitted (all seeds stored)"))
    lines += [f"  failed: {reason}" for reason in failed.values()]
    ended = all(sum(c[s] for s in (DONE, FAILED)) == sum(c.values()) for c in counts.values())
    if not ended and not wait:
        lines.append(f"not all jobs have ended; run `harness status {run_id}` again later (or add --wait)")
    return lines, ended
