"""Small convolutional nets: a scale-invariant BN CNN, its no-normalization twin, and an ordinary CNN.

ScaleInvariantCNN: conv3x3(no bias) -> BatchNormNoAffine -> activation per layer, 2x2 pool after every
layer but the last, global average pool, fixed random head. BN removes the scale of its input, so with
bn_eps = 0 and BN in batch-statistics mode the loss is exactly scale-invariant in each conv kernel separately,
whatever the activation and pooling. tanh with average pooling makes the net smooth (Lyu et al.'s theorems
assume a smooth loss); ReLU with max-pool is the usual non-smooth choice.

PlainCNN: the same CNN without normalization (the "no-BN twin" of the normalization comparison): same convs
and the same conv weights for a given seed, plus conv biases and a trainable linear head, as PlainMLP is to
ScaleInvariantMLP.

SmallCNN: an ordinary conv net (BN with affine parameters and running statistics, trainable head) for the
IRE generalization checks on digits.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.models.mlp import (
    ACTIVATIONS,
    BatchNormNoAffine,
    check_activation,
    check_positive_int,
    check_seed,
    check_widths,
    default_init_,
)

POOLS = {"max": F.max_pool2d, "avg": F.avg_pool2d}


def check_pool(pool: str) -> str:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return pool


class ScaleInvariantCNN(nn.Module):
    """Scale-invariant conv net for 8x8 digits (1 channel) or 32x32 CIFAR (3 channels).

    Args:
        in_channels: input channels.
        num_classes: output size.
        widths: channels of each conv layer; a 2x2 max-pool follows every layer but the last, so the input
            side must be >= 2**(len(widths) - 1) (8x8 with 3 layers: 8 -> 4 -> 2 -> GAP).
        bn_eps: BatchNorm's eps; 0 makes the loss exactly scale-invariant.
        activation: "relu" (default) or "tanh".
        pool: "max" (default) or "avg" (with tanh: a smooth net).
        track_running_stats: False (default): BN always uses the statistics of the current batch, in eval
            mode too. True: BN keeps running statistics and uses them in eval mode; the loss is then
            scale-invariant only in train mode.
        seed: init seed (local generator; the global RNG is not touched).
        dtype: parameter dtype.

    The head is a buffer `head` of shape (num_classes, widths[-1]), N(0, 1/widths[-1]) entries.

    Raises:
        ValueError / TypeError: bad sizes, eps or seed.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
                 bn_eps: float = 0.0, track_running_stats: bool = False, seed: int = 0,
                 dtype: torch.dtype = torch.float32, activation: str = "relu", pool: str = "max"):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(num_classes, "num_classes")
        widths = check_widths(widths)
        self.activation, self.pool = check_activation(activation), check_pool(pool)
        generator = check_seed(seed)
        self.in_channels, self.widths, self.num_classes = in_channels, widths, num_classes

        chans = (in_channels, *widths)
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1, bias=False, device="meta")
                                    for a, b in zip(chans[:-1], chans[1:])])
        self.norms = nn.ModuleList([BatchNormNoAffine(w, eps=bn_eps, track_running_stats=track_running_stats)
                                    for w in widths])
        self.convs.to_empty(device="cpu")
        for conv in self.convs:
            default_init_(conv.weight, None, generator)
        head = torch.randn(num_classes, widths[-1], generator=generator, dtype=torch.float64)
        self.register_buffer("head", head / math.sqrt(widths[-1]))
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> logits (B, num_classes)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        last = len(self.convs) - 1
        act, pool = ACTIVATIONS[self.activation], POOLS[self.pool]
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = act(norm(conv(x)))  # (B, C_i, H_i, W_i)
            if i < last:
                x = pool(x, 2)  # (B, C_i, H_i/2, W_i/2)
        x = x.mean(dim=(2, 3))  # (B, C_last)
        return x @ self.head.T  # (B, num_classes)


