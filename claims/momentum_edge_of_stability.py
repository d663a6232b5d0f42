"""Cohen et al. (ICLR 2021), momentum: full-batch heavy-ball and Nesterov GD sharpen until lambda_max
reaches their own stability threshold, (2 + 2b)/lr and (2 + 2b)/((1 + 2b) lr), then hover there."""
from harness import AtLeast, AtMost, Between, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.eos import GDConfig
from harness.experiments.gd_arms import GDArmsConfig, gd_arms
from harness.optim import OptimizerSpec, sgd_stability_threshold

BETA = 0.9
# gd-edge-of-stability's net, data and loss (tanh MLP 64-64, digits, 0.5 * sum MSE, no weight decay); only
# the optimizer changes. Each arm's lr puts its threshold T where plain GD's is in that claim (2/0.2 = 10),
# so the net has to sharpen to the same lambda_max: heavy ball lr = 3.8/10 = 0.38, Nesterov 1.357/10.
TARGET = sgd_stability_threshold(0.2)
# float32 with the Lanczos value stop (v5 entry: a 10-seed comparison with float64 moved no check beyond X).
NET = GDConfig(model="plain_mlp", activation="tanh", loss="mse", optim=OptimizerSpec("sgd", lr=0.2),
               steps=1500, measure_every=29, n_train=1000, dtype="float32", lanczos_stop="value")
ARMS = (("heavy_ball", derive(NET, optim={"lr": sgd_stability_threshold(1.0, BETA) / TARGET,
                                          "momentum": BETA})),
        ("nesterov", derive(NET, optim={"lr": sgd_stability_threshold(1.0, BETA, nesterov=True) / TARGET,
                                        "momentum": BETA, "nesterov": True})))
# gpu: gd-edge-of-stability's gpu net (512-512 tanh MLP, 5000 CIFAR-10 images, float32), T = 2/0.05 = 40.
GPU_TARGET = sgd_stability_threshold(0.05)


def _tier(**changes) -> GDArmsConfig:
    """Every arm with the same changes; lr rescaled to keep T = target when a target is given."""
    target = changes.pop("target", None)
    arms = []
    for name, arm in ARMS:
        lr = arm.optim.lr if target is None else arm.optim.lr * TARGET / target
        arms.append((name, derive(arm, {"optim.lr": lr}, **changes)))
    return GDArmsConfig(arms=tuple(arms))


def _checks(arm: str, label: str) -> tuple[Check, ...]:
    return (
        Check(f"{arm}.lambda_over_threshold_initial", AtMost(0.5),
              f"{label}: lambda_max / T at step 0 at most 1/2, so reaching T needs progressive sharpening",
              source="Cohen et al. Sec. 3 ('so long as the sharpness is less than 2/eta, it tends to continually "
                     "rise'), moved to T; 1/2 as gd-edge-of-stability's lr*lambda_max(0) <= 1 (half the edge)"),
        Check(f"{arm}.lambda_over_threshold_post_onset_median", Between((0.9, 1.1)),
              f"{label}: median of lambda_max / T from the onset (first lambda_max >= 0.9 T) on: the run "
              f"hovers at its own threshold",
              source="Cohen et al. Sec. 5 and appendix (momentum: lambda_max equilibrates at T); +-10% is our "
                     "choice: the onset level 0.9 T mirrored above T, far from the other candidate threshold "
                     "(GD's 2/lr is 0.53 T heavy ball, 1.47 T Nesterov)",
              paper="1 (lambda_max at T, Cohen et al. Sec. 5)"),
    )


def _null(arm: str, label: str, expect) -> Check:
    return Check(f"{arm}.null_lambda_over_gd_threshold_post_onset_median", expect,
                 f"{label}: premise, the run discriminates the thresholds: the same post-onset median lambda_max "
                 f"read against plain GD's 2/lr lies outside [0.8, 1.2] (on the side T lies on)",
                 source="Cohen et al. Sec. 3 (GD's threshold 2/lr); [0.8, 1.2] is our choice, twice the check's "
                        "+-10%: a run read within it could be hovering at GD's threshold as well as at T")


