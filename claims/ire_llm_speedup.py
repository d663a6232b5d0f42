"""Wang et al. (NeurIPS 2024): AdmIRE pre-trains Llama 2x faster than AdamW, with fairness controls."""
from harness import AtLeast, AtMost, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.llm import SpeedupConfig, ire_llm_speedup
from harness.experiments.llm_train import PAPER_ADAMW, PretrainSetup

# cpu: ~1M-parameter Llama on the standard library's source (bytes). T, batch and the eval interval are
# set by the cpu-tier budget (<= 9.2 T-step runs per seed); the peak LR 1e-3 is Pythia's for its smallest
# (14M, 70M) models, since the paper's 6e-4 belongs to 60M-229M models trained 250x longer. Warm-up 2 steps
# (the paper's 1% of T rounds to 1, which is no warm-up). 0.04 tokens per parameter: early training, out
# of the speed-up's regime (see `regime`); ire-llm-early-loss checks what the mechanism predicts there.
CPU = SpeedupConfig(base=PretrainSetup(model="tiny-1m", data="stdlib", max_bytes=2_000_000, tokenizer="bytes",
                                       seq_len=64, batch_size=8, steps=80, eval_every=10, val_windows=32,
                                       optim=derive(PAPER_ADAMW, lr=1e-3, lr_warmup_steps=2)))
SMOKE = derive(CPU, base=dict(max_bytes=300_000, seq_len=32, batch_size=4, steps=8, eval_every=2, val_windows=8,
                              eval_batch=8))
# gpu: sized INTO the regime rather than at a larger model: the same ~1.03M-parameter byte-level Llama on
# WikiText-103 (bytes), 64 x 128 tokens per step, T = 2000: 16.4M tokens at T, ~16 tokens per parameter
# (the paper's WikiText-103 run: ~25). The trade-off: a 30M model with the GPT-2 vocabulary would see
# ~0.5 tokens per parameter in the tier's 45 minutes (out of the regime); a 1M byte model reaches it. LR
# 1e-3 as at cpu (same model), warm-up 1% of T (the paper's 500 of 50k); float32 with TF32 matmuls, as the
# authors' LM script runs (allow_tf32 on, its bf16 autocast context never entered).
GPU = derive(CPU, {"base.optim.lr_warmup_steps": 20},
             base=dict(data="wikitext103", data_root="data/wikitext-103-raw", seq_len=128, batch_size=64, steps=2000, eval_every=100, val_windows=256, eval_batch=64,
                       bf16=False, tf32=True))
PAPER = derive(CPU, {"base.optim.lr": 6e-4, "base.optim.lr_warmup_steps": 500},
               base=dict(model="wikitext-60m", data="wikitext103", data_root="data/wikitext-103-raw",
                         tokenizer="gpt2", seq_len=150, batch_size=240, steps=50_000, eval_every=500,
                         val_windows=1000, eval_batch=60, launch="torchrun", nproc=8, bf16=False, tf32=True))

