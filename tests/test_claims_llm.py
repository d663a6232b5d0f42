"""ire-llm-speedup and ire-overhead: speed-up arithmetic, schedule, accounting, and every tier's plumbing."""
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from harness.claim.config import apply_overrides
from harness.claim.expect import Effect
from harness.claim.measurement import Measurement, RunContext
from harness.claim.verdict import FAILS, HOLDS, OUT_OF_REGIME, combine, decide, estimate
from harness.errors import ConfigError, DataError
from harness.experiments.llm import (
    Curve,
    SpeedupConfig,
    cost_speedup,
    first_step_reaching,
    regime_and_loss_rows,
    speedup_arms,
    speedup_curve,
    steps_speedup,
)
from harness.experiments.llm_overhead import TimedArm
from harness.experiments.llm_train import (
    PAPER_ADAMW,
    PretrainSetup,
    ire_grad_evals,
    matmul_precision,
    precision_name,
    run_arm,
)
from harness.models.llama import Llama, count_parameters, preset
from harness.optim import IRE
from harness.run.loader import load_claims
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

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


def test_speedup_never_reached_scores_zero_with_its_bound_apart():
    ref = linear(0.01, 400)
    slow = linear(0.01, 200)  # ends at 3.0 > target 1.0
    p = steps_speedup(ref, slow, 1.0, 200, 10, reference_steps=400)
    assert not p.reached and p.speedup == 0.0 and p.upper == pytest.approx(400 / 210)
    almost = Curve(slow.steps, np.linspace(5.0, 1.001, len(slow.steps)))  # misses by 0.001
    p = steps_speedup(ref, almost, 1.0, 200, 10, reference_steps=400)
    assert not p.reached and p.speedup == 0.0 and p.upper == pytest.approx(400 / 210) and p.upper < 2
    reached = steps_speedup(ref, linear(0.02, 200), 1.0, 200, 10, reference_steps=400)
    assert reached.upper == reached.speedup == pytest.approx(2.0)
    diverged = Curve(slow.steps, np.where(slow.steps > 0, np.inf, 5.0))
    p = steps_speedup(ref, diverged, 1.0, 200, 10, 400)
    assert p.speedup == p.upper == 0.0
    with pytest.raises(ValueError, match="never reaches"):
        steps_speedup(ref, slow, 0.5, 200, 10)


@pytest.mark.parametrize("tier", ["cpu", "gpu", "paper"])
def test_speedup_check_fails_when_no_seed_reaches_and_never_holds_with_one_miss(tier):
    """Issue 8 item 7: an unreached seed used to score min(2T/(T+E), ...), e.g. 1.95 at the gpu tier,
    inside the accepted >= 1.8; now it scores 0 and cannot count towards 'holds'."""
    check = SPEEDUP.checks[0]
    assert check.metric == "speedup_paper_protocol"
    region = check.expect.region(tier)
    cfg = SPEEDUP.tier(tier).config
    T, E = cfg.base.steps, cfg.base.eval_every
    ref = linear(1.0 / (2 * T), 2 * T, E, start=2.0)  # AdamW(2T): 2 -> 1
    never = linear(0.5 / T, T, E, start=2.0)         # ends at 1.5 > 1
    at_T = Curve(never.steps, np.where(never.steps < T, 1.5, 0.9))  # below the target first at T
    miss = steps_speedup(ref, never, 1.0, T, E, reference_steps=2 * T)
    hit = steps_speedup(ref, at_T, 1.0, T, E, reference_steps=2 * T)
    assert miss.upper == pytest.approx(2 * T / (T + E)) and hit.speedup == pytest.approx(2.0)
    if tier != "cpu":
        assert region.contains(miss.upper)  # the v1 value of an unreached seed would have passed here
    assert decide(estimate([miss.speedup] * SPEEDUP.tier("cpu").seeds), region) == FAILS
    assert decide(estimate([hit.speedup] * 4 + [miss.speedup]), region) != HOLDS
    assert decide(estimate([hit.speedup * f for f in (1.0, 1.01, 1.02, 1.0, 1.01)]), region) == HOLDS


