"""Run one seed of a claim data-parallel under torchrun, storing every arm where the runner finds it.

    torchrun --standalone --nproc_per_node=8 -m harness.run.ddp \\
        --claim ire-llm-speedup --tier paper --seed 0 [--set KEY=VALUE ...] [--results results] \\
        [--claims-path DIR ...]

Every rank runs the claim's experiment; each training arm it asks for (a `llm_pretrain_arm` sub-run)
trains data-parallel (DDP: nccl on CUDA, gloo on CPU) and rank 0 stores the arm's record under the
same cache key the runner computes (experiment, config, seed, code hash, device type, step cap); at
the end rank 0 stores the seed's composed record too. Then `python -m harness run --tier paper
--claim ...` reuses the stored seeds and only decides the verdict. Arms already stored are skipped;
an arm in progress checkpoints (model, optimizer, step, random streams, curve so far) every
--checkpoint-every steps and resumes from its checkpoint when the command is run again.

--arm NAME runs only the named arms of an ire-llm-speedup config (to spread arms over jobs);
--until-step N stops an arm at step N after checkpointing it (a job-length limit; rerun to go on).
--claims-path DIR also loads the claims in DIR, as for `python -m harness` (repeatable).
While an arm trains, rank 0 holds its lock file (the runner's): a second launch of the same arm on the
same store stops with one line instead of training it twice.

The launcher keys and records seeds through the runner's own functions (harness.run.seeds.seed_key,
seed_record); the group, checkpoints and collectives are harness.distributed's.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time

import torch

from harness.claim.config import apply_overrides
from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import Claim, get_claim
from harness.distributed import Checkpointing, Comm, StopTraining, process_group
from harness.errors import ConfigError, HarnessError, seed_failure
from harness.run.planning import MAX_SEED, RunOptions
from harness.run.seeds import Session, seed_key, seed_record
from harness.run.store import ResultStore, SeedLock

log = logging.getLogger("harness.ddp")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.run.ddp", description=__doc__.split("\n")[0])
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
    p.add_argument("--claims-path", action="append", default=[], metavar="DIR",
                   help="also load the claims in this folder (repeatable; see docs/writing-claims.md)")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Bounds of the launcher's options, checked before torchrun's group starts (as `harness run` checks its own).

    Raises:
        ConfigError: a negative or too large --seed, a --checkpoint-every, --until-step or --max-steps below 1.
    """
    if not 0 <= args.seed <= MAX_SEED:
        raise ConfigError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    for option in ("checkpoint_every", "until_step", "max_steps"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be >= 1, got {value}")


def load_claim(claim_id: str, claims_path: list[str]) -> Claim:
    """The claim to run, loaded as the main CLI loads claims (harness.run.loader.load_all).

    Args:
        claim_id: its id.
        claims_path: the `--claims-path` folders, in order.

    Raises:
        HarnessError: a claim source fails to load, or no source registers `claim_id`.
    """
    from harness.run.loader import load_all

    if not claims_path:
        try:  # the claim's own module (claims/<id with underscores>.py) loads faster than every claim
            importlib.import_module("claims." + claim_id.replace("-", "_"))
            return get_claim(claim_id)
        except ModuleNotFoundError:
            pass
    load_all(claims_path)  # also so get_claim can suggest close ids
    return get_claim(claim_id)


def claim_seed(store: ResultStore, key: str, what: str) -> tuple[SeedLock | None, str | None]:
    """Rank 0 takes the seed's lock (the runner's lock file), without waiting: (lock, None), or (None, why)
    when another live process is computing it. A launch never waits on another: its other ranks would sit
    in a collective until the group's timeout; it stops with one line instead."""
    lock = store.lock_seed(key, wait=False)
    if lock is None:
        return None, (f"{what} is being computed by another process on this store "
                      f"({store.root / 'cache'}); wait for it to finish, then run this command again")
    if lock.stale:
        log.warning("%s: an earlier launch died while computing it; continuing from its checkpoint, if any", what)
    return lock, None


def run_seed(args: argparse.Namespace, comm: Comm, device: torch.device) -> int:
    """Run (or finish) one seed of args.claim at args.tier on this rank. Returns an exit code."""
    from harness.run.planning import validate_config
    from harness.run.values import overrides as _overrides

    claim = load_claim(args.claim, args.claims_path)
    overrides = _overrides(args.set)
    config = apply_overrides(claim.tier(args.tier).config, overrides)
    validate_config(config, claim.tier(args.tier).config, f"{claim.id} ({args.tier} tier)")
    launch = getattr(getattr(config, "base", config), "launch", "torchrun")  # a comparison's arms: its base's
    if launch != "torchrun":
        log.warning("tier %s of %s is configured for launch=%s; running it data-parallel anyway",
                    args.tier, args.claim, launch)
    if callable(getattr(config, "preflight", None)):
        config.preflight()  # on every rank, so a bad path stops them all
    # The runner's view of this launch, so keys and records are the runner's own (run_id None: no run summary)
    options = RunOptions(tier=args.tier, overrides=overrides, max_steps=args.max_steps, device=str(device))
    session = Session(options, device, ResultStore(args.results), run_id=None)
    return compute_seed(claim.experiment, config, args.seed, session, comm, args.checkpoint_every,
                        args.until_step, args.arm)


def compute_seed(experiment, config, seed: int, session: Session, comm: Comm, checkpoint_every: int = 1000,
                 until_step: int | None = None, arms: list[str] | tuple[str, ...] = ()) -> int:
    """Compute (or finish) one seed data-parallel on this rank and store it as the runner would.

    Shared by the torchrun launcher (main) and a SLURM job's ranks (harness.run.executors.ddp_job): each
    training arm is a sub-run stored under the runner's key, trained in `comm`'s group, checkpointed every
    `checkpoint_every` steps and resumed from its checkpoint when computed again; rank 0 holds each arm's
    lock and stores the records.

    Args:
        experiment: the claim's experiment; config: its config at the session's tier (overrides applied).
        seed: the seed number; session: the runner's view (options, device, store, run id).
        comm: this rank's group.
        checkpoint_every, until_step: as the launcher's --checkpoint-every and --until-step.
        arms: only these arms of an ire-llm-speedup config (empty: the whole seed).

    Returns:
        an exit code (0: stored, or stopped at until_step with a checkpoint).

    Raises:
        HarnessError: an arm is being computed by another process, or a bad arm name.
    """
    from harness.experiments.llm import SpeedupConfig, speedup_arms
    from harness.experiments.llm_train import llm_pretrain_arm, run_arm

    store = session.store

    def record_of(exp, cfg, wall: float, m: Measurement | None, error: str | None) -> dict:
        record = seed_record(exp, cfg, seed, session, threads=torch.get_num_threads(), wall_time_s=wall,
                             error=error, measurement=m)
        return {**record, "world_size": comm.world}

    def progress(step: int, total: int) -> None:
        if comm.rank == 0:
            log.info("seed %d: step %d/%d", seed, step, total)

    def cached_run(exp, cfg) -> Measurement:
        key = seed_key(exp, cfg, seed, session)
        record, lock, busy = (store.load_seed(key) if comm.rank == 0 else None), None, None
        if comm.rank == 0 and record is None:
            lock, busy = claim_seed(store, key, f"{exp.experiment_name} seed {seed}")
            record = store.load_seed(key) if lock is not None else None  # it may have finished meanwhile
        record, busy = comm.broadcast_object((record, busy) if comm.rank == 0 else None)
        try:
            if busy:
                raise HarnessError(busy)
            if record is None:
                if exp is not llm_pretrain_arm:
                    raise ConfigError(f"only training arms run data-parallel, not {exp.experiment_name}")
                ckpt = Checkpointing(store.root / "checkpoints" / f"{key}.pt", checkpoint_every, until_step)
                tic = time.perf_counter()
                m = run_arm(cfg, ctx, comm, ckpt)
                record = record_of(exp, cfg, time.perf_counter() - tic, m, None)
                if comm.rank == 0:
                    store.save_seed(key, record)
                    ckpt.path.unlink(missing_ok=True)
                record = comm.broadcast_object(record)  # rank 0's timings everywhere: ranks decide alike
        finally:
            if lock is not None:
                lock.release()
        if record["error"]:
            raise RuntimeError(f"sub-run {exp.experiment_name} failed: {record['error']}")
        return Measurement.from_dict(record["measurement"])

    ctx = RunContext(seed=seed, tier=session.options.tier, device=session.device,
                     max_steps=session.options.max_steps, progress=progress, cached_run=cached_run)
    try:
        if arms:
            if not isinstance(config, SpeedupConfig):
                raise ConfigError("--arm names arms of an ire-llm-speedup config")
            named = speedup_arms(config)
            unknown = [a for a in arms if a not in named]
            if unknown:
                raise ConfigError(f"unknown arm(s) {unknown}; arms: {', '.join(named)}")
            for name in arms:
                ctx.run(llm_pretrain_arm, named[name])
            return 0
        key = seed_key(experiment, config, seed, session)
        if comm.broadcast_object(store.load_seed(key) is not None if comm.rank == 0 else None):
            log.info("seed %d of %s is already stored", seed, experiment.experiment_name)
            return 0
        tic, error, m, transient = time.perf_counter(), None, None, False
        try:
            m = experiment(config, ctx)
        except StopTraining:
            raise
        except BaseException as e:  # as the runner: a crash (even SystemExit) is the seed's 'error' verdict
            error, transient = seed_failure(e)
            log.exception("seed %d crashed", seed)
        if transient:  # an error of the environment: not stored, the next launch computes it again
            log.error("seed %d: %s", seed, error)
            return 1
        if comm.rank == 0:
            store.save_seed(key, record_of(experiment, config, time.perf_counter() - tic, m, error))
        return 1 if error else 0
    except StopTraining as stop:
        if comm.rank == 0:
            log.info("%s; run the same command again to continue", stop)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        check_args(args)
    except HarnessError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    if "WORLD_SIZE" not in os.environ:
        raise SystemExit("harness.run.ddp runs under torchrun: torchrun --standalone "
                         "--nproc_per_node=N -m harness.run.ddp ...")
    with process_group(args.device) as (comm, device):
        try:
            code = run_seed(args, comm, device)
            comm.barrier()  # no rank tears the group down while another is still in a collective
            return code
        except HarnessError as e:
            print(f"harness: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    code = main()
    # Results and checkpoints are written and the group is destroyed by now. Leave without running
    # static destructors: gloo's teardown at interpreter exit intermittently aborts a rank
    # ("terminate called without an active exception"), which would turn a finished run into a failure.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
