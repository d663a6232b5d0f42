"""Wang et al. 2024 (IRE), Figure 1: ideal IRE drifts to the flat end of a valley GD barely moves along."""
from harness import AtLeast, Between, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.toy import ToyConfig, figure1_toy

CPU = ToyConfig()  # 1000 steps: the paper gives no step count; GD at eta = 1 has |v| < 1e-6 by then
SMOKE = derive(CPU, steps=300)

# Half-widths fixed before running: 0.993 is given to three decimals (+-0.001), the IRE values to two
# decimals read off the figure (+-0.01, twice the rounding half-unit).
ARMS = ("gd", "ire90", "ire900", "ire9000")
CLAIM = register(Claim(
    id="ire-toy-figure1",
    source="Wang et al. 2024 (IRE, arXiv 2405.20763), Fig. 1",
    statement="On L(u, v) = (1 + u^2) v^2 / 2 from (1, 0.01), GD with eta = 1 stays near u = 0.993 and GD "
              "with eta = 2 diverges, while IRE (eta = 1, exact projection onto the flat u axis) with "
              "kappa = 90 / 900 / 9000 ends near u = 0.93 / 0.74 / 0.01.",
    paper_value="u_final: GD 0.993; IRE 0.93 / 0.74 / 0.01; GD eta = 2 diverges within ~8 steps",
    experiment=figure1_toy,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="Figure 1 toy, 300 steps; rotated toy p = 4"),
        "cpu": Tier(seeds=1, config=CPU, scale="Figure 1 toy, 1000 steps; rotated toy p = 4, one rotation"),
    },
    checks=(
        Check("u_final_gd", Between((0.992, 0.994)), "GD eta = 1: final u (paper 0.993)",
              source="Fig. 1: 0.993, printed to three decimals (+-0.001)", paper="0.993 (Fig. 1)"),
        Check("u_final_ire90", Between((0.92, 0.94)), "IRE kappa = 90: final u (paper 0.93)",
              source="Fig. 1: 0.93, two decimals read off the figure (+-0.01, twice the rounding half-unit)",
              paper="0.93 (Fig. 1)"),
        Check("u_final_ire900", Between((0.73, 0.75)), "IRE kappa = 900: final u (paper 0.74)",
              source="Fig. 1: 0.74, two decimals read off the figure (+-0.01)", paper="0.74 (Fig. 1)"),
        Check("u_final_ire9000", Between((0.0, 0.02)), "IRE kappa = 9000: final u (paper 0.01)",
              source="Fig. 1: 0.01, two decimals read off the figure (+-0.01)", paper="0.01 (Fig. 1)"),
        Check("gd_lr2_diverged", AtLeast(1.0), "GD eta = 2 diverged (1) or not (0)",
              source="Fig. 1: GD with eta = 2 diverges (loss > 1e10 or non-finite, our cap)",
              paper="diverges within ~8 steps (Fig. 1)"),
    ),
    reported=(
        ("null_u_final_ire_k0", "null: IRE with kappa = 0 (amplifies nothing): final u (reads as GD's)"),
        ("abs_v_final_gd", "GD eta = 1: final |v| (has it converged to the valley?)"),
        ("gd_lr2_diverge_step", "GD eta = 2: step at which the loss passed 1e10"),
        ("rot_trace_gd", "rotated toy: final Hessian trace, GD"),
        ("rot_trace_exact_k90", "rotated toy: final trace, IRE kappa = 90 with the exact projection"),
        ("rot_mask_diverged_k90", "rotated toy: diagonal-mask IRE (kappa = 90) diverged (1) or not (0)"),
        ("rot_mask_gain_fraction_k90", "rotated toy: share of the exact projection's trace reduction "
                                       "that diagonal-mask IRE achieves (0 if it diverged)"),
    ),
    plots=(
        Plot("uv_plane", "u", tuple(f"abs_v_{a}" for a in ARMS), "Trajectories in the (u, |v|) plane",
             xlabel="u", ylabel="|v| (log)", ylog=True, style="line+markers"),
        Plot("u_steps", "step", tuple(f"u_{a}" for a in ARMS), "u over steps (eta = 1)", ylabel="u",
             hlines=((0.993, "GD 0.993"), (0.93, "0.93"), (0.74, "0.74"), (0.01, "0.01"))),
        Plot("abs_v_steps", "step", tuple(f"abs_v_{a}" for a in (*ARMS, "gd_lr2")),
             "|v| over steps (GD eta = 2 until it passes the divergence cap)", ylabel="|v|", ylog=True),
        Plot("rotated_trace", "step", ("trace_gd", "trace_exact_k90"),
             "Rotated toy: Hessian trace, GD vs IRE with the exact projection (kappa = 90)", ylabel="Tr H"),
        Plot("rotated_trace", "step", ("trace_gd", "trace_exact_k90", "trace_mask_k90"),
             "Rotated toy: the same with diagonal-mask IRE (kappa = 90; ends where it diverges)",
             ylabel="Tr H", ylog=True),
    ),
    tuning="none: the paper's start point, eta and kappa; the step count (1000) is not in the paper and "
           "was fixed as the point where GD at eta = 1 has |v| < 1e-6; tolerances were fixed before "
           "running. Rotated toy: eta = 2 / lambda_max(start) (Figure 1's eta * lambda_max), gamma = 0.5 "
           "(the true flat share), the mask from the exact Hessian diagonal refreshed every step like the "
           "projection; not tuned.",
    deterministic=True,
    notes="Deterministic: the seed only draws the rotated toy (Q, A, B), so the Figure 1 values are exact "
          "(point intervals) and one seed decides them; the rotated-toy rows are one rotation (descriptive). "
          "IRE is IREProjected with P onto the u axis, refreshed every step. Divergence: loss > 1e10 or non-finite. The rotated toy "
          "runs at the edge of stability (as Figure 1's GD does), where a diagonal mask that amplifies any "
          "sharp component makes the step unstable. An eta = 1 arm that diverges (e.g. --set optim.lr=1e6) raises "
          "NumericalError (an error verdict); a --max-steps cap shortens every arm, and the runner reads a "
          "capped run's 'fails' as inconclusive. Null: the IRE wrapper with kappa = 0 on the same path.",
    changes=(
        Change("2026-12-01",
               what="A diverged eta = 1 arm raises NumericalError instead of recording NaN; null row "
                    "null_u_final_ire_k0 (IRE with kappa = 0) added. Checks, bands and seeds unchanged.",
               why="The project's rules: a diverged run is an error, not a measurement, and a null row "
                   "stands beside each comparative effect. v1 at the cpu tier held (deterministic).",
               results_seen=True),
        Change("2026-12-07",
               what="cpu tier: 3 seeds -> 1 (the checks are deterministic); every check names its source and "
                    "the paper's number. Bands unchanged.",
               why="The checked Figure 1 values do not depend on the seed (deterministic=True, point intervals): "
                   "three seeds repeated the same numbers (this claim's v2 runs held with point intervals); "
                   "the seed only draws the reported rotated toy.",
               results_seen=True),
    ),
    version=3,
))
