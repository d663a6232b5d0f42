"""ire-llm-speedup and ire-overhead: speed-up arithmetic, schedule, accounting, and every tier's plumbing."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from harness.errors import ConfigError, DataError
from harness.experiments.llm import (
    Curve,
    SpeedupConfig,
    cost_speedup,
    first_step_reaching,
    speedup_arms,
    speedup_curve,
    steps_speedup,
)
from harness.experiments.llm_train import ArmConfig, ire_grad_evals, lr_at, run_arm
from harness.measurement import Measurement, RunContext
from harness.models.llama import Llama, count_parameters, preset
from harness.optim import IRE
from harness.registry import load_claims
from harness.runner import RunOptions, run_claims
from harness.store import ResultStore

CLAIMS = load_claims()
SPEEDUP, OVERHEAD = CLAIMS["ire-llm-speedup"], CLAIMS["ire-overhead"]


def linear(rate: float, horizon: int, every: int = 10, start: float = 5.0) -> Curve:
    steps = np.arange(0, horizon + 1, every, dtype=float)
    return Curve(steps, start - rate * steps)


def test_speedup_of_known_curves():
    ref = linear(0.01, 400)  # AdamW(2T): 5 -> 1 over 400 steps
    method = linear(0.02, 200)  # twice as fast: 5 -> 1 at step 200
    assert first_step_reaching(ref, 1.0) == 400 and first_step_reaching(ref, 4.95) == 10
    assert first_step_reaching(method, 0.5) is None
    p = steps_speedup(ref, method, target=1.0, horizon=200, eval_every=10, reference_steps=400)
    assert p.reached and p.speedup == pytest.approx(2.0) and p.method_steps == 200
    faster = Curve(method.steps, method.losses - 0.3)  # reaches 1.0 at the first evaluation with 5 - 0.02 t <= 1.3
    p = steps_speedup(ref, faster, 1.0, 200, 10, reference_steps=400)
    assert p.reached and p.method_steps == 190 and p.speedup == pytest.approx(400 / 190)
    nan_first = Curve(faster.steps, np.where(faster.steps == 190, np.nan, faster.losses))
    assert steps_speedup(ref, nan_first, 1.0, 200, 10, 400).method_steps == 200  # NaN never counts


def test_speedup_never_reached_is_finite_and_below_two():
    ref = linear(0.01, 400)
    slow = linear(0.01, 200)  # ends at 3.0 > target 1.0: AdamW(2T) passes 3.0 at step 200
    p = steps_speedup(ref, slow, 1.0, 200, 10, reference_steps=400)
    assert not p.reached and p.speedup == pytest.approx(200 / 200)  # min(200/200, 400/210)
    almost = Curve(slow.steps, np.linspace(5.0, 1.001, len(slow.steps)))  # misses by 0.001
    p = steps_speedup(ref, almost, 1.0, 200, 10, reference_steps=400)
    assert not p.reached and p.speedup == pytest.approx(400 / 210) and p.speedup < 2
    diverged = Curve(slow.steps, np.where(slow.steps > 0, np.inf, 5.0))
    assert steps_speedup(ref, diverged, 1.0, 200, 10, 400).speedup == 0.0
    with pytest.raises(ValueError, match="never reaches"):
        steps_speedup(ref, slow, 0.5, 200, 10)


def test_speedup_curve_over_targets():
    ref, method = linear(1.0, 400, start=400.0), linear(2.0, 200, start=400.0)  # integer losses: no ties
    curve = speedup_curve(ref, method, lo=0.0, hi=200.0, n=11, horizon=200, eval_every=10)
    assert curve.target_loss.tolist() == list(range(200, -1, -20))
    assert curve.speedup.tolist() == [2.0] * 11 and curve.reached.all()
    stalls = Curve(method.steps, np.maximum(method.losses, 100.0))  # stalls at 100 from step 150
    curve = speedup_curve(ref, stalls, 0.0, 200.0, 11, 200, 10)
    assert curve.target_loss[curve.reached == 1.0].tolist() == [200, 180, 160, 140, 120, 100]
    assert (curve.speedup[curve.reached == 1.0] == 2.0).all()
    # not reached: min(ref steps to 100 / 200, ref steps to target / 210) = min(1.5, ...)
    expected = [min(300 / 200, (400 - t) / 210) for t in (80, 60, 40, 20, 0)]
    assert curve.speedup[curve.reached == 0.0].tolist() == pytest.approx(expected)


def test_cost_speedup_counts_grad_evals():
    def arm(steps, grad_evals):
        return Measurement(scalars={}, curves={"val": pd.DataFrame({"step": steps, "grad_evals": grad_evals})})

    ref, ire = arm([0, 200, 400], [0, 200, 400]), arm([0, 100, 200], [0, 110, 220])  # +1 per 10 steps
    point = steps_speedup(linear(0.01, 400), linear(0.02, 200), 1.0, 200, 10, reference_steps=400)
    assert cost_speedup(point, ref, ire, "grad_evals") == pytest.approx(400 / 220)


def test_lr_schedule_warmup_then_cosine_to_peak_over_20():
    peak, W, T = 6e-4, 4, 104
    lrs = [lr_at(t, peak, W, T, 0.05) for t in range(T + 1)]
    assert lrs[:W] == pytest.approx([peak * (t + 1) / W for t in range(W)])
    assert lrs[W] == peak and lrs[T] == pytest.approx(peak / 20, rel=1e-12)
    assert lr_at(W + (T - W) // 2, peak, W, T, 0.05) == pytest.approx(peak * (0.05 + 0.95 / 2), rel=1e-12)
    assert all(a >= b for a, b in zip(lrs[W:], lrs[W + 1:]))
    assert lr_at(0, peak, 0, T, 0.05) == peak  # no warm-up: starts at the peak


def test_grad_eval_accounting_matches_the_optimizer_and_the_arm():
    model = torch.nn.Linear(4, 3)
    x = torch.randn(8, 4)
    opt = IRE(torch.optim.AdamW(model.parameters()), kappa=1.0, gamma=0.5, mask_every=4, warmup_steps=3)
    for _ in range(17):
        if opt.should_refresh_mask():
            opt.refresh_mask(lambda: model(x))
        opt.zero_grad()
        model(x).sum().backward()
        opt.step()
    assert ire_grad_evals(17, 3, 4, "fisher") == 17 + opt.extra_grad_evals == 21  # refreshes at 3, 7, 11, 15
    assert ire_grad_evals(17, 3, 4, "random") == ire_grad_evals(17, 3, 4, None) == 17
    assert ire_grad_evals(3, 3, 4, "fisher") == 3

    cfg = ArmConfig(max_bytes=300_000, seq_len=16, batch_size=2, steps=7, warmup_steps=2, eval_every=3,
                    val_windows=2, optimizer="ire", kappa=3.0, mask_every=2)
    m = run_arm(cfg, RunContext(seed=0, tier="smoke"))
    assert m.scalars["grad_evals"] == ire_grad_evals(7, 2, 2, "fisher") == 10  # refreshes at 2, 4, 6
    assert m.curves["val"].step.tolist() == [0, 3, 6, 7] and m.curves["val"].grad_evals.tolist() == [0, 4, 8, 10]
    assert m.scalars["tokens"] == 7 * 2 * 16 and math.isfinite(m.scalars["final_val_loss"])


def test_speedup_config_needs_equal_tuning_budgets():
    with pytest.raises(ConfigError, match="same tuning budget"):
        SpeedupConfig(kappas=(3.0, 4.0), lr_multipliers=(1.0,))
    with pytest.raises(ConfigError, match="start with 1.0"):
        SpeedupConfig(kappas=(3.0, 4.0), lr_multipliers=(2.0, 1.0))
    arms = speedup_arms(SpeedupConfig())
    assert arms["adamw_2T_x1"].steps == 2 * arms["adamw_T_x1"].steps
    assert arms["adamw_T_x2"].lr == 2 * arms["adamw_T_x1"].lr
    assert arms["ire_random_k3"].mask == "random" and arms["ire_random_k3"].kappa == arms["admire_k3"].kappa


def _finite(entry):
    assert entry["verdict"] != "error", entry["checks"]
    for row in entry["checks"] + entry["reported"]:
        assert all(math.isfinite(v) for v in row["estimate"]["per_seed"]), row


def test_smoke_tiers_run_through_the_runner(tmp_path):
    summary = run_claims([SPEEDUP, OVERHEAD], RunOptions(tier="smoke"), ResultStore(tmp_path))
    speed, overhead = summary["claims"]
    for entry in (speed, overhead):
        _finite(entry)
    assert speed["checks"][0]["metric"] == "speedup_paper_protocol"
    assert speed["measured_scale"]["T"] == 8 and speed["measured_scale"]["two_T"] == 16
    assert overhead["measured_scale"]["timed_blocks"] == 2


def write_fake_wikitext(folder):
    folder.mkdir(parents=True)
    article = " = Valkyria Chronicles = \n\n Senjō no Valkyria is a tactical role @-@ playing game . \n"
    (folder / "wiki.train.raw").write_text(article * 400, encoding="utf-8")
    (folder / "wiki.valid.raw").write_text(article.upper() * 40, encoding="utf-8")
    return folder


def test_gpu_tier_config_runs_two_steps_on_cpu(tmp_path):
    root = write_fake_wikitext(tmp_path / "wikitext-103-raw")
    # The gpu tier's config but for the tokenizer (no tiktoken here), the batch and the validation set
    # (a 32 x 256-token step of a 30M model takes tens of seconds on a CPU).
    overrides = {"data_root": str(root), "tokenizer": "bytes", "batch_size": "1", "val_windows": "2",
                 "cache_dir": str(tmp_path / "cache")}
    options = RunOptions(tier="gpu", seeds=1, max_steps=2, device="cpu", overrides=overrides)
    entry = run_claims([SPEEDUP], options, ResultStore(tmp_path / "results"))["claims"][0]
    _finite(entry)
    scale = entry["measured_scale"]
    assert scale["model"] == "small-30m" and scale["seq_len"] == 256 and scale["T"] == 2
    assert entry["config"]["steps"] == 2000 and entry["config"]["data"] == "wikitext103"


def test_gpu_and_paper_tiers_stop_early_without_data(tmp_path):
    for claim in (SPEEDUP, OVERHEAD):
        with pytest.raises(DataError, match="WikiText-103"):
            run_claims([claim], RunOptions(tier="gpu", overrides={"data_root": str(tmp_path)}),
                       ResultStore(tmp_path))


def test_paper_tier_config_and_in_process_refusal(tmp_path):
    cfg = SPEEDUP.tier("paper").config
    assert (cfg.model, cfg.batch_size, cfg.seq_len, cfg.steps, cfg.warmup_steps, cfg.lr) == \
        ("wikitext-60m", 240, 150, 50_000, 500, 6e-4)
    assert cfg.launch == "torchrun" and cfg.kappas[0] == 3.0 and cfg.gamma == 0.6
    with torch.device("meta"):
        assert count_parameters(Llama(preset(cfg.model))) > 50_000_000  # the paper's "60M" (untied)
    tiny = {"model": "tiny-1m", "data": "stdlib", "tokenizer": "bytes", "max_bytes": "300000", "seq_len": "16",
            "batch_size": "2", "steps": "4", "warmup_steps": "1", "eval_every": "2", "val_windows": "2"}
    with pytest.raises(ConfigError, match="torchrun --standalone --nproc_per_node=8 -m harness.experiments.ddp"):
        run_claims([SPEEDUP], RunOptions(tier="paper", seeds=1, overrides=tiny), ResultStore(tmp_path))


def test_overhead_gpu_tier_config_runs_capped_on_cpu(tmp_path):
    """ire-overhead's gpu config (small-30m, seq 256) for the minimum of 2 timed blocks, batch 1."""
    root = write_fake_wikitext(tmp_path / "wikitext-103-raw")
    overrides = {"data_root": str(root), "tokenizer": "bytes", "batch_size": "1", "warmup_blocks": "0",
                 "cache_dir": str(tmp_path / "cache")}
    options = RunOptions(tier="gpu", seeds=1, max_steps=2, device="cpu", overrides=overrides)
    entry = run_claims([OVERHEAD], options, ResultStore(tmp_path / "results"))["claims"][0]
    _finite(entry)
    assert entry["measured_scale"]["timed_blocks"] == 2
    assert entry["config"]["model"] == "small-30m" and entry["config"]["seq_len"] == 256
