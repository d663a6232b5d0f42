"""What SLURM says about a job: reachable or not, a request accepted or not, and each job's state.

States come from `squeue` (pending, running, and finished jobs for MinJobAge seconds), then `sacct` where
the cluster keeps accounting, then the job's own log (slurmstepd writes "CANCELLED", "DUE TO TIME LIMIT"
or an oom-kill there), so a job's end is read on clusters with or without an accounting database.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from harness.errors import HarnessError

ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING", "STOPPED", "RESV_DEL_HOLD"}
QUEUED_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"}
UNKNOWN = "UNKNOWN"


class SlurmUnavailable(HarnessError):
    """No SLURM cluster can be reached from here, or it refuses a request."""


def _run(cmd: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmUnavailable(f"--executor slurm: `{cmd[0]}` is not installed here; run from a SLURM "
                               "login node (or start one: tools/slurm-single-node)") from None
    except subprocess.TimeoutExpired:
        raise SlurmUnavailable(f"--executor slurm: no SLURM cluster is reachable (`{cmd[0]}` did not answer "
                               f"in {timeout:.0f} s)") from None


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


def check_reachable() -> None:
    """Raise a one-line SlurmUnavailable unless `sinfo` answers with at least one partition."""
    if shutil.which("sinfo") is None:
        _run(["sinfo"])  # raises the "not installed" line
    out = _run(["sinfo", "-h", "-o", "%P"])
    if out.returncode != 0:
        raise SlurmUnavailable(f"--executor slurm: no SLURM cluster is reachable (sinfo: "
                               f"{_first_line(out.stderr)})")
    if not out.stdout.strip():
        raise SlurmUnavailable("--executor slurm: sinfo lists no partition")


def check_request(args: list[str], what: str) -> None:
    """Ask slurmctld whether it would accept a job with these sbatch options (`sbatch --test-only`);
    submits nothing. Raises SlurmUnavailable with slurmctld's reason (partition, account, QOS, limits)."""
    out = _run(["sbatch", "--test-only", *args, "--wrap", "true"])
    if out.returncode != 0:
        reason = _first_line(out.stderr).removeprefix("sbatch: error: ")
        raise SlurmUnavailable(f"--executor slurm: SLURM refuses {what}: {reason}")


def job_states(job_ids: list[str]) -> dict[str, str]:
    """job id ("12" or array task "12_3") -> SLURM state; UNKNOWN where neither squeue nor sacct knows it."""
    if not job_ids:
        return {}
    bases = sorted({j.split("_")[0] for j in job_ids})
    states: dict[str, str] = {}
    out = _run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(bases)])
    if out.returncode == 0:
        for line in out.stdout.splitlines():
            job, _, state = line.strip().partition("|")
            states[job] = state.strip().upper()
    missing = [j for j in job_ids if j not in states]
    if missing:
        acct = _run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(missing)])
        if acct.returncode == 0:
            for line in acct.stdout.splitlines():
                job, _, state = line.strip().partition("|")
                states.setdefault(job, state.split()[0].upper() if state.strip() else UNKNOWN)
    return {j: states.get(j, UNKNOWN) for j in job_ids}


_LOG_STATES = [(re.compile(r"DUE TO TIME LIMIT"), "TIMEOUT"), (re.compile(r"DUE TO PREEMPTION"), "PREEMPTED"),
               (re.compile(r"\*\*\* (JOB|STEP) \S+ .*CANCELLED"), "CANCELLED"),
               (re.compile(r"oom[-_ ]kill|Out Of Memory|OUT_OF_MEMORY", re.I), "OUT_OF_MEMORY"),
               (re.compile(r"NODE_FAIL|node failure", re.I), "NODE_FAIL")]


def state_from_log(log_path: str | Path) -> str | None:
    """The end a job's log reports (TIMEOUT, CANCELLED, OUT_OF_MEMORY, ...), None when it names none."""
    try:
        text = Path(log_path).read_text(errors="replace")[-20_000:]
    except OSError:
        return None
    for pattern, state in _LOG_STATES:
        if pattern.search(text):
            return state
    return None


def cancel(job_ids: list[str]) -> None:
    """scancel the jobs (best effort: a job that already ended is not an error)."""
    if job_ids:
        _run(["scancel", *job_ids])
