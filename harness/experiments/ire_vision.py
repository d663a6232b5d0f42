"""IRE's generalization claim in vision (Wang et al. 2024, Tables 1-4): both bases' arms for one seed
(through the runner's cache, `harness.experiments.generalization.vision_base_arms`), then the paired
differences the claim checks and reports."""
from __future__ import annotations

import pandas as pd

from harness.claim.measurement import Measurement, RunContext
from harness.claim.registry import experiment
from harness.experiments.generalization import (
    ARMS,
    BASE_OF,
    BASES,
    VARIANTS,
    VisionBase,
    VisionConfig,
    vision_base_arms,
)


@experiment("ire_generalization", VisionConfig,
            outputs=('null_sam_reorder_minus_sam', 'null_sgd_reorder_minus_sgd', 'sam_ire_minus_lr_boost',
                     'sam_ire_minus_random_mask', 'sam_ire_minus_sam', 'sam_ire_random_minus_sam',
                     'sam_lr_boost_minus_sam', 'sam_minus_sgd', 'sgd_ire_minus_lr_boost',
                     'sgd_ire_minus_random_mask', 'sgd_ire_minus_sgd', 'sgd_ire_random_minus_sgd',
                     'sgd_lr_boost_minus_sgd', 'test_acc_sam', 'test_acc_sam_ire', 'test_acc_sam_ire_random',
                     'test_acc_sam_lr_boost', 'test_acc_sam_null', 'test_acc_sgd', 'test_acc_sgd_ire',
                     'test_acc_sgd_ire_random', 'test_acc_sgd_lr_boost', 'test_acc_sgd_null',
                     'trace_ratio_sam_ire_over_sam', 'trace_ratio_sam_ire_random_over_sam',
                     'trace_ratio_sam_lr_boost_over_sam', 'trace_ratio_sam_null_over_sam',
                     'trace_ratio_sgd_ire_over_sgd', 'trace_ratio_sgd_ire_random_over_sgd',
                     'trace_ratio_sgd_lr_boost_over_sgd', 'trace_ratio_sgd_null_over_sgd', 'trace_sam',
                     'trace_sam_ire', 'trace_sam_ire_random', 'trace_sam_lr_boost', 'trace_sam_null', 'trace_sgd',
                     'trace_sgd_ire', 'trace_sgd_ire_random', 'trace_sgd_lr_boost', 'trace_sgd_null',
                     'train_acc_sam', 'train_acc_sam_ire', 'train_acc_sam_ire_random', 'train_acc_sam_lr_boost',
                     'train_acc_sam_null', 'train_acc_sgd', 'train_acc_sgd_ire', 'train_acc_sgd_ire_random',
                     'train_acc_sgd_lr_boost', 'train_acc_sgd_null'),
            curves={'arms': ('arm', 'test_acc', 'trace')})
def ire_generalization(cfg: VisionConfig, ctx: RunContext) -> Measurement:
    """Every arm for this seed (cached), then paired differences in test accuracy and trace.

    For each base b in (sgd, sam): b_ire_minus_b (the claim), b_ire_minus_random_mask (IRE against its
    random-mask control), b_ire_minus_lr_boost, the controls against b, and null_b_reorder_minus_b
    (the same base with another mini-batch order from the switch step: what "no effect" reads).
    """
    m = {b: ctx.run(vision_base_arms, VisionBase(cfg, b)) for b in BASES}
    s = {}
    for arm in ARMS:
        for k in ("test_acc", "train_acc", "trace"):
            s[f"{k}_{arm}"] = m[BASE_OF[arm]].scalars[f"{k}_{arm}"]
    for b in BASES:
        acc = {v: s[f"test_acc_{b}{v}"] for v in VARIANTS}
        s[f"{b}_ire_minus_{b}"] = acc["_ire"] - acc[""]
        s[f"{b}_ire_minus_random_mask"] = acc["_ire"] - acc["_ire_random"]
        s[f"{b}_ire_minus_lr_boost"] = acc["_ire"] - acc["_lr_boost"]
        s[f"{b}_ire_random_minus_{b}"] = acc["_ire_random"] - acc[""]
        s[f"{b}_lr_boost_minus_{b}"] = acc["_lr_boost"] - acc[""]
        s[f"null_{b}_reorder_minus_{b}"] = acc["_null"] - acc[""]
        for v in VARIANTS[1:]:
            s[f"trace_ratio_{b}{v}_over_{b}"] = s[f"trace_{b}{v}"] / s[f"trace_{b}"]
    s["sam_minus_sgd"] = s["test_acc_sam"] - s["test_acc_sgd"]
    table = pd.DataFrame({"arm": list(ARMS), "test_acc": [s[f"test_acc_{a}"] for a in ARMS],
                          "trace": [s[f"trace_{a}"] for a in ARMS]})
    first = m["sgd"].scale
    scale = {k: first[k] for k in ("model", "params", "data", "n_train", "n_test", "steps", "ire_from_step")}
    scale["grad_evals"] = {a: m[BASE_OF[a]].scale["grad_evals"][a] for a in ARMS}
    scale["steps_trained"] = sum(m[b].scale["steps_trained"] for b in BASES)  # each base's prefix once
    scale["trace"] = (f"Hutchinson, {cfg.trace_probes} probes, {min(cfg.trace_examples, first['n_train'])} "
                      "training examples, training loss, bn_mode=eval after recomputing BN statistics")
    notes = []
    if ctx.max_steps is not None and first["steps"] < cfg.epochs * (first["n_train"] // min(cfg.batch_size,
                                                                                           first["n_train"])):
        notes.append(f"capped at {first['steps']} steps (--max-steps): the accuracies are not the recipe's")
    return Measurement(scalars=s, curves={"arms": table}, scale=scale, notes=notes)
