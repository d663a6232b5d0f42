"""Flat directions for IRE: sampled-label Fisher scores, the global flat mask, Hessian eigen-bases.

IRE (Wang et al. 2024, arXiv 2405.20763) amplifies the update on "flat" coordinates. The practical
algorithm marks as flat the ⌈γN⌉ coordinates with the smallest diagonal Fisher estimate h = g̃ ⊙ g̃,
where g̃ is the gradient of the mean cross-entropy against labels sampled from the model itself;
one threshold is shared by all parameters pooled. The ideal algorithm projects onto the
low-curvature eigenvectors of the Hessian instead (`flat_projection_from_hessian`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor


def num_flat_coordinates(gamma: float, n: int) -> int:
    """⌈γN⌉, computed on the decimal value of γ so that e.g. γ = 0.7, N = 10 gives 7, not 8.

    Args:
        gamma: flat fraction in (0, 1).
        n: total number of coordinates N ≥ 1.

    Returns:
        The number of flat coordinates, between 1 and N.

    Raises:
        ValueError: if gamma is outside (0, 1) or n < 1.
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must be a flat fraction in (0, 1), got {gamma}")
    if n < 1:
        raise ValueError(f"need at least one coordinate, got n={n}")
    # repr gives the shortest decimal that round-trips, so Fraction sees 0.7 rather than 0.69999…
    return min(n, max(1, math.ceil(Fraction(repr(float(gamma))) * n)))


def sampled_fisher_scores(
    logits_fn: Callable[[], Tensor], params: Sequence[Tensor], generator: torch.Generator
) -> list[Tensor]:
    """Diagonal Fisher estimate h = g̃ ⊙ g̃ from one forward/backward with self-sampled labels.

    The square of `sampled_label_gradients` (same arguments, same draws). Data-parallel callers average
    the gradients over ranks first and square the average, as the authors' code does under DDP.

    ŷ ~ Categorical(softmax(logits)) is drawn with `generator` only; g̃ is the gradient of the mean
    cross-entropy of the logits against ŷ. Gradients come from `torch.autograd.grad`, so no `.grad`
    field is read or written. Parameters that do not require grad or do not influence the logits
    score 0 (the paper counts exact zeros as flat).

    Args:
        logits_fn: runs a forward on a batch not used for the update and returns logits of shape
            (B, C) or (B, T, C); it is called once, under `torch.enable_grad()`.
        params: the parameters to score, in a fixed order.
        generator: the label-sampling generator (its device is where labels are drawn).

    Returns:
        One float32 tensor per parameter, same shape as the parameter.

    Raises:
        TypeError: if logits_fn does not return a floating tensor.
        ValueError: if the logits have fewer than 2 dims, are not finite or do not require grad, or no
            parameter requires grad.
    """
    return [g.square() for g in sampled_label_gradients(logits_fn, params, generator)]


def sampled_label_gradients(
    logits_fn: Callable[[], Tensor], params: Sequence[Tensor], generator: torch.Generator
) -> list[Tensor]:
    """g̃: the gradient of the mean cross-entropy against labels ŷ ~ softmax(logits) drawn with `generator`.

    Arguments, checks and draws as `sampled_fisher_scores` (which returns g̃ ⊙ g̃).

    Returns:
        One float32 tensor per parameter (zeros where a parameter does not require grad or is unused).
    """
    with torch.enable_grad():
        logits = logits_fn()
        if not isinstance(logits, Tensor) or not logits.is_floating_point():
            got = f"{logits.dtype} tensor" if isinstance(logits, Tensor) else type(logits).__name__
            raise TypeError(f"logits_fn must return floating logits (B, C) or (B, T, C), got {got}")
        if logits.dim() < 2:
            raise ValueError(f"logits must have shape (B, C) or (B, T, C), got {tuple(logits.shape)}")
        if not logits.requires_grad:
            raise ValueError("logits do not require grad; run the forward outside torch.no_grad()")
        logits = logits.reshape(-1, logits.shape[-1])  # (B·T, C)
        probs = logits.detach().softmax(dim=-1, dtype=torch.float32)  # (B·T, C)
        if not bool(torch.isfinite(probs).all()):
            raise ValueError("logits contain NaN or inf; the mask batch cannot be scored")
        labels = torch.multinomial(probs.to(generator.device), 1, generator=generator)  # (B·T, 1)
        loss = F.cross_entropy(logits, labels.squeeze(1).to(logits.device))
        trainable = [p for p in params if p.requires_grad]
        if not trainable:
            raise ValueError("no parameter requires grad, so there is nothing to score")
        grads = iter(torch.autograd.grad(loss, trainable, allow_unused=True))
    out = []
    for p in params:
        g = next(grads) if p.requires_grad else None
        out.append(torch.zeros_like(p, dtype=torch.float32) if g is None else g.detach().float())
    return out


