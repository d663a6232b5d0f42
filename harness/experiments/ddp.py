"""Run one seed of a claim data-parallel under torchrun, storing every arm where the runner finds it.

    torchrun --standalone --nproc_per_node=8 -m harness.experiments.ddp \\
        --claim ire-llm-speedup --tier paper --seed 0 [--set KEY=VALUE ...] [--results results]

Every rank runs the claim's experiment; each training arm it asks for (a `llm_pretrain_arm` sub-run)
trains data-parallel (DDP: nccl on CUDA, gloo on CPU) and rank 0 stores the arm's record under the
same cache key the runner computes (experiment, config, seed, code hash, device type, step cap); at
the end rank 0 stores the seed's composed record too. Then `python -m harness run --tier paper
--claim ...` reuses the stored seeds and only decides the verdict. Arms already stored are skipped;
an arm in progress checkpoints (model, optimizer, step, random streams, curve so far) every
--checkpoint-every steps and resumes from its checkpoint when the command is run again.

--arm NAME runs only the named arms of an ire-llm-speedup config (to spread arms over jobs);
--until-step N stops an arm at step N after checkpointing it (a job-length limit; rerun to go on).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from harness import provenance
from harness.errors import ConfigError, HarnessError
from harness.measurement import Measurement, RunContext
from harness.registry import apply_overrides, get_claim, load_claims
from harness.store import ResultStore

log = logging.getLogger("harness.ddp")


@dataclass
class Comm:
    """The data-parallel group an arm runs in: world 1 in process, else the torch.distributed group."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Comm:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    def mean_(self, tensors: list[torch.Tensor]) -> None:
        """Average each tensor over the ranks, in place."""
        for t in tensors:
            if self.world > 1:
                dist.all_reduce(t)
                t.div_(self.world)

    def broadcast_(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's values in every rank's tensors, in place."""
        for t in tensors:
            if self.world > 1:
                dist.broadcast(t, src=0)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


@dataclass
class Checkpointing:
    """Where and how often an arm checkpoints; `until_step` stops it early (a job-length limit)."""

    path: Path
    every: int
    until_step: int | None = None


class StopTraining(Exception):
    """Raised when a checkpointed arm reaches `until_step`: the checkpoint is on disk, rerun to go on."""


def save_checkpoint(path: Path, payload: Callable[[], dict], comm: Comm) -> None:
    """Rank 0 writes payload() through a temp file and os.replace (a kill never leaves half a checkpoint);
    every rank holds the same state under DDP, so one copy is enough."""
    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            torch.save(payload(), tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    comm.barrier()


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A checkpoint written by save_checkpoint (tensors, numbers, strings, lists and dicts only)."""
    return torch.load(path, map_location=device, weights_only=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.experiments.ddp", description=__doc__.split("\n")[0])
    p.add_argument("--claim", required=True)
    p.add_argument("--tier", default="paper")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--arm", action="append", default=[], help="run only this arm (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--results", default="results")
    p.add_argument("--max-steps", type=int, default=None, help="cap every arm (the runner's --max-steps)")
    p.add_argument("--device", default=None, help="cpu, or cuda (default: cuda when available)")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--until-step", type=int, default=None)
    return p


def _broadcast(obj, comm: Comm):
    """Rank 0's object on every rank."""
    if comm.world == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _record(exp, config, seed: int, tier: str, device, max_steps, wall: float, m: Measurement | None,
            error: str | None, comm: Comm) -> dict:
    """The runner's seed record (harness.runner._run_seed), plus the world size."""
    return {"experiment": exp.experiment_name, "config": provenance.config_dict(config), "seed": seed,
            "tier": tier, "device": str(device), "max_steps": max_steps, "wall_time_s": wall, "error": error,
            "measurement": m.to_dict() if m else None, "environment": provenance.environment(device),
            "recorded": time.strftime("%Y-%m-%d %H:%M:%S"), "world_size": comm.world}


def run_seed(args: argparse.Namespace, comm: Comm, device: torch.device) -> int:
    """Run (or finish) one seed of args.claim at args.tier on this rank. Returns an exit code."""
    from harness.experiments.llm import SpeedupConfig, speedup_arms
    from harness.experiments.llm_train import llm_pretrain_arm, run_arm

    try:  # the claim's own module (claims/<id with underscores>.py) loads faster than every claim
        importlib.import_module("claims." + args.claim.replace("-", "_"))
    except ModuleNotFoundError:
        load_claims()  # so get_claim can suggest close ids
    claim = get_claim(args.claim)
    overrides = dict(kv.partition("=")[::2] for kv in args.set)
    config = apply_overrides(claim.tier(args.tier).config, overrides)
    if getattr(config, "launch", "torchrun") != "torchrun":
        log.warning("tier %s of %s is configured for launch=%s; running it data-parallel anyway",
                    args.tier, args.claim, config.launch)
    if callable(getattr(config, "preflight", None)):
        config.preflight()  # on every rank, so a bad path stops them all
    store = ResultStore(args.results)

    def key_of(exp, cfg) -> str:
        return store.experiment_key(exp.experiment_name, cfg, args.seed, device.type, args.max_steps)

    def progress(step: int, total: int) -> None:
        if comm.rank == 0:
            log.info("seed %d: step %d/%d", args.seed, step, total)

    def cached_run(exp, cfg) -> Measurement:
        key = key_of(exp, cfg)
        record = _broadcast(store.load_seed(key) if comm.rank == 0 else None, comm)
        if record is None:
            if exp is not llm_pretrain_arm:
                raise ConfigError(f"only training arms run data-parallel, not {exp.experiment_name}")
            ckpt = Checkpointing(store.root / "checkpoints" / f"{key}.pt", args.checkpoint_every,
                                 args.until_step)
            tic = time.perf_counter()
            m = run_arm(cfg, ctx, comm, ckpt)
            record = _record(exp, cfg, args.seed, args.tier, device, args.max_steps, time.perf_counter() - tic,
                             m, None, comm)
            if comm.rank == 0:
                store.save_seed(key, record)
                ckpt.path.unlink(missing_ok=True)
            record = _broadcast(record, comm)  # rank 0's timings everywhere: ranks decide alike
        if record["error"]:
            raise RuntimeError(f"sub-run {exp.experiment_name} failed: {record['error']}")
        return Measurement.from_dict(record["measurement"])

    ctx = RunContext(seed=args.seed, tier=args.tier, device=device, max_steps=args.max_steps,
                     progress=progress, cached_run=cached_run)
    try:
        if args.arm:
            if not isinstance(config, SpeedupConfig):
                raise ConfigError("--arm names arms of an ire-llm-speedup config")
            arms = speedup_arms(config)
            unknown = [a for a in args.arm if a not in arms]
            if unknown:
                raise ConfigError(f"unknown arm(s) {unknown}; arms: {', '.join(arms)}")
            for name in args.arm:
                ctx.run(llm_pretrain_arm, arms[name])
            return 0
        key = key_of(claim.experiment, config)
        if _broadcast(store.load_seed(key) is not None if comm.rank == 0 else None, comm):
            log.info("seed %d of %s is already stored", args.seed, args.claim)
            return 0
        tic, error, m = time.perf_counter(), None, None
        try:
            m = claim.experiment(config, ctx)
        except (HarnessError, StopTraining):
            raise
        except Exception as e:  # as the runner: a crash is the seed's 'error' verdict
            error = f"{type(e).__name__}: {e}"
            log.exception("seed %d crashed", args.seed)
        if comm.rank == 0:
            store.save_seed(key, _record(claim.experiment, config, args.seed, args.tier, device, args.max_steps,
                                         time.perf_counter() - tic, m, error, comm))
        return 1 if error else 0
    except StopTraining as stop:
        if comm.rank == 0:
            log.info("%s; run the same command again to continue", stop)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    use_cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    if "WORLD_SIZE" not in os.environ:
        raise SystemExit("harness.experiments.ddp runs under torchrun: torchrun --standalone "
                         "--nproc_per_node=N -m harness.experiments.ddp ...")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    try:
        code = run_seed(args, Comm.from_env(), device)
        dist.barrier()  # no rank tears the group down while another is still in a collective
        return code
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    from harness.experiments import ddp  # the imported module, whose StopTraining llm_train raises

    code = ddp.main()
    # Results and checkpoints are written and the group is destroyed by now. Leave without running
    # static destructors: gloo's teardown at interpreter exit intermittently aborts a rank
    # ("terminate called without an active exception"), which would turn a finished run into a failure.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
