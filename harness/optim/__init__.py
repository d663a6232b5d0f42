"""Optimizers under test: IRE (mask and exact-projection variants), SAM and SAM-IRE, and the one
optimizer spec (`OptimizerSpec`, built through one registry) every experiment builds its optimizer from.

All optimizers are ordinary `torch.optim.Optimizer` subclasses that wrap a constructed base optimizer and share
its `param_groups`, so they drop into a user's own training loop and LR schedulers.
"""

from harness.optim.ire import IRE
from harness.optim.mask import (
    flat_mask_from_scores,
    flat_projection_from_hessian,
    random_flat_mask,
    sampled_fisher_scores,
)
from harness.optim.projected import IREProjected
from harness.optim.sam import SAM, SAMIRE
from harness.optim.spec import (
    CONSTANT_LR,
    OPTIMIZERS,
    OptimizerKind,
    OptimizerSpec,
    optimizer_kind,
    optimizer_names,
    register_optimizer,
    require_spec,
    requires_closure,
    sgd_stability_threshold,
)

__all__ = [
    "CONSTANT_LR",
    "IRE",
    "IREProjected",
    "OPTIMIZERS",
    "OptimizerKind",
    "OptimizerSpec",
    "SAM",
    "SAMIRE",
    "flat_mask_from_scores",
    "flat_projection_from_hessian",
    "optimizer_kind",
    "optimizer_names",
    "random_flat_mask",
    "require_spec",
    "register_optimizer",
    "requires_closure",
    "sampled_fisher_scores",
    "sgd_stability_threshold",
]
