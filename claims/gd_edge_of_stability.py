"""Cohen et al. (ICLR 2021): plain full-batch GD's sharpness rises to 2/eta and hovers there."""
from harness import AtLeast, AtMost, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.optim import OptimizerSpec

# A non-normalized tanh MLP with Cohen's MSE (0.5 * sum over classes); no weight decay.
# float32 with the Lanczos value stop (v4 entry: a 10-seed comparison with float64 moved no check).
CPU = GDConfig(model="plain_mlp", activation="tanh", loss="mse", optim=OptimizerSpec("sgd", lr=0.2),
               steps=2000, measure_every=49, n_train=1000, dtype="float32", lanczos_stop="value")

CLAIM = register(Claim(
    id="gd-edge-of-stability",
    source="Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021, Sec. 3 and Fig. 1",
    statement="Full-batch GD on a non-normalized net: sharpness rises until lr * lambda_max reaches 2 "
              "(progressive sharpening), then hovers at or just above 2 (Edge of Stability).",
    paper_value="lr * lambda_max rises to 2 and stays within a few % above 2 (CIFAR-10 subsets, many nets)",
    experiment=gd_sharpness_trajectory,
    tiers={
        "smoke": Tier(seeds=1, config=derive(CPU, steps=60, n_train=200, measure_every=15),
                      scale="tanh MLP 64-64, 200 digits, 60 GD steps"),
        "cpu": Tier(seeds=3, max_seeds=5, config=CPU,
                    scale="tanh MLP 64-64, 1000 digits, 2000 GD steps, float32 (lambda_max: value stop)"),
        "gpu": Tier(seeds=3, config=derive(CPU, {"optim.lr": 0.05}, data="cifar10",
                                           data_root="data/cifar-10-batches-py", n_train=5000, n_test=1000,
                                           widths=(512, 512), steps=6000, measure_every=51, dtype="float32",
                                           lanczos_stop="residual"),
                    scale="tanh MLP 512-512, 5000 CIFAR-10 images, 6000 GD steps, float32"),
    },
    checks=(
        Check("lr_lambda_max_initial", AtMost(1.0),
              "lr*lambda_max at step 0: at most half the edge, so reaching it needs sharpness to rise "
              "(progressive sharpening); a run that starts at the edge fails",
              source="Cohen et al. Sec. 3 ('so long as the sharpness is less than 2/eta, it tends to continually "
                     "rise'); half the edge is our choice (this claim's v2 entry): the sharpness must about "
                     "double to reach the onset"),
        Check("onset_fraction", AtMost(0.8),
              "EoS onset (first lr*lambda_max >= 1.8) as a fraction of training",
              source="Cohen et al. Sec. 3 (sharpness reaches 2/eta); 1.8 (90% of the edge) and 80% of training "
                     "are our choice: the run must reach the edge with a fifth of training left to hover"),
        Check("in_band_fraction", AtLeast(0.8),
              "share of post-onset measurements with lr*lambda_max in [1.8, 2.3]",
              source="Cohen et al. Fig. 1 and Sec. 3 ('hovers right at, or just above, 2/eta'); band and 80% "
                     "from the smooth small probes (2.00-2.23 observed), our choice",
              paper="at or a few % above 2 (Cohen et al. Fig. 1)"),
    ),
    reported=(("onset_step", "onset step"),
              ("lr_lambda_max_tail_median", "lr*lambda_max, median of the last 30%"),
              ("train_loss_final", "final training loss"),
              ("max_lambda_residual_rel", "worst Lanczos residual / lambda")),
    plots=(
        Plot("trajectory", "step", ("lambda_max",), "Sharpness vs 2/lr", ylabel="lambda_max",
             hlines=(("two_over_lr", "2/lr"),), window="onset", onset="onset_step"),
        Plot("trajectory", "step", ("loss",), "Training loss", ylabel="loss", ylog=True),
    ),
    changes=(
        Change("2026-12-01",
               what="New check lr_lambda_max_initial <= 1.0 (sharpness at step 0 at most half of 2/lr); cpu "
                    "seeds 3 -> 5.",
               why="Nothing checked progressive sharpening: a run that starts at the edge passed both checks. "
                   "Cohen et al. (Sec. 3, Fig. 1): 'so long as the sharpness is less than 2/eta, it tends to "
                   "continually rise'; their runs start well below 2/eta. Starting at most half-way means the "
                   "sharpness must at least ~double to reach the onset threshold 1.8. The step-0 value of the "
                   "cpu runs had not been looked at when the bound was written (before: onset 0.327 holds, "
                   "in-band 1.0 holds). 5 seeds: project rule.",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 5 -> a pilot of 3, then seeds chosen by power up to 5 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): ~11.5 single-core"
                   " seconds a seed, and the default run must fit 10 minutes on 2 cores. The extra look is "
                   "paid for in the level: both looks use 97.5% intervals (Bonferroni, harness.claim.sequential),"
                   " so the verdict's error rate stays <= 5%. Seen before the change: all three checks held"
                   " over 5 seeds, and over the first 3 at 97.5% (lr*lambda_max(0) 0.50 [0.28, 0.73], onset"
                   " 0.33 [0.28, 0.38], in-band 1.0). Bands unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu tier in float32 end to end: training, and lambda_max solved on the float32 model "
                    "with the Lanczos value stop (error bound min(r, r^2/gap) <= 1e-3 lambda) instead of "
                    "float64 with the residual stop. gpu tier unchanged. Bands, checks and seeds unchanged; "
                    "the next cpu run uses fresh seeds.",
               why="Cost: float32 about halves an EoS seed's CPU time. "
                   "Shown not to move any check of this "
                   "claim: tools/dtype_compare.py (rule pre-registered in its docstring, committed before "
                   "its first cpu run), seeds 5000-5009, paired all-float32 ('fast') - v3 setting with 95% "
                   "intervals: lr*lambda_max at step 0 -0.00001 [-0.00003, -0.000002] (X 0.25), onset "
                   "fraction identical in every seed, in-band share 0.0066 [-0.0033, 0.0165] (X 0.2; 0.993 "
                   "-> 1.000): every check 'same'. CPU time of its seeds in one process: 0.56x (with "
                   "eos-scale-invariant-relu's: 102 s against 182 s).",
               results_seen=True),
    ),
    version=4,
))
