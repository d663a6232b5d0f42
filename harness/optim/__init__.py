"""Optimizers under test: IRE (mask and exact-projection variants), SAM and SAM-IRE.

All are ordinary `torch.optim.Optimizer` subclasses that wrap a constructed base optimizer and share
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

__all__ = [
    "IRE",
    "IREProjected",
    "SAM",
    "SAMIRE",
    "flat_mask_from_scores",
    "flat_projection_from_hessian",
    "random_flat_mask",
    "sampled_fisher_scores",
]
