"""Wang et al. (NeurIPS 2024), Sec. 6: what IRE's mechanism predicts early in Llama pre-training, paired per
seed on the speed-up claim's runs: AdmIRE(T) ends below AdamW(T), below the best AdamW(T) of an equal-trial LR
grid, and below IRE with a random mask of the same size."""
from claims.ire_llm_speedup import CPU, GPU, SMOKE
from harness import Change, Check, Claim, Effect, Plot, Tier, register
from harness.experiments.llm import ire_llm_speedup

# The smallest effect of interest: the smallest AdmIRE(T) gain over AdamW(T) in the paper's three runs
# (Fig. 4), OpenWebText (2.90 - 2.83) / 2.90 = 2.4% of AdamW(T)'s loss (MiniPile 3.9%, WikiText-103 10.5%).
SMALLEST = 0.024
SOURCE = ("Fig. 4: the smallest AdmIRE(T) gain over AdamW(T) of the paper's three runs, OpenWebText "
          "(2.90 - 2.83) / 2.90 = 2.4% of AdamW(T)'s loss (read off plots, +-0.02)")

CLAIM = register(Claim(
    id="ire-llm-early-loss",
    source="Wang et al., NeurIPS 2024 (arXiv 2405.20763), Sec. 6 / Fig. 4; authors' README for kappa",
    statement="On the speed-up claim's runs, AdmIRE (kappa 3, gamma 0.6, K 10) trained T steps ends with a "
              "lower validation loss than AdamW(T) at the paper's LR, than the best AdamW(T) of an LR grid "
              "with as many trials, and than IRE with a random mask of the same gamma: each a paired "
              "difference of at least the paper's smallest reported gain (2.4% of AdamW(T)'s loss).",
    paper_value="AdmIRE(T) vs AdamW(T): -10.5% WikiText-103, -3.9% MiniPile, -2.4% OpenWebText (Fig. 4); no "
                "random-mask or LR-grid control in the paper",
    experiment=ire_llm_speedup,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tiny-1m, 300 kB stdlib bytes, T = 8 steps (plumbing only)"),
        "cpu": Tier(seeds=3, max_seeds=8, config=CPU,
                    scale="tiny-1m Llama (~1.0M params, byte vocab), 2 MB of the Python standard library, "
                          "T = 80 steps of 8x64 tokens (0.04 tokens per parameter: early training); the same "
                          "runs as ire-llm-speedup's cpu tier; 3-8 paired seeds (by power)",
                    cap_reason="at 80 steps AdmIRE's gain over AdamW(T) sits near its smallest effect of interest "
                               "(2.4% of the loss) with a seed-to-seed spread of ~2%, so a run whose seeds "
                               "straddle it needs tens of seeds at ~40 single-core seconds each, beyond the cpu "
                               "tier's budget; a pilot that lands clear of it decides within the cap"),
        "gpu": Tier(seeds=3, max_seeds=5, config=GPU,
                    scale="ire-llm-speedup's gpu runs: tiny-1m on WikiText-103 bytes, T = 2000 steps of 64x128 "
                          "tokens (~16 tokens per parameter); 3-5 paired seeds (by power)"),
    },
    checks=(
        Check("rel_loss_admire_minus_adamw_T", Effect(SMALLEST, direction=-1),
              "(L(AdmIRE T) - L(AdamW T, lr x1)) / L(AdamW T): final validation loss, paired per seed",
              source=SOURCE, paper="-2.4% OpenWebText, -3.9% MiniPile, -10.5% WikiText-103 (Fig. 4)"),
        Check("rel_loss_admire_minus_best_adamw", Effect(SMALLEST, direction=-1),
              "(L(AdmIRE T) - L(best AdamW T of lr x{1, 3.4})) / L(AdamW T, x1): against an AdamW with as many "
              "LR trials as AdmIRE has kappas (its pick by the same validation loss: favours AdamW)",
              source=SOURCE + "; the paper ran one AdamW LR, so the same smallest gain applies"),
        Check("rel_loss_admire_minus_random_mask", Effect(SMALLEST, direction=-1),
              "(L(AdmIRE T) - L(IRE T, random mask, same kappa and gamma)) / L(AdamW T, x1)",
              source=SOURCE + "; our choice to require it against the random mask too, because the claim "
                              "credits the gain to the Fisher mask (the paper has no random-mask arm)"),
    ),
    reported=(
        ("final_val_loss.adamw_T_x1", "AdamW(T) final val loss"),
        ("final_val_loss.adamw_T_x3.4", "AdamW(T, lr x3.4) final val loss"),
        ("final_val_loss.adamw_2T_x1", "AdamW(2T) final val loss"),
        ("final_val_loss.admire_k3", "AdmIRE(T) final val loss"),
        ("final_val_loss.admire_k4", "AdmIRE(T, kappa 4) final val loss"),
        ("final_val_loss.ire_random_k3", "random-mask IRE(T) final val loss"),
        ("doubling_gain_share", "share of AdamW(T)'s loss that doubling the steps buys (what 2x reads)"),
        ("tokens_per_param_T", "AdamW(T)'s training tokens per parameter"),
        ("best_lr_multiplier", "AdamW LR multiplier with the best val loss at T"),
    ),
    plots=(
        Plot("val_loss", "step", ("adamw_T", "adamw_2T", "admire", "ire_random"),
             "Validation loss (AdamW lr x1, AdmIRE kappa 3, random-mask IRE)", ylabel="val loss",
             style="line+markers"),
    ),
    tuning="As ire-llm-speedup (the same runs): AdmIRE at kappa 3 (the paper's WikiText-103 value) is checked, "
           "not the better of its kappa grid; AdamW's best of x{1, 3.4} is picked by the same final validation "
           "loss the check reads, which favours AdamW.",
    notes="Every arm of a seed shares the initialisation and the batches, so the per-seed differences are paired "
          "and the runner's interval over seeds is the paired interval. Each difference is divided by "
          "AdamW(T, x1)'s loss so that the smallest effect of interest carries across vocabularies (bytes here, "
          "GPT-2 BPE in the paper). Rule (Effect): a check holds when its interval lies below 0 and does not "
          "exclude -2.4%; it fails when the whole interval lies above -2.4% (the effect, whatever it is, is "
          "smaller than the paper's smallest); otherwise inconclusive. The three checks are one family: each "
          "interval is at 1 - 0.05 / (looks x 3). Designed (2026-12-07) with results seen: a review of "
          "ire-llm-speedup's stored cpu runs read AdmIRE 2.273 < AdamW(T) 2.318; random mask 2.522; AdamW x3.4 "
          "2.561 (final losses); its first run at this design is on fresh seeds.",
    changes=(
        Change("2026-12-07",
               what="cpu seed cap 5 -> 8 (pilot 3, seeds by power). Checks and smallest effect unchanged.",
               why="The first cpu runs on disjoint seed sets read AdmIRE - AdamW(T) -2.8% [-12.6%, +6.9%] (seeds "
                   "100-102: inconclusive, the power rule projected ~6 seeds, above the cap of 5, so no second "
                   "look ran) and -3.6% [-4.4%, -2.8%] (seeds 200-203: holds). A cap of 8 lets the second look "
                   "decide; a seed of the shared LLM runs costs ~55 single-core seconds. The first run of v2 "
                   "uses seeds no earlier run used.",
               results_seen=True),
    ),
    version=2,
))
