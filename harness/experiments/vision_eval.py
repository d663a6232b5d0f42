"""What a trained vision classifier is measured by at the end of a run: accuracy (%) with the BN running
statistics as trained, and the Hessian trace of the training loss after recomputing the BN statistics."""
from __future__ import annotations

import copy

import torch

from harness.curvature import HessianOperator, hutchinson_trace
from harness.losses import accuracy


@torch.no_grad()
def accuracy_percent(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """Accuracy (%) of `model` in eval mode on (x, y), forwarded `batch` examples at a time."""
    model.eval()
    correct = sum(accuracy(model(x[i:i + batch]), y[i:i + batch]) * len(y[i:i + batch])
                  for i in range(0, len(y), batch))
    return 100.0 * correct / max(len(y), 1)


@torch.no_grad()
def recompute_bn_stats(model: torch.nn.Module, x: torch.Tensor, batch: int) -> None:
    """Running BN statistics = exact averages over x (momentum None), so eval mode matches the data."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for i in range(0, len(x), batch):
        model(x[i:i + batch])


def final_trace(model: torch.nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, *, batch: int, probes: int,
                generator: torch.Generator) -> tuple[float, float]:
    """Hutchinson trace (`probes` probes from `generator`) of the loss's Hessian on (x, y) in BN eval mode,
    on a copy of the model whose running statistics are recomputed on x first. Returns (estimate, standard
    error)."""
    probe = copy.deepcopy(model)
    recompute_bn_stats(probe, x, batch)
    batches = [(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)]
    op = HessianOperator(probe, loss_fn, batches, bn_mode="eval")
    tr = hutchinson_trace(op, probes, generator)
    return tr.estimate, tr.std_error