TOLERANCE = 0.10  # 2x accepted down to 1.8x: see `notes`
# The regime of a steps speed-up read at the end of a schedule (Fig. 4): the paper's WikiText-103 run trains
# 50k x 240 x 150 = 1.8B tokens on its ~72M-parameter model (~25 tokens per parameter), and doubling the
# steps buys AdamW (2.76 - 2.48) / 2.76 = 10.1% of its loss there, 4.1% on MiniPile, 2.2% on OpenWebText.
MIN_TOKENS_PER_PARAM = 10.0
MAX_DOUBLING_GAIN_SHARE = 0.101

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
        "cpu": Tier(seeds=3, max_seeds=5, config=CPU, scale="tiny-1m Llama (~1.0M params, byte vocab) on 2 MB of the Python "
                                               "standard library; T = 80 steps of 8x64 tokens (AdamW 2T = 160), "
                                               "0.04 tokens per parameter; val every 10 steps on 32 fixed "
                                               "64-token windows spread over the whole validation split. Out of "
                                               "the speed-up's regime by design; 3-5 seeds by power, shared "
                                               "with ire-llm-early-loss, which checks this tier"),
        "gpu": Tier(seeds=3, max_seeds=5, config=GPU,
                    scale="tiny-1m Llama (~1.0M params, byte vocab) on WikiText-103 (bytes), 64x128 tokens per "
                          "step, T = 2000 (2T = 4000): ~16 tokens per parameter at T; float32 with TF32 "
                          "matmuls; val every 100 steps on 256 windows (33k tokens) spread over the validation "
                          "split; 3-5 seeds (by power)"),
        "paper": Tier(seeds=3, config=PAPER, scale="the paper's WikiText-103 setup: wikitext-60m Llama, 240x150 "
                                                   "tokens per step, T = 50k, warm-up 500, data-parallel on 8 GPUs "
                                                   "through torchrun (see README); days of GPU time per seed"),
    },
    checks=(
        Check("speedup_paper_protocol", AtLeast(2.0 * (1 - TOLERANCE)),
              "2T / first evaluation step at which AdmIRE (kappa 3) reaches AdamW(2T, lr x1)'s final val loss; "
              "a seed that never reaches it scores 0",
              source="Fig. 4 / Sec. 6: 2x, accepted from 1.8x (the losses are read off plots, +-0.02: see notes)",
              paper="2.1x WikiText-103, 2.3x MiniPile, 2.1x OpenWebText (Fig. 4)"),
    ),
    regime=(
        Check("tokens_per_param_T", AtLeast(MIN_TOKENS_PER_PARAM),
              "AdamW(T)'s training tokens per model parameter (the premise: late training, not its start)",
              source="Sec. 6: the WikiText-103 run has ~25 tokens per parameter; 10 is our choice, the low end "
                     "of the 10-20 at which a model is trained near its compute-optimal length, because a speed-up "
                     "read at the end of a schedule is about that regime",
              paper="~25 (1.8B tokens / ~72M parameters, Sec. 6)"),
        Check("doubling_gain_share", AtMost(MAX_DOUBLING_GAIN_SHARE),
              "(L(AdamW T) - L(AdamW 2T)) / L(AdamW T), lr x1: what doubling the steps still buys",
              source="Fig. 4: the largest share in the paper's three runs (WikiText-103, (2.76 - 2.48) / 2.76)",
              paper="10.1% WikiText-103, 4.1% MiniPile, 2.2% OpenWebText (Fig. 4, read +-0.02)"),
    ),
    reported=(
        ("speedup_paper_protocol_null", "NULL: AdamW(T, lr x1) scored as if it were the method (same target, "
                                        "same rule): what 'no benefit' reads"),
        ("reached_paper", "share of seeds in which AdmIRE reached the paper target within T"),
        ("reached_paper_null", "share of seeds in which AdamW(T) reached it (null)"),
        ("speedup_paper_upper", "bound kept apart: the speed-up where reached, else 2T / (T + E) (had it "
                                "reached the target at the next evaluation)"),
        ("speedup_paper_upper_null", "the same bound for the null"),
        ("speedup_fair", "FAIR speed-up: best AdmIRE of its kappa grid vs best AdamW of its LR grid (same "
                         "number of trials); 0 when not reached"),
        ("speedup_fair_null", "NULL: best AdamW(T) scored against the best AdamW(2T)"),
        ("speedup_fair_upper", "bound for the fair speed-up (as speedup_paper_upper)"),
        ("speedup_random_mask", "random-mask IRE control (same kappa, gamma), paper protocol; its null is "
                                "speedup_paper_protocol_null"),
        ("speedup_random_upper", "bound for the random-mask control"),
        ("speedup_paper_grad_evals", "paper protocol counted in gradient evaluations (Fisher refreshes included)"),
        ("speedup_paper_grad_evals_null", "NULL of the row above"),
        ("speedup_paper_wall_clock", "paper protocol counted in training wall-clock"),
        ("speedup_paper_wall_clock_null", "NULL of the row above"),
        ("speedup_fair_grad_evals", "fair speed-up in gradient evaluations"),
        ("speedup_fair_grad_evals_null", "NULL of the row above"),
        ("speedup_fair_wall_clock", "fair speed-up in training wall-clock"),
        ("speedup_fair_wall_clock_null", "NULL of the row above"),
        ("speedup_curve_median", "median speed-up over 11 targets from AdamW(T)'s to AdamW(2T)'s final loss "
                                 "(AdamW(2T)'s steps read off its un-annealed middle: biased for the method)"),
        ("speedup_curve_median_null", "NULL: the same curve with AdamW(T) as the method (shows that bias)"),
        ("speedup_curve_min", "smallest speed-up over those targets"),
        ("speedup_curve_min_null", "NULL of the row above"),
        ("speedup_fair_curve_median", "median fair speed-up over targets"),
        ("speedup_fair_curve_median_null", "NULL of the row above"),
        ("tuning_trials_adamw", "AdamW tuning budget: peak-LR trials at T"),
        ("tuning_trials_admire", "AdmIRE tuning budget: kappa trials at T"),
        ("tuning_grad_evals_adamw", "AdamW tuning budget in gradient evaluations (its T-step grid)"),
        ("tuning_grad_evals_admire", "AdmIRE tuning budget in gradient evaluations (Fisher refreshes included)"),
        ("best_lr_multiplier", "AdamW LR multiplier with the best val loss at T"),
        ("best_kappa", "AdmIRE kappa with the best val loss at T"),
        ("final_val_loss.adamw_T_x1", "AdamW(T) final val loss"),
        ("final_val_loss.adamw_T_x3.4", "AdamW(T, lr x3.4) final val loss"),
        ("final_val_loss.adamw_2T_x1", "AdamW(2T) final val loss (the paper target)"),
        ("final_val_loss.admire_k3", "AdmIRE(T) final val loss"),
        ("final_val_loss.admire_k4", "AdmIRE(T, kappa 4) final val loss"),
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
        Plot("speedup_vs_target", "target_loss", ("speedup", "speedup_random", "speedup_null"),
             "Speed-up vs target loss: AdamW(2T) steps (read off its un-annealed middle) / IRE steps; "
             "speedup_null = AdamW(T) as the method; 0 = not reached", ylabel="speed-up",
             hlines=((2.0, "paper 2x"),)),
        Plot("fair_speedup_vs_target", "target_loss", ("speedup", "speedup_null"),
             "Fair speed-up vs target loss (best AdamW vs best AdmIRE; AdamW(2T) steps read off its "
             "un-annealed middle too; null beside it)",
             ylabel="speed-up", hlines=((2.0, "2x"),)),
    ),
    tuning="Same number of trials for both: AdmIRE at 2 settings, kappa in {3, 4} with gamma 0.6, K 10 (the "
           "paper's LM values: 3 for WikiText-103, 4 for MiniPile/OpenWebText), switched on after the LR "
           "warm-up; AdamW at 2 peak LRs, x1 and x3.4, where 3.4 = 1 + kappa*gamma at kappa 4 is IRE's "
           "largest mean step gain (1 + 3 x 0.6 = 2.8 at kappa 3 lies between), so 'IRE is only a larger "
           "step' is within AdamW's grid. Both budgets are reported (trials, and gradient evaluations: "
           "AdmIRE's include its Fisher refreshes). The recipe (betas 0.9/0.95, WD 0.1 on every parameter as "
           "in the authors' code, eps 1e-16, clip 1.0, warm-up, cosine to peak/20 at each run's own horizon) "
           "is the paper's for every arm. The paper-protocol number uses kappa 3 vs AdamW x1; the fair "
           "number picks each side's best final val loss at T, runs AdamW(2T) at the chosen LR too and takes "
           "the better AdamW(2T) as the target.",
    notes="Regime: the check is read only where AdamW(T) trains >= 10 tokens per parameter and doubling the "
          "steps buys AdamW at most 10.1% of its loss (the paper's runs: ~25 tokens per parameter, 2-10%); "
          "elsewhere the claim reads out-of-regime (early training: see ire-llm-early-loss). "
          "Verdict on the paper's number, 2T / (first evaluation step at which AdmIRE's val loss <= AdamW(2T)'s "
          "final val loss), accepted from 1.8x: 10% below 2x covers the paper's read-off (losses ±0.02 move the "
          "crossing by a few % of T at the end-of-schedule slope); at the cpu tier (E/T = 12.5%) a reached "
          "seed reads 2T/T = 2 or more, so there the check amounts to 'reached by T in every seed'. A seed in "
          "which AdmIRE never reaches the target scores 0 (its crossing may never come), so it cannot count "
          "towards 'holds'; its bound 2T / (T + E) is reported apart (speedup_paper_upper). Every speed-up "
          "has a null row beside it: plain AdamW(T) scored as if it were the method, what 'no benefit' reads "
          "on that metric. The speed-up-vs-target curve takes AdamW(2T)'s steps to targets above its final "
          "loss from the middle of its schedule (LR not yet annealed) while IRE reaches them annealed; that "
          "favours the method, and the null curve shows by how much. Read the FAIR speed-up beside the paper "
          "number: when it is well below, most of the gain is what a larger AdamW LR also buys; the "
          "random-mask control shows how much needs the Fisher mask at all. Steps are not compute: a Fisher "
          "refresh is an extra forward/backward every K steps (see the gradient-evaluation and wall-clock rows).",
    changes=(
        Change("2026-12-01",
               what="A seed that never reaches the target scores 0 on the checked speed-up (was min(2T/(T+E), "
                    "...), e.g. 1.875 at cpu, inside the accepted >= 1.8); its bound is reported apart "
                    "(speedup_paper_upper). Null rows beside every speed-up (AdamW(T) scored as the method), "
                    "and a null curve; the speed-up-vs-target curve is labelled as read off AdamW(2T)'s "
                    "un-annealed middle. AdamW's LR grid x{1, 2} -> x{1, 3.4} (2 trials, as AdmIRE's 2 kappas), "
                    "both budgets reported. Validation: 32 windows spread evenly over the whole validation split "
                    "(was the first 2,048 tokens, i.e. the start of one file). Weight decay on every parameter "
                    "(was matrices only). Data-parallel mask: ranks' sampled-label gradients averaged, then "
                    "squared (was the average of each rank's squares). cpu tier: T 150 -> 80 steps, 3 -> 5 "
                    "seeds. The band (>= 1.8) is unchanged and was written down before this version ran.",
               why="A project review of the stored runs: at v1 (cpu, 3 seeds) the check could pass while the claim is "
                   "false (speedup_paper_protocol 1.13 [0.70, 1.57], reached_paper 0 in every seed, yet an "
                   "unreached seed could score 1.875); plain AdamW(T) read ~0.77, not 1.0; the AdamW grid "
                   "stopped below IRE's mean step gain 1 + kappa*gamma = 2.8-3.4; the validation set sampled "
                   "one file; the authors' code decays every parameter (AdamW over model.parameters()) and "
                   "squares the DDP-averaged gradient (p.grad after backward). T is cut because 5 seeds of "
                   "<= 9.2 T-step runs (T + 2T at x1, T at x3.4 and 2T there if it wins, 2 AdmIRE, 1 random "
                   "mask) must fit ~250 single-core seconds at the cpu tier; fewer arms would drop the "
                   "random-mask control or the equal grid. A first run of this version at T = 100 was seen "
                   "(fails: reached_paper 0 in all 5 seeds, speedup_paper_upper 1.82; AdmIRE(T) 2.179, "
                   "AdamW(T) 2.245, AdamW(2T) 1.989, random mask 2.480); it took 452 s of CPU time for both "
                   "LLM claims on the loaded machine, over budget, so T went 100 -> 80 for the budget alone "
                   "(the band, arms and grids are unchanged).",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 5 -> a pilot of 3, then seeds chosen by power up to 5 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): one seed of this "
                   "claim costs ~55 single-core seconds, the most of any claim but the collapse, and the "
                   "default run must fit 10 minutes on 2 cores. The extra look is paid for in the level: "
                   "both looks use 97.5% intervals (Bonferroni, harness.claim.sequential), so the verdict's error"
                   " rate stays <= 5%. Seen before the change: speedup_paper_protocol 0 in all 5 seeds "
                   "(fails), i.e. a pilot of 3 already decides at 97.5%; the band, arms and T are "
                   "unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="Regime checks (pre-registered): AdamW(T) trains >= 10 tokens per parameter and doubling the "
                    "steps buys AdamW <= 10.1% of its loss; where either fails the claim reads out-of-regime "
                    "instead of holds/fails. cpu tier: unchanged (3-5 seeds by power), its runs shared with the "
                    "new claim ire-llm-early-loss, which checks the early-training loss differences at this "
                    "tier (the speed-up is out of its regime there at 0.04 tokens per parameter). gpu tier resized into "
                    "the regime: tiny-1m on WikiText-103 bytes, 64x128 tokens per step, T 2000 (~16 tokens per "
                    "parameter; was small-30m with GPT-2 BPE, 32x256 tokens, T 2000, ~0.5 tokens per "
                    "parameter), 3-5 seeds by power, float32 with TF32 matmuls (was bf16 autocast), warm-up "
                    "20. paper tier: float32 with TF32. Every check names its source. The band (>= 1.8) is "
                    "unchanged.",
               why="Sec. 6 / Fig. 4: the speed-up is read at the end of schedules of ~25 tokens per parameter, "
                   "where doubling the steps buys AdamW 2-10% of its loss; the authors' LM script "
                   "(NLP/LLM/train_adamire_wiki103_Llama.py) sets allow_tf32 and never enters its bf16 "
                   "autocast context. A review of the stored runs read: at the cpu tier doubling the steps "
                   "buys 0.23 nats on 80 steps of a 1M-parameter model and every speed-up row reads 0, while "
                   "the final losses carry a finding (AdmIRE 2.273 < AdamW(T) 2.318; random mask 2.522; AdamW "
                   "x3.4 2.561); the gpu tier sat at ~0.5 tokens per parameter. A 30M model cannot reach the "
                   "regime in the gpu tier's 45 minutes; a 1M model can, so the tier trades model size for "
                   "the regime.",
               results_seen=True),
    ),
    version=4,
))
