"""One AdamW step vs one AdmIRE step (IRE over AdamW, K = 10, mask refresh amortised) on a small MLP.

The paper reports ≈10–12% wall-clock overhead per step at K = 10 on an A800 LLM run; here the model is
a CPU-sized MLP, so read the two means as a ratio, not as absolute numbers. Run: pytest benchmarks/.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from harness.optim import IRE
from harness.run.perf import interleaved_ratio

ROUNDS, WARMUP_ROUNDS, MASK_EVERY = 50, 10, 10  # multiples of K: each timed window holds 5 refreshes


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 64, generator=gen)  # (B, D) update batch
    y = torch.randint(0, 10, (128,), generator=gen)  # (B,)
    x_mask = torch.randn(128, 64, generator=gen)  # (B, D) mask batch, fixed as in the CIFAR code
    return model, x, y, x_mask


def _adamw(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1)


def _train_step(model, opt, x, y, x_mask) -> float:
    if isinstance(opt, IRE) and opt.should_refresh_mask():
        opt.refresh_mask(lambda: model(x_mask))
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()  # on CUDA this also synchronises inside the timed function


def test_bench_adamw_step(benchmark):
    model, x, y, x_mask = _setup()
    opt = _adamw(model)
    loss = benchmark.pedantic(_train_step, args=(model, opt, x, y, x_mask), rounds=ROUNDS,
                              iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert math.isfinite(loss)


def test_bench_admire_step(benchmark):
    model, x, y, x_mask = _setup()
    opt = IRE(_adamw(model), kappa=4.0, gamma=0.6, mask_every=MASK_EVERY)
    loss = benchmark.pedantic(_train_step, args=(model, opt, x, y, x_mask), rounds=ROUNDS,
                              iterations=1, warmup_rounds=WARMUP_ROUNDS)
    assert math.isfinite(loss)
    assert opt.extra_grad_evals == (ROUNDS + WARMUP_ROUNDS) // MASK_EVERY
    assert abs(opt.flat_fraction() - 0.6) <= 1 / sum(p.numel() for p in model.parameters())
    # the ratio timed interleaved: a block of MASK_EVERY steps of each (one refresh per block) per round
    base = _setup()[0]
    base_opt = _adamw(base)

    def block(m, o):
        return lambda: [_train_step(m, o, x, y, x_mask) for _ in range(MASK_EVERY)]

    benchmark.extra_info["over_adamw"] = interleaved_ratio(block(model, opt), block(base, base_opt),
                                                           ROUNDS // 5)