def test_speedup_curve_over_targets():
    ref, method = linear(1.0, 400, start=400.0), linear(2.0, 200, start=400.0)  # integer losses: no ties
    curve = speedup_curve(ref, method, lo=0.0, hi=200.0, n=11, horizon=200, eval_every=10)
    assert curve.target_loss.tolist() == list(range(200, -1, -20))
    assert curve.speedup.tolist() == [2.0] * 11 and curve.reached.all()
    stalls = Curve(method.steps, np.maximum(method.losses, 100.0))  # stalls at 100 from step 150
    curve = speedup_curve(ref, stalls, 0.0, 200.0, 11, 200, 10)
    assert curve.target_loss[curve.reached == 1.0].tolist() == [200, 180, 160, 140, 120, 100]
    assert (curve.speedup[curve.reached == 1.0] == 2.0).all()
    assert (curve.speedup[curve.reached == 0.0] == 0.0).all()  # not reached: 0, bound apart
    expected = [(400 - t) / 210 for t in (80, 60, 40, 20, 0)]
    assert curve.upper[curve.reached == 0.0].tolist() == pytest.approx(expected)


def test_cost_speedup_counts_grad_evals():
    def arm(steps, grad_evals):
        return Measurement(scalars={}, curves={"val": pd.DataFrame({"step": steps, "grad_evals": grad_evals})})

    ref, ire = arm([0, 200, 400], [0, 200, 400]), arm([0, 100, 200], [0, 110, 220])  # +1 per 10 steps
    point = steps_speedup(linear(0.01, 400), linear(0.02, 200), 1.0, 200, 10, reference_steps=400)
    assert cost_speedup(point, ref, ire, "grad_evals") == pytest.approx(400 / 220)


def test_lr_schedule_warmup_then_cosine_to_peak_over_20():
    peak, W, T = 6e-4, 4, 104
    spec = PAPER_ADAMW.as_kind("adamw", lr=peak, lr_warmup_steps=W)

    def lr_at(t, peak, W, T, f):
        assert f == spec.final_lr_fraction
        return spec.as_kind("adamw", lr=peak, lr_warmup_steps=W).lr_at(t, T)

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

    admire = PAPER_ADAMW.as_kind("adamw_ire", kappa=3.0, gamma=0.6, mask_every=2, warmup_steps=2)
    cfg = PretrainSetup(max_bytes=300_000, seq_len=16, batch_size=2, steps=7, eval_every=3, val_windows=2,
                        optim=admire)
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
    assert arms["adamw_T_x3.4"].optim.lr == pytest.approx(3.4 * arms["adamw_T_x1"].optim.lr)
    random, admire = arms["ire_random_k3"].optim, arms["admire_k3"].optim
    assert random.mask == "random" and random.kappa == admire.kappa and admire.mask == "fisher"
    assert admire.name == "adamw_ire" and admire.warmup_steps == admire.lr_warmup_steps == 2  # IRE after the warm-up
    assert arms["adamw_T_x1"].optim == SpeedupConfig().base.optim  # the x1 arm is the base's own AdamW
    with pytest.raises(ConfigError, match="gamma must be in"):  # an arm's optimizer is checked when built
        SpeedupConfig(gamma=1.5)


def test_set_base_optim_lr_reaches_the_built_adamw():
    """`--set base.optim.lr=...` changes the lr every arm's AdamW is built with, in both claims."""
    model = torch.nn.Linear(2, 2)
    cfg = apply_overrides(SPEEDUP.tier("smoke").config, {"base.optim.lr": "0.0025"})
    for name, arm in speedup_arms(cfg).items():
        opt = arm.optim.build(model.parameters())
        inner = opt.base_optimizer if isinstance(opt, IRE) else opt
        assert isinstance(inner, torch.optim.AdamW), name
        assert inner.defaults["lr"] == pytest.approx(0.0025 * (3.4 if name.endswith("x3.4") else 1.0)), name
    cfg = apply_overrides(OVERHEAD.tier("smoke").config, {"base.optim.lr": "0.0025"})
    ctx = RunContext(seed=0, tier="smoke")
    data = type("Data", (), {"vocab_size": 256})()
    for optimizer in ("adamw", "ire"):
        opt = TimedArm(cfg, optimizer, data, ctx).opt
        inner = opt.base_optimizer if isinstance(opt, IRE) else opt
        assert isinstance(inner, torch.optim.AdamW) and inner.param_groups[0]["lr"] == 0.0025, optimizer


