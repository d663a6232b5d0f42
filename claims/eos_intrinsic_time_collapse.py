"""Lyu, Li, Arora (NeurIPS 2022): the direction's trajectory depends on (lr, wd) only through lr*wd and lr/||w0||^2."""
import math

from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import AtMost, Change, Check, Claim, Plot, Tier, register
from harness.config import derive
from harness.experiments.eos_collapse import CollapseConfig, eos_intrinsic_time_collapse

# Post-onset margin on window means of log S_sph (derivation in the version-4 change entry).
LOG_MARGIN = math.log(1.25)

CLAIM = register(Claim(
    id="eos-intrinsic-time-collapse",
    source="Lyu, Li, Arora, NeurIPS 2022, Sec. 3 (scale invariance: GD + WD on the sphere with effective "
           "step lr/||w||^2) and Thm. 1.2 (the flow runs on tau = lr * wd * t)",
    statement="For GD + WD on a scale-invariant net, the trajectory of w/||w|| depends on (lr, wd) only "
              "through lr*wd and lr/||w0||^2: runs at (lr c^2, wd / c^2, ||w0|| c) collapse onto one curve of "
              "spherical sharpness against tau = lr*wd*t.",
    paper_value="exact in exact arithmetic: curves identical at matched tau (in floating point: to the "
                "eigen-solver's accuracy before the EoS onset, in the tau-window means after it)",
    experiment=eos_intrinsic_time_collapse,
    tiers={
        "smoke": Tier(seeds=1, config=CollapseConfig(base=SMOKE), scale="3 settings + null, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, max_seeds=5, config=CollapseConfig(base=CPU),
                    scale="tanh BN MLP 64-64, 1000 digits; c^2 in (0.5, 1, 3) at lr*wd = 2e-3, 2000 steps "
                          "(tau = 4), all measured every 25 steps; null: lr*wd x 2, 1000 steps every 13"),
        "gpu": Tier(seeds=3, config=CollapseConfig(base=derive(GPU, bn_eps=0.0)),
                    scale="tanh/avg-pool CNN (bn_eps 0), 5000 CIFAR-10 images, 3 settings, 4000 steps (tau = 8)"),
    },
    checks=(
        Check("sph_max_rel_spread_before_onset", AtMost(1e-4),
              "largest (max - min) / median of S_sph across the 3 settings at matched tau, up to the base "
              "run's EoS onset (exact in exact arithmetic; 1e-4 is what the eigen-solver's accuracy supports)"),
        Check("log_sph_window_mean_max_diff", AtMost(LOG_MARGIN),
              "after the onset: largest |difference| of the mean of log S_sph over tau windows of width 1, "
              "over windows and pairs of settings (<= log 1.25: the same slow curve)"),
    ),
    reported=(("sph_max_rel_spread_before_onset_null_product",
               "null: the pre-onset spread between the base run and the run with lr*wd x 2"),
              ("log_sph_window_mean_max_diff_null_product",
               "null: the window-mean difference between the base run and the run with lr*wd x 2 (must be "
               "far above log 1.25 for the window check to discriminate; it is not at the cpu tier: v4 read "
               "0.170 [0.099, 0.241] against 0.160 [0.080, 0.240] for the settings, so there the window "
               "check cannot tell the prediction from its null; the theory's tau-flow after the onset is "
               "the same for every small lr*wd, and only the pre-onset null, 0.43, separates)"),
              ("lr_lambda_max_window_mean_max_diff", "the same window difference of eta_eff * S_sph"),
              ("lr_lambda_max_window_mean_max_diff_null_product", "null: the same for eta_eff * S_sph"),
              ("sph_max_rel_spread", "v3's metric: the largest pointwise spread over the whole run "
                                     "(rounding amplified by the EoS dynamics)"),
              ("tau_onset", "base run's EoS onset in tau (tau_end if none: all points are pre-onset)"),
              ("post_onset_windows", "tau windows compared"),
              ("matched_points_before_onset", "matched tau points compared before the onset"),
              ("tau_end", "last matched tau"),
              ("c2_0.5.lr_lambda_max_tail_median", "lr*lambda_max tail median, c^2 = 0.5"),
              ("c2_3.lr_lambda_max_tail_median", "lr*lambda_max tail median, c^2 = 3")),
    plots=(
        Plot("collapse", "tau", ("sph_c2_0.5", "sph_c2_1", "sph_c2_3", "sph_null_product"),
             "S_sph against tau: three (lr, wd, ||w0||) settings with the same lr*wd, and lr*wd x 2",
             ylabel="S_sph", xlabel="tau = lr * wd * step", ylog=True),
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
               why="Issue 9 (seeds chosen by power, and the cpu tier's 10-minute budget): a seed costs ~55 "
                   "single-core seconds beyond the shared base run (two rescaled settings and the null), "
                   "the most of any claim, and the fresh-clone default run took 10 min 30 s with 5 (over "
                   "the 10-minute budget). The extra look is paid for in the level: both looks use 97.5% "
                   "intervals (Bonferroni, harness.sequential), so the verdict's error rate stays <= 5%. "
                   "Seen before the change, over seeds 0-4: pre-onset spread 2.4e-15 (holds; 2.1e-15 "
                   "[5e-16, 3.8e-15] over the first 3 at 97.5%); post-onset window difference 0.160 [0.080,"
                   " 0.240] against <= log 1.25 (inconclusive, needs ~7 seeds at 95%) while its null (lr*wd"
                   " x 2) reads 0.170: at tau = 4 this check does not tell the null from the collapse, so "
                   "seeds beyond the cap buy no decision here (the run stops at the pilot when the "
                   "projected count exceeds 5). Bands, settings and null unchanged.",
               results_seen=True),
    ),
    version=5,
))
