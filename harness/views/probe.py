"""One claim's `harness plan` probe, in a child process of its own, so that no probe can take the plan down.

The child is spawned (as harness.run.parallel spawns its workers), loads the parent's claim sources, and
runs one seed of the claim at each step cap in a throw-away store with the cache off. A probe that raises
comes back as its one-line error; a child killed by a signal (the kernel's OOM killer sends 9) or that
exits without answering comes back as "killed by signal N ..." or "exited with code N": that claim's row
says so and the plan goes on. Times are the seeds' own wall times, measured inside the child: its
start-up and imports are not a claim's cost.

On Linux, off CUDA, the child may allocate at most MEMORY_SHARE of the memory that was available when it started (an
address-space limit), so a probe too big for this machine fails alone with an allocation error instead of
pushing the whole machine into the OOM killer.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path


# our choice, because the rest of the machine (the plan itself, other users) needs room while a probe runs:
# at the full available memory a probe of the 60M LLM left 0.3 GB free before its allocation failed.
MEMORY_SHARE = 0.8


@dataclass(frozen=True)
class ProbeResult:
    """One claim's probe: per step cap, the seed's seconds, and on paper its FLOPs by dtype and its ops."""

    times: tuple[float, ...] = ()
    flops: tuple[dict[str, int], ...] = ()
    ops: tuple[int, ...] = ()
    error: str = ""


def probe_in_child(claim, tier: str, overrides: dict, caps: tuple[int, ...], device: str | None,
                   count: bool) -> ProbeResult:
    """Probe `claim` at `tier`, one seed per step cap in `caps`, in a spawned child process.

    Args:
        claim: a registered Claim (pickled to the child). overrides: --set pairs. device: as `run --device`.
        count: also count FLOPs and dispatched ops (harness.views.device_cost.count_work) per probe.

    Returns:
        the child's ProbeResult; a child that died is a ProbeResult with only its one-line error.
    """
    from harness.claim.registry import all_experiments
    from harness.run import provenance
    from harness.run.loader import loaded_sources

    ctx = get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    args = (send, claim, tier, dict(overrides), tuple(caps), device, count,
            provenance.code_hashes(all_experiments()), os.getpid(), loaded_sources())
    child = ctx.Process(target=_child_main, args=args, name=f"plan-{claim.id}", daemon=True)
    child.start()
    send.close()  # the child holds the only write end: its death is an EOF here
    try:
        try:
            result = receive.recv()
        except EOFError:
            result = None
        child.join()
    except BaseException:  # Ctrl-C: do not leave the probe running
        child.kill()
        child.join()
        raise
    finally:
        receive.close()
    if isinstance(result, ProbeResult):
        return result
    return ProbeResult(error=death_reason(child.exitcode))


def death_reason(exitcode: int | None) -> str:
    """A child's exit code as one line: a signal (9: the OOM killer's), or an exit without an answer."""
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown signal"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"killed by signal {-exitcode} ({name}){hint}"
    return f"the probe's process exited with code {exitcode} without an answer"


def _child_main(send, claim, tier, overrides, caps, device, count, hashes, parent_pid, sources) -> None:
    from harness.errors import HarnessError
    from harness.run.loader import load_all
    from harness.run.parallel import worker_init

    import torch

    from harness.run.values import meant_for_cuda

    worker_init(hashes, parent_pid)  # one thread per seed, exit with the parent, Ctrl-C is the parent's
    # CUDA reserves far more address space than it uses: an address-space cap would break it, so a probe
    # on CUDA runs uncapped
    on_cuda = torch.cuda.is_available() and meant_for_cuda(tier, device)
    limit = None if on_cuda else _limit_memory()
    try:
        load_all(sources)  # the parent's claims: a claim that reads another claim's runs finds it
        result = _probe(claim, tier, overrides, caps, device, count)
    except (HarnessError, RuntimeError, MemoryError) as e:
        result = ProbeResult(error=_one_line(e, limit))
    send.send(result)
    send.close()


def _probe(claim, tier, overrides, caps, device, count) -> ProbeResult:
    from harness.run.runner import RunOptions, run_claims
    from harness.run.store import ResultStore
    from harness.views.device_cost import count_work

    times, flops, ops = [], [], []
    with tempfile.TemporaryDirectory(prefix="harness-plan-") as tmp:
        for k in caps:
            options = RunOptions(tier=tier, seeds=1, overrides=dict(overrides), max_steps=k, device=device,
                                 use_cache=False, jobs=1)
            with count_work() if count else contextlib.nullcontext() as work:
                summary = run_claims([claim], options, ResultStore(Path(tmp) / f"{claim.id}-{k}"))
            seeds = summary["claims"][0]["seeds"]
            errors = [s["error"] for s in seeds if s.get("error")]
            if errors:
                raise RuntimeError(errors[0])
            times.append(sum(s["wall_time_s"] for s in seeds))
            if work is not None:
                flops.append(dict(work.flops_by_dtype))
                ops.append(work.ops)
    return ProbeResult(times=tuple(times), flops=tuple(flops), ops=tuple(ops))


def _limit_memory() -> int | None:
    """Cap this process's address space at its size now plus MEMORY_SHARE of the memory available now
    (Linux); returns the memory it may add, or None where it sets no cap."""
    if not sys.platform.startswith("linux"):
        return None
    import resource

    try:
        meminfo = Path("/proc/meminfo").read_text()
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    available = _kib(meminfo, "MemAvailable:")
    size = _kib(status, "VmSize:")
    if available is None or size is None:
        return None
    room = int(available * 1024 * MEMORY_SHARE)
    limit = size * 1024 + room
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return room


def _kib(text: str, key: str) -> int | None:
    for line in text.splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return None


def _one_line(e: BaseException, available: int | None) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text.lower():
        room = (f"; it may use {available / 2**30:.1f} GiB, {MEMORY_SHARE:.0%} of the memory available when it "
                "started" if available else "")
        return f"out of memory on this machine ({text[:160]}){room}"
    return text
