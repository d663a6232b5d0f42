"""Wang et al. (NeurIPS 2024): AdmIRE pre-trains Llama 2x faster than AdamW, with fairness controls."""
from dataclasses import replace

from harness import AtLeast, Check, Claim, Plot, Tier, register
from harness.experiments.llm import SpeedupConfig, ire_llm_speedup

# cpu: ~1M-parameter Llama on the standard library's source (bytes). T, batch and the eval interval are
# set by the 4-minute budget; the peak LR 1e-3 is Pythia's for its smallest (14M, 70M) models, since the
# paper's 6e-4 belongs to 60M-229M models trained 250x longer. Warm-up 1% of T as in the paper.
CPU = SpeedupConfig(model="tiny-1m", data="stdlib", max_bytes=2_000_000, tokenizer="bytes", seq_len=64,
                    batch_size=8, steps=150, warmup_steps=2, lr=1e-3, eval_every=10, val_windows=32)
SMOKE = replace(CPU, max_bytes=300_000, seq_len=32, batch_size=4, steps=8, eval_every=2, val_windows=8,
                eval_batch=8)
GPU = replace(CPU, model="small-30m", data="wikitext103", data_root="data/wikitext-103-raw", tokenizer="gpt2",
              seq_len=256, batch_size=32, steps=2000, warmup_steps=20, lr=6e-4, eval_every=50,
              val_windows=256)
PAPER = replace(GPU, model="wikitext-60m", seq_len=150, batch_size=240, steps=50_000, warmup_steps=500,
                eval_every=500, val_windows=1000, eval_batch=60, launch="torchrun", nproc=8)

TOLERANCE = 0.10  # 2x accepted down to 1.8x: see `notes`

