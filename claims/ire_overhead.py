"""Wang et al. (NeurIPS 2024): an AdmIRE step costs about 1.12x an AdamW step (K = 10, Fisher mask)."""
from harness import AtLeast, AtMost, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.llm_overhead import PAPER_STEP_TIME_RATIO, OverheadConfig, ire_step_overhead
from harness.experiments.llm_train import PAPER_ADAMW, PretrainSetup

CPU = OverheadConfig(base=PretrainSetup(model="tiny-1m", data="stdlib", max_bytes=2_000_000, tokenizer="bytes",
                                        seq_len=64, batch_size=8, optim=derive(PAPER_ADAMW, lr=1e-3)),
                     kappa=3.0, gamma=0.6, mask_every=10, warmup_blocks=1, blocks=6)
SMOKE = derive(CPU, base=dict(max_bytes=300_000, seq_len=32, batch_size=4), blocks=2)
# gpu: the paper's own timing setup (Sec. 6: the 60M WikiText-103 Llama, 240 x 150 tokens per step, one GPU) on
# uniform random tokens of GPT-2's vocabulary: a step costs the same on any tokens, so no download is needed.
# Checked in float32 with TF32 matmuls, as the authors' LM script runs (allow_tf32 on, its bf16 autocast
# context never entered); the same blocks under bf16 autocast are timed again and reported beside.
GPU = derive(CPU, {"base.optim.lr": 6e-4},
             base=dict(model="wikitext-60m", data="random", max_bytes=4_000_000, tokenizer="bytes", seq_len=150,
                       batch_size=240, bf16=False, tf32=True), warmup_blocks=2, blocks=21, bf16_beside=True)
# The timing's premise: the timing thread held its core for >= 90% of the timed wall-clock.
MIN_ON_CORE = 0.9

TOLERANCE = 0.10  # accepted up to 1.12 x 1.10 ≈ 1.23: see `notes`

