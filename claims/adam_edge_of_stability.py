"""Cohen, Ghorbani, Krishnan, Agarwal et al. (2022): under full-batch Adam the preconditioned sharpness
lambda_max(P^-1 H), P = diag(sqrt(v_hat) + eps), rises to (2 + 2 beta1)/((1 - beta1) lr) and hovers there."""
from harness import AtMost, Between, Change, Check, Claim, Plot, Tier, register
from harness.claim.config import derive
from harness.experiments.eos import GDConfig
from harness.experiments.optimizer_edges import AdamEdgeConfig, adam_edge_trajectory, adam_threshold
from harness.optim import OptimizerSpec

# gd-edge-of-stability's net and loss (tanh MLP 64-64, 0.5 * sum MSE, float64) on 500 digits; full-batch Adam
# (AdamW with weight decay 0) at torch's defaults beta = (0.9, 0.999), eps = 1e-8 and lr = 1e-3 (Kingma & Ba's
# default step size): T = 38 / lr = 38,000. Steps and measure_every from the cpu budget (timing probe only).
CPU = AdamEdgeConfig(GDConfig(model="plain_mlp", activation="tanh", loss="mse",
                              optim=OptimizerSpec("adamw", lr=1e-3), steps=1800, measure_every=59, n_train=500))
GPU = derive(CPU, base={"data": "cifar10", "data_root": "data/cifar-10-batches-py", "n_train": 5000,
                        "n_test": 1000, "widths": (512, 512), "steps": 6000, "measure_every": 51,
                        "dtype": "float32"})
PAPER = "38/lr at beta1 = 0.9: lambda_max(P^-1 H) equilibrates at (2 + 2 beta1)/((1 - beta1) lr) (abstract)"

