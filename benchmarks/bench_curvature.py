"""Curvature probe costs on the EoS claims' net as they are today, in training gradients timed alongside.

The net, data, optimizer and measurement grid come from the claim file (claims.eos_scale_invariant, cpu
tier: tanh BN MLP 64-64, 1000 digits, float64, GD lr 0.1 wd 2e-2, a measurement every 25 steps), so the
benchmark follows the claim when it changes. Every ratio is timed interleaved in this process with the
thread's CPU time (harness.run.perf.interleaved_ratio): numerator and gradient back to back in each round.
"gradient" is what one training step computes (loss and autograd.grad on the model).

λ_max rows: one measurement as the claim takes it (operator built, λ_max to tol 1e-3) at PAIRS points of the
claim's seed-0 trajectory in turn; warm from the eigenvector of the previous measurement (25 steps earlier),
cold from a random vector. "-fast" rows: the opt-in path (value stop, float32 copy of the operator). Each row
asserts its λ_max within 0.1% of a tight reference at every point and reports HVPs against the oracle (the
fewest HVPs from the same start whose Ritz value is within 0.1%); test_bench_correctness checks HVPs and
λ_max against a dense Hessian of a small twin of the net. Warm rows also report the start's overlap
|v0 . v1| with the new top eigenvector after the EoS onset (median 0.81 over these points): there the
sharpness oscillates and λ_1 and λ_2 can swap within the 25 steps between measurements, so some warm starts
are little better than cold ones.
"""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from claim_nets import claim_net, claim_trajectory, measurement_points

from claims.eos_scale_invariant import CPU
from harness.claim.config import derive
from harness.curvature import hutchinson_trace, top_eigenvalues
from harness.curvature.krylov import lanczos
from harness.curvature.reference import dense_hessian
from harness.run.perf import interleaved_ratio

ROUNDS, WARMUP_ROUNDS = 20, 3
BLOCK = 5  # operations per timed block of an interleaved round (one 3 ms call is at the mercy of a burst)
SWEEPS = 5  # interleaved rounds of the λ_max rows, each a measurement at every point
TOL = CPU.lanczos_tol  # the claim's tolerance (1e-3)
ACCURACY = 1e-3  # every λ_max row must be within 0.1% of the reference
PAIRS = 12  # points spread over the whole trajectory (before and after the EoS onset)
FAST = {"stop": "value", "dtype": torch.float32}

# torch's first forward-mode AD call scripts its jvp decompositions (a torch-internal warning).
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _oracle(op, x0: torch.Tensor, ref: float) -> int:
    """Fewest HVPs from x0 whose top Ritz value is within ACCURACY of ref (Ritz values grow with the
    Krylov space, so a bisection over the budget finds it)."""
    lo, hi = 1, 60
    while lo < hi:
        m = (lo + hi) // 2
        out = lanczos(op, 1, 0.0, x0 / x0.norm(), max_basis=60, max_matvecs=m,
                      generator=torch.Generator().manual_seed(1))
        lo, hi = (lo, m) if abs(float(out.values[0]) - ref) <= ACCURACY * ref else (m + 1, hi)
    return lo


