"""Data-parallel primitives: the process group an arm trains in, and its checkpoints.

A `Comm` is what training code sees of the group: world 1 in process (every collective is a no-op),
else the torch.distributed group torchrun started (harness.run.ddp). Checkpoints are written by
rank 0 only, because under DDP every rank holds the same state, and are renamed into place whole, so a
killed job never leaves half a checkpoint to resume from.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from harness.atomic import atomic_path


@dataclass
class Comm:
    """The data-parallel group an arm runs in: world 1 in process, else the torch.distributed group."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls) -> Comm:
        """The initialised torch.distributed group of this process, else world 1."""
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

    def broadcast_object(self, obj):
        """Rank 0's (picklable) object, returned on every rank; other ranks' `obj` is ignored."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.world > 1:
            dist.barrier()


@contextlib.contextmanager
def process_group(device_name: str | None = None) -> Iterator[tuple[Comm, torch.device]]:
    """Join the group torchrun started for this process (nccl on CUDA, gloo on CPU); left on exit.

    Call it only under torchrun: the group is read from the environment torchrun sets (WORLD_SIZE, RANK,
    LOCAL_RANK, MASTER_ADDR).

    Args:
        device_name: "cpu", or "cuda" (None: cuda when available). Rank r uses cuda:LOCAL_RANK.

    Yields:
        (comm, device) of this rank.
    """
    use_cuda = torch.cuda.is_available() and (device_name or "cuda").startswith("cuda")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if use_cuda else "gloo", device_id=device if use_cuda else None)
    try:
        yield Comm.from_env(), device
    finally:
        dist.destroy_process_group()


@dataclass
class Checkpointing:
    """Where and how often an arm checkpoints; `until_step` stops it early (a job-length limit)."""

    path: Path
    every: int
    until_step: int | None = None


class StopTraining(Exception):
    """Raised when a checkpointed arm reaches `until_step`: the checkpoint is on disk, rerun to go on."""


def save_checkpoint(path: Path, payload: Callable[[], dict], comm: Comm) -> None:
    """Rank 0 writes payload() to `path` atomically (harness.atomic); every rank returns once it is written.

    Args:
        path: the checkpoint file (its folder is created if missing).
        payload: builds the state to save; called on rank 0 only.
        comm: the group; every rank holds the same state under DDP, so one copy is enough.
    """
    if comm.rank == 0:
        with atomic_path(path) as tmp:
            torch.save(payload(), tmp)
    comm.barrier()


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """A checkpoint written by save_checkpoint (tensors, numbers, strings, lists and dicts only).

    Args:
        path: the checkpoint file.
        device: where its tensors are loaded.
    """
    return torch.load(path, map_location=device, weights_only=True)
