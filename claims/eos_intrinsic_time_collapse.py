"""Lyu, Li, Arora (NeurIPS 2022): exact (lr, wd, ||w0||) symmetry, and the flow's clock tau = lr * wd * t."""
from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import AtLeast, AtMost, Change, Check, Claim, Plot, Tier, register
from harness.experiments.eos_collapse import CollapseConfig, eos_intrinsic_time_collapse

# The clock check's margin on window means of log S_sph, from pilot seeds no claim uses (v6 entry).
CLOCK_MARGIN = 0.25  # 2 x 0.106, the largest pilot realization difference, rounded up to 0.05 (v6 entry)
CPU_CLOCK = CollapseConfig(base=CPU, symmetry_tau=1.2, clock_factor=0.5, clock_tau_end=2.0,
                           clock_margin=CLOCK_MARGIN)

CLAIM = register(Claim(
    id="eos-intrinsic-time-collapse",
    source="Lyu, Li, Arora, NeurIPS 2022, Sec. 3 (scale invariance: GD + WD on the sphere with effective "
           "step lr/||w||^2) and Thm. 1.2 (the flow runs on tau = lr * wd * t)",
    statement="For GD + WD on a scale-invariant net, (1) the trajectory of w/||w|| depends on (lr, wd, ||w0||) "
              "only through lr*wd and lr/||w0||^2 (an exact symmetry, checked before the EoS onset as a check "
              "of the implementation), and (2) after the onset the sharpness-reduction flow runs on the clock "
              "tau = lr*wd*t: runs at different lr*wd follow one slow curve of S_sph against tau, and not "
              "against steps.",
    paper_value="(1) an identity; (2) curves collapse on tau as lr*wd -> 0 (Thm. 1.2)",
    experiment=eos_intrinsic_time_collapse,
    tiers={
        "smoke": Tier(seeds=1, config=CollapseConfig(base=SMOKE, clock_margin=CLOCK_MARGIN),
                      scale="3 settings and the lr*wd x 1/2 run, 200 digits, 60 steps (120 for the slower run)"),
        "cpu": Tier(seeds=3, max_seeds=8, config=CPU_CLOCK,
                    scale="tanh BN MLP 64-64, 1000 digits, float64 (lambda_max: float32 copy, value stop). "
                          "Symmetry: c^2 in (0.5, 1, 3) at lr*wd = "
                          "2e-3, the rescaled settings for 600 steps (tau 1.2), every 25. Clock: lr*wd 2e-3 "
                          "(first 1000 steps of the shared run) and 1e-3 (2000 steps, every 51: "
                          "eos-scale-invariant's ladder rung), to tau 2"),
        "gpu": Tier(seeds=3, config=CollapseConfig(base=GPU, symmetry_tau=4.0, clock_factor=0.5, clock_tau_end=4.0,
                                                   clock_margin=CLOCK_MARGIN),
                    scale="tanh/avg-pool CNN (bn_eps 0), 5000 CIFAR-10 images, float32; settings to tau 4, clock "
                          "pair lr*wd 2e-3 / 1e-3 to tau 4"),
    },
    checks=(
        Check("sph_max_rel_spread_before_onset", AtMost(1e-4),
              "implementation symmetry check: largest (max - min) / median of S_sph across the 3 rescaled "
              "settings at matched tau, up to the base run's EoS onset (exact in exact arithmetic)",
              source="the exact rescaling symmetry of a scale-invariant loss (Lyu et al. Sec. 3; derivation in "
                     "harness.experiments.eos_collapse); 1e-4 from the eigen-solver's residual stop (this "
                     "claim's v4 entry)",
              paper="0 (an identity)"),
        Check("clock_log_sph_window_diff", AtMost(CLOCK_MARGIN),
              "the clock: lr*wd 2e-3 and 1e-3 (same lr, init) compared at matched tau after the later onset: "
              "largest |difference| of tau-window means (width 1) of log S_sph",
              source="Thm. 1.2 (the sharpness-reduction flow runs on tau = lr*wd*t); margin from pilot seeds "
                     "used by no claim (v6 entry)",
              paper="0 in the limit lr*wd -> 0 (curves collapse on tau)"),
    ),
    regime=(
        Check("clock_null_separates", AtLeast(1.0),
              "validity gate: the same two runs compared at matched steps (the wrong clock) read above the "
              "margin, in every seed (1 per seed that separates, 0 otherwise); if not, the clock check cannot "
              "tell tau from steps at this tier",
              source="our choice: a check whose null reads inside its band cannot discriminate (a review of "
                     "this claim's v5 runs)"),
    ),
    reported=(("null_clock_log_sph_window_diff_matched_steps",
               "null: the clock pair's window difference at matched steps (the wrong clock)"),
              ("sph_max_rel_spread_before_onset_null_product",
               "null: the pre-onset pointwise spread between the clock pair (lr*wd differ: not a symmetry)"),
              ("clock_lr_lambda_max_window_diff", "the clock pair's window difference of eta_eff * S_sph"),
              ("clock_tau_onset", "the clock pair's later EoS onset in tau (the windows' start)"),
              ("clock_windows", "tau windows compared"),
              ("tau_onset", "base run's EoS onset in tau"),
              ("matched_points_before_onset", "matched tau points compared before the onset")),
    plots=(
        Plot("collapse", "tau", ("sph_c2_0.5", "sph_c2_1", "sph_c2_3"),
             "Symmetry: S_sph of three (lr, wd, ||w0||) settings with the same lr*wd",
             ylabel="S_sph", xlabel="tau = lr * wd * step", ylog=True),
        Plot("clock", "tau", ("sph_base", "sph_slow_matched_tau", "sph_slow_matched_steps"),
             "Clock: lr*wd 2e-3 against 1e-3 at matched tau and at matched steps",
             ylabel="S_sph", xlabel="tau of the lr*wd 2e-3 run", ylog=True),
    ),
    changes=(
        Change("2026-12-01",
               what="New claim: settings (lr c^2, wd / c^2, init x c) for c^2 in (0.5, 1, 2) at lr*wd = 2e-3 "
                    "(the eos-scale-invariant run is c^2 = 1); check: largest relative spread of S_sph at "
                    "matched tau <= 0.01; null row: the same spread against a run with lr*wd doubled.",
               why="The sharpest prediction of Lyu et al.: with grad L(cw) = grad L(w)/c the rescaled run is "
                   "c times the base run at every step, so any visible spread means the net is not "
                   "scale-invariant or rounding differences grow along the EoS dynamics. c = sqrt(2) is not "
                   "a power of two, so the settings differ in rounding from the first step. 1% is a plot's "
                   "line width and well below the seed-to-seed spread. Band written before the cpu tier "
                   "ran (only the 60-step smoke tier had run, for plumbing).",
               results_seen=False),
        Change("2026-12-01",
               what="Two reported rows (no check or band changed): the largest spread over matched tau up to the "
                    "EoS onset, and the tau from onset until the spread first exceeds 1%.",
               why="The first cpu run failed the check (largest spread 1.64 [0.44, 2.85], median 0.13): the "
                   "training loss of the settings agrees to ~2e-16 up to step 225 and parts after the onset, "
                   "i.e. GD at the edge of stability amplifies the rounding of the sqrt(2)-rescaled init (the "
                   "c^2 = 0.5 and c^2 = 2 runs, exact power-of-two rescalings of each other, stay identical). "
                   "The rows show where the settings part; the verdict stays as pre-registered.",
               results_seen=True),
        Change("2026-12-01",
               what="Redesign. Check 1: the v3 pointwise spread restricted to matched tau up to the base run's "
                    "EoS onset, band <= 1e-4. Check 2 (new): after the onset, the mean of log S_sph over tau "
                    "windows of width 1 (full windows from the onset; one window [0, tau_end] if none fits), "
                    "per setting from its own measurements; metric = largest |difference| over windows and "
                    "pairs of settings, per seed; band <= log 1.25. Null rows: the same two metrics between "
                    "the base run and the lr*wd x 2 run. The v3 check (pointwise spread over the whole run) "
                    "is kept as a reported row. The other settings now measure every 25 steps like the base "
                    "run (was 75; the null every 13, was 39), and c^2 = 2 became c^2 = 3.",
               why="v3's check failed at the cpu tier, 1.644 [0.439, 2.849] against <= 0.01, and its null "
                   "(lr*wd doubled) read 1.27 [1.04, 1.50]: the check could not tell the prediction from its "
                   "null. The settings agree to ~1e-16 in loss up to the onset (spread 1.1e-6 there); then GD "
                   "at the edge of stability amplifies rounding (the sqrt(2)-scaled init is not exact in "
                   "floating point) into O(1) pointwise differences, so v3 measured floating-point chaos, not "
                   "the claim. After the onset the settings are like seeds of one process; the claim's content "
                   "is that the slow quantity is the same function of tau. "
                   "1e-4 before onset: lambda_max is solved by Lanczos, warm-started, stopped at a residual "
                   "||H y - theta y|| <= tol |theta|, tol = 1e-3; a Ritz value then sits within "
                   "||r||^2 / gap of lambda_1, i.e. a relative error <= tol^2 lambda_1 / gap = 1e-6 "
                   "lambda_1 / gap; 1e-4 covers a relative spectral gap down to 1% (the v3 pre-onset "
                   "spread, 1.1e-6, is that scale). Window width and margin from the theory and from the "
                   "seed-to-seed spread of sharpness-reduction's cpu runs (the same base config, a different "
                   "claim's data; this claim's v3 cross-setting values were not used): in exact arithmetic "
                   "the difference is 0; after the onset only the fast EoS fluctuation (sd of log S_sph "
                   "~0.3 within a window) separates realizations. Two interleaved half-samplings of one base "
                   "run (steps 50k vs 50k+25, scaled by 1/sqrt 2) read a max-over-windows difference of "
                   "0.10-0.16 per seed at width 1 and 0.14-0.34 at width 0.5; different seeds read median "
                   "0.24 (0.04-0.39) at width 1 and 0.275 at 0.5. At width 0.5 the sampling noise is the "
                   "seed-to-seed spread, so width 1 (the theory's time unit; the flow acts over tau ~ 1). "
                   "log 1.25 = 0.223 is above every seed's noise floor and below the median seed pair: a "
                   "modest margin, since at this tier the slow curves of different seeds are themselves "
                   "close. At measurements every 75 steps the noise floor was 0.34-0.53, hence the denser "
                   "measurement (Lanczos is a small part of a run: ~+3 s per run, ~20% more per seed). "
                   "c^2 = 0.5 and 2 are a "
                   "power of two apart, so their runs were bitwise rescalings of each other, one realization "
                   "counted twice; 3 is not. Bands written before this version ran at the cpu tier.",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 5 -> a pilot of 3, then seeds chosen by power up to 5 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): a seed costs ~55 "
                   "single-core seconds beyond the shared base run (two rescaled settings and the null), "
                   "the most of any claim, and the fresh-clone default run took 10 min 30 s with 5 (over "
                   "the 10-minute budget). The extra look is paid for in the level: both looks use 97.5% "
                   "intervals (Bonferroni, harness.claim.sequential), so the verdict's error rate stays <= 5%. "
                   "Seen before the change, over seeds 0-4: pre-onset spread 2.4e-15 (holds; 2.1e-15 "
                   "[5e-16, 3.8e-15] over the first 3 at 97.5%); post-onset window difference 0.160 [0.080,"
                   " 0.240] against <= log 1.25 (inconclusive, needs ~7 seeds at 95%) while its null (lr*wd"
                   " x 2) reads 0.170: at tau = 4 this check does not tell the null from the collapse, so "
                   "seeds beyond the cap buy no decision here (the run stops at the pilot when the "
                   "projected count exceeds 5). Bands, settings and null unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="Split into an implementation symmetry check and a clock check. (1) Symmetry (kept): the "
                    "pre-onset pointwise spread of S_sph across c^2 in (0.5, 1, 3) <= 1e-4, now labelled a "
                    "check of the implementation; the rescaled settings run only to tau 1.2 (600 steps; "
                    "every seed's onset so far lies at tau <= 0.65). (2) Clock (new): lr*wd 2e-3 (the shared "
                    "run, its first 1000 steps) and 1e-3 (2000 steps, every 51: eos-scale-invariant's ladder "
                    "rung) compared at matched tau to tau 2 after the later onset, largest |difference| of "
                    "tau-window means (width 1) of log S_sph <= CLOCK_MARGIN. Regime check (validity gate, "
                    "new): the same pair compared at matched steps (the wrong clock) reads above the margin "
                    "in every seed (per-seed indicator >= 1; if not, the verdict is inconclusive or "
                    "out-of-regime, never holds). Dropped: the post-onset window check across the rescaled "
                    "settings, the lr*wd x 2 null run, the whole-run pointwise spread row. Margin rule, "
                    "written before the clock pair ran on any seed: twice the largest first-window "
                    "difference between two realizations of one tau-process (the base run and its c^2 = 3 "
                    "rescaling, which agree exactly in exact arithmetic and part only by amplified rounding) "
                    "over pilot seeds 1000-1004, which no claim uses, rounded up to a multiple of 0.05; the "
                    "factor 2 leaves room for the finite-lr*wd correction eos-scale-invariant measures. "
                    "Pilot read 0.040, 0.046, 0.089, 0.045, 0.106: margin 0.25. cpu seeds unchanged "
                    "(pilot 3, up to 5; family: 2 checks + 1 regime check).",
               why="A review of the stored runs read the post-onset null (lr*wd x 2 compared on tau) at what "
                   "the settings read (0.147 against 0.144): under Lyu et al. (Thm. 1.2) that run is another "
                   "instance of the prediction, not a null, so the v5 window check could not fail for the "
                   "right reason. The same review found a wrong-clock null that separates: the same runs "
                   "compared at matched steps read 0.46-0.76 against 0.01-0.09 at matched tau in the first "
                   "window. The pre-onset agreement of exact rescalings tests the implementation (the net's "
                   "scale invariance and the measurement), not the theory's dynamics, and is named so. The "
                   "v4 margin came from sharpness-reduction's runs (data another claim uses); the new one "
                   "comes from pilot seeds no claim uses. Cost: the rescaled settings stop after the onset "
                   "and the clock pair is shared with eos-scale-invariant.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seed cap 5 -> 8 (pilot 3, seeds by power). Checks, margin and setup unchanged.",
               why="The first cpu runs of v6 on disjoint seed sets read the clock check 0.095 [-0.155, 0.346] "
                   "(seeds 100-104: inconclusive, the power rule projected ~8 seeds, above the cap of 5, so no "
                   "second look ran) and 0.102 [0.003, 0.201] (seeds 200-203: holds). A cap of 8 lets the "
                   "second look decide the check either way; a seed beyond the shared runs costs ~40 "
                   "single-core seconds. The first run of v7 uses seeds no earlier run used.",
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
    version=8,
))
