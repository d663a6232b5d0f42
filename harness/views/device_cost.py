"""A tier meant for a GPU, planned on a machine without one: count the work, convert it with a stated model.

CPU seconds of a gpu tier say little about a GPU, so `harness plan` counts instead, around the same two
capped probes as the time estimate (harness.views.cost): the FLOPs of every dispatched aten op that
torch.utils.flop_counter.FlopCounterMode knows (matmuls, convolutions, attention; elementwise ops count
zero), split by dtype, and the number of dispatched (non-view) aten ops, each of which is at least one
kernel launch on a GPU. One seed's counts are extrapolated like its seconds (fixed + per step), then

    t = max(sum over dtypes of FLOPs_d / (utilization x peak_d),  ops x launch latency)

on a named device: the arithmetic at a fixed share of the datasheet's dense peak, or the launch floor
when the ops are too small to fill the GPU (the EoS nets). What the model leaves out: memory-bound
elementwise kernels, host-device syncs (`.item()` in a solver loop), data loading, and kernels that a GPU
fuses or splits differently from the CPU; it is a paper estimate, to be replaced by a measured run.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

# The gpu tier's budget: one run of every gpu-tier claim in 45 minutes on one H100 (the project's target
# for the tier; the README's "one GPU, under an hour" with room for the report and data loading).
GPU_BUDGET_S = 45 * 60.0


@dataclass(frozen=True)
class DeviceModel:
    """A device as the paper estimate sees it: dense peak FLOP/s per dtype, a utilization, a launch floor."""

    name: str
    peak_flops: dict[str, float]   # dtype bucket ("float64", "float32", "16-bit") -> dense FLOP/s
    utilization: float             # the share of the peak a claim's kernels reach
    launch_s: float                # seconds per dispatched op at least (host dispatch + kernel launch)
    sources: str

    def seconds(self, flops_by_dtype: dict[str, float], ops: float) -> float:
        """Estimated seconds for `flops_by_dtype` FLOPs and `ops` dispatched ops (the module's model).

        A dtype the model has no peak for (integers) is counted at the float32 peak."""
        arithmetic = sum(f / (self.utilization * self.peak_flops.get(d, self.peak_flops["float32"]))
                         for d, f in flops_by_dtype.items())
        return max(arithmetic, ops * self.launch_s)

    def describe(self) -> str:
        peaks = ", ".join(f"{d} {p / 1e12:g}" for d, p in self.peak_flops.items())
        return (f"{self.name}: t = max(FLOPs / ({self.utilization:g} x peak), ops x "
                f"{self.launch_s * 1e6:g} us); dense peak TFLOP/s {peaks} ({self.sources})")


H100_SXM = DeviceModel(
    name="NVIDIA H100 SXM",
    # NVIDIA H100 Tensor Core GPU datasheet, SXM column, dense (the datasheet's starred figures are with
    # 2:4 sparsity, twice these): FP64 Tensor Core 67 TFLOPS (cuBLAS DGEMM uses it), FP32 67 TFLOPS,
    # BF16/FP16 Tensor Core 989 TFLOPS. float32 matmuls are counted at FP32, not TF32 (494 dense): PyTorch
    # leaves TF32 matmuls off unless a config turns them on, so this is the slower, safer side.
    peak_flops={"float64": 67e12, "float32": 67e12, "16-bit": 989e12},
    # our choice, because large matmuls reach 60-80% of peak and the claims' small ones far less; half the
    # peak is the middle of that range, and the launch floor below takes over where kernels are tiny.
    utilization=0.5,
    # our choice, because one eager PyTorch op on CUDA costs about 5-10 us of host dispatch and kernel
    # launch; the low end keeps it a floor (a GPU cannot run the ops faster than it launches them).
    launch_s=5e-6,
    sources="NVIDIA H100 SXM datasheet, dense; utilization and launch latency our choice, see "
            "harness/views/device_cost.py",
)


def on_paper(tier: str, device: str | None) -> bool:
    """Whether `harness plan` counts work instead of timing it: meant for CUDA
    (harness.run.values.meant_for_cuda, as for run's default --jobs), and CUDA is not here."""
    from harness.run.values import meant_for_cuda

    return meant_for_cuda(tier, device) and not torch.cuda.is_available()


def _dtype_bucket(dtype: torch.dtype) -> str:
    if dtype == torch.float64:
        return "float64"
    if dtype in (torch.float16, torch.bfloat16):
        return "16-bit"
    return "float32"


class _OpCounter(TorchDispatchMode):
    """Counts the non-view aten ops dispatched under it, and their FLOPs by the dtype of the first tensor
    argument, with FlopCounterMode's own formulas (so the dtype shares add up to its total)."""

    def __init__(self, formulas: dict) -> None:
        super().__init__()
        self.formulas = formulas
        self.ops = 0
        self.flops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if not getattr(func, "is_view", False):
            self.ops += 1
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            bucket = _dtype_bucket(first.dtype) if first is not None else "float32"
            self.flops[bucket] += int(formula(*args, **kwargs, out_val=out))
        return out


@dataclass
class WorkCount:
    """What ran under `count_work`: FlopCounterMode's total, the same FLOPs by dtype, dispatched ops."""

    flops: int = 0
    flops_by_dtype: dict[str, int] | None = None
    ops: int = 0


@contextlib.contextmanager
def count_work():
    """Count the FLOPs (torch.utils.flop_counter.FlopCounterMode) and dispatched aten ops in the block.

    Yields a WorkCount, filled in when the block exits. Ops that FlopCounterMode decomposes are counted as
    the ops they decompose into (what would launch)."""
    work = WorkCount()
    flop_mode = FlopCounterMode(display=False)
    counter = _OpCounter(flop_mode.flop_registry)
    with counter, flop_mode:  # the op counter below: it sees what FlopCounterMode runs
        yield work
    work.flops = int(flop_mode.get_total_flops())
    work.flops_by_dtype = dict(counter.flops)
    work.ops = counter.ops