CLAIM = register(Claim(
    id="ire-llm-speedup",
    source="Wang et al., NeurIPS 2024 (arXiv 2405.20763), Fig. 4 / Sec. 6; authors' README for kappa",
    statement="AdmIRE (IRE over AdamW) trained for T steps reaches the final validation loss of AdamW trained "
              "for 2T steps by step T or earlier: a >= 2x speed-up in steps over AdamW, Llama pre-training.",
    paper_value="2.1x WikiText-103 (T = 50k), 2.3x MiniPile, 2.1x OpenWebText (losses read off plots, ±0.02)",
    experiment=ire_llm_speedup,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tiny-1m, 300 kB stdlib bytes, T = 8 steps of 4x32 tokens "
                                                   "(plumbing only)"),
        "cpu": Tier(seeds=3, config=CPU, scale="tiny-1m Llama (~1.0M params, byte vocab) on 2 MB of the Python "
                                               "standard library; T = 150 steps of 8x64 tokens (AdamW 2T = 300); "
                                               "val every 10 steps on 2,048 fixed tokens. Far below the paper's "
                                               "scale (60M, 1.8B tokens): early training only"),
        "gpu": Tier(seeds=3, config=GPU, scale="small-30m Llama (GPT-2 BPE), WikiText-103, seq 256, 32x256 tokens "
                                               "per step, T = 2000 (2T = 4000), val every 50 steps on 65k tokens; "
                                               "sized for ~30 min on one H100 (estimate, not yet timed)"),
        "paper": Tier(seeds=3, config=PAPER, scale="the paper's WikiText-103 setup: wikitext-60m Llama, 240x150 "
                                                   "tokens per step, T = 50k, warm-up 500, data-parallel on 8 GPUs "
                                                   "through torchrun (see README); days of GPU time per seed"),
    },
    checks=(
        Check("speedup_paper_protocol", AtLeast(2.0 * (1 - TOLERANCE)),
              "2T / first evaluation step at which AdmIRE (kappa 3) reaches AdamW(2T, lr x1)'s final val loss"),
    ),
    reported=(
        ("speedup_fair", "FAIR speed-up: best AdmIRE of its kappa grid vs best AdamW of its LR grid (same budget)"),
        ("speedup_random_mask", "random-mask IRE control (same kappa, gamma), paper protocol"),
        ("speedup_paper_grad_evals", "paper protocol counted in gradient evaluations (Fisher refreshes included)"),
        ("speedup_paper_wall_clock", "paper protocol counted in training wall-clock"),
        ("speedup_fair_grad_evals", "fair speed-up in gradient evaluations"),
        ("speedup_fair_wall_clock", "fair speed-up in training wall-clock"),
        ("speedup_curve_median", "median speed-up over 11 targets from AdamW(T)'s to AdamW(2T)'s final loss"),
        ("speedup_curve_min", "smallest speed-up over those targets"),
        ("speedup_fair_curve_median", "median fair speed-up over targets"),
        ("reached_paper", "share of seeds in which AdmIRE reached the paper target within T"),
        ("best_lr_multiplier", "AdamW LR multiplier with the best val loss at T"),
        ("best_kappa", "AdmIRE kappa with the best val loss at T"),
        ("final_val_loss.adamw_T_x1", "AdamW(T) final val loss"),
        ("final_val_loss.adamw_2T_x1", "AdamW(2T) final val loss (the paper target)"),
        ("final_val_loss.admire_k3", "AdmIRE(T) final val loss"),
        ("final_val_loss.ire_random_k3", "random-mask IRE(T) final val loss"),
        ("paper_adamw_steps", "AdamW(2T) steps to the target"),
        ("paper_admire_steps", "AdmIRE steps to the target (T when not reached)"),
        ("paper_adamw_tokens", "AdamW(2T) training tokens to the target"),
        ("paper_admire_tokens", "AdmIRE training tokens to the target"),
        ("paper_adamw_grad_evals", "AdamW(2T) gradient evaluations to the target"),
        ("paper_admire_grad_evals", "AdmIRE gradient evaluations to the target"),
        ("paper_adamw_train_time_s", "AdamW(2T) training seconds to the target"),
        ("paper_admire_train_time_s", "AdmIRE training seconds to the target"),
    ),
    plots=(
        Plot("val_loss", "step", ("adamw_T", "adamw_2T", "admire", "ire_random"),
             "Validation loss, paper protocol (AdamW lr x1, AdmIRE kappa 3)", ylabel="val loss", style="line+markers"),
        Plot("val_loss", "step", ("adamw_T_best", "adamw_2T_best", "admire_best"),
             "Validation loss, best of each tuning grid", ylabel="val loss", style="line+markers"),
        Plot("speedup_vs_target", "target_loss", ("speedup", "speedup_random"),
             "Speed-up vs target loss: AdamW(2T) steps / IRE steps", ylabel="speed-up", hlines=((2.0, "paper 2x"),)),
        Plot("fair_speedup_vs_target", "target_loss", ("speedup",),
             "Fair speed-up vs target loss (best AdamW vs best AdmIRE)", ylabel="speed-up", hlines=((2.0, "2x"),)),
    ),
    tuning="Same budget for both: AdmIRE at 2 settings, kappa in {3, 4} with gamma 0.6, K 10 (the paper's LM "
           "values: 3 for WikiText-103, 4 for MiniPile/OpenWebText), switched on after the LR warm-up; AdamW at "
           "2 peak LRs, x1 and x2. The recipe (betas 0.9/0.95, WD 0.1 on matrices, eps 1e-16, clip 1.0, warm-up, "
           "cosine to peak/20 at each run's own horizon) is the paper's for every arm. The paper-protocol number "
           "uses kappa 3 vs AdamW x1; the fair number picks each side's best final val loss at T, runs AdamW(2T) "
           "at the chosen LR too and takes the better AdamW(2T) as the target. The tier sizes and the cpu peak "
           "LR were fixed before any result was seen; nothing was changed after.",
    notes="Verdict on the paper's number, 2T / (first evaluation step at which AdmIRE's val loss <= AdamW(2T)'s "
          "final val loss), accepted from 1.8x: 10% below 2x covers the paper's read-off (losses ±0.02 move the "
          "crossing by a few % of T at the end-of-schedule slope) and our evaluation grid (a crossing is "
          "counted at the first evaluation after it, up to E/T = 6.7% late at the cpu tier). If AdmIRE never "
          "reaches the target, the speed-up is reported conservatively and stays below 2 and finite: min(AdamW(2T) "
          "steps to AdmIRE's best loss / T, 2T / (T + E)). Read the FAIR speed-up beside it: when it is well "
          "below the paper-protocol number, most of the gain is what a larger AdamW LR also buys; the random-mask "
          "control shows how much needs the Fisher mask at all. Steps are not compute: a Fisher refresh is an "
          "extra forward/backward every K steps (see the gradient-evaluation and wall-clock rows).",
    version=1,
))
