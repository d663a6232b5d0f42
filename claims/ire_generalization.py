"""Wang et al. 2024 (IRE), Tables 1-4: IRE on top of SGD and SAM improves test accuracy in vision."""
from harness import Change, Check, Claim, Effect, Tier, register
from harness.claim.config import derive
from harness.experiments.generalization import VisionConfig
from harness.experiments.ire_vision import ire_generalization

# SmallCNN width 8 + BN on digits, 1000 train / 797 test, 20 epochs, batch 128. gamma 0.9: the authors' CIFAR
# code default (CV/cifar/cifar.py --rank 0.1; CV/cifar/sgdire.py marks flat every score up to the smallest of
# the top rank x N, a share 1 - rank); the paper does not publish the CIFAR gamma.
CPU = VisionConfig(optim=derive(VisionConfig().optim, gamma=0.9))
SMOKE = derive(CPU, n_train=200, n_test=100, epochs=1, batch_size=50, trace_examples=64, trace_probes=2)
GPU = derive(CPU, model="resnet20", data="cifar10", data_root="data/cifar-10-batches-py", n_train=50000,
             n_test=10000, augment=True, epochs=50, trace_examples=1024)

# The smallest effect of interest per base: the smallest gain IRE adds to that base on CIFAR in the paper.
SGD_SMALLEST, SAM_SMALLEST = 0.29, 0.12
SGD_SOURCE = "The CIFAR results (WRN-28-10, ResNet-56; Tables 1-4): the smallest CIFAR gain of SGD-IRE over SGD, ResNet-56 CIFAR-10 93.49 -> 93.78"
SAM_SOURCE = "The CIFAR results (WRN-28-10, ResNet-56; Tables 1-4): the smallest CIFAR gain of SAM-IRE over SAM, WRN-28-10 CIFAR-10 96.58 -> 96.70"

