"""Lyu, Li, Arora (NeurIPS 2022): GD + WD on a scale-invariant net enters the Edge of Stability."""
from dataclasses import replace

from harness import Between, Check, Claim, Plot, Tier, register
from harness.experiments.eos import GDConfig, gd_sharpness_trajectory

# Shared with sharpness-reduction (same experiment and config: computed once, cached).
CPU = GDConfig(model="si_mlp", activation="relu", loss="ce", lr=0.1, weight_decay=5e-3,
               steps=4000, measure_every=49, n_train=1000)
SMOKE = replace(CPU, steps=60, n_train=200, measure_every=15)
GPU = replace(CPU, model="si_cnn", widths=(32, 64, 128), data="cifar10",
              data_root="data/cifar-10-batches-py", n_train=5000, n_test=1000, steps=8000,
              measure_every=51, dtype="float32", bn_eps=1e-5)

CLAIM = register(Claim(
    id="eos-scale-invariant",
    source="Lyu, Li, Arora, NeurIPS 2022, Thm. 1.1 / Fig. 1",
    statement="Full-batch GD with weight decay on a scale-invariant (BatchNorm) net enters the Edge of "
              "Stability: eta_eff * spherical sharpness = lr * lambda_max -> 2.",
    paper_value="eta_eff * S_sph ~ 2 (observed 2.00-2.23 in small reproductions)",
    experiment=gd_sharpness_trajectory,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="BN MLP 64-64, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, config=CPU, scale="BN MLP 64-64 (fixed last layer), 1000 digits, 4000 GD steps, float64"),
        "gpu": Tier(seeds=3, config=GPU, scale="scale-invariant CNN, 5000 CIFAR-10 images, 8000 GD steps"),
    },
    checks=(
        Check("lr_lambda_max_tail_median",
              Between((1.8, 2.4)),
              "eta_eff * S_sph, median over the last 30% of steps (band one-sided-aware: sits just above 2)"),
    ),
    reported=(("onset_step", "EoS onset step"),
              ("in_band_fraction", "share of post-onset measurements in [1.8, 2.3]"),
              ("max_lambda_residual_rel", "worst Lanczos residual / lambda")),
    plots=(
        Plot("trajectory", "step", ("lr_lambda_max",), "eta_eff x spherical sharpness",
             ylabel="lr * lambda_max", hlines=((2.0, "2"),)),
        Plot("trajectory", "step", ("eff_lr",), "Effective learning rate lr/||w||^2", ylabel="eta_eff",
             ylog=True),
    ),
    version=1,
))
