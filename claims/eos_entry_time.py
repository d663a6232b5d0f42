"""Lyu, Li, Arora (NeurIPS 2022): GD + WD on a scale-invariant net enters the Edge of Stability after a time set
by the norm's decay, so scaling the initial norm by c delays the onset by ln c in tau = lr * wd * step."""
from harness import AtMost, Between, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.eos import GDConfig
from harness.experiments.eos_entry import EntryConfig, eos_entry_time
from harness.optim import OptimizerSpec

# eos-scale-invariant's net (tanh BN MLP 64-64, fixed last layer, bn eps 0, cross-entropy, float64) at lr 0.1,
# wd 4e-2 (lr*wd 4e-3, the top rung of its ladder), 500 digits; measured every 13 steps (tau 0.052).
NET = GDConfig(model="si_mlp", activation="tanh", loss="ce", optim=OptimizerSpec("sgd", lr=0.1, weight_decay=4e-2),
               measure_every=13, n_train=500)
CPU = EntryConfig(base=NET, scales=(1.0, 2.0, 4.0), tau_margin=1.2)
SMOKE = EntryConfig(base=derive(NET, {"optim.weight_decay": 0.2}, n_train=100, n_test=50, measure_every=9),
                    scales=(1.0, 2.0, 4.0), tau_margin=0.2)