@pytest.mark.parametrize("tier", ["smoke", "cpu", "gpu", "paper"])
def test_adamw_grid_covers_ire_mean_step_gain_with_as_many_trials(tier):
    """Issue 8 item 9: AdamW's peak-LR grid reaches 1 + kappa*gamma, IRE's mean step gain, for every kappa."""
    cfg = SPEEDUP.tier(tier).config
    assert len(cfg.lr_multipliers) == len(cfg.kappas)
    assert max(cfg.lr_multipliers) >= max(1 + k * cfg.gamma for k in cfg.kappas) - 1e-12
    assert min(cfg.lr_multipliers) == 1.0


def test_every_speedup_has_a_null_row_beside_it():
    """Issue 8 item 8: each speed-up the claim shows has a metric whose name contains 'null' beside it."""
    shown = [c.metric for c in SPEEDUP.checks] + [m for m, _ in SPEEDUP.reported]
    speedups = [m for m in shown if m.startswith("speedup_") and "null" not in m and "upper" not in m]
    assert "speedup_paper_protocol" in speedups and len(speedups) >= 8
    for m in speedups:
        null = "speedup_paper_protocol_null" if m == "speedup_random_mask" else f"{m}_null"  # same target
        assert null in shown, m
    for plot in SPEEDUP.plots:
        if plot.curve.endswith("speedup_vs_target"):
            assert "speedup_null" in plot.y and "un-annealed" in plot.title + SPEEDUP.notes
    shown = [c.metric for c in OVERHEAD.checks] + [m for m, _ in OVERHEAD.reported]
    assert all(f"{m}_null" in shown for m in ("step_time_ratio", "step_time_ratio_cpu", "step_time_ratio_wall"))


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
    assert overhead["measured_scale"]["checked_clock"] == "thread CPU time"  # the tests run one thread
    rows = {r["metric"]: r["estimate"]["per_seed"][0] for r in speed["checks"] + speed["reported"]}
    for m in ("speedup_paper_protocol", "speedup_fair", "speedup_paper_grad_evals", "speedup_curve_median"):
        assert f"{m}_null" in rows, m  # the null row is in the record, not only declared
    for m in rows:  # a 0 (not reached) always has its bound apart
        if m.startswith("speedup_") and m.replace("_protocol", "").endswith(("paper", "fair")):
            assert rows[m] <= rows[m.replace("_protocol", "") + "_upper"], m
    over = {r["metric"]: r["estimate"]["per_seed"][0] for r in overhead["checks"] + overhead["reported"]}
    assert over["step_time_ratio"] == over["step_time_ratio_cpu"] and over["step_time_ratio_null"] > 0
    premise = {r["metric"]: r["estimate"]["per_seed"][0] for r in overhead["regime"]}
    assert 0 < premise["on_core_share"] <= 1.05  # thread CPU time over wall-clock of the timed blocks
    assert {r["metric"] for r in speed["regime"]} == {"tokens_per_param_T", "doubling_gain_share"}


def write_fake_wikitext(folder):
    folder.mkdir(parents=True)
    article = " = Valkyria Chronicles = \n\n Senjō no Valkyria is a tactical role @-@ playing game . \n"
    (folder / "wiki.train.raw").write_text(article * 400, encoding="utf-8")
    (folder / "wiki.valid.raw").write_text(article.upper() * 40, encoding="utf-8")
    return folder


