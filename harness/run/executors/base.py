"""The one interface every place that computes seeds shares: submit seeds, poll them, collect them.

The runner hands an executor the seeds of a run that have no usable record in the store; the executor
computes them somewhere (processes here, jobs on a cluster) and each seed's record lands in the store under
the runner's own key (seeds.cached_seed), so the claims then read them as if computed in process. A seed
an executor could not compute goes to session.lost (key -> reason): an `error` for this run only, never
stored, so a later run tries it again.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger("harness.run.executors")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
STATES = (QUEUED, RUNNING, DONE, FAILED)


@dataclass(frozen=True)
class Submitted:
    """One seed handed to an executor: its task (harness.run.parallel's), and where it runs."""

    task: object           # harness.run.parallel._Task: label (claim id), module, experiment, config, seed, key
    job_id: str = ""       # the executor's id for it ("" for the local pool)
    log_path: str = ""     # where its output goes, when the executor keeps one

    @property
    def key(self) -> str:
        return self.task.key


class Executor(ABC):
    """Computes missing seeds of a run. Subclasses differ only in where the seeds run."""

    name = "executor"
    detach = False  # True: precompute returns after submitting; a later run collects

    def preflight(self, plans, options) -> None:  # noqa: B027 (optional hook: most executors need no preflight)
        """Check, before anything is submitted, that seeds can run here (one-line HarnessError if not)."""

    @abstractmethod
    def submit(self, tasks: list, session) -> list[Submitted]:
        """Start computing `tasks` (or adopt work already under way for them); returns one entry per task."""

    @abstractmethod
    def poll(self, submitted: list[Submitted], session) -> dict[str, str]:
        """Each seed's state now, key -> one of STATES."""

    @abstractmethod
    def collect(self, submitted: list[Submitted], session) -> None:
        """Wait until every seed is done or failed; failed seeds go to session.lost with their reason."""

    def precompute(self, plans, session, seeds: range | None = None) -> list[Submitted]:
        """Compute every seed of `plans` missing from the store (the runner's hook).

        Args:
            plans: (claim, tier, config) triples, as harness.run.planning.plan_claims gives them.
            session: the run (options, device, store, run id).
            seeds: replaces the tiers' seed numbers (a second look's added seeds).

        Returns:
            what was submitted (empty when every seed was stored already).
        """
        from harness.run.parallel import missing_tasks

        tasks = missing_tasks(plans, session, seeds)
        if not tasks:
            return []
        submitted = self.submit(tasks, session)
        if not self.detach:
            self.collect(submitted, session)
        return submitted


def per_claim(submitted: list[Submitted], states: dict[str, str]) -> dict[str, Counter]:
    """claim id -> Counter of states (for the progress lines and `harness status`)."""
    out: dict[str, Counter] = {}
    for s in submitted:
        out.setdefault(s.task.label, Counter())[states.get(s.key, QUEUED)] += 1
    return out


def format_counts(counts: Counter) -> str:
    """'1 queued, 2 running, 3 done, 0 failed'."""
    return ", ".join(f"{counts.get(state, 0)} {state}" for state in STATES)


class LocalExecutor(Executor):
    """Today's process pool (harness.run.parallel): seeds run on this machine, `session.options.jobs` at once."""

    name = "local"

    def submit(self, tasks: list, session) -> list[Submitted]:
        return [Submitted(t) for t in tasks]  # the pool starts them in collect, which waits for them anyway

    def poll(self, submitted: list[Submitted], session) -> dict[str, str]:
        return {s.key: DONE if session.store.load_seed(s.key) is not None
                else FAILED if s.key in session.lost else QUEUED for s in submitted}

    def collect(self, submitted: list[Submitted], session) -> None:
        from harness.run.parallel import run_tasks

        run_tasks([s.task for s in submitted], session)
