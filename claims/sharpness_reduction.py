"""Lyu, Li, Arora (NeurIPS 2022): in EoS, GD + WD follows a sharpness-reduction flow."""
from claims.eos_scale_invariant import CLAIM as EOS
from harness import AtMost, Check, Claim, Plot, register

CLAIM = register(Claim(
    id="sharpness-reduction",
    source="Lyu, Li, Arora, NeurIPS 2022, Thm. 1.2 / Sec. 4",
    statement="After entering the Edge of Stability, spherical sharpness decreases along the flow "
              "(on a time scale of ~1/(lr*wd) steps).",
    paper_value="S_sph falls markedly (>= 2x) after EoS entry",
    experiment=EOS.experiment,
    tiers=EOS.tiers,  # the same runs as eos-scale-invariant, reused from the cache
    checks=(
        Check("onset_fraction", AtMost(0.8),
              "EoS entered (first lr*lambda_max >= 1.8) within the first 80% of training"),
        Check("sph_log_slope_per_1k", AtMost(0.0),
              "slope of log S_sph per 1000 steps from the post-onset peak (< 0: decreasing)"),
        Check("sph_final_over_peak", AtMost(0.5),
              "final / peak spherical sharpness (<= 0.5: fell at least 2x)"),
    ),
    reported=(("sph_peak", "peak S_sph"), ("sph_final", "final S_sph"),
              ("norm_equilibrium_ratio", "||w||^2 / (lr * S_sph / 2) over the last 30% (theory: 1)"),
              ("rms_angle_over_sqrt_2lr_wd", "RMS angular update / sqrt(2 lr wd) (theory: 1)")),
    plots=(
        Plot("trajectory", "step", ("spherical_sharpness",), "Spherical sharpness ||w||^2 lambda_max",
             ylabel="S_sph", ylog=True),
        Plot("trajectory", "step", ("sq_norm",), "Weight norm ||w||^2", ylabel="||w||^2", ylog=True),
    ),
    version=1,
))
