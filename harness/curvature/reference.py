"""Dense float64 Hessians for tests only; written independently of `hvp.py` on purpose.

Uses plain autograd double backward (`torch.autograd.functional.hessian`), not `torch.func`:
in torch 2.13 `torch.func.hessian` and `jacrev(jacrev(f))` return wrong Hessian entries for
BatchNorm in train mode (the BatchNorm-weight block), checked against finite differences.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call

from harness.curvature.hvp import LossFn


def dense_hessian(
    model: nn.Module,
    loss_fn: LossFn,
    data: Sequence[tuple[Tensor, Tensor]],
    bn_mode: str,
    params: Sequence[str] | None = None,
) -> Tensor:
    """Explicit Hessian of the size-weighted mean loss by autograd double backward, in float64.

    Works on a float64 deep copy of the model (floating data is converted too), so the model is
    untouched. Meant for tiny models (N of a few hundred at most).

    Args:
        model: the network.
        loss_fn: `loss_fn(output, y)` -> scalar mean loss.
        data: list of (x, y) batches.
        bn_mode: "eval" runs the copy in eval mode; "full-batch" and "ghost" in train mode,
            each batch through the model separately.
        params: names of parameters to differentiate, in flattening order; default all with
            requires_grad.

    Returns:
        (N, N) float64 Hessian.

    Raises:
        ValueError: unknown bn_mode.
    """
    if bn_mode not in ("full-batch", "ghost", "eval"):
        raise ValueError(f"unknown bn_mode {bn_mode!r}")
    net = copy.deepcopy(model).to(torch.float64)
    net.train(bn_mode != "eval")
    named = dict(net.named_parameters())
    names = list(params) if params is not None else [n for n, p in named.items() if p.requires_grad]
    others = {n: p.detach() for n, p in named.items() if n not in names}
    buffers = {n: b.detach() for n, b in net.named_buffers()}
    theta0 = torch.cat([named[n].detach().reshape(-1) for n in names])  # (N,)

    def as_f64(t: Tensor) -> Tensor:
        return t.to(torch.float64) if t.is_floating_point() else t

    batches = [(as_f64(x), as_f64(y)) for x, y in data]
    total = sum(len(x) for x, _ in batches)

    def mean_loss(theta: Tensor) -> Tensor:
        p, i = {}, 0
        for n in names:
            k = named[n].numel()
            p[n] = theta[i : i + k].reshape(named[n].shape)
            i += k
        out = theta.new_zeros(())
        for x, y in batches:
            state = {**others, **{n: b.clone() for n, b in buffers.items()}, **p}
            out = out + len(x) / total * loss_fn(functional_call(net, state, (x,)), y)
        return out

    return torch.autograd.functional.hessian(mean_loss, theta0).detach()
