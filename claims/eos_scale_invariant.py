"""Lyu, Li, Arora (NeurIPS 2022): GD + WD on a scale-invariant net enters the Edge of Stability."""
from harness import Between, Change, Check, Claim, Plot, Tier, register
from harness.config import derive
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory
from harness.optim import OptimizerSpec

# The theorem's setting: a smooth scale-invariant net (tanh after BN) with a smooth loss. Shared with
# sharpness-reduction, normalization-reduces-sharpness and eos-intrinsic-time-collapse (same experiment
# and config: computed once, cached). lr * wd = 2e-3: 2000 steps are tau = lr*wd*t = 4.
CPU = GDConfig(model="si_mlp", activation="tanh", loss="ce",
               optim=OptimizerSpec("sgd", lr=0.1, weight_decay=2e-2), steps=2000, measure_every=25,
               n_train=1000)
SMOKE = derive(CPU, steps=60, n_train=200, measure_every=15)
# Smooth conv net: tanh and average pooling (max-pool is not smooth).
GPU = derive(CPU, model="si_cnn", pool="avg", widths=(32, 64, 128), data="cifar10",
             data_root="data/cifar-10-batches-py", n_train=5000, n_test=1000, steps=4000,
             measure_every=51, dtype="float32", bn_eps=1e-5)

CLAIM = register(Claim(
    id="eos-scale-invariant",
    source="Lyu, Li, Arora, NeurIPS 2022, Thm. 1.1 / Fig. 1",
    statement="Full-batch GD with weight decay on a smooth scale-invariant (BatchNorm, tanh) net enters the "
              "Edge of Stability: eta_eff * spherical sharpness = lr * lambda_max -> 2.",
    paper_value="eta_eff * S_sph ~ 2 (observed 2.00-2.23 in small smooth reproductions; tanh/CE ~ 2.01)",
    experiment=gd_sharpness_trajectory,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="tanh BN MLP 64-64, 200 digits, 60 steps"),
        "cpu": Tier(seeds=5, config=CPU, scale="tanh BN MLP 64-64 (fixed last layer), 1000 digits, 2000 GD "
                                               "steps (tau = lr*wd*t = 4), float64"),
        "gpu": Tier(seeds=3, config=GPU, scale="scale-invariant tanh/avg-pool CNN, 5000 CIFAR-10 images, "
                                               "4000 GD steps (tau = 8)"),
    },
    checks=(
        Check("lr_lambda_max_tail_median",
              Between((1.8, 2.4)),
              "eta_eff * S_sph, median over the last 30% of steps (band one-sided-aware: sits just above 2)"),
    ),
    reported=(("onset_step", "EoS onset step"),
              ("tau_onset", "EoS onset in tau = lr*wd*t (theory: Theta~(1))"),
              ("in_band_fraction", "share of post-onset measurements in [1.8, 2.3]"),
              ("norm4_over_equilibrium", "E||w||^4 / (lr E||grad L(theta)||^2 / (wd (2 - lr wd))), last 30% "
                                         "(theory: 1 once the norm equilibrates)"),
              ("rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd) (theory: 1)"),
              ("max_lambda_residual_rel", "worst Lanczos residual / lambda")),
    plots=(
        Plot("trajectory", "tau", ("lr_lambda_max",), "eta_eff x spherical sharpness",
             ylabel="lr * lambda_max", xlabel="tau = lr * wd * step", hlines=((2.0, "2"),)),
        Plot("trajectory", "tau", ("eff_lr",), "Effective learning rate lr/||w||^2", ylabel="eta_eff",
             xlabel="tau = lr * wd * step", ylog=True),
    ),
    changes=(
        Change("2026-12-01",
               what="Headline net made smooth: tanh instead of ReLU (gpu tier: tanh with average pooling). "
                    "wd 5e-3 -> 2e-2 and 4000 -> 2000 steps (lr*wd 5e-4 -> 2e-3; tau = lr*wd*t 2 -> 4), "
                    "measured every 25 steps instead of 49; cpu seeds 3 -> 5. Band [1.8, 2.4] kept. The ReLU "
                    "net is now its own claim, eos-scale-invariant-relu. Reported norm_equilibrium_ratio "
                    "(2/(lr lambda_max) restated) replaced by norm4_over_equilibrium.",
               why="The theorem assumes a smooth loss; the ReLU net's 2.468 [2.360, 2.575] (inconclusive "
                   "against [1.8, 2.4]) comes from catapult cycles of the non-smooth net (same window: "
                   "ReLU/CE ~2.49, tanh/CE ~2.01; tight solves, every-3-steps and odd/even measurements "
                   "agree). The band came from smooth (tanh/MSE) probes, so it belongs to a smooth net. "
                   "lr*wd 2e-3 gives tau ~3 after onset in half the steps (issue 9: the theory runs on tau; "
                   "angular step sqrt(2 lr wd) ~ 0.06 rad stays small). 5 seeds: project rule.",
               results_seen=True),
    ),
    version=2,
))