def flat_mask_from_scores(scores: Sequence[Tensor], gamma: float) -> list[Tensor]:
    """Global flat mask: the ⌈γN⌉ coordinates with the smallest score over all tensors pooled.

    τ is the ⌈γN⌉-th smallest score (`torch.kthvalue`); every coordinate with h < τ is flat, and
    coordinates with h == τ are marked flat in flat-index order (tensors in the given order, then
    row-major) until exactly ⌈γN⌉ are flat. The paper's rule m = 1[h ≤ τ] marks all ties flat and can
    exceed γ (e.g. when more than γN scores are exactly 0); this one keeps the fraction exact.

    Args:
        scores: one non-negative score tensor per parameter.
        gamma: flat fraction in (0, 1).

    Returns:
        One bool tensor per score (True = flat), with exactly ⌈γN⌉ True entries in total.

    Raises:
        ValueError: if scores is empty, gamma is outside (0, 1), or a score is not finite.
    """
    if len(scores) == 0:
        raise ValueError("need at least one score tensor")
    device = scores[0].device  # pool on one device (a model may span several)
    h = torch.cat([s.detach().reshape(-1).to(device) for s in scores])  # (N,)
    k = num_flat_coordinates(gamma, h.numel())
    if not bool(torch.isfinite(h).all()):
        raise ValueError("Fisher scores contain NaN or inf; check the loss and the mask batch")
    tau = torch.kthvalue(h, k).values
    flat = h < tau  # (N,)
    missing = k - int(flat.sum())
    flat[(h == tau).nonzero().squeeze(1)[:missing]] = True
    pieces = flat.split([s.numel() for s in scores])
    return [m.view_as(s).to(s.device) for m, s in zip(pieces, scores, strict=True)]


def random_flat_mask(params: Sequence[Tensor], gamma: float, generator: torch.Generator) -> list[Tensor]:
    """Control mask: ⌈γN⌉ coordinates drawn uniformly without replacement over all tensors pooled.

    Args:
        params: tensors whose shapes the mask takes, in a fixed order.
        gamma: flat fraction in (0, 1).
        generator: the only source of randomness; the mask lives on its device.

    Returns:
        One bool tensor per parameter (True = flat), exactly ⌈γN⌉ True entries in total.

    Raises:
        ValueError: if params is empty or gamma is outside (0, 1).
    """
    if len(params) == 0:
        raise ValueError("need at least one parameter")
    sizes = [p.numel() for p in params]
    n = sum(sizes)
    k = num_flat_coordinates(gamma, n)
    flat = torch.zeros(n, dtype=torch.bool, device=generator.device)
    flat[torch.randperm(n, generator=generator, device=generator.device)[:k]] = True
    return [m.view(p.shape).to(p.device) for m, p in zip(flat.split(sizes), params, strict=True)]


def flat_projection_from_hessian(
    H: Tensor, num_flat: int | None = None, threshold: float | None = None
) -> Tensor:
    """Orthonormal basis of the flattest eigen-directions of a dense symmetric Hessian.

    Directions are ranked by |λ| (smallest first): near a manifold of minima the flat directions are
    the (near-)null space; ranking by |λ| keeps negative-curvature directions out of it. Give exactly
    one of `num_flat` (take the r flattest) or `threshold` (take all with |λ| ≤ threshold).

    Args:
        H: (N, N) symmetric Hessian, dense (tests and toy problems only).
        num_flat: number r of directions to return, 0 ≤ r ≤ N.
        threshold: curvature bound; directions with |λ| ≤ threshold are flat.

    Returns:
        U of shape (N, r) with orthonormal columns, the flattest first; U Uᵀ is the projector P.

    Raises:
        ValueError: if H is not square, symmetric and finite, or not exactly one of num_flat and
            threshold is given, or num_flat is outside [0, N], or threshold is negative.
    """
    if H.dim() != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"H must be a square (N, N) matrix, got shape {tuple(H.shape)}")
    if not bool(torch.isfinite(H).all()):
        raise ValueError("H contains NaN or inf")
    scale = float(H.abs().max()) if H.numel() else 0.0
    if not torch.allclose(H, H.T, rtol=0.0, atol=1e-6 * max(scale, 1e-12)):
        raise ValueError("H must be symmetric; symmetrise it with (H + H.T) / 2")
    if (num_flat is None) == (threshold is None):
        raise ValueError("give exactly one of num_flat (a count) or threshold (a curvature bound)")
    eigenvalues, eigenvectors = torch.linalg.eigh((H + H.T) / 2)  # (N,), (N, N)
    order = torch.sort(eigenvalues.abs(), stable=True).indices
    if num_flat is not None:
        if not 0 <= num_flat <= H.shape[0]:
            raise ValueError(f"num_flat must be in [0, {H.shape[0]}], got {num_flat}")
        return eigenvectors[:, order[:num_flat]]
    if threshold < 0:
        raise ValueError(f"threshold bounds |λ| and must be >= 0, got {threshold}")
    return eigenvectors[:, order[eigenvalues.abs()[order] <= threshold]]
