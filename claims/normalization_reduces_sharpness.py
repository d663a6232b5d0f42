"""Lyu, Li, Arora (NeurIPS 2022): normalization with weight decay ends at flatter solutions."""

from claims.eos_scale_invariant import CPU, GPU, SMOKE
from harness import AtMost, Check, Claim, Plot, Tier, register
from harness.experiments.eos import ArmsConfig, normalization_arms

CLAIM = register(Claim(
    id="normalization-reduces-sharpness",
    source="Lyu, Li, Arora, NeurIPS 2022, Sec. 1 and Sec. 5",
    statement="A scale-invariant net trained by GD WITH weight decay ends far flatter (lower spherical "
              "sharpness) than the same net with wd = 0, whose norm is frozen and which never enters EoS.",
    paper_value="flatter solutions and better test accuracy with normalization + WD",
    experiment=normalization_arms,
    tiers={
        "smoke": Tier(seeds=1, config=ArmsConfig(base=SMOKE), scale="3 arms, 200 digits, 60 steps"),
        "cpu": Tier(seeds=3, config=ArmsConfig(base=CPU),
                    scale="3 arms (BN+WD, BN wd=0, no-BN+WD) 64-64 MLPs, 1000 digits, 4000 GD steps"),
        "gpu": Tier(seeds=3, config=ArmsConfig(base=GPU, plain_model="plain_mlp"),
                    scale="3 arms on 5000 CIFAR-10 images, 8000 GD steps"),
    },
    checks=(
        Check("sph_ratio_wd_over_no_wd", AtMost(0.5),
              "final S_sph with WD / without WD (<= 0.5: at least 2x flatter)"),
    ),
    reported=(("test_acc_wd_minus_no_wd", "test accuracy: BN+WD minus BN wd=0"),
              ("test_acc_bn_minus_plain", "test accuracy: BN+WD minus no-BN+WD (secondary)"),
              ("bn_wd.test_acc_final", "test accuracy BN+WD"),
              ("bn_no_wd.test_acc_final", "test accuracy BN wd=0"),
              ("plain_wd.test_acc_final", "test accuracy no-BN+WD"),
              ("bn_no_wd.lr_lambda_max_tail_median", "lr*lambda_max without WD (no EoS expected)"),
              ("bn_wd.norm_equilibrium_ratio", "||w||^2 / (lr S_sph / 2), BN+WD (theory: 1)"),
              ("bn_wd.rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd) (theory: 1)"),
              ("plain_wd.lambda_max_final", "no-BN lambda_max, final (EoS would pin it near 2/lr = 20; raw sharpness is not comparable across BN and no-BN)")),
    plots=(
        Plot("arms", "step", ("sph_bn_wd", "sph_bn_no_wd"), "Spherical sharpness with and without WD",
             ylabel="S_sph", ylog=True),
    ),
    tuning="none: the three arms share every setting except the one compared (wd, or BatchNorm)",
    version=1,
))