CLAIM = register(Claim(
    id="ire-generalization",
    source="Wang et al. 2024 (IRE, arXiv 2405.20763), Tables 1-4",
    statement="Adding IRE to SGD or to SAM (switched on after a warm-up) improves test accuracy, and the "
              "gain comes from amplifying the flat (low-Fisher) coordinates: SGD-IRE > SGD, SAM-IRE > SAM, "
              "and each beats IRE with a random mask of the same size on the same base.",
    paper_value="+0.12 to +0.97 points on CIFAR (e.g. ResNet-56 CIFAR-10: SGD 93.49 -> 93.78, SAM 94.05 -> 94.46)",
    experiment=ire_generalization,
    tiers={
        "smoke": Tier(seeds=1, config=SMOKE, scale="SmallCNN w8, 200 digits, 1 epoch (plumbing only)"),
        "cpu": Tier(seeds=5, config=CPU,
                    scale="SmallCNN width 8 + BN (4.4k params), 1000 digits, 797 test, 20 epochs "
                          "(140 steps), IRE from step 49 (35%), gamma 0.9, 10 arms, 5 paired seeds",
                    cap_reason="at this scale a paired difference has an SD of ~0.6-0.9 points (797 test "
                               "images, one image is 0.125 points), so an interval short of 0.29 (SGD) or 0.12 "
                               "(SAM) points needs tens to hundreds of seeds at ~9 core-seconds each, beyond "
                               "the cpu tier's 10-minute budget; the gpu tier (10k test images, seeds by power) "
                               "is where these checks can be decided"),
        "gpu": Tier(seeds=3, max_seeds=8, config=GPU,
                    scale="ResNet-20 on CIFAR-10 (50k/10k), crop+flip, 50 epochs, IRE from 35%, gamma 0.9, "
                          "10 arms, 3-8 paired seeds (by power)"),
    },
    # Effect rule: a check holds when its paired interval lies above 0 and does not exclude the smallest
    # effect of interest d; it fails when the whole interval lies below d (smaller than any gain the paper
    # reports on CIFAR); otherwise inconclusive. Four checks, two looks: 1 - 0.05/8 intervals.
    checks=(
        Check("sgd_ire_minus_sgd", Effect(SGD_SMALLEST), "test accuracy SGD-IRE - SGD (points, paired per seed)",
              source=SGD_SOURCE, paper="+0.29 ResNet-56 C10, +0.97 C100; +0.40 WRN-28-10 C10, +0.68 C100"),
        Check("sam_ire_minus_sam", Effect(SAM_SMALLEST), "test accuracy SAM-IRE - SAM (points, paired per seed)",
              source=SAM_SOURCE, paper="+0.12 WRN-28-10 C10, +0.45 C100; +0.41 ResNet-56 C10, +0.32 C100"),
        Check("sgd_ire_minus_random_mask", Effect(SGD_SMALLEST),
              "SGD-IRE (Fisher mask) - SGD-IRE with a random mask of the same gamma (points)",
              source=SGD_SOURCE + "; our choice to ask the Fisher mask for the same smallest gain over the "
                                  "random mask, because the claim credits the gain to the mask (the paper has "
                                  "no random-mask arm)"),
        Check("sam_ire_minus_random_mask", Effect(SAM_SMALLEST),
              "SAM-IRE (Fisher mask) - SAM-IRE with a random mask of the same gamma (points)",
              source=SAM_SOURCE + "; the same smallest gain over the random mask (as for SGD)"),
    ),
    reported=(
        ("null_sgd_reorder_minus_sgd", "null: SGD with another batch order from the switch step - SGD"),
        ("null_sam_reorder_minus_sam", "null: SAM with another batch order from the switch step - SAM"),
        ("sgd_ire_random_minus_sgd", "control: SGD + random mask (same gamma) - SGD (points)"),
        ("sgd_lr_boost_minus_sgd", "control: SGD with lr x (1 + kappa*gamma) after the switch - SGD"),
        ("sgd_ire_minus_lr_boost", "SGD-IRE - SGD lr boost (points)"),
        ("sam_ire_random_minus_sam", "control: SAM + random mask (same gamma) - SAM (points)"),
        ("sam_lr_boost_minus_sam", "control: SAM with lr x (1 + kappa*gamma) after the switch - SAM"),
        ("sam_ire_minus_lr_boost", "SAM-IRE - SAM lr boost (points)"),
        ("test_acc_sgd", "test accuracy SGD (%)"),
        ("test_acc_sgd_ire", "test accuracy SGD-IRE (%)"),
        ("test_acc_sam", "test accuracy SAM (%)"),
        ("test_acc_sam_ire", "test accuracy SAM-IRE (%)"),
        ("sam_minus_sgd", "SAM - SGD (points)"),
        ("trace_ratio_sgd_ire_over_sgd", "final Hessian trace SGD-IRE / SGD"),
        ("trace_ratio_sgd_ire_random_over_sgd", "final Hessian trace SGD random mask / SGD"),
        ("trace_ratio_sgd_lr_boost_over_sgd", "final Hessian trace SGD lr boost / SGD"),
        ("trace_ratio_sgd_null_over_sgd", "null: final Hessian trace SGD reordered / SGD"),
        ("trace_ratio_sam_ire_over_sam", "final Hessian trace SAM-IRE / SAM"),
        ("trace_ratio_sam_ire_random_over_sam", "final Hessian trace SAM random mask / SAM"),
        ("trace_ratio_sam_lr_boost_over_sam", "final Hessian trace SAM lr boost / SAM"),
        ("trace_ratio_sam_null_over_sam", "null: final Hessian trace SAM reordered / SAM"),
        ("trace_sgd", "final Hessian trace SGD"),
        ("trace_sam", "final Hessian trace SAM"),
    ),
    tuning="none for any arm: every arm uses the paper's CIFAR recipe (SGD lr 0.1 cosine, momentum 0.9, "
           "WD 5e-4, batch 128, label smoothing 0.1; SAM rho = 0.05). IRE: kappa = 2 (the only published "
           "vision kappa, ViT-S ImageNet; the CIFAR kappa is unpublished), gamma = 0.9 (the authors' CIFAR "
           "code default, rank 0.1), "
           "K = 10, on from 35% of the steps (the authors' CIFAR default, IRE_start_epoch 70 of 200); the "
           "controls reuse kappa, gamma and the switch step on both bases. Baselines, controls and IRE got "
           "the same (zero) tuning budget.",
    notes="Paired seeds: per seed all ten arms share the initialisation, the mini-batch order and (gpu) "
          "the augmentation draws, and IRE's warm-up steps are bit-identical to the base run, so the "
          "runner's t-interval over seeds of the per-seed difference is the paired interval. Test "
          "accuracy uses the BN running statistics as trained. Final trace: Hutchinson on the training "
          "loss (with label smoothing) over the first 256 (gpu: 1024) training images, bn_mode='eval' on a "
          "copy whose BN statistics were recomputed on those images; the same probes for every arm. The "
          "Fisher mask uses a fixed batch of 128 training images drawn once, forwarded in eval mode (no "
          "BN-buffer side effect). SAM's second forward updates BN running statistics too (as common SAM "
          "code does). On digits one test image is 0.125 points. Controls, per base: a random mask of "
          "the same gamma redrawn at the same refresh steps (is it the Fisher mask or any amplification?), "
          "and lr x (1 + kappa*gamma) from the switch step (is it just a larger step?). Null, per base: the "
          "same config with the mini-batch order from the switch step drawn from another stream (the rest "
          "of that epoch reshuffled), i.e. a perturbation at the same step with no systematic effect; its "
          "interval shows what 'no benefit' reads. A --max-steps cap is noted in the measurement. At the cpu "
          "tier the paired SD of a difference is ~0.6-0.9 points (797 test images, one image 0.125 points), so "
          "an interval short of 0.29 (SGD) or 0.12 (SAM) points needs tens of seeds: 'fails' is reachable by "
          "the rule but not within the cpu tier's budget; the gpu tier (10k test images, seeds by power) is "
          "where the random-mask checks can be decided.",
    changes=(
        Change("2026-12-01",
               what="Checks >= 0 became strict > 0; added 'IRE beats its random-mask control' as a check for "
                    "SGD and for SAM (was a reported row for SGD only); added SAM + random mask and SAM + lr "
                    "boost control arms and one null arm per base (another batch order from the switch step); "
                    "IRE switched on at 35% of training instead of 65% (all tiers); a diverged run raises "
                    "NumericalError (an error verdict).",
               why="A project review of the stored runs: at the cpu tier (v1, 10 seeds) the SGD-side "
                   "controls (random mask - SGD +0.29, lr boost - SGD +0.26) matched SGD-IRE - SGD (+0.24; "
                   "Fisher - random -0.05 [-0.22, +0.12]), SAM had no controls, '>= 0' held for a zero effect; "
                   "35% is the authors' CIFAR default (IRE_start_epoch 70 of 200), 65% had no source.",
               results_seen=True),
        Change("2026-12-02",
               what="cpu seeds: a fixed 10 -> a pilot of 5 paired seeds, then seeds chosen by power up to "
                    "10 (two looks at 97.5%).",
               why="The project's seed policy (seeds chosen by power, and the cpu tier's 10-minute budget): 10 seeds of 10 "
                   "arms are ~155 single-core seconds. The extra look is paid for in the level: both looks "
                   "use 97.5% intervals (Bonferroni, harness.claim.sequential), so the verdict's error rate stays"
                   " <= 5%. A second look happens only when every undecided check could be decided within "
                   "the cap (harness.claim.sequential): seen before the change, over 10 seeds the random-mask "
                   "controls read +0.25 / -0.50 with intervals across 0, needing far more than 10 seeds, so"
                   " with these numbers the run stops at the pilot. Verdict before: inconclusive (SGD-IRE -"
                   " SGD +1.02 [+0.78, +1.26] and SAM-IRE - SAM held; the controls equal IRE). Bands and "
                   "arms unchanged.",
               results_seen=True),
        Change("2026-12-07",
               what="Checks: strict > 0 -> Effect with the smallest effect of interest from the paper's CIFAR "
                    "results (SGD side 0.29 points, SAM side 0.12), so each can fail: a check fails when its "
                    "paired interval lies wholly below that effect. The four checks are one family (1 - 0.05/8 "
                    "intervals with two looks). gamma 0.6 -> 0.9 at every tier. gpu tier: a fixed 3 seeds -> "
                    "3-8 seeds by power. Every check names its source.",
               why="The paper's CIFAR tables: SGD-IRE gains +0.29 to +0.97 over SGD, SAM-IRE +0.12 to +0.45 over "
                   "SAM; the authors' CIFAR code defaults to rank 0.1, i.e. 90% of the coordinates flat "
                   "(CV/cifar/cifar.py, CV/cifar/sgdire.py update_mask); 0.6 was their LM value. A review of "
                   "the stored runs read: IRE vs random mask 'needs ~2164 seeds' under > 0 while the controls "
                   "equal IRE (random mask +1.15, lr boost +1.18, SGD-IRE +1.13 over SGD; reshuffle null "
                   "+0.30); at the gpu tier 3 seeds give +-0.5-0.75 points against 0.3-0.4-point effects.",
               results_seen=True),
        Change("2026-12-07",
               what="cpu seeds: 5-10 by power -> a fixed 5. Checks, bands, arms and gamma unchanged.",
               why="The IRE claims' cpu-tier budget (~8 core-minutes in all, so that the default run fits ~10 "
                   "minutes on 2 cores): the first run of v4 (seeds 2000-2004) took 100 core-seconds for 5 "
                   "seeds (~18 per seed) and read paired SDs of ~0.6-0.9 points, so a 'fails' against 0.29 "
                   "(or 0.12) points needs tens of seeds at this scale (seeds-needed 6-23 for the undecided "
                   "checks); no cap the budget allows decides the random-mask checks, and a second look runs "
                   "only when every undecided check fits the cap, so a cap above 5 would only cost time.",
               results_seen=True),
    ),
    version=5,
))