CLAIM = register(Claim(
    id="eos-entry-time",
    source="Lyu, Li, Arora, NeurIPS 2022, Sec. 3-4 (GD + WD enters the EoS in Theta~(1/(lr wd)) steps); the ln c "
           "shift derived from the norm recursion (docs/claims/eos-entry-time.md)",
    statement="Scaling the initial weights of a scale-invariant net by c at fixed lr and wd delays the EoS onset "
              "by ln c in tau = lr * wd * step (up to the change of the spherical sharpness at the onset): the "
              "slope of tau_onset on ln c is 1.",
    paper_value="entry within Theta~(1/(lr wd)) steps (a log factor in the initial norm); derived: slope 1",
    experiment=eos_entry_time,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tanh BN MLP 64-64, 100 digits, lr*wd 2e-2, init x 1 / 2 / 4"),
        "cpu": Tier(seeds=3, max_seeds=6, config=CPU,
                    scale="tanh BN MLP 64-64 (fixed last layer), 500 digits, float64; lr 0.1, wd 4e-2; init x 1 / 2 "
                          "/ 4, each to tau = ln c + 1.2 (300 / 473 / 647 GD steps), measured every 13 steps"),
    },
    checks=(
        Check("slope_tau_onset_on_log_scale", Between((0.75, 1.25)),
              "slope of the EoS onset in tau on ln c over c = 1, 2, 4, per seed; the onset is where lr*lambda_max "
              "reaches 1.8, read between the two measurements that bracket it (ln lr*lambda_max linear in tau)",
              source="derived from Lyu et al.'s setting (Sec. 3: <grad L, w> = 0, so ||w||^2 decays as "
                     "exp(-2 tau) before the edge; the edge lr*lambda_max = 2 is ||w||^2 = lr S_sph / 2): slope 1. "
                     "+-0.25 is our choice, the 'up to sharpening' room: it lets S_sph at the onset differ by up "
                     "to a factor 4^(2 x 0.25) = 2 between c = 1 and c = 4",
              paper="1 (derived; the paper states entry in Theta~(1/(lr wd)) steps)"),
    ),
    regime=(
        Check("max_onset_fraction", AtMost(0.9),
              "premise: every init scale reached the edge before the last tenth of its run",
              source="our choice: an arm without an onset has no entry time (its tau_end stands in, and reads short)"),
    ),
    reported=(("null_slope_no_shift", "null: the slope an onset that ignores the init norm reads (0)"),
              ("predicted_slope_from_sph", "derivation with the measured sharpening: 1 - slope(ln S_sph(onset))/2"),
              ("slope_log_sph_onset_on_log_scale", "slope of ln S_sph at the onset on ln c (the sharpening term)"),
              ("c0.tau_onset", "init x 1: onset in tau (between measurements)"),
              ("c1.tau_onset", "init x 2: onset in tau (between measurements)"),
              ("c2.tau_onset", "init x 4: onset in tau (between measurements)"),
              ("c0.tau_onset_grid", "init x 1: onset in tau on the measurement grid (v1's reading)"),
              ("c0.sq_norm_at_onset", "init x 1: ||w||^2 at the onset"),
              ("c2.sq_norm_at_onset", "init x 4: ||w||^2 at the onset"),
              ("max_lambda_residual_rel", "worst Lanczos residual / lambda, all arms")),
    plots=(
        Plot("c0.trajectory", "tau", ("lr_lambda_max",), "init x 1: lr * lambda_max", ylabel="lr * lambda_max",
             xlabel="tau = lr * wd * step", hlines=((2.0, "2"),), onset="c0.tau_onset"),
        Plot("c2.trajectory", "tau", ("lr_lambda_max",), "init x 4: lr * lambda_max", ylabel="lr * lambda_max",
             xlabel="tau = lr * wd * step", hlines=((2.0, "2"),), onset="c2.tau_onset"),
    ),
    tuning="none: scales, lr, wd, run lengths and band fixed from the derivation and the cpu budget before the "
           "first cpu run",
    changes=(
        Change("2026-12-07",
               what="The onset is read between measurements: ln(lr*lambda_max) interpolated linearly in tau between "
                    "the last measurement below 1.8 and the first at or above it (v1: the first measurement at or "
                    "above 1.8, on a grid of tau 0.052). Setup, band [0.75, 1.25] and regime unchanged.",
               why="v1's first cpu run (3 seeds) read the slope 0.975 in every seed, so its interval had zero "
                   "width: the onsets (tau 0.832 / 1.508 / 2.184 in one seed, 0.780 / 1.456 / 2.132 in the other "
                   "two) moved by whole grid points, 13 grid points per doubling of c in every seed, so the "
                   "spread the interval shows was the grid's, not the seeds'. Before the edge lr*lambda_max "
                   "grows as exp(2 tau) (the norm decay of the derivation), so the interpolation is exact there. "
                   "Also seen: regime max onset fraction 0.844 / 0.824 / 0.824 (<= 0.9 held), slope of ln S_sph "
                   "at the onset on ln c 0.056 / 0.031 / 0.056. The band came from the derivation and stays; "
                   "the next cpu run uses fresh seeds.",
               results_seen=True),
        Change("2026-12-07",
               what="The regime's onset fraction reads the same interpolated onset as the slope: each arm's "
                    "tau_onset / tau_end (v2: the first measurement at or above 1.8 over the run, on the grid). "
                    "Check, bound 0.9 and setup unchanged; the grid's reading is reported as c*.onset_fraction_grid.",
               why="v2 moved the onset off the measurement grid for the slope but not for the premise that reads "
                   "the same onset. v2's first cpu run (seeds 2000-2002) read the slope 0.968 [0.938, 0.999] "
                   "(holds) and the premise max onset fraction 0.844 [0.772, 0.916] against <= 0.9 "
                   "(inconclusive): per seed 0.824 / 0.844 / 0.864, one grid step (13 of 647 steps) apart, "
                   "the grid's spread again. The next cpu run uses fresh seeds.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seeds: a fixed 3 -> a pilot of 3, then by power up to 6 (two looks). Checks, bounds and "
                    "setup unchanged.",
               why="v3's first cpu run (seeds 2200-2202) read the slope 0.966 [0.949, 0.984] (holds) and the "
                   "premise 0.825 [0.690, 0.960] against <= 0.9 (inconclusive): off the grid, the onset itself "
                   "varies between seeds (init x 1: tau 0.80 [0.47, 1.12]), so three seeds cannot place the "
                   "init x 4 arm's onset share (~0.83 by design: tau margin 1.2) on either side of 0.9; with the "
                   "spread seen, ~6 seeds would. A seed costs ~7 single-core seconds. The next cpu run uses "
                   "fresh seeds.",
               results_seen=True),
    ),
    version=4,
))