def test_gpu_tier_config_runs_two_steps_on_cpu(tmp_path):
    root = write_fake_wikitext(tmp_path / "wikitext-103-raw")
    # The gpu tier's config but for the batch and the validation set (cut to keep it fast on a CPU).
    overrides = {"base.data_root": str(root), "base.batch_size": "1",
                 "base.val_windows": "2", "base.cache_dir": str(tmp_path / "cache")}
    options = RunOptions(tier="gpu", seeds=1, max_steps=2, device="cpu", overrides=overrides)
    entry = run_claims([SPEEDUP], options, ResultStore(tmp_path / "results"))["claims"][0]
    _finite(entry)
    scale = entry["measured_scale"]
    assert scale["model"] == "tiny-1m" and scale["seq_len"] == 128 and scale["T"] == 2
    assert scale["precision"] == "float32"  # TF32 applies on CUDA only
    assert entry["config"]["base"]["steps"] == 2000 and entry["config"]["base"]["data"] == "wikitext103"


def test_speedup_gpu_tier_lies_in_its_regime_and_cpu_tier_outside():
    """The gpu tier trains >= 10 tokens per parameter at T (the regime check's bound); the cpu tier does not."""
    bound = next(c for c in SPEEDUP.regime if c.metric == "tokens_per_param_T").expect.region("gpu").lo
    with torch.device("meta"):
        params = {t: count_parameters(Llama(replace(preset(SPEEDUP.tier(t).config.base.model), vocab_size=256)))
                  for t in ("cpu", "gpu")}
    tokens = {t: SPEEDUP.tier(t).config.base.steps * SPEEDUP.tier(t).config.base.batch_size
              * SPEEDUP.tier(t).config.base.seq_len for t in ("cpu", "gpu")}
    assert tokens["gpu"] / params["gpu"] >= bound > tokens["cpu"] / params["cpu"]
    assert SPEEDUP.tier("gpu").config.base.tf32 and not SPEEDUP.tier("gpu").config.base.bf16


def test_regime_and_loss_rows_of_known_runs():
    def run(loss, tokens=1000.0, params=100):
        return Measurement(scalars={"final_val_loss": loss, "tokens": tokens}, scale={"params": params})

    runs = {"adamw_T_x1": run(2.0), "adamw_2T_x1": run(1.8), "admire_k3": run(1.9), "ire_random_k3": run(2.1),
            "adamw_T_x3.4": run(1.95)}
    rows = regime_and_loss_rows(runs, "admire_k3", "ire_random_k3", "adamw_T_x3.4")
    assert rows["tokens_per_param_T"] == pytest.approx(10.0)
    assert rows["doubling_gain_share"] == pytest.approx(0.1)
    assert rows["rel_loss_admire_minus_adamw_T"] == pytest.approx(-0.05)
    assert rows["rel_loss_admire_minus_random_mask"] == pytest.approx(-0.1)
    assert rows["rel_loss_admire_minus_best_adamw"] == pytest.approx(-0.025)


def test_early_loss_claim_shares_the_speedup_runs_and_checks_effects():
    early = CLAIMS["ire-llm-early-loss"]
    for tier in ("smoke", "cpu", "gpu"):
        assert early.tier(tier).config == SPEEDUP.tier(tier).config  # one cache entry per seed for both
    assert all(isinstance(c.expect, Effect) and c.expect.direction == -1 and c.source for c in early.checks)
    assert all(c.source for c in SPEEDUP.checks + SPEEDUP.regime)


def test_speedup_claim_reads_out_of_regime_when_a_premise_fails():
    regime = {c.metric: c for c in SPEEDUP.regime}
    few = decide(estimate([0.04] * 3), regime["tokens_per_param_T"].expect.region("cpu"))
    assert few == FAILS and combine([FAILS], [few]) == OUT_OF_REGIME


def test_matmul_precision_is_scoped_and_named():
    cfg = PretrainSetup(bf16=False, tf32=True)
    with matmul_precision(cfg, torch.device("cpu")):  # nothing to set on a CPU
        pass
    assert precision_name(cfg, torch.device("cpu")) == "float32"
    assert precision_name(cfg, torch.device("cuda")) == "float32, TF32 matmuls"
    assert precision_name(PretrainSetup(), torch.device("cuda")) == "bf16 autocast"


def test_gpu_and_paper_tiers_stop_early_without_data(tmp_path):
    for claim in (SPEEDUP,):  # ire-overhead's gpu tier times random tokens: it needs no data
        with pytest.raises(DataError, match="WikiText-103"):
            run_claims([claim], RunOptions(tier="gpu", overrides={"base.data_root": str(tmp_path)}),
                       ResultStore(tmp_path))


