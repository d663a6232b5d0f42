"""The LLM claims' recipe against the authors' code: data-parallel mask scores, weight decay on every
parameter, validation windows spread over the split, and the overhead claim's CPU-time clock."""
import time

import numpy as np
import pytest
import torch

from harness.data.token_streams import TokenStream
from harness.distributed import Comm
from harness.experiments.llm_mask import refresh_mask
from harness.experiments.llm_overhead import cpu_clock
from harness.experiments.llm_train import PAPER_ADAMW, build_optimizer
from harness.optim import IRE, flat_mask_from_scores, sampled_fisher_scores
from harness.optim.mask import sampled_label_gradients


class TwoRanks(Comm):
    """Rank 0 of a fake 2-process group: mean_ averages each tensor with the other rank's given values."""

    def __init__(self, other: list[torch.Tensor]):
        super().__init__(rank=0, world=2)
        self.other, self.calls = other, 0

    def mean_(self, tensors):
        for t, o in zip(tensors, self.other, strict=True):
            t.add_(o).div_(2)
        self.calls += 1

    def broadcast_(self, tensors):  # rank 0's values are already everyone's
        pass


def _model_and_shards():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 5))
    x = torch.randn(2, 16, 6)  # two ranks' shards of one mask batch
    return model, x[0], x[1]


def test_ddp_mask_squares_the_rank_averaged_gradient():
    """Issue 8 item 11: under DDP the authors square the all-reduced gradient (p.grad after backward);
    averaging each rank's square instead makes the mask ~world x less noisy."""
    model, x0, x1 = _model_and_shards()
    params = list(model.parameters())
    seed, gamma = 7, 0.5
    g1 = sampled_label_gradients(lambda: model(x1), params, torch.Generator().manual_seed(seed + 1))
    g0 = sampled_label_gradients(lambda: model(x0), params, torch.Generator().manual_seed(seed))
    expected = flat_mask_from_scores([((a + b) / 2).square() for a, b in zip(g0, g1)], gamma)
    of_squares = flat_mask_from_scores([(a.square() + b.square()) / 2 for a, b in zip(g0, g1)], gamma)
    assert any(not torch.equal(e, o) for e, o in zip(expected, of_squares))  # the test can tell them apart

    opt = IRE(torch.optim.AdamW(params), kappa=1.0, gamma=gamma, seed=seed)
    comm = TwoRanks(g1)
    refresh_mask(opt, lambda: model(x0), comm)
    assert comm.calls == 1 and opt.extra_grad_evals == 1
    assert all(torch.equal(m, e) for m, e in zip(opt.mask, expected))
    assert all(p.grad is None for p in params)  # the update's gradients are not touched


def test_fisher_scores_are_the_squared_sampled_label_gradients():
    model, x0, _ = _model_and_shards()
    params = list(model.parameters())
    g = sampled_label_gradients(lambda: model(x0), params, torch.Generator().manual_seed(3))
    h = sampled_fisher_scores(lambda: model(x0), params, torch.Generator().manual_seed(3))
    assert all(torch.equal(a.square(), b) for a, b in zip(g, h))
    assert all(a.dtype == torch.float32 and a.shape == p.shape for a, p in zip(g, params))


def test_weight_decay_on_every_parameter_as_the_authors():
    """Issue 8 item 10: the authors pass model.parameters() to AdamW with weight_decay 0.1 (gains too)."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    for spec in (PAPER_ADAMW, PAPER_ADAMW.as_kind("adamw_ire", kappa=3.0, gamma=0.6)):
        assert spec.weight_decay == 0.1
        opt = build_optimizer(spec, model, seed=0)
        decayed = [p for g in opt.param_groups if g["weight_decay"] == 0.1 for p in g["params"]]
        assert len(decayed) == len(list(model.parameters())) == 4


def test_spread_validation_windows_cover_the_whole_split(tmp_path):
    """Issue 8 item 10: fixed windows spread over the split, not its first 2 kB."""
    path = tmp_path / "v.bin"
    np.arange(1001, dtype="<u2").tofile(path)
    stream = TokenStream(path)
    batches = list(stream.spread_batches(batch_size=3, seq_len=10, n_windows=8))
    assert [x.shape[0] for x, _ in batches] == [3, 3, 2]
    starts = torch.cat([x[:, 0] for x, _ in batches])
    assert starts.tolist() == [0, 120, 250, 370, 500, 620, 750, 870]  # of 100 tiled windows, every 12.5th
    assert (starts.diff() >= 10).all() and starts[-1] + 10 > 1000 * 7 / 8  # no overlap; the last eighth sampled
    assert torch.equal(torch.cat([y for _, y in batches]), torch.cat([x for x, _ in batches]) + 1)
    again = torch.cat([x for x, _ in stream.spread_batches(3, 10, 8)])
    assert torch.equal(again, torch.cat([x for x, _ in batches]))  # deterministic
    every = torch.cat([x for x, _ in stream.spread_batches(4, 10, 500)])
    assert torch.equal(every, torch.cat([x for x, _ in stream.sequential_batches(4, 10)]))  # n >= tiled: all
    with pytest.raises(ValueError, match="n_windows must be a positive int"):
        next(stream.spread_batches(2, 10, 0))


def test_overhead_cpu_clock_does_not_count_time_the_thread_is_off_the_core():
    """Issue 9: the checked clock on CPU is CPU time, so waiting (as when another process has the core)
    adds nothing, while work does."""
    name, clock = cpu_clock()
    assert name == "thread CPU time"  # the tests run torch single-threaded
    t0, w0 = clock(), time.perf_counter()
    time.sleep(0.2)
    slept, wall = clock() - t0, time.perf_counter() - w0
    assert wall >= 0.2 and slept < 0.05
    t0 = clock()
    a = torch.randn(200, 200)
    for _ in range(50):
        a = torch.tanh(a @ a) / 10
    assert clock() - t0 > 0
