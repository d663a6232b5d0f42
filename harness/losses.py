"""Losses used by the claims, named so the config can choose them (the LOSSES registry)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from harness.claim.components import Registry

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LOSSES: Registry[LossFn] = Registry("loss", "losses")


@LOSSES.register("mse")
def half_sum_squared_error(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """0.5 * sum over classes of (logit - onehot)^2, averaged over examples.

    This is the MSE of Cohen et al.'s code: 5x PyTorch's mse_loss(reduction="mean") with 10 classes,
    and sharpness scales with it.
    """
    target = F.one_hot(y, logits.shape[-1]).to(logits.dtype)  # (B, C)
    return 0.5 * (logits - target).pow(2).sum(dim=-1).mean()


@LOSSES.register("ce")
def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(dim=-1) == y).to(torch.float64).mean().item()