def test_paper_tier_config_and_in_process_refusal(tmp_path):
    cfg = SPEEDUP.tier("paper").config
    b = cfg.base
    assert (b.model, b.batch_size, b.seq_len, b.steps, b.optim.lr_warmup_steps, b.optim.lr) == \
        ("wikitext-60m", 240, 150, 50_000, 500, 6e-4)
    assert b.launch == "torchrun" and cfg.kappas[0] == 3.0 and cfg.gamma == 0.6
    with torch.device("meta"):
        assert count_parameters(Llama(preset(b.model))) > 50_000_000  # the paper's "60M" (untied)
    tiny = {"base.model": "tiny-1m", "base.data": "stdlib", "base.data_root": "", "base.tokenizer": "bytes",
            "base.max_bytes": "300000",
            "base.seq_len": "16", "base.batch_size": "2", "base.steps": "4", "base.optim.lr_warmup_steps": "1",
            "base.eval_every": "2", "base.val_windows": "2"}
    with pytest.raises(ConfigError, match="torchrun --standalone --nproc_per_node=8 -m harness.run.ddp"):
        run_claims([SPEEDUP], RunOptions(tier="paper", seeds=1, overrides=tiny), ResultStore(tmp_path))


def test_overhead_gpu_tier_config_runs_capped_on_cpu(tmp_path):
    """ire-overhead's gpu config (the paper's wikitext-60m, seq 150, random GPT-2-vocabulary tokens, no download)
    for the minimum of 2 timed blocks, batch 1, blocks of one step (mask_every = 1: a 60M-parameter step takes
    ~1.6 s on one core, and the step cap bounds the block count, not a block's length) and a small random stream."""
    overrides = {"base.batch_size": "1", "warmup_blocks": "0", "base.max_bytes": "20000", "mask_every": "1",
                 "base.cache_dir": str(tmp_path / "cache")}
    options = RunOptions(tier="gpu", seeds=1, max_steps=2, device="cpu", overrides=overrides)
    entry = run_claims([OVERHEAD], options, ResultStore(tmp_path / "results"))["claims"][0]
    _finite(entry)
    assert entry["measured_scale"]["timed_blocks"] == 2
    assert entry["config"]["base"]["model"] == "wikitext-60m" and entry["config"]["base"]["seq_len"] == 150
    assert entry["config"]["base"]["data"] == "random"


@pytest.mark.parametrize("changes,hint", [
    ({"model": "tiny-1M"}, r"unknown Llama preset 'tiny-1M'; did you mean tiny-1m\?"),
    ({"data": "stdlb"}, r"unknown text data source 'stdlb'; did you mean stdlib\?"),
    ({"tokenizer": "byte"}, r"unknown tokenizer 'byte'; did you mean bytes\?"),
    ({"launch": "torchrn"}, r"unknown launch 'torchrn'; did you mean torchrun\?"),
    ({"optim": PAPER_ADAMW.as_kind("sgd")}, r"unknown pre-training optimizer 'sgd'"),
    ({"optim": PAPER_ADAMW.as_kind("adamw", lr_warmup_steps=200)}, r"0 <= optim.lr_warmup_steps < steps"),
    ({"seq_len": 4096}, r"exceeds tiny-1m's max_seq_len"),
])
def test_pretrain_setup_rejects_a_bad_component_when_built(changes, hint):
    with pytest.raises(ConfigError, match=hint):
        PretrainSetup(**changes)
    with pytest.raises(ConfigError, match="an adamw_ire run needs kappa > 0"):
        PretrainSetup(optim=PAPER_ADAMW.as_kind("adamw_ire", gamma=0.6))
    with pytest.raises(ConfigError, match="did you mean tiny-1m"):  # through --set, in both claims
        apply_overrides(SPEEDUP.tier("cpu").config, {"base.model": "tiny-1M"})
    with pytest.raises(ConfigError, match="did you mean bytes"):
        apply_overrides(OVERHEAD.tier("cpu").config, {"base.tokenizer": "byte"})
