"""One AdamW step vs one AdmIRE step (IRE over AdamW, Fisher mask, K = 10) on the tiny-1m Llama.

The same measurement as the ire-overhead claim (claims/ire_overhead.py, cpu tier): 8 x 64 tokens per step,
the paper's AdamW recipe, kappa 3, gamma 0.6. Each benchmark round is one block of K steps, so every
round holds exactly one mask refresh; read the two means as a ratio (the paper: 0.185 / 0.165 s ≈ 1.12
on one A800). Run: pytest benchmarks/bench_ire_step.py --benchmark-only.
"""
from __future__ import annotations

import math

import pytest
import torch

from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.distributed import Comm
from harness.experiments.llm_overhead import TimedArm
from harness.experiments.llm_train import load_text_data
from harness.run.perf import interleaved_ratio

ROUNDS, WARMUP_ROUNDS = 10, 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from claims.ire_overhead import CPU

    cfg = derive(CPU, {"base.cache_dir": str(tmp_path_factory.mktemp("tokens"))})
    return cfg, load_text_data(cfg.base, Comm())


@pytest.mark.parametrize("optimizer", ["adamw", "ire"])
def test_bench_llm_step_block(benchmark, setup, optimizer):
    cfg, data = setup
    arm = TimedArm(cfg, optimizer, data, RunContext(seed=0, tier="cpu", device=torch.device("cpu")))
    seconds = benchmark.pedantic(arm.block, args=(cfg.mask_every,), rounds=ROUNDS, iterations=1,
                                 warmup_rounds=WARMUP_ROUNDS)
    assert seconds > 0 and math.isfinite(arm.loss) and arm.loss < 5.6  # below ln(256): it trains
    if optimizer == "ire":
        assert arm.opt.extra_grad_evals == ROUNDS + WARMUP_ROUNDS  # one refresh per block of K steps
        base = TimedArm(cfg, "adamw", data, RunContext(seed=0, tier="cpu", device=torch.device("cpu")))
        benchmark.extra_info["over_adamw"] = interleaved_ratio(lambda: arm.block(cfg.mask_every),
                                                               lambda: base.block(cfg.mask_every), ROUNDS)