@pytest.fixture(scope="module")
def trajectory():
    """The claim's net (at its last point), and per point: parameters, warm start (the claim's tol-1e-3
    eigenvector at the previous measurement), a tight reference and the cold / warm oracles."""
    net = claim_net(CPU)
    points = measurement_points(CPU, PAIRS)
    snaps = claim_trajectory(net, points)
    pairs = []
    for m in points:
        v0 = top_eigenvalues(net.operator(snaps[m - 1]), tol=TOL).eigenvectors[:, 0]
        op = net.operator(snaps[m])
        ref = top_eigenvalues(op, tol=1e-10, method="arpack")
        cold = torch.randn(op.shape[0], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        oracle = {"cold": _oracle(op, cold, ref.eigenvalues[0]), "warm": _oracle(op, v0, ref.eigenvalues[0])}
        overlap = abs(float(v0 @ ref.eigenvectors[:, 0]))
        pairs.append({"step": m * CPU.measure_every, "point": snaps[m], "v0": v0, "ref": ref,
                      "oracle": oracle, "overlap": overlap})
    return net, pairs


def test_bench_gradient(benchmark, trajectory):
    net, _ = trajectory
    grads = benchmark.pedantic(net.gradient, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    g = torch.cat([t.reshape(-1) for t in grads])
    assert torch.isfinite(g).all() and g.norm() > 0
    torch.testing.assert_close(g, net.operator().gradient(), rtol=0, atol=1e-12)


def test_bench_hvp(benchmark, trajectory):
    net, pairs = trajectory
    ref = pairs[-1]["ref"]
    op = net.operator(pairs[-1]["point"])
    v = ref.eigenvectors[:, 0]
    hv = benchmark.pedantic(lambda: op @ v, rounds=ROUNDS, iterations=1, warmup_rounds=WARMUP_ROUNDS)
    # H v = λ v for the reference eigenvector: the HVP checked against the independent solve
    assert (hv - ref.eigenvalues[0] * v).norm() <= 1e-8 * ref.eigenvalues[0]
    benchmark.extra_info["over_gradient"] = interleaved_ratio(
        lambda: [op @ v for _ in range(BLOCK)], lambda: [net.gradient() for _ in range(BLOCK)], ROUNDS)


def test_bench_trace_probe(benchmark, trajectory):
    """One Hutchinson probe (Rademacher draw, one HVP, one dot product) on a prebuilt operator."""
    net, pairs = trajectory
    op = net.operator(pairs[-1]["point"])
    gen = torch.Generator().manual_seed(1)
    tr = benchmark.pedantic(lambda: hutchinson_trace(op, 1, gen), rounds=ROUNDS, iterations=1,
                            warmup_rounds=WARMUP_ROUNDS)
    assert math.isfinite(tr.estimate) and tr.matvecs == 1
    v = pairs[-1]["ref"].eigenvectors[:, 0]
    benchmark.extra_info["over_hvp"] = interleaved_ratio(
        lambda: [hutchinson_trace(op, 1, gen) for _ in range(BLOCK)], lambda: [op @ v for _ in range(BLOCK)], ROUNDS)


@pytest.mark.parametrize("case", ["cold", "warm", "cold-fast", "warm-fast"])
def test_bench_lambda_max(benchmark, trajectory, case):
    """One measurement per call (operator built, λ_max to tol 1e-3), at the PAIRS points in turn."""
    net, pairs = trajectory
    start, fast = case.split("-")[0], case.endswith("-fast")
    results = []

    def measure(i: int):
        p = pairs[i % PAIRS]
        op = net.operator(p["point"], dtype=FAST["dtype"] if fast else None)
        res = top_eigenvalues(op, tol=TOL, v0=p["v0"] if start == "warm" else None,
                              stop=FAST["stop"] if fast else "residual")
        results.append((i % PAIRS, res))
        return res

    counter = iter(range(10**6))
    benchmark.pedantic(lambda: measure(next(counter)), rounds=PAIRS, iterations=1, warmup_rounds=0)
    # each round: one measurement at every point against as many gradients (rounds alike, so the median of
    # the per-round ratios is the cost of a measurement averaged over the trajectory)
    benchmark.extra_info["over_gradient"] = interleaved_ratio(
        lambda: [measure(i) for i in range(PAIRS)], lambda: [net.gradient() for _ in range(PAIRS)], SWEEPS,
        warmup=0)
    errors, hvps, over_oracle = [], [], []
    for i, res in results:
        lam, ref = res.eigenvalues[0], pairs[i]["ref"].eigenvalues[0]
        assert res.error_bounds[0] <= TOL * lam * (1 + 1e-6)
        errors.append(abs(lam - ref) / ref)
        hvps.append(res.matvecs)
        over_oracle.append(res.matvecs / pairs[i]["oracle"][start])
    assert max(errors) <= ACCURACY  # within 0.1% of the reference at every point
    onset = next((p["step"] for p in pairs if CPU.optim.lr * p["ref"].eigenvalues[0] >= CPU.onset_threshold),
                 math.inf)
    benchmark.extra_info.update({
        "hvps_median": statistics.median(hvps), "hvps_max": max(hvps),
        "oracle_hvps_median": statistics.median(p["oracle"][start] for p in pairs),
        "hvps_over_oracle_median": statistics.median(over_oracle),
        "hvps_median_after_onset": statistics.median(
            [r.matvecs for i, r in results if pairs[i]["step"] >= onset] or [math.nan]),
        "max_rel_error": max(errors),
        **({"start_overlap_median_after_onset": statistics.median(
            [p["overlap"] for p in pairs if p["step"] >= onset] or [math.nan])} if start == "warm" else {}),
        "max_rel_residual": max(r.residuals[0] / r.eigenvalues[0] for _, r in results),
    })


def test_bench_correctness(benchmark):
    """HVPs and λ_max (cold and warm, both paths) against a dense float64 Hessian of a 64-8-8 twin of the
    claim's net (a benchmark, timing the cold solve, so that `--benchmark-only` runs it too)."""
    net = claim_net(derive(CPU, n_train=300, widths=(8, 8)))  # N = 576
    op = net.operator()
    H = dense_hessian(net.model, net.loss_fn, [(net.x, net.y)], "full-batch")
    V = torch.randn(op.shape[0], 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(op @ V, H @ V, rtol=0, atol=1e-9 * H.abs().max().item())
    top = torch.linalg.eigvalsh(H)[-1].item()
    cold = benchmark.pedantic(lambda: top_eigenvalues(op, tol=TOL), rounds=5, iterations=1)
    start = cold.eigenvectors + 1e-2 * V[:, :1]
    warm = top_eigenvalues(op, tol=TOL, v0=start)
    fast = [top_eigenvalues(net.operator(dtype=FAST["dtype"]), tol=TOL, v0=v0, stop=FAST["stop"])
            for v0 in (None, start)]
    for res in (cold, warm, *fast):
        assert abs(res.eigenvalues[0] - top) <= ACCURACY * top
    for res in (cold, warm):
        v = res.eigenvectors[:, 0]
        assert (H @ v - res.eigenvalues[0] * v).norm().item() <= TOL * res.eigenvalues[0] * (1 + 1e-6)
    assert warm.matvecs < cold.matvecs