CLAIM = register(Claim(
    id="ire-overhead",
    source="Wang et al., NeurIPS 2024 (arXiv 2405.20763), Sec. 6 (0.165 s vs 0.185 s per step, one A800)",
    statement="An AdmIRE step (IRE over AdamW, Fisher mask refreshed every K = 10 steps) costs about 1.12x the "
              "time of an AdamW step. Checked on CPU time on a CPU and on synchronised wall-clock on CUDA, "
              "as the ratio of the fastest K-step blocks, where the timing thread held its core (regime).",
    paper_value=f"{PAPER_STEP_TIME_RATIO:.3f}x (0.185 / 0.165 s per step; 'about 10-12% overhead')",
    experiment=ire_step_overhead,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tiny-1m, 4x32 tokens, 2 timed blocks of 10 steps per arm "
                                                   "(plumbing only)"),
        "cpu": Tier(seeds=5, max_seeds=8, config=CPU, scale="tiny-1m Llama (~1.0M params), 8x64 tokens per step, one CPU "
                                               "thread per process; 6 timed blocks of 10 steps per arm (AdamW, "
                                               "AdmIRE, a second AdamW as the null), interleaved in rotating "
                                               "order, after 10 warm-up steps each",
                    cap_reason="the step-time ratio measured on this CPU (~1.20-1.21) sits within ~0.03 of the "
                               "band's edge, so when a shared machine's load widens the spread between seeds, "
                               "more than the cap's 8 seeds would be needed; the timing, not the claim, sets "
                               "that spread (the gpu tier is where the band is meant to be checked)"),
        "gpu": Tier(seeds=3, config=GPU, scale="wikitext-60m Llama (the paper's 60M model, GPT-2 vocabulary), "
                                               "240x150 random tokens per step (the paper's batch), float32 "
                                               "with TF32 matmuls (bf16 autocast timed beside, in the notes); "
                                               "21 timed blocks of 10 steps per arm",
                    # its check is synchronised wall-clock on CUDA: a neighbour's kernels would count in it
                    exclusive=True),
    },
    checks=(
        Check("step_time_ratio", AtMost(PAPER_STEP_TIME_RATIO * (1 + TOLERANCE)),
              "AdmIRE / AdamW seconds per step, fastest K-step block of each (mask refresh amortised); clock: "
              "thread CPU time on CPU, synchronised wall-clock on CUDA",
              source="Sec. 6: 0.185 / 0.165 s per step on one A800, +10% for the share of a step outside matrix "
                     "products, which differs between that GPU and a CPU or H100 (see notes)",
              paper="1.121 (0.185 / 0.165 s per step, one A800; 'about 10-12%', Sec. 6)"),
    ),
    regime=(
        Check("on_core_share", AtLeast(MIN_ON_CORE),
              "share of the timed wall-clock in which the timing thread held a core (CPU time / wall-clock "
              "over every timed block; on CUDA the host thread spins on the device)",
              source="our choice: CPU time leaves out the time without a core but not a neighbour's load on the "
                     "shared caches and memory, which moved the cpu-tier ratio by ~0.03 between a loaded and a "
                     "quiet machine; below 90% on-core the machine is shared and the ratio is reported, not "
                     "checked (out-of-regime)"),
    ),
    reported=(
        ("step_time_ratio_null", "NULL: a second, identical AdamW / AdamW on the checked clock (no overhead)"),
        ("step_time_ratio_cpu", "AdmIRE / AdamW on CPU time, fastest blocks (on CUDA: host time only)"),
        ("step_time_ratio_cpu_null", "NULL of the row above"),
        ("step_time_ratio_wall", "AdmIRE / AdamW on wall-clock, fastest blocks"),
        ("step_time_ratio_wall_null", "NULL of the row above"),
        ("step_time_ratio_mean_wall", "AdmIRE / AdamW total wall-clock over all blocks (v1's statistic)"),
        ("adamw_ms_per_step_cpu", "AdamW ms per step, CPU time (fastest block)"),
        ("admire_ms_per_step_cpu", "AdmIRE ms per step, CPU time (fastest block)"),
        ("adamw_ms_per_step_wall", "AdamW ms per step, wall-clock (fastest block)"),
        ("admire_ms_per_step_wall", "AdmIRE ms per step, wall-clock (fastest block)"),
        ("adamw_peak_mb", "AdamW peak memory growth, MB (CPU: peak RSS; CUDA: max_memory_allocated)"),
        ("admire_peak_mb", "AdmIRE peak memory growth, MB (same method)"),
        ("peak_memory_ratio", "AdmIRE / AdamW peak memory growth"),
        ("adamw_state_mb", "AdamW optimizer state, MB (exact: moments)"),
        ("admire_state_mb", "AdmIRE optimizer state, MB (exact: moments + mask)"),
    ),
    plots=(
        Plot("blocks", "block", ("ratio_cpu", "ratio_wall", "ratio_null_cpu", "ratio_null_wall"),
             "AdmIRE / AdamW seconds per block of K steps (null: AdamW / AdamW)", ylabel="ratio",
             hlines=((PAPER_STEP_TIME_RATIO, "paper 1.12"),), style="markers"),
    ),
    tuning="none: every arm uses the same model, init, batches, AdamW recipe and thread count; kappa 3, "
           "gamma 0.6, K 10 as in the paper (kappa does not change the cost).",
    notes="Bound 1.12 x 1.10: the paper gives the overhead as 10-12% on one A800 with a 60M model, and the "
          "share of the step spent outside matrix products (IRE's parameter copy, masked update and global "
          "k-th value) differs between that GPU and a CPU or H100. Each timed block is K steps and holds "
          "exactly one mask refresh (an extra forward/backward on a batch of the training size), so the ratio "
          "includes the refresh amortised over K. The three arms' blocks are interleaved (rotating order), "
          "and each arm's fastest block is used: contention from other processes only adds time, so the "
          "minimum is the least disturbed block, and CPU time does not count time the core was taken away. "
          "The null row (a second AdamW, same work) shows what 'no overhead' reads. Peak memory on CPU is the "
          "growth of the process's peak resident set while a fresh model and optimizer train K + 1 steps "
          "alone (Linux VmHWM reset through /proc/self/clear_refs, freed heap returned with malloc_trim "
          "first), so it includes allocator slack; on CUDA it is torch.cuda.max_memory_allocated growth. The "
          "optimizer-state rows are exact byte counts.",
    changes=(
        Change("2026-12-01",
               what="Checked statistic: ratio of the fastest K-step blocks (was total wall time over all "
                    "blocks), on thread CPU time on CPU and on wall-clock synchronised inside the timed region "
                    "on CUDA; both clocks reported. A third arm, a second AdamW, gives the null row; blocks "
                    "rotate over the three arms (was ABBA over two). Weight decay on every parameter (as the "
                    "speed-up claim; no effect on cost). cpu tier 3 -> 5 seeds, 6 timed blocks per arm; gpu "
                    "20 -> 21 blocks (a multiple of 3). The band (<= 1.233) is unchanged and was written down "
                    "before this version ran.",
               why="A project review of the stored runs: the v1 statistic measured wall time on a shared machine (1.174 [1.162, 1.186] in "
                   "one run, 1.185 [1.04, 1.33] in another), which contention biases; and the project's "
                   "5-seed rule. Cost: ~230 steps per seed (~15 s single-core), inside the cpu-tier budget.",
               results_seen=True),
        Change("2026-12-01",
               what="gpu tier only: the paper's 60M model and 240x150-token batch on uniform random tokens of "
                    "GPT-2's vocabulary (data='random'), instead of small-30m on WikiText-103 with 32x256 "
                    "tokens. cpu and smoke tiers unchanged; the band is unchanged.",
               why="A project review of the stored runs: a step-time ratio is faithful on random tokens (a step's cost does not "
                   "depend on the token values), so the gpu tier needs no download, and it should time the "
                   "paper's model size. The gpu tier has never run; cpu-tier results of this claim had been "
                   "seen (v2).",
               results_seen=True),
        Change("2026-12-07",
               what="Regime check (pre-registered): the timing thread held a core for >= 90% of the timed "
                    "wall-clock (on_core_share); below it the claim reads out-of-regime and the ratio is only "
                    "reported, so a loaded machine no longer decides the verdict. gpu tier: float32 with TF32 "
                    "matmuls (was bf16 autocast), with the same blocks under bf16 timed beside (notes). The "
                    "band (<= 1.233), statistic, blocks and seeds are unchanged; every check names its source.",
               why="A review of the stored runs read 1.199 [1.149, 1.249] (inconclusive) on a loaded machine and "
                   "1.172 [1.129, 1.214] (holds) on a quiet one, same code and seeds: thread CPU time is not "
                   "immune to contention on shared caches. Sec. 6 times the authors' LM setup, whose script "
                   "(NLP/LLM/train_adamire_wiki103_Llama.py) sets allow_tf32 and never enters its bf16 "
                   "autocast context.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seeds: a fixed 5 -> a pilot of 5, then seeds by power up to 8 (two looks). Band, "
                    "statistic, regime check and blocks unchanged.",
               why="The first cpu runs of v4 on disjoint seed sets read 1.200 [1.175, 1.224] (seeds 100-104: "
                   "holds) and 1.194 [1.148, 1.240] (seeds 200-204: inconclusive, ~6 seeds projected): a ratio "
                   "near the band's edge that 5 fixed seeds cannot always decide. A seed costs ~23 "
                   "single-core seconds. The first run of v5 uses seeds no earlier run used.",
               results_seen=True),
    ),
    version=5,
))
