"""Fully connected nets: a scale-invariant BN MLP and its plain (no-normalization) twin.

ScaleInvariantMLP is the net of Lyu, Li & Arora (2022) in its smallest form: every trainable weight matrix
feeds a BatchNorm without affine parameters, and the last layer is a fixed random matrix. With bn_eps = 0
the training loss is exactly scale-invariant in each hidden weight matrix separately (hence jointly):
L(c·W_l) = L(W_l) for every c > 0, so <∇L, W_l> = 0 (see shared/papers/lyu-eos.md).

All models here build deterministically from an integer seed through a local torch.Generator and leave the
global RNG untouched.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}


def check_seed(seed: int) -> torch.Generator:
    """Return a CPU generator seeded with `seed`; reject anything but a non-negative int."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} ({seed!r})")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return torch.Generator().manual_seed(seed)


def check_widths(widths: Sequence[int], name: str = "widths") -> tuple[int, ...]:
    """Return widths as a tuple of positive ints, or raise with what arrived."""
    widths = tuple(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {widths!r}")
    return widths


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    return activation


def check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


@torch.no_grad()
def default_init_(weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv init, U(±1/sqrt(fan_in)) for weight and bias, drawn from `generator`."""
    fan_in = weight[0].numel()  # in_features, or in_channels * kh * kw
    bound = 1.0 / math.sqrt(fan_in)
    weight.copy_(torch.rand(weight.shape, generator=generator, dtype=torch.float64) * 2 * bound - bound)
    if bias is not None:
        bias.copy_(torch.rand(bias.shape, generator=generator, dtype=torch.float64) * 2 * bound - bound)


class BatchNormNoAffine(nn.Module):
    """BatchNorm without affine parameters that also accepts eps = 0 (torch's batch_norm refuses it).

    Normalizes x of shape (B, C) or (B, C, *) per channel with the biased mean and variance over every
    dimension but the channel one: (x - mean) / sqrt(var + eps).

    Args:
        num_features: C.
        eps: added to the variance; 0 keeps the layer exactly invariant to the scale of its input.
        track_running_stats: False: always the current batch's statistics, in eval mode too. True: in train
            mode also update running_mean / running_var (unbiased, momentum as in torch) and use them in
            eval mode, like nn.BatchNorm.
        momentum: weight of the new batch in the running averages.
    """

    def __init__(self, num_features: int, eps: float = 0.0, track_running_stats: bool = False,
                 momentum: float = 0.1):
        super().__init__()
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(f"eps must be a float >= 0, got {eps!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.track_running_stats = track_running_stats
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C) or (B, C, H, W) -> same shape."""
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (B, {self.num_features}, ...), got {tuple(x.shape)}")
        # ATen's fused batch_norm (the function, unlike nn.BatchNorm's constructor checks, takes eps = 0):
        # one kernel forward and backward instead of ~6 elementwise ones, which made the gradient ~1.6x
        # and a double-backward HVP ~1.3x faster on the EoS net. It normalizes with the biased variance
        # and updates running_var with the unbiased one, with torch's momentum rule, as this layer did.
        # Same values as (x - mean) / sqrt(var + eps) to rounding (tests/test_curvature_bn.py).
        track = self.track_running_stats
        return torch.batch_norm(
            x, None, None, self.running_mean if track else None, self.running_var if track else None,
            self.training or not track, self.momentum, self.eps, False)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, track_running_stats={self.track_running_stats}"


class ScaleInvariantMLP(nn.Module):
    """Linear(no bias) -> BatchNormNoAffine -> activation per hidden layer, then a fixed linear head.

    BatchNorm never tracks running statistics: it always normalizes with the statistics of the batch it is
    given, in train and in eval mode alike (full-batch statistics when the whole data set is one batch; the
    test set's own statistics when evaluating on it).

    Args:
        in_dim: input features; inputs of shape (B, ...) are flattened to (B, in_dim).
        widths: hidden widths, one trainable weight matrix each.
        num_classes: output size.
        activation: "relu" or "tanh".
        bn_eps: BatchNorm's eps. 0 makes the loss exactly scale-invariant (then a batch of 1, or a unit with
            zero variance over the batch, gives NaN); any eps > 0 breaks invariance once ‖W‖ gets small.
        seed: init seed (a local generator; the global RNG is not touched).
        dtype: parameter dtype.

    The head is a buffer `head` of shape (num_classes, widths[-1]) with N(0, 1/widths[-1]) entries: it moves
    with .to() and is saved in state_dict, but is not in parameters().

    Raises:
        ValueError / TypeError: bad sizes, activation, eps or seed.
    """

    def __init__(self, in_dim: int, widths: Sequence[int] = (64, 64), num_classes: int = 10,
                 activation: str = "relu", bn_eps: float = 0.0, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        check_positive_int(in_dim, "in_dim")
        check_positive_int(num_classes, "num_classes")
        widths = check_widths(widths)
        self.activation = check_activation(activation)
        generator = check_seed(seed)
        self.in_dim, self.widths, self.num_classes, self.bn_eps = in_dim, widths, num_classes, bn_eps

        dims = (in_dim, *widths)
        self.linears = nn.ModuleList(
            [nn.Linear(a, b, bias=False, device="meta") for a, b in zip(dims[:-1], dims[1:])])
        self.norms = nn.ModuleList(
            [BatchNormNoAffine(w, eps=self.bn_eps, track_running_stats=False) for w in widths])
        self.linears.to_empty(device="cpu")
        for linear in self.linears:
            default_init_(linear.weight, None, generator)
        # fixed last layer: drawn after the hidden weights, so PlainMLP with the same seed shares them
        head = torch.randn(num_classes, widths[-1], generator=generator, dtype=torch.float64)
        self.register_buffer("head", head / math.sqrt(widths[-1]))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_dim) or (B, ...) with in_dim entries per example -> logits (B, num_classes)."""
        x = x.flatten(1)  # (B, in_dim)
        act = ACTIVATIONS[self.activation]
        for linear, norm in zip(self.linears, self.norms):
            x = act(norm(linear(x)))  # (B, width)
        return x @ self.head.T  # (B, num_classes)


class PlainMLP(nn.Module):
    """Linear(bias) -> activation per hidden layer, then a trainable Linear: the no-normalization twin.

    Used for Cohen et al.'s plain-GD Edge-of-Stability check (tanh) and as the "no-BN" arm. With the same
    seed and widths its hidden weight matrices equal ScaleInvariantMLP's (biases are drawn afterwards).

    Args:
        in_dim: input features; inputs of shape (B, ...) are flattened.
        widths: hidden widths.
        num_classes: output size.
        activation: "relu" or "tanh".
        bias: whether every Linear (hidden and last) has a bias.
        seed: init seed (local generator).
        dtype: parameter dtype.

    Raises:
        ValueError / TypeError: bad sizes, activation or seed.
    """

    def __init__(self, in_dim: int, widths: Sequence[int] = (64, 64), num_classes: int = 10,
                 activation: str = "relu", bias: bool = True, seed: int = 0,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        check_positive_int(in_dim, "in_dim")
        check_positive_int(num_classes, "num_classes")
        widths = check_widths(widths)
        self.activation = check_activation(activation)
        generator = check_seed(seed)
        self.in_dim, self.widths, self.num_classes = in_dim, widths, num_classes

        dims = (in_dim, *widths, num_classes)
        self.linears = nn.ModuleList(
            [nn.Linear(a, b, bias=bias, device="meta") for a, b in zip(dims[:-1], dims[1:])])
        self.linears.to_empty(device="cpu")
        for linear in self.linears:  # weights first, in ScaleInvariantMLP's order; then the biases
            default_init_(linear.weight, None, generator)
        if bias:
            for linear in self.linears:
                bound = 1.0 / math.sqrt(linear.in_features)
                with torch.no_grad():
                    u = torch.rand(linear.out_features, generator=generator, dtype=torch.float64)
                    linear.bias.copy_(u * 2 * bound - bound)
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_dim) or (B, ...) -> logits (B, num_classes)."""
        x = x.flatten(1)  # (B, in_dim)
        act = ACTIVATIONS[self.activation]
        for linear in self.linears[:-1]:
            x = act(linear(x))  # (B, width)
        return self.linears[-1](x)  # (B, num_classes)
