"""IRE's mask refresh in Llama pre-training, alone or data-parallel (for `harness.experiments.llm_train`).

Data-parallel (a `Comm` with world > 1, see harness.distributed): each rank's sampled-label gradient on its
shard of the mask batch is averaged over the ranks and the average is squared (as DDP's all-reduced .grad in
the authors' code), and rank 0's mask is broadcast so every rank amplifies the same coordinates.
"""
from __future__ import annotations

import torch

from harness.distributed import Comm
from harness.models.llama import Llama
from harness.optim import IRE, flat_mask_from_scores
from harness.optim.mask import sampled_label_gradients


def model_logits(model: Llama, x: torch.Tensor, autocast) -> torch.Tensor:
    """Logits (b, T, V) in float32, for IRE's Fisher scores."""
    with autocast:
        logits, _ = model(x)
    return logits.float()  # (b, T, V)


def refresh_mask(opt: IRE, logits_fn, comm: Comm) -> None:
    """IRE's mask refresh; data-parallel: the sampled-label gradients of the ranks' shards of the mask batch
    are averaged over the ranks and the average squared (the gradient of the whole mask batch, squared, as
    under the authors' DDP; averaging squares instead would make the mask ~world x less noisy), then rank 0's
    mask broadcast so every rank amplifies the same coordinates."""
    if comm.world == 1:
        opt.refresh_mask(logits_fn if opt.mask_kind == "fisher" else None)
        return
    if opt.mask_kind == "fisher":
        params = [p for g in opt.param_groups for p in g["params"]]
        grads = sampled_label_gradients(logits_fn, params, opt.generator)
        comm.mean_(grads)
        opt.set_mask(flat_mask_from_scores([g.square() for g in grads], opt.gamma))
        opt.extra_grad_evals += 1
    else:
        opt.refresh_mask(None)
    flat = [m.to(torch.uint8) for m in opt.mask]
    comm.broadcast_(flat)
    opt.set_mask([m.bool() for m in flat])
