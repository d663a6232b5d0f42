"""Wang et al. (NeurIPS 2024): an AdmIRE step costs about 1.12x an AdamW step (K = 10, Fisher mask)."""
from dataclasses import replace

from harness import AtMost, Check, Claim, Plot, Tier, register
from harness.experiments.llm import PAPER_STEP_TIME_RATIO, OverheadConfig, ire_step_overhead

CPU = OverheadConfig(model="tiny-1m", data="stdlib", max_bytes=2_000_000, tokenizer="bytes", seq_len=64,
                     batch_size=8, lr=1e-3, kappa=3.0, gamma=0.6, mask_every=10, warmup_blocks=1, blocks=6)
SMOKE = replace(CPU, max_bytes=300_000, seq_len=32, batch_size=4, blocks=2)
GPU = replace(CPU, model="small-30m", data="wikitext103", data_root="data/wikitext-103-raw", tokenizer="gpt2",
              seq_len=256, batch_size=32, lr=6e-4, warmup_blocks=2, blocks=20)

TOLERANCE = 0.10  # accepted up to 1.12 x 1.10 ≈ 1.23: see `notes`

CLAIM = register(Claim(
    id="ire-overhead",
    source="Wang et al., NeurIPS 2024 (arXiv 2405.20763), Sec. 6 (0.165 s vs 0.185 s per step, one A800)",
    statement="An AdmIRE step (IRE over AdamW, Fisher mask refreshed every K = 10 steps) costs about 1.12x the "
              "wall-clock of an AdamW step.",
    paper_value=f"{PAPER_STEP_TIME_RATIO:.3f}x (0.185 / 0.165 s per step; 'about 10-12% overhead')",
    experiment=ire_step_overhead,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tiny-1m, 4x32 tokens, 2 timed blocks of 10 steps per arm "
                                                   "(plumbing only)"),
        "cpu": Tier(seeds=3, config=CPU, scale="tiny-1m Llama (~1.0M params), 8x64 tokens per step, one CPU "
                                               "thread per process; 6 timed blocks of 10 steps per arm, "
                                               "alternated ABBA, after 10 warm-up steps each"),
        "gpu": Tier(seeds=3, config=GPU, scale="small-30m Llama, WikiText-103, 32x256 tokens per step, bf16 "
                                               "autocast; 20 timed blocks of 10 steps per arm"),
    },
    checks=(
        Check("step_time_ratio", AtMost(PAPER_STEP_TIME_RATIO * (1 + TOLERANCE)),
              "AdmIRE seconds per step / AdamW seconds per step (K-step blocks, mask refresh amortised)"),
    ),
    reported=(
        ("adamw_ms_per_step", "AdamW ms per step"),
        ("admire_ms_per_step", "AdmIRE ms per step"),
        ("adamw_peak_mb", "AdamW peak memory growth, MB (CPU: peak RSS; CUDA: max_memory_allocated)"),
        ("admire_peak_mb", "AdmIRE peak memory growth, MB (same method)"),
        ("peak_memory_ratio", "AdmIRE / AdamW peak memory growth"),
        ("adamw_state_mb", "AdamW optimizer state, MB (exact: moments)"),
        ("admire_state_mb", "AdmIRE optimizer state, MB (exact: moments + mask)"),
    ),
    plots=(
        Plot("blocks", "block", ("ratio",), "AdmIRE / AdamW seconds per block of K steps", ylabel="ratio",
             hlines=((PAPER_STEP_TIME_RATIO, "paper 1.12"),), style="markers"),
    ),
    tuning="none: both arms use the same model, batches, AdamW recipe and thread count; kappa 3, gamma 0.6, "
           "K 10 as in the paper (kappa does not change the cost).",
    notes="Bound 1.12 x 1.10: the paper gives the overhead as 10-12% on one A800 with a 60M model, and the "
          "share of the step spent outside matrix products (IRE's parameter copy, masked update and global "
          "k-th value) differs between that GPU and a CPU or H100. Each timed block is K steps and holds "
          "exactly one mask refresh (an extra forward/backward on a batch of the training size), so the ratio "
          "includes the refresh amortised over K. Peak memory on CPU is the growth of the process's peak "
          "resident set while a fresh model and optimizer train K + 1 steps alone (Linux VmHWM reset through "
          "/proc/self/clear_refs, freed heap returned with malloc_trim first), so it includes allocator slack; "
          "on CUDA it is torch.cuda.max_memory_allocated growth. The optimizer-state rows are exact byte counts.",
    version=1,
))