class PlainCNN(nn.Module):
    """ScaleInvariantCNN without normalization: conv3x3(bias) -> activation per layer, the same pooling,
    global average pool, trainable linear head. The no-BN twin for the normalization comparison.

    With the same seed and widths its conv weights equal ScaleInvariantCNN's (biases and head are drawn
    afterwards, with PyTorch's default U(±1/sqrt(fan_in)) init).

    Args:
        in_channels, num_classes, widths, activation, pool, seed, dtype: as ScaleInvariantCNN.

    Raises:
        ValueError / TypeError: bad sizes, activation, pool or seed.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, widths: Sequence[int] = (16, 32, 64),
                 seed: int = 0, dtype: torch.dtype = torch.float32, activation: str = "relu",
                 pool: str = "max"):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(num_classes, "num_classes")
        widths = check_widths(widths)
        self.activation, self.pool = check_activation(activation), check_pool(pool)
        generator = check_seed(seed)
        self.in_channels, self.widths, self.num_classes = in_channels, widths, num_classes

        chans = (in_channels, *widths)
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1, bias=True, device="meta")
                                    for a, b in zip(chans[:-1], chans[1:])])
        self.head = nn.Linear(widths[-1], num_classes, device="meta")
        self.convs.to_empty(device="cpu")
        self.head.to_empty(device="cpu")
        for conv in self.convs:  # weights first, in ScaleInvariantCNN's order; then biases and head
            default_init_(conv.weight, None, generator)
        with torch.no_grad():
            for conv in self.convs:
                bound = 1.0 / math.sqrt(conv.weight[0].numel())
                u = torch.rand(conv.bias.shape, generator=generator, dtype=torch.float64)
                conv.bias.copy_(u * 2 * bound - bound)
        default_init_(self.head.weight, self.head.bias, generator)
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> logits (B, num_classes)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        last = len(self.convs) - 1
        act, pool = ACTIVATIONS[self.activation], POOLS[self.pool]
        for i, conv in enumerate(self.convs):
            x = act(conv(x))  # (B, C_i, H_i, W_i)
            if i < last:
                x = pool(x, 2)  # (B, C_i, H_i/2, W_i/2)
        return self.head(x.mean(dim=(2, 3)))  # (B, num_classes)


class SmallCNN(nn.Module):
    """An ordinary small conv net: [conv3x3 -> (BN) -> ReLU] x2, max-pool, [conv3x3 -> (BN) -> ReLU] x2
    with twice the width, global average pool, Linear head. Every parameter is trainable.

    Args:
        in_channels: input channels (1 for digits, 3 for CIFAR).
        num_classes: output size.
        width: channels of the first two convs (the last two have 2 * width).
        batchnorm: True: BatchNorm2d (affine, running statistics) after each conv and convs without bias;
            False: convs with bias and no normalization.
        seed: init seed (local generator).
        dtype: parameter dtype.

    Raises:
        ValueError / TypeError: bad sizes or seed.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32,
                 batchnorm: bool = True, seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(num_classes, "num_classes")
        check_positive_int(width, "width")
        generator = check_seed(seed)
        self.in_channels, self.num_classes, self.width, self.batchnorm = (
            in_channels, num_classes, width, bool(batchnorm))

        chans = (in_channels, width, width, 2 * width, 2 * width)
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 3, padding=1, bias=not batchnorm, device="meta")
                                    for a, b in zip(chans[:-1], chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(c) if batchnorm else nn.Identity() for c in chans[1:]])
        self.head = nn.Linear(2 * width, num_classes, device="meta")
        self.convs.to_empty(device="cpu")
        self.head.to_empty(device="cpu")
        for layer in (*self.convs, self.head):
            default_init_(layer.weight, layer.bias, generator)
        self.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) -> logits (B, num_classes)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.relu(norm(conv(x)))  # (B, C, H, W)
            if i == 1:
                x = F.max_pool2d(x, 2)  # (B, width, H/2, W/2)
        x = x.mean(dim=(2, 3))  # (B, 2 * width)
        return self.head(x)  # (B, num_classes)
