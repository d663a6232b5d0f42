"""Lyu, Li, Arora (NeurIPS 2022): in EoS, GD + WD follows a sharpness-reduction flow on the clock tau."""
from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import AtMost, Change, Check, Claim, Effect, Plot, Tier, register
from harness.experiments.eos_reduction import ReductionConfig, sharpness_reduction_runs

CLAIM = register(Claim(
    id="sharpness-reduction",
    source="Lyu, Li, Arora, NeurIPS 2022, Thm. 1.2 / Sec. 4",
    statement="After entering the Edge of Stability, spherical sharpness decreases along the flow, on the "
              "theory's clock tau = lr * wd * t: from the first post-onset tau window to the last, S_sph falls "
              "by more than the same net's without weight decay over the same steps (which has no EoS and "
              "flattens only as cross-entropy margins grow).",
    paper_value="S_sph decreases along the flow in EoS on the clock tau (Thm. 1.2; direction, no rate); a smooth "
                "probe fell ~exp(-0.5 (tau - tau_onset))",
    experiment=sharpness_reduction_runs,
    tiers={  # the eos-scale-invariant runs, reused from the cache, plus their wd = 0 twin
        "smoke": Tier(seeds=1, config=ReductionConfig(base=SMOKE), scale="tanh BN MLP, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, max_seeds=5, config=ReductionConfig(base=CPU),
                    scale="tanh BN MLP 64-64, 1000 digits, 2000 GD steps (tau = 4, measured every 25), and its "
                          "wd = 0 twin (measured every 199), float64 (lambda_max: float32 copy, "
                          "value stop)"),
        "gpu": Tier(seeds=3, config=ReductionConfig(base=GPU),
                    scale="tanh/avg-pool CNN (bn_eps 0), 5000 CIFAR-10 images, 4000 GD steps (tau = 8), float32, "
                          "and its wd = 0 twin"),
    },
    checks=(
        Check("sph_window_fall_over_wd0", Effect(0.2, null=1.0, direction=-1),
              "S_sph's fall from the first post-onset tau window to the last (ratio of window means), over the "
              "same ratio for the wd = 0 twin on the same steps (< 1: weight decay's EoS flow flattens beyond "
              "what cross-entropy alone does; 1 = no effect)",
              source="Thm. 1.2 (in EoS, S_sph decreases along the flow on the clock tau; the theorem gives the "
                     "direction, not a rate); smallest effect 0.2 (the run ends at most 0.8x its twin's "
                     "fall) is our choice: well below the ~2x fall of the smooth probe in this claim's v2 "
                     "entry, and above the noise of window means of log S_sph (sd ~0.1, "
                     "eos-intrinsic-time-collapse v4 entry)",
              paper="direction only: S_sph decreases (Thm. 1.2); no ratio for a finite run"),
    ),
    regime=(
        Check("onset_fraction", AtMost(0.8),
              "premise: the run enters EoS (first lr*lambda_max >= 1.8) within the first 80% of training, so "
              "there is an EoS phase to measure the fall in",
              source="Thm. 1.1 (EoS entered within ~1/(lr*wd) steps, tau ~ 1); 80% is our choice: at least "
                     "20% of training (0.8 units of tau here) left after the onset"),
    ),
    reported=(("sph_window_fall", "S_sph last / first post-onset tau-window mean (the run alone)"),
              ("null_wd0_sph_window_fall", "null: the same window ratio for the wd = 0 twin (the fall without "
                                           "weight decay)"),
              ("trend_fall", "fitted trend: exp(slope of log S_sph per tau x tau after onset)"),
              ("sph_log_slope_per_tau", "slope of log S_sph per unit tau, fitted from the onset (v3 check)"),
              ("sph_final_over_peak", "final / post-onset peak S_sph (v3 check; divides by a spike)"),
              ("tau_onset", "EoS onset in tau"), ("tau_after_onset", "tau from onset to the end"),
              ("null_wd0_sph_final_over_onset", "null: the wd = 0 twin's final S_sph / its S_sph at the "
                                                "onset step"),
              ("rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd), every step (theory: 1)")),
    plots=(
        Plot("trajectory", "tau", ("spherical_sharpness",), "Spherical sharpness ||w||^2 lambda_max",
             ylabel="S_sph", xlabel="tau = lr * wd * step", ylog=True, window="onset", onset="tau_onset"),
        Plot("trajectory", "tau", ("sq_norm",), "Weight norm ||w||^2", ylabel="||w||^2",
             xlabel="tau = lr * wd * step", ylog=True),
    ),
    changes=(
        Change("2026-12-01",
               what="Onset is the origin of both reduction metrics: sph_final_over_peak divides by the largest "
                    "S_sph at or after the EoS onset (was: the global maximum), and the slope is of log S_sph "
                    "per unit tau = lr*wd*t fitted from the onset (was: per 1k steps from the argmax). Expected "
                    "fall stated in tau. Runs follow eos-scale-invariant (tanh, lr*wd 2e-3, 2000 steps, tau 4, "
                    "5 seeds); a wd = 0 twin adds a null row. norm_equilibrium_ratio (2/(lr lambda_max) "
                    "restated) replaced by norm4_over_equilibrium. Bands unchanged (onset <= 0.8, slope now "
                    "strictly < 0, ratio <= 0.5).",
               why="The global maximum was the step-0 value for 2 of 3 seeds (ordinary early training; 0.433 "
                   "[0.349, 0.517] before, ~0.476 with the post-onset peak); a slope fitted from the argmax of "
                   "a spiky series is biased negative, so '<= 0' could hardly fail. The theory's clock is "
                   "tau; the old 4000 steps at lr*wd 5e-4 were ~1 unit after onset. Expected rate -0.5 per "
                   "unit tau: the smooth tanh/MSE probe in shared/papers/lyu-eos.md (S_sph 1420 -> 86 over "
                   "~5.7 units of tau after onset). Under cross-entropy S_sph also falls as margins grow, so "
                   "the wd = 0 twin's fall over the same steps is shown beside it.",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 5 -> a pilot of 3, then seeds chosen by power up to 5 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): the wd = 0 twin "
                   "(the null row) is a run of its own per seed. The extra look is paid for in the level: "
                   "both looks use 97.5% intervals (Bonferroni, harness.claim.sequential), so the verdict's error"
                   " rate stays <= 5%. Seen before the change: all three checks held over 5 seeds, and over"
                   " the first 3 at 97.5% (onset 0.15 [0.07, 0.23], slope -0.27 [-0.55, -0.002], final/peak"
                   " 0.22 [0.04, 0.40]). Bands unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="One check, an Effect: sph_window_fall_over_wd0 = (S_sph's last / first post-onset tau-window "
                    "mean, windows of width 1) over the same ratio for the wd = 0 twin on the same steps, "
                    "smallest effect 0.2 below the no-effect value 1. The onset check becomes the claim's "
                    "regime check (onset within 80% of training). The slope (< 0) and final/peak (<= 0.5) "
                    "checks become reported rows, beside the run's own window ratio, the twin's, and the "
                    "fitted trend exp(slope x tau after onset). Dropped: norm4_over_equilibrium. gpu tier: "
                    "BatchNorm eps 0 (from eos-scale-invariant's gpu config). Seeds unchanged (pilot 3, up to 5; "
                    "the family is 1 check + 1 regime check).",
               why="A review of the stored runs read final/peak 0.22 (passes <= 0.5) while the ratio of the last "
                   "to the first post-onset tau-window means read 0.51 [0.43, 0.60] and the fitted trend "
                   "exp(slope x tau) 0.40 [0.30, 0.49] on the same runs: final/peak divides by the largest "
                   "spike of an oscillating series, and its 0.5 has no source in the paper (Thm. 1.2 gives "
                   "the direction of the flow, not a rate). Window means average the EoS oscillation out. "
                   "The wd = 0 twin's S_sph rises x1.82 over the same steps (same review): it is the strong "
                   "null, and the comparison against it is the claim's content (weight decay's flow, not "
                   "cross-entropy's margins). norm4_over_equilibrium: see eos-scale-invariant v3.",
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
