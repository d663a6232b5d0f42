"""Lyu, Li, Arora (NeurIPS 2022): normalization with weight decay ends at flatter solutions."""

from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import Change, Check, Claim, Effect, Plot, Tier, register
from harness.experiments.eos_reduction import ArmsConfig, normalization_arms

CLAIM = register(Claim(
    id="normalization-reduces-sharpness",
    source="Lyu, Li, Arora, NeurIPS 2022, Sec. 1 and Sec. 5",
    statement="A scale-invariant net trained by GD WITH weight decay ends flatter (lower spherical "
              "sharpness) than the same net with wd = 0, whose norm is frozen and which never enters EoS.",
    paper_value="flatter solutions and better test accuracy with normalization + WD (qualitative: no ratio given)",
    experiment=normalization_arms,
    tiers={
        "smoke": Tier(seeds=1, config=ArmsConfig(base=SMOKE), scale="3 arms, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, max_seeds=5, config=ArmsConfig(base=CPU),
                    scale="3 arms (BN+WD, BN wd=0, no-BN+WD) tanh 64-64 MLPs, 1000 digits, 2000 GD steps "
                          "(tau = 4 for the WD arms)"),
        "gpu": Tier(seeds=3, config=ArmsConfig(base=GPU, plain_model="plain_cnn"),
                    scale="3 arms (the tanh/avg-pool CNN with BN (eps 0) and WD, with wd = 0, and the same CNN "
                          "without normalization), 5000 CIFAR-10 images, 4000 GD steps, float32"),
    },
    checks=(
        Check("sph_ratio_wd_over_no_wd", Effect(0.2, null=1.0, direction=-1),
              "final S_sph with WD / without WD (< 1: flatter with WD, the paper's statement; 1 = no effect)",
              source="Lyu et al. Sec. 1 and 5 ('flatter', no ratio given); smallest effect 0.2 (a ratio <= 0.8) "
                     "is our choice, as sharpness-reduction's: a difference of less than 20% in S_sph is within "
                     "the EoS oscillation of a single final reading",
              paper="flatter with normalization + WD (qualitative, Sec. 1 and 5)"),
    ),
    reported=(("sph_ratio_null_at_onset", "null: the same ratio at the WD arm's EoS onset, before the "
                                          "sharpness-reduction flow acts"),
              ("test_acc_wd_minus_no_wd", "test accuracy: BN+WD minus BN wd=0"),
              ("test_acc_bn_minus_plain", "test accuracy: BN+WD minus no-BN+WD (secondary)"),
              ("bn_wd.test_acc_final", "test accuracy BN+WD"),
              ("bn_no_wd.test_acc_final", "test accuracy BN wd=0"),
              ("plain_wd.test_acc_final", "test accuracy no-BN+WD"),
              ("bn_no_wd.lr_lambda_max_tail_median", "lr*lambda_max without WD (no EoS expected)"),
              ("bn_wd.rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd) (theory: 1)"),
              ("plain_wd.lambda_max_final", "no-BN lambda_max, final (EoS would pin it near 2/lr = 20; raw sharpness is not comparable across BN and no-BN)")),
    plots=(
        Plot("arms", "step", ("sph_bn_wd", "sph_bn_no_wd"), "Spherical sharpness with and without WD",
             ylabel="S_sph", ylog=True),
    ),
    tuning="none: the three arms share every setting except the one compared (wd, or BatchNorm)",
    changes=(
        Change("2026-12-01",
               what="Check threshold sph_ratio_wd_over_no_wd <= 0.5 -> < 1 (strict). Arms follow "
                    "eos-scale-invariant (tanh, lr*wd 2e-3, 2000 steps, 5 seeds). gpu tier: the no-BN twin is "
                    "the same CNN without normalization (plain_cnn), not an MLP on flattened images. Null row: "
                    "the same ratio at the WD arm's onset. norm_equilibrium_ratio replaced by "
                    "norm4_over_equilibrium.",
               why="0.5 is not in the paper: Lyu et al. state only that normalization + WD ends flatter "
                   "(Sec. 1, Sec. 5), and the theory gives no ratio for a finite run (Thm. 1.2 gives the "
                   "flow's direction on the clock tau, not its rate on a given landscape); under cross-entropy "
                   "the wd = 0 arm also flattens as margins grow, so the comparison against it is the "
                   "measurement and 'flatter' means a ratio below the no-effect value 1. The MLP was not the "
                   "CNN's twin. Before: 0.566 [0.378, 0.753] against <= 0.5, inconclusive (ReLU schedule).",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 5 -> a pilot of 3, then seeds chosen by power up to 5 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): the BN wd = 0 and"
                   " no-BN arms are ~21 single-core seconds a seed beyond the shared BN+WD run. The extra "
                   "look is paid for in the level: both looks use 97.5% intervals (Bonferroni, "
                   "harness.claim.sequential), so the verdict's error rate stays <= 5%. Seen before the change: "
                   "sph_ratio_wd_over_no_wd 0.228 [0.192, 0.264] over 5 seeds (holds, band < 1); the first "
                   "3 seeds read 0.236 [0.139, 0.333] at 97.5%. Band unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="The check is an Effect: sph_ratio_wd_over_no_wd holds below the no-effect value 1 and fails "
                    "when its interval lies entirely above 0.8 (smallest effect of interest 0.2). Dropped: "
                    "bn_wd.norm4_over_equilibrium. gpu tier: BatchNorm eps 1e-5 -> 0 (eos-scale-invariant's gpu "
                    "config). Setup and seeds unchanged.",
               why="A strict '< 1' on an effect that is truly 0 straddles 1 for ever; with a smallest effect "
                   "of interest 'no effect' is reachable (the house rule for comparative checks). The paper "
                   "gives no ratio (Sec. 1, 5), so 0.2 is our choice, the same as sharpness-reduction's. Seen "
                   "before: 0.228 [0.192, 0.264] over 5 seeds (this claim's v3 entry). eps > 0 breaks the "
                   "scale invariance S_sph relies on (Lyu et al. Sec. 3). norm4: see eos-scale-invariant v3.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu tier: lambda_max is solved on a float32 copy of the Hessian operator with the "
                    "Lanczos value stop (error bound min(r, r^2/gap) <= 1e-3 lambda) instead of float64 with "
                    "the residual stop; training stays float64, so the iterates are the previous version's "
                    "to the last bit (the probes never touch them). One config, shared by "
                    "eos-scale-invariant, sharpness-reduction, normalization-reduces-sharpness and "
                    "eos-intrinsic-time-collapse. Bands, checks and seeds unchanged; the next cpu run uses "
                    "fresh seeds.",
               why="Cost: the curvature was 42-48% of an EoS seed's CPU time (measured in one process). "
                   "Shown not to move any check of these claims: tools/dtype_compare.py (rule pre-registered "
                   "in its docstring, committed before its first cpu run), seeds 5000-5009, paired curv32 - "
                   "v4 setting with 95% intervals: smallest-rung tail median -0.00016 [-0.00026, -0.00006] "
                   "(X 0.15), excess slope 0.00003 [-0.000003, 0.00007] (X 0.05), pre-onset symmetry spread "
                   "4.7e-7 [3.7e-7, 5.8e-7] (X 2.5e-5; float64 1.8e-15), clock window difference -0.0002 "
                   "[-0.0010, 0.0005] (X 0.0625), clock null 1 in every seed in both, sharpness-reduction's "
                   "window fall -0.0002 [-0.0005, 0.0001] (X 0.2), its onset fraction identical, "
                   "normalization's ratio -5e-7 [-2.8e-6, 1.8e-6] (X 0.2): every check 'same'. The "
                   "all-float32 setting ('fast', CPU 0.58x) read 'undecided' on both eos-scale-invariant "
                   "checks (tail median -0.067 [-0.154, 0.021], slope 0.020 [-0.042, 0.082]) and on the "
                   "clock check (0.030 [-0.005, 0.064]), so training stays float64. CPU time of the four "
                   "claims' seeds in one process: 408 s against 555 s (0.735x).",
               results_seen=True),
    ),
    version=5,
))