CLAIM = register(Claim(
    id="adam-edge-of-stability",
    source="Cohen, Ghorbani, Krishnan, Agarwal, Medapati, Badura, Suo, Cardoze, Nado, Dahl, Gilmer 2022, "
           "'Adaptive Gradient Methods at the Edge of Stability' (arXiv 2207.14484), abstract and full-batch "
           "experiments",
    statement="Full-batch Adam (beta1 = 0.9) on a non-normalized net: the preconditioned sharpness "
              "lambda_max(P^-1 H), P = diag(sqrt(v_hat) + eps) the diagonal Adam's step divides by, rises until "
              "it reaches (2 + 2 beta1)/((1 - beta1) lr) = 38/lr, then hovers there (the Adaptive Edge of "
              "Stability); the raw lambda_max need not sit at any threshold.",
    paper_value=PAPER,
    experiment=adam_edge_trajectory,
    tiers={
        "smoke": Tier(seeds=1, config=derive(CPU, base={"steps": 60, "n_train": 200, "measure_every": 15}),
                      scale="tanh MLP 64-64, 200 digits, 60 Adam steps"),
        "cpu": Tier(seeds=3, max_seeds=7, config=CPU,
                    scale="tanh MLP 64-64, 500 digits, 1800 full-batch Adam steps (lr 1e-3), float64"),
        "gpu": Tier(seeds=3, config=GPU, scale="tanh MLP 512-512, 5000 CIFAR-10 images, 6000 Adam steps, float32"),
    },
    checks=(
        Check("over_edge_pre_onset_min", AtMost(0.5),
              "smallest lambda_max(P^-1 H) / T before the onset at most 1/2, so reaching T needed the "
              "preconditioned sharpness to rise (step 0 counts, but its P = |g_0| + eps from one gradient "
              "can put it above T: the onset is the first upward crossing of 0.9 T)",
              source="Cohen et al. 2022 (the preconditioned sharpness rises, then equilibrates at T); 1/2 as "
                     "momentum-edge-of-stability's lambda_max(0)/T <= 1/2, our choice"),
        Check("over_edge_post_onset_median", Between((0.9, 1.1)),
              "median of lambda_max(P^-1 H) / T from the onset (first upward crossing of 0.9 T) on: the run "
              "hovers at Adam's edge",
              source="Cohen et al. 2022, abstract ('the maximum eigenvalue of the preconditioned Hessian typically "
                     "equilibrates at' the threshold, 38/eta at beta1 = 0.9); +-10% is our choice, "
                     "momentum-edge-of-stability's band",
              paper="1 (lambda_max(P^-1 H) at 38/lr)"),
    ),
    regime=(Check("onset_fraction", AtMost(0.8),
                  "premise: the run reached Adam's edge (lambda_max(P^-1 H) >= 0.9 T) with a fifth of training "
                  "left to hover",
                  source="our choice, gd-edge-of-stability's onset rule moved to T: without an onset the median "
                         "reads the approach, not the edge"),),
    reported=(("null_lr_lambda_over_2_post_onset_median",
               "null: lr * raw lambda_max / 2 over the same post-onset measurements (1 at GD's edge 2/lr)"),
              ("null_raw_lambda_over_edge_post_onset_median",
               "null: raw lambda_max / T over the same measurements (the check without the preconditioner)"),
              ("onset_step", "onset step (first upward crossing of lambda_max(P^-1 H) = 0.9 T)"),
              ("over_edge_initial", "lambda_max(P^-1 H) / T at step 0 (P from one gradient)"),
              ("over_edge_tail_median", "lambda_max(P^-1 H) / T, median of the last 30%"),
              ("lambda_max_initial", "raw lambda_max at step 0"),
              ("train_loss_final", "final training loss"),
              ("max_precond_residual_rel", "worst Lanczos residual / lambda, preconditioned")),
    plots=(Plot("trajectory", "step", ("precond_lambda_max",), "Preconditioned sharpness vs 38/lr",
                ylabel="lambda_max(P^-1 H)", ylog=True, hlines=(("edge", "38/lr"),), window="onset",
                onset="onset_step"),
           Plot("trajectory", "step", ("lr_lambda_max",), "Raw lr * lambda_max (null)", ylabel="lr * lambda_max",
                hlines=((2.0, "2 (GD's edge)"),))),
    tuning="none: Adam's default hyper-parameters (lr 1e-3, betas (0.9, 0.999), eps 1e-8); steps from the "
           "cpu budget",
    notes=f"Pre-registered before any run of this claim at any tier (T = {adam_threshold(1e-3, 0.9):.0f}). "
          "Derivation and the null in docs/claims/adam-edge-of-stability.md. Before the first cpu run, the smoke "
          "run (plumbing, 60 steps) showed lambda_max(P^-1 H) >= 0.9 T at step 0, where v_hat is one squared "
          "gradient: the step-0 check became the pre-onset minimum and the onset the first upward crossing.",
    changes=(
        Change("2026-12-07",
               what="cpu tier: 1000 -> 1800 steps, measure_every 39 -> 59. Checks, bands, onset rule, lr and "
                    "seeds unchanged.",
               why="The first cpu run (seeds 1000-1002, 13.7 single-core seconds in all) could not establish the "
                   "premise: onset fraction 0.98 [0.75, 1.21] against <= 0.8 (inconclusive); two of three seeds "
                   "had not reached 0.9 T by step 1000 (tail medians of lambda_max(P^-1 H)/T 0.73 and 0.62, the "
                   "third crossed at 94% of training and read 0.95 after it), so the runs ended while the "
                   "preconditioned sharpness was still rising. Post-onset median read 0.77 [-0.29, 1.82] "
                   "(inconclusive); pre-onset minimum 0.035 (holds). 1800 steps is what the cpu budget "
                   "(~25 single-core seconds for 3 seeds) allows; the next run uses fresh seeds.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seeds: a pilot of 3 then by power up to 5 -> up to 7. Checks, bands and setup unchanged.",
               why="Three cpu runs of v2 on fresh seeds (6000-6004, 6100-6104, 6200-6204) read the checks the "
                   "same way (pre-onset minimum ~0.046 and post-onset median 0.958-0.966 of the threshold, "
                   "holding) but the premise, onset fraction <= 0.8, read 0.656 [0.489, 0.822] (4 seeds, needs "
                   "~5), holds (5 seeds) and 0.647 [0.392, 0.903] (4 seeds, needs ~6): per seed 0.59-0.72, "
                   "well inside 0.8, but a second look capped at 5 cannot always reach the count its spread "
                   "asks for. A seed costs ~7 single-core seconds. The next cpu run uses fresh seeds.",
               results_seen=True),
    ),
    version=3,
))
