"""Curvature probe costs on the EoS claims' own net, as multiples of a training gradient in the same run.

Model: the eos-scale-invariant cpu tier's net (ScaleInvariantMLP 64 -> 64 -> 64, BatchNorm without
affine, eps 0, fixed head; 8,192 trainable parameters, float64) on its 1,000 digits, cross-entropy,
bn_mode="full-batch". "gradient" is what one training step computes (loss and autograd.grad on the
model). λ_max is solved at tol 1e-3 (relative residual, as the claim measures it), building the
operator each time as the claim does, at 12 measurement points spread over a recorded trajectory
(the claim's GD, lr 0.1, WD 5e-3, seed 0, measured every 49 steps to step 3969). A warm round at a
point starts from the eigenvector the claim solved at its previous measurement; a cold round at the
same point (paired) from a random vector. Every round also checks its λ_max against a tight reference at that point, and
test_bench_correctness checks HVPs and λ_max against a dense Hessian of a small twin of the net.
Read the times as ratios (`harness perf`), not as absolute numbers.
"""

from __future__ import annotations

import math
import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from harness.curvature import HessianOperator, hutchinson_trace, top_eigenvalues
from harness.curvature.reference import dense_hessian
from harness.data.datasets import load_dataset
from harness.models.factory import build_classifier

ROUNDS, WARMUP_ROUNDS = 20, 3
TOL = 1e-3
LR, WD, EVERY, MEASUREMENTS = 0.1, 5e-3, 49, 81  # the claim's cpu tier: a measurement every 49 steps
PAIRS = 12  # timed points, spread over the whole trajectory (before and after the EoS onset, ~step 1911)

# torch's first forward-mode AD call scripts its jvp decompositions (a torch-internal warning).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _net(n_train: int = 1000, widths: tuple[int, ...] = (64, 64)):
    split = load_dataset("digits", n_train=n_train, n_test=797, dtype=torch.float64)
    model = build_classifier("si_mlp", split, widths=widths, activation="relu", bn_eps=0.0, seed=0)
    return model.to(torch.float64), split.x_train, split.y_train


