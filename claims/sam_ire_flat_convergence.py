"""Wang et al. 2024 (IRE), Section 5: SAM-IRE reaches flat minima Theta(1/rho) faster than SAM."""
from harness import Between, Change, Check, Claim, Plot, Tier, register
from harness.config import derive
from harness.experiments.sam_flat import SamFlatConfig, sam_flat_convergence

CPU = SamFlatConfig()
SMOKE = derive(CPU, toy={"rhos": (0.05, 0.04, 0.03)},
               net={"grad_evals": 20, "n_train": 64, "mask_batch": 32, "measure_every": 4, "trace_probes": 2})

CLAIM = register(Claim(
    id="sam-ire-flat-convergence",
    source="Wang et al. 2024 (IRE, arXiv 2405.20763), Sec. 5 (SAM-IRE theorem), Table 7",
    statement="Along a manifold of minima standard SAM drifts at rate eta*rho^2 and SAM-IRE (kappa = 1/rho, "
              "exact projection) at rate eta*rho: on the Figure 1 toy the steps to reach the flat region "
              "scale like rho^-2 for SAM and rho^-1 for SAM-IRE, both with the exact flat projection and with the "
              "practical SAM-IRE (sampled-Fisher diagonal mask, refreshed every K = 10 steps).",
    paper_value="log-log slope of steps vs rho: SAM -2, SAM-IRE -1 (theory, exact projection)",
    experiment=sam_flat_convergence,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE,
                      scale="toy rho in (0.05, 0.04, 0.03); net: 64 digits, 20 grad evals"),
        "cpu": Tier(seeds=1, config=CPU,
                    scale="toy rho in (0.05, 0.03, 0.02, 0.01); net: SmallCNN width 8 (4.4k params), "
                          "256 digits full batch, 400 grad evals per arm"),
    },
    # Bands fixed from the theory before running: with kappa = 1/rho SAM-IRE's rate is
    # eta*rho^2*(1 + 1/rho), a local slope of -(1 + 2 rho)/(1 + rho) in [-1.05, -1.01] for these rho;
    # +-0.3 leaves room for the finite rho and integer step counts. The practical (Fisher-mask) arm gets
    # the same band, fixed before it was run: the theory's rate holds for it if its mask finds the u axis.
    checks=(
        Check("sam_slope", Between((-2.3, -1.7)), "SAM: slope of log(steps to |u| < 0.5) on log(rho)"),
        Check("samire_slope", Between((-1.3, -0.7)),
              "SAM-IRE (kappa = 1/rho, exact projection): slope of log(steps to |u| < 0.5) on log(rho)"),
        Check("samire_fisher_slope", Between((-1.3, -0.7)),
              "practical SAM-IRE (kappa = 1/rho, sampled-Fisher mask, K = 10): slope of log(steps) on log(rho)"),
    ),
    reported=(
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
        Plot("toy_steps", "rho", ("steps_sam", "steps_samire", "steps_samire_fisher"),
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
          "so this tests the practical pipeline (scores, threshold, refresh, staleness), not a rotated "
          "valley (ire-toy-figure1's rotated rows do that). A diverged toy run (e.g. --set toy.lr=1e6) raises "
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
               why="Issue 8 item 13 (the exact flat axis set by hand checks the rate algebra only), issue 8 "
                   "item 8 (null rows) and issue 10 item 8 (--set lr=1e6 or --max-steps 5 read 'fails'). "
                   "v1 at the cpu tier: SAM slope -2.000, SAM-IRE slope -1.025.",
               results_seen=True),
    ),
    version=2,
))
