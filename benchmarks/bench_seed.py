"""One EoS seed's CPU time in the fast setting over today's, timed interleaved in this process.

Both runs are the shared run behind eos-scale-invariant, sharpness-reduction, normalization-reduces-sharpness
and eos-intrinsic-time-collapse, built from the claim file (claims.eos_scale_invariant, cpu tier: tanh BN MLP
64-64, 1000 digits, GD lr 0.1 wd 2e-2, a measurement every 25 steps) through the experiment itself
(gd_sharpness_trajectory), capped at STEPS steps: training and curvature in the claim's own proportion, up
to just before the EoS onset (tau_onset 0.4-0.6, i.e. steps 200-300). "today" is the config as it was
before the dtype comparison (float64 training and curvature, residual stop), "fast" is float32 training
and curvature with the Lanczos value stop (tools/dtype_compare.py's "fast"), "claim" the claim file's
cpu config as it is (since v5: float64 training, lambda_max on a float32 copy with the value stop, the
comparison's "curv32"). Each round times one capped seed of each, alternating which goes first, with the
thread's CPU time (harness.run.perf.interleaved_ratio).

Correctness: before the onset GD does not amplify rounding, so each run's lambda_max must agree with
today's at every measurement to the solver's tolerance plus float32 drift (AGREE), and today's last
lambda_max must match a dense float64 Hessian's top eigenvalue at the same iterate (the solver's 1e-3).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from claims.eos_scale_invariant import CPU
from harness.claim.config import derive
from harness.claim.measurement import RunContext
from harness.experiments.eos import gd_sharpness_trajectory
from harness.run.perf import interleaved_ratio

STEPS = 200  # before the onset of every seed seen (tau 0.4 = step 200 at lr*wd 2e-3)
ROUNDS = 5
AGREE = 3e-3  # relative: 1e-3 from each solve's stop, the rest float32 drift over 200 steps
TODAY = derive(CPU, dtype="float64", curvature_dtype="model", lanczos_stop="residual")
FAST = derive(CPU, dtype="float32", curvature_dtype="model", lanczos_stop="value")
SETTINGS = {"today": TODAY, "fast": FAST, "claim": CPU}  # claim: the cpu tier as the claim file has it now

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def _seed(cfg):
    return gd_sharpness_trajectory(cfg, RunContext(seed=0, tier="cpu", max_steps=STEPS))


@pytest.mark.parametrize("setting", ["today", "fast", "claim"])
def test_bench_eos_seed(benchmark, setting):
    cfg = SETTINGS[setting]
    m = benchmark.pedantic(_seed, args=(cfg,), rounds=1, iterations=1, warmup_rounds=0)
    lam = m.curves["trajectory"]["lambda_max"].to_numpy()
    assert len(lam) == STEPS // CPU.measure_every + 1 and (lam > 0).all()
    if setting == "today":
        return
    ref = _seed(TODAY).curves["trajectory"]["lambda_max"].to_numpy()
    assert abs(lam / ref - 1).max() <= AGREE
    benchmark.extra_info["over_today"] = interleaved_ratio(lambda: _seed(cfg), lambda: _seed(TODAY), ROUNDS)
    benchmark.extra_info["max_rel_lambda_diff"] = float(abs(lam / ref - 1).max())


def test_bench_eos_seed_correctness(benchmark):
    """today's lambda_max at the capped run's last iterate against a dense float64 Hessian of the same net
    (the net rebuilt and trained the same STEPS steps; timed so that --benchmark-only runs it)."""
    from claim_nets import claim_net

    from harness.curvature.reference import dense_hessian

    small = derive(TODAY, n_train=300, widths=(8, 8))
    m = benchmark.pedantic(_seed, args=(small,), rounds=1, iterations=1)
    net = claim_net(small)
    opt = small.optim.build(net.params, seed=0)
    for _ in range(STEPS):
        opt.zero_grad()
        net.loss_fn(net.model(net.x), net.y).backward()
        opt.step()
    H = dense_hessian(net.model, F.cross_entropy, [(net.x, net.y)], "full-batch")
    top = torch.linalg.eigvalsh(H)[-1].item()
    assert m.curves["trajectory"]["lambda_max"].iloc[-1] == pytest.approx(top, rel=1e-3)
