"""Lyu, Li, Arora (NeurIPS 2022): in EoS, GD + WD follows a sharpness-reduction flow on the clock tau."""
from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import AtMost, Below, Change, Check, Claim, Plot, Tier, register
from harness.experiments.eos import ReductionConfig, sharpness_reduction_runs

CLAIM = register(Claim(
    id="sharpness-reduction",
    source="Lyu, Li, Arora, NeurIPS 2022, Thm. 1.2 / Sec. 4",
    statement="After entering the Edge of Stability, spherical sharpness decreases along the flow, on the "
              "theory's clock tau = lr * wd * t: measured from the EoS onset, log S_sph falls steadily, at "
              "~0.5 per unit of tau in a smooth probe, so by ~3 units of tau after onset S_sph is at most half "
              "its post-onset peak.",
    paper_value="S_sph falls markedly (>= 2x) on a time scale of ~1/(lr*wd) steps; expected fall "
                "S_sph(tau)/S_sph(onset) ~ exp(-0.5 (tau - tau_onset)), i.e. ~0.2 at 3 units after onset",
    experiment=sharpness_reduction_runs,
    tiers={  # the eos-scale-invariant runs, reused from the cache, plus their wd = 0 twin
        "smoke": Tier(seeds=1, config=ReductionConfig(base=SMOKE), scale="tanh BN MLP, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, max_seeds=5, config=ReductionConfig(base=CPU),
                    scale="tanh BN MLP 64-64, 1000 digits, 2000 GD steps (tau = 4), and its wd = 0 twin"),
        "gpu": Tier(seeds=3, config=ReductionConfig(base=GPU),
                    scale="tanh/avg-pool CNN, 5000 CIFAR-10 images, 4000 GD steps (tau = 8)"),
    },
    checks=(
        Check("onset_fraction", AtMost(0.8),
              "EoS entered (first lr*lambda_max >= 1.8) within the first 80% of training"),
        Check("sph_log_slope_per_tau", Below(0.0),
              "slope of log S_sph per unit tau, fitted from the EoS onset on (< 0: decreasing; smooth probe "
              "~ -0.5)"),
        Check("sph_final_over_peak", AtMost(0.5),
              "final / post-onset peak S_sph (<= 0.5: fell at least 2x; expected ~exp(-0.5 x tau after onset))"),
    ),
    reported=(("sph_peak", "post-onset peak S_sph"), ("sph_final", "final S_sph"),
              ("tau_onset", "EoS onset in tau"), ("tau_after_onset", "tau from onset to the end"),
              ("null_wd0_sph_final_over_onset", "null: the wd = 0 twin's final S_sph / its S_sph at the "
                                                "onset step (the fall without weight decay)"),
              ("rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd) (theory: 1)")),
    plots=(
        Plot("trajectory", "tau", ("spherical_sharpness",), "Spherical sharpness ||w||^2 lambda_max",
             ylabel="S_sph", xlabel="tau = lr * wd * step", ylog=True),
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
               why="Issue 9 (seeds chosen by power, and the cpu tier's 10-minute budget): the wd = 0 twin "
                   "(the null row) is a run of its own per seed. The extra look is paid for in the level: "
                   "both looks use 97.5% intervals (Bonferroni, harness.sequential), so the verdict's error"
                   " rate stays <= 5%. Seen before the change: all three checks held over 5 seeds, and over"
                   " the first 3 at 97.5% (onset 0.15 [0.07, 0.23], slope -0.27 [-0.55, -0.002], final/peak"
                   " 0.22 [0.04, 0.40]). Bands unchanged.",
               results_seen=True),
    ),
    version=3,
))