@pytest.fixture(scope="module")
def trajectory():
    """The net, its data, and for PAIRS measurement points of the claim's GD (seed 0): the point,
    the warm start the claim would have there (its tol-1e-3 eigenvector at the previous measurement,
    49 steps earlier) and a tight ARPACK reference (independent of the Lanczos under test)."""
    model, x, y = _net()
    params = list(model.parameters())
    targets = {round(1 + j * (MEASUREMENTS - 1) / (PAIRS - 1)) for j in range(PAIRS)}  # measurement indices
    snaps = {}
    for step in range(EVERY * MEASUREMENTS + 1):
        if step % EVERY == 0 and (step // EVERY in targets or step // EVERY + 1 in targets):
            snaps[step // EVERY] = {n: p.detach().clone() for n, p in model.named_parameters()}
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p.mul_(1 - LR * WD).sub_(LR * g)
    pairs = []
    for m in sorted(targets):
        v0 = top_eigenvalues(_op(model, x, y, snaps[m - 1]), tol=TOL).eigenvectors
        ref = top_eigenvalues(_op(model, x, y, snaps[m]), tol=1e-10, method="arpack")
        pairs.append((m * EVERY, snaps[m], v0, ref))
    return model, x, y, pairs


def _op(model, x, y, point=None) -> HessianOperator:
    return HessianOperator(model, F.cross_entropy, [(x, y)], "full-batch", point=point)


def _min_seconds(fn, repeats: int = ROUNDS) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_bench_gradient(benchmark, trajectory):
    model, x, y, _ = trajectory
    params = list(model.parameters())
    grads = benchmark.pedantic(lambda: torch.autograd.grad(F.cross_entropy(model(x), y), params),
                               rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    g = torch.cat([t.reshape(-1) for t in grads])
    assert torch.isfinite(g).all() and g.norm() > 0
    torch.testing.assert_close(g, _op(model, x, y).gradient(), rtol=0, atol=1e-12)


def test_bench_hvp(benchmark, trajectory):
    model, x, y, pairs = trajectory
    _, point, _, ref = pairs[-1]
    op = _op(model, x, y, point)
    v = ref.eigenvectors[:, 0]
    hv = benchmark.pedantic(lambda: op @ v, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    # H v = λ v for the reference eigenvector: the HVP checked against the independent solve
    assert (hv - ref.eigenvalues[0] * v).norm() <= 1e-8 * ref.eigenvalues[0]
    if benchmark.stats is not None:  # None under --benchmark-disable
        params = list(model.parameters())
        gradient_min = _min_seconds(lambda: torch.autograd.grad(F.cross_entropy(model(x), y), params))
        benchmark.extra_info["gradient_min_s"] = gradient_min
        benchmark.extra_info["hvp_over_gradient_min"] = benchmark.stats.stats.min / gradient_min


def test_bench_trace_probe(benchmark, trajectory):
    """One Hutchinson probe (Rademacher draw, one HVP, one dot product) on a prebuilt operator."""
    model, x, y, pairs = trajectory
    op = _op(model, x, y, pairs[-1][1])
    gen = torch.Generator().manual_seed(1)
    tr = benchmark.pedantic(lambda: hutchinson_trace(op, 1, gen), rounds=ROUNDS, iterations=1,
                            warmup_rounds=WARMUP_ROUNDS)
    assert math.isfinite(tr.estimate) and tr.matvecs == 1


@pytest.mark.parametrize("start", ["cold", "warm"])
def test_bench_lambda_max(benchmark, trajectory, start):
    """One measurement as the claim takes it (operator built, λ_max to tol 1e-3) per round, at the
    PAIRS points in turn; warm from the previous measurement's eigenvector, cold from a random start."""
    model, x, y, pairs = trajectory
    state = {"i": 0, "results": []}

    def setup():
        state["i"] += 1
        return (state["i"] % PAIRS,), {}

    def measure(i: int):
        _, point, v0, _ = pairs[i]
        res = top_eigenvalues(_op(model, x, y, point), tol=TOL, v0=v0 if start == "warm" else None)
        state["results"].append((i, res))
        return res

    benchmark.pedantic(measure, setup=setup, rounds=PAIRS, iterations=1, warmup_rounds=1)
    errors, onset = {}, 1911  # the recorded EoS onset of this seed
    for i, res in state["results"]:
        lam, ref = res.eigenvalues[0], pairs[i][3].eigenvalues[0]
        assert res.residuals[0] <= TOL * lam
        errors[i] = abs(lam - ref) / ref
    assert max(errors.values()) <= 1e-3  # within 0.1% of the reference at every point
    hvps = {i: r.matvecs for i, r in state["results"]}
    benchmark.extra_info["hvps_median"] = statistics.median(hvps.values())
    benchmark.extra_info["hvps_median_before_onset"] = statistics.median(
        h for i, h in hvps.items() if pairs[i][0] < onset)
    benchmark.extra_info["hvps_median_after_onset"] = statistics.median(
        h for i, h in hvps.items() if pairs[i][0] >= onset)
    benchmark.extra_info["hvps_max"] = max(hvps.values())
    benchmark.extra_info["max_rel_error"] = max(errors.values())
    benchmark.extra_info["max_rel_residual"] = max(r.residuals[0] / r.eigenvalues[0] for _, r in state["results"])


def test_bench_correctness(benchmark):
    """HVPs and λ_max (cold and warm, tol 1e-3) against a dense float64 Hessian of a 64-8-8 twin of
    the net (a benchmark, timing the cold solve, so that `--benchmark-only` runs it too)."""
    model, x, y = _net(n_train=300, widths=(8, 8))  # N = 576
    op = _op(model, x, y)
    H = dense_hessian(model, F.cross_entropy, [(x, y)], "full-batch")
    V = torch.randn(op.shape[0], 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(op @ V, H @ V, rtol=0, atol=1e-9 * H.abs().max().item())
    top = torch.linalg.eigvalsh(H)[-1].item()
    cold = benchmark.pedantic(lambda: top_eigenvalues(op, tol=TOL), rounds=5, iterations=1)
    warm = top_eigenvalues(op, tol=TOL, v0=cold.eigenvectors + 1e-2 * V[:, :1])
    for res in (cold, warm):
        assert abs(res.eigenvalues[0] - top) <= 1e-3 * top
        v = res.eigenvectors[:, 0]
        assert (H @ v - res.eigenvalues[0] * v).norm().item() <= TOL * res.eigenvalues[0] * (1 + 1e-6)
    assert warm.matvecs < cold.matvecs
