"""Wang et al. 2024 (IRE), Section 5: SAM-IRE reaches flat minima Theta(1/rho) faster than SAM."""
from harness import Between, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.sam_flat import SamFlatConfig, sam_flat_convergence

CPU = SamFlatConfig()
SMOKE = derive(CPU, toy={"rhos": (0.05, 0.04, 0.03)},
               net={"grad_evals": 20, "n_train": 64, "mask_batch": 32, "measure_every": 4, "trace_probes": 2})

CLAIM = register(Claim(
    id="sam-ire-flat-convergence",
    source="Wang et al. 2024 (IRE, arXiv 2405.20763), Sec. 5 (SAM-IRE theorem), Table 7",
    statement="Along a manifold of minima standard SAM drifts at rate eta*rho^2 and SAM-IRE (kappa = 1/rho, "
              "exact projection) at rate eta*rho: on the Figure 1 toy the steps to reach the flat region "
              "scale like rho^-2 for SAM and rho^-1 for SAM-IRE, with the exact flat projection and with the "
              "practical SAM-IRE (sampled-Fisher diagonal mask, refreshed every K = 10 steps) on the same valley "
              "turned 4 degrees off the axes, where the diagonal mask is not the flat projection.",
    paper_value="log-log slope of steps vs rho: SAM -2, SAM-IRE -1 (theory, exact projection)",
    experiment=sam_flat_convergence,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE,
                      scale="toy rho in (0.05, 0.04, 0.03); net: 64 digits, 20 grad evals"),
        "cpu": Tier(seeds=1, config=CPU,
                    scale="toy rho in (0.05, 0.03, 0.02, 0.01), axis-aligned and turned 4 degrees; net: SmallCNN "
                          "width 8 (4.4k params), "
                          "256 digits full batch, 400 grad evals per arm",
                    cap_reason="one deterministic run: a slope's interval is the log-log fit's standard error "
                               "over the rho values (how far the step counts are from one power law), which "
                               "every seed repeats; only more or smaller rho values would narrow it"),
    },
    # Bands fixed from the theory before running: with kappa = 1/rho SAM-IRE's rate is
    # eta*rho^2*(1 + 1/rho), a local slope of -(1 + 2 rho)/(1 + rho) in [-1.05, -1.01] for these rho;
    # +-0.3 leaves room for the finite rho and integer step counts. The practical arm on the oblique
    # valley gets the same band: its mask leaks a share sin^2(4 deg) = 0.5% of the amplification into the
    # sharp direction (kappa sin^2 <= 0.49 at the smallest rho, inside GD's stability), so the theory's
    # rate holds for it if the mask still carries the drift.
    checks=(
        Check("sam_slope", Between((-2.3, -1.7)), "SAM: slope of log(steps to |u| < 0.5) on log(rho)",
              source="Sec. 5: SAM's drift rate eta*rho^2 gives slope -2; +-0.3 for finite rho and integer counts "
                     "(our choice)", paper="-2 (theory, Sec. 5)"),
        Check("samire_slope", Between((-1.3, -0.7)),
              "SAM-IRE (kappa = 1/rho, exact projection): slope of log(steps to |u| < 0.5) on log(rho)",
              source="Sec. 5: SAM-IRE's rate eta*rho with kappa = 1/rho and the exact projection gives "
                     "-(1 + 2 rho)/(1 + rho) in [-1.05, -1.01]; +-0.3 as for SAM", paper="-1 (theory, Sec. 5)"),
        Check("samire_fisher_oblique_slope", Between((-1.3, -0.7)),
              "practical SAM-IRE (kappa = 1/rho, sampled-Fisher diagonal mask, K = 10) on the valley turned "
              "4 degrees: slope of log(steps) on log(rho)",
              source="Sec. 5's rate, as for the exact arm (the band is the exact arm's); the 4-degree turn is our "
                     "choice: the largest whole-degree angle whose mask leak kappa*sin^2 stays below 1/2 at the "
                     "smallest rho, so the arm tests the mask, not a divergence",
              paper="-1 (theory, exact projection; the paper has no oblique toy)"),
    ),
    reported=(
        ("samire_fisher_slope", "axis-aligned toy, practical SAM-IRE: slope (there the diagonal mask IS the "
                                "exact projection, so it repeats samire_slope)"),
        ("steps_ratio_fisher_oblique_at_smallest_rho", "oblique toy: SAM steps / practical SAM-IRE steps at the "
                                                       "smallest rho"),
        ("fisher_oblique_mask_u_share", "oblique toy: share of mask refreshes that marked the coordinate nearest "
                                        "the valley flat (min over rho)"),
        ("net_norm_trace_ratio_at_matched_loss", "net: trace x ||w_conv||^2, SAM-IRE / SAM, read at the same "
                                                 "training loss (the larger final loss)"),
        ("net_norm_trace_at_matched_loss_sam", "net: SAM's trace x ||w_conv||^2 at the matched loss"),
        ("net_norm_trace_at_matched_loss_samire", "net: SAM-IRE's trace x ||w_conv||^2 at the matched loss"),
        ("net_grad_evals_at_matched_loss_sam", "net: SAM's gradient evaluations to the matched loss"),
        ("net_grad_evals_at_matched_loss_samire", "net: SAM-IRE's gradient evaluations to the matched loss"),
        ("steps_ratio_at_smallest_rho", "toy: SAM steps / SAM-IRE steps at the smallest rho"),
        ("null_steps_ratio_kappa0_at_smallest_rho",
         "null: SAM steps / SAM-IRE steps with kappa = 0 (amplifies nothing) at the smallest rho"),
        ("steps_ratio_fisher_at_smallest_rho", "toy: SAM steps / practical SAM-IRE steps at the smallest rho"),
        ("fisher_mask_u_share", "toy: share of Fisher-mask refreshes that marked exactly the u axis flat (min)"),
        ("net_trace_final_sam", "net: final Hessian trace, SAM (Hutchinson SE)"),
        ("net_trace_final_samire", "net: final Hessian trace, SAM-IRE (Hutchinson SE)"),
        ("net_trace_ratio_samire_over_sam", "net: final trace SAM-IRE / SAM, same evaluation budget"),
        ("net_null_trace_ratio_sam_reprobed_over_sam",
         "null: SAM's final trace with independent Hutchinson probes / SAM's final trace"),
        ("net_sam_evals_to_target", "net: gradient evaluations SAM needs to reach its own final trace"),
        ("net_samire_evals_to_target", "net: gradient evaluations SAM-IRE needs to reach SAM's final trace"),
        ("net_samire_steps_to_target", "net: SAM-IRE steps to reach SAM's final trace"),
        ("net_samire_reached_target", "net: SAM-IRE reached SAM's final trace (1) or not (0)"),
        ("net_evals_speedup_to_target", "net: SAM evals / SAM-IRE evals to SAM's final trace"),
        ("net_loss_final_sam", "net: final training loss, SAM"),
        ("net_loss_final_samire", "net: final training loss, SAM-IRE"),
        ("net_conv_sq_norm_final_sam", "net: conv weights' squared norm at the end, SAM"),
        ("net_conv_sq_norm_final_samire", "net: conv weights' squared norm at the end, SAM-IRE"),
    ),
    plots=(
        Plot("toy_steps", "rho", ("steps_sam", "steps_samire", "steps_samire_fisher", "steps_samire_fisher_oblique"),
             "Toy: steps to |u| < 0.5 vs rho",
             xlabel="rho", ylabel="steps", xlog=True, ylog=True, style="line+markers"),
        Plot("net_trace", "grad_evals", ("trace_sam", "trace_samire"),
             "SmallCNN on digits: Hessian trace vs gradient evaluations", ylabel="Tr H (Hutchinson)",
             style="line+markers"),
    ),
    tuning="none: the toy uses the paper's check (normalised SAM, eta = 0.5, kappa = 1/rho, flat region "
           "|u| < 0.5) and the issue's rho list; the Fisher-mask arm uses the paper's K = 10 and gamma = 1/2 "
           "(one of the toy's two coordinates). Net: both arms share lr 0.1 (plain SGD, not tuned), "
           "rho = 0.05 (the paper's CIFAR value), the init and a budget of 400 gradient evaluations; "
           "SAM-IRE adds kappa = 1/rho = 20 (theory), gamma = 0.6 (paper default), K = 10. No arm was tuned.",
    deterministic=False,
    notes="One seed on purpose: the checked toy rows do not depend on the seed (SAM and exact SAM-IRE are "
          "deterministic; the Fisher arm's one label draw scales both coordinates' scores by the same "
          "factor, so its mask ranks like the Gauss-Newton diagonal and its counts repeat - tested), so "
          "more seeds would repeat the same counts; the "
          "interval on each slope is the normal interval from the log-log regression's standard error "
          "(how far the counts are from one power law), which the runner uses for a single seed. Steps "
          "are integers, so SAM-IRE's small counts (tens of steps) carry rounding error. SAM-IRE on the "
          "toy is the project's SAMIRE with the mask (u flat, v sharp), which on this toy is the exact flat "
          "projection. Practical SAM-IRE: the same SAMIRE with the mask from Figure1Toy.sampled_fisher_scores "
          "(L = f^2/2 read as a Gaussian likelihood, f = sqrt(1+u^2) v; a label drawn from N(f, 1); "
          "h = g~^2) under the project's global threshold, refreshed every 10 steps; the toy is axis-aligned, "
          "so there the practical arm repeats the exact one (reported); the checked practical arm runs on the "
          "valley turned 4 degrees (u = a cos + b sin, v = -a sin + b cos), where the same one-label score "
          "ranks the coordinates like the Gauss-Newton diagonal (sin^2 vs cos^2 of the turn) and the mask "
          "marks the coordinate nearest the valley; SAM itself is rotation-equivariant, so its counts are "
          "the axis-aligned ones. The toy's counts do not depend on the seed, so the interval on a slope is how "
          "far the counts lie from one power law, and more seeds cannot narrow it. A diverged toy run (e.g. --set toy.lr=1e6) raises "
          "NumericalError (error verdict); a capped count (--max-steps) is a lower bound, so its slope gets "
          "an infinite standard error (inconclusive). Nulls: kappa = 0 gives the steps ratio 1 through the "
          "same code; independent probes show the Hutchinson noise of a trace ratio. Net part: "
          "full-batch training, so the Hessian uses bn_mode='full-batch' (train-mode "
          "BN over the whole training set: exactly the trained loss); traces every 25 steps, so "
          "evaluations-to-target are resolved to ~50. BN makes each conv kernel scale-invariant, so part "
          "of a trace drop can come from growing weight norms (reported); the net rows are one run.",
    changes=(
        Change("2026-12-01",
               what="Added the practical SAM-IRE (sampled-Fisher diagonal mask, K = 10) as a checked toy arm "
                    "(band [-1.3, -0.7] as for the exact arm); a diverged toy run raises NumericalError "
                    "instead of counting as 'not reached'; a capped count gives its slope an infinite "
                    "standard error; null rows (kappa = 0 steps ratio, re-probed trace ratio).",
               why="A project review of the stored runs: the exact flat axis set by hand checks the rate algebra "
                   "only, null rows were missing, and --set lr=1e6 or --max-steps 5 read 'fails'. "
                   "v1 at the cpu tier: SAM slope -2.000, SAM-IRE slope -1.025.",
               results_seen=True),
        Change("2026-12-07",
               what="The checked practical arm runs on the Figure 1 valley turned 4 degrees in the (a, b) plane "
                    "(samire_fisher_oblique_slope, band [-1.3, -0.7] as the exact arm's), where the sampled-"
                    "Fisher diagonal mask marks one coordinate instead of the valley's direction; the "
                    "axis-aligned practical arm is reported. Net rows: trace x ||w_conv||^2 (BN's scale "
                    "invariance) read at a matched training loss, reported. Every check names its source. One "
                    "seed (the checked toy rows are seed-free).",
               why="A review of the stored runs read the axis-aligned Fisher arm equal to the exact projection "
                   "(slope -1.025 both, same step counts): on that toy the diagonal mask is the projection, so "
                   "the arm certified nothing new; the net rows compared traces at different losses and weight "
                   "norms. Seen before this entry was written: a mechanics probe of the oblique arm at this "
                   "angle (steps 10, 14, 22, 34 at rho 0.05, 0.03, 0.02, 0.01); the band is the exact arm's, "
                   "unchanged.",
               results_seen=True),
    ),
    version=3,
))