CLAIM = register(Claim(
    id="momentum-edge-of-stability",
    source="Cohen, Kaur, Li, Kolter, Talwalkar, ICLR 2021, Sec. 5 and the appendix on momentum",
    statement="Full-batch GD with heavy-ball or Nesterov momentum (beta = 0.9) on a non-normalized net: "
              "sharpness rises until lambda_max reaches the method's own stability threshold T = (2 + 2 beta)/lr "
              "(heavy ball) or (2 + 2 beta)/((1 + 2 beta) lr) (Nesterov), then hovers at or just above T.",
    paper_value="lambda_max equilibrates at (2 + 2 beta)/lr (heavy ball) and (2 + 2 beta)/((1 + 2 beta) lr) "
                "(Nesterov): the momentum analogue of GD's 2/lr",
    experiment=gd_arms,
    tiers={
        "smoke": Tier(seeds=1, config=_tier(steps=60, n_train=200, measure_every=15),
                      scale="tanh MLP 64-64, 200 digits, 60 steps per arm"),
        "cpu": Tier(seeds=3, max_seeds=12, config=_tier(),
                    scale="tanh MLP 64-64, 1000 digits, 1500 steps per arm (heavy ball, Nesterov), beta 0.9, "
                          "float32 (lambda_max: value stop)"),
        "gpu": Tier(seeds=3, config=_tier(target=GPU_TARGET, data="cifar10", data_root="data/cifar-10-batches-py",
                                          n_train=5000, n_test=1000, widths=(512, 512), steps=6000,
                                          measure_every=51, dtype="float32", lanczos_stop="residual"),
                    scale="tanh MLP 512-512, 5000 CIFAR-10 images, 6000 steps per arm, float32"),
    },
    checks=_checks("heavy_ball", "heavy ball") + _checks("nesterov", "Nesterov"),
    regime=(_null("heavy_ball", "heavy ball", AtLeast(1.2)), _null("nesterov", "Nesterov", AtMost(0.8))),
    reported=tuple(row for arm, label in (("heavy_ball", "heavy ball"), ("nesterov", "Nesterov")) for row in (
        (f"{arm}.threshold_onset_fraction", f"{label}: onset (first lambda_max >= 0.9 T) as a fraction of "
                                            f"training (v2 check)"),
        (f"{arm}.threshold_in_band_fraction", f"{label}: share of post-onset measurements with lambda_max / T in "
                                              f"[0.9, 1.15] (v2 check; measures the fluctuation)"),
        (f"{arm}.lambda_over_threshold_tail_median", f"{label}: lambda_max / T, median of the last 30%"),
        (f"{arm}.lr_lambda_max_tail_median",
         f"{label}: lr * lambda_max, median of the last 30% (2 if plain GD's threshold 2/lr held; "
         f"T * lr = {sgd_stability_threshold(1.0, BETA, arm == 'nesterov'):.3g} at its own)"),
        (f"{arm}.threshold_onset_step", f"{label}: onset step (first lambda_max >= 0.9 T)"),
        (f"{arm}.train_loss_final", f"{label}: final training loss"),
        (f"{arm}.max_lambda_residual_rel", f"{label}: worst Lanczos residual / lambda"),
    )),
    plots=tuple(Plot(f"{arm}.trajectory", "step", ("lambda_max",), f"{label}: sharpness vs its threshold T",
                     ylabel="lambda_max", hlines=((f"{arm}.stability_threshold", "T"), (f"{arm}.two_over_lr", "2/lr")),
                     window="onset", onset=f"{arm}.threshold_onset_step")
                for arm, label in (("heavy_ball", "Heavy ball"), ("nesterov", "Nesterov"))),
    notes="Pre-registered before any momentum run at any tier. Setup: gd-edge-of-stability's cpu net, data and "
          "loss; beta = 0.9; each arm's lr chosen so that its threshold T equals that claim's 2/lr = 10 (gpu: 40), "
          "i.e. the same sharpness has to be reached. Band: [0.9, 1.15] T, onset at 0.9 T and lambda_max(0) <= "
          "T/2 are gd-edge-of-stability's [1.8, 2.3], 1.8 and 1.0 in units of lr * lambda_max, divided by GD's "
          "lr * T = 2, i.e. Cohen et al.'s 'hovers at or just above the threshold' (Sec. 3) moved to the "
          "momentum threshold (their appendix on momentum; the project paper notes, lyu-eos.md item 4). Sharpness is "
          "lambda_max of the loss Hessian for both methods. Steps (1500) and measure_every (29, odd against "
          "period-2 aliasing) come from the compute budget (<= ~120 single-core seconds for 2 arms x 3 seeds): "
          "one timing probe of 1000 heavy-ball steps printed only its CPU time (10.7 s). After the first cpu run "
          "(all six checks held) one reported row changed, no check, band or setup: 'onset step' had read "
          "plain GD's onset (lr * lambda_max >= 1.8), which Nesterov never reaches at its own threshold "
          "(lr * T = 1.36); it now reads the onset relative to T.",
    changes=(
        Change("2026-12-02",
               what="cpu seeds: a fixed 3 -> a pilot of 3, then seeds chosen by power up to 8 (two looks at"
                    " 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): 3 fixed seeds are"
                   " too few to decide (the 95% t-interval is +-4.3 standard errors). The extra look is "
                   "paid for in the level: both looks use 97.5% intervals (Bonferroni, harness.claim.sequential),"
                   " so the verdict's error rate stays <= 5%. Seen before the change: all six checks held "
                   "over 3 seeds at 95%; at 97.5% the two in-band shares (0.859, 0.861 against >= 0.8) "
                   "would need ~4 seeds. Band and setup unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="Checks per arm: lambda_max(0)/T <= 1/2 (kept) and, new, the median of lambda_max / T from "
                    "the onset on in [0.9, 1.1]. Regime checks per arm (new): the same median read against "
                    "plain GD's 2/lr lies outside [0.8, 1.2] (>= 1.2 heavy ball, <= 0.8 Nesterov, the sides "
                    "T lies on). The onset-fraction and in-band-share checks become reported rows. The claim's "
                    "6 checks are one family: each interval at 1 - 0.05/(2 looks x 6). Setup and seeds "
                    "unchanged.",
               why="A review of the stored runs read heavy ball at 0.94-0.96 of its threshold with a lower "
                   "tail: the in-band share [0.9, 1.15] measured the fluctuation around the threshold, not "
                   "which threshold attracts the run (Cohen et al. Sec. 5: lambda_max equilibrates at T). The "
                   "median locates the level; the null row says the run could not also be read as hovering "
                   "at GD's 2/lr, so the check discriminates. Fewer checks keep the family's intervals "
                   "narrow.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seed cap 8 -> 12 (pilot 3, seeds by power). Checks, bands and setup unchanged.",
               why="The first run of v3 (seeds 4000-4002) read heavy ball's post-onset median lambda/T 0.9375 "
                   "[0.683, 1.192] (per seed 0.94, 0.91, 0.97), which the power rule projected to need about "
                   "10 seeds, above the cap of 8, so the check could not be decided at this tier. A cap of 12 "
                   "lets the second look decide it either way (a seed costs ~20 single-core seconds, within "
                   "the cpu tier's budget). The next run uses seeds no earlier run used.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu tier in float32 end to end: training, and lambda_max solved on the float32 model "
                    "with the Lanczos value stop (error bound min(r, r^2/gap) <= 1e-3 lambda) instead of "
                    "float64 with the residual stop. gpu tier unchanged. Bands, checks and seeds unchanged; "
                    "the next cpu run uses fresh seeds.",
               why="Cost: float32 about halves an EoS seed's CPU time. Shown not to move any check of this "
                   "claim beyond its pre-stated tolerance X: tools/dtype_compare.py (rule pre-registered in "
                   "its docstring, committed before its first cpu run), seeds 5000-5009, paired all-float32 "
                   "('fast') - v4 setting with 95% intervals: lambda/T at step 0 -0.00001 [-0.00001, "
                   "-0.000001] (both arms; X 0.125); post-onset median lambda/T heavy ball 0.009 [-0.002, "
                   "0.021], Nesterov 0.011 [0.003, 0.018] (X 0.05; a shift of ~1% that the interval "
                   "resolves, a fifth of X, 0.992 -> 1.003); regime nulls heavy ball 0.018 [-0.005, 0.041] "
                   "(X 0.3), Nesterov 0.007 [0.002, 0.013] (X 0.2): every check 'same'. CPU time of its "
                   "seeds in one process: 58 s against 98 s (0.59x).",
               results_seen=True),
    ),
    version=5,
))
