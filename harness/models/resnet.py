"""CIFAR ResNets (He, Zhang, Ren, Sun 2016, Sec. 4.2), written here without torchvision.

depth = 6n + 2: a 3x3 conv with 16 channels, three stages of n basic blocks with 16, 32, 64 channels (the
first block of stages 2 and 3 has stride 2), global average pool, Linear. Every conv is followed by
BatchNorm (affine, running statistics) and has no bias.

Shortcuts: option A by default (the paper's CIFAR choice: identity; where the shape changes, subsample by 2
and zero-pad the new channels, adding no parameters). Option B uses a 1x1 conv + BN projection where the
shape changes. Parameter counts with 10 classes: ResNet-20 269,722 (A) / 272,474 (B); ResNet-56 853,018 (A)
/ 855,770 (B) (the paper's "0.27M" and "0.85M").
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from harness.models.mlp import check_positive_int, check_seed, default_init_

SHORTCUTS = ("A", "B")


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False, device="meta")
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False, device="meta")
        self.bn2 = nn.BatchNorm2d(planes)
        self.reshape = stride != 1 or in_planes != planes
        self.shortcut_kind = shortcut
        self.pad = planes - in_planes  # option A: zero channels added, split evenly front and back
        if self.reshape and shortcut == "B":
            self.proj = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False, device="meta")
            self.proj_bn = nn.BatchNorm2d(planes)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_planes, H, W) -> (B, planes, H/stride, W/stride)."""
        if not self.reshape:
            return x
        if self.shortcut_kind == "B":
            return self.proj_bn(self.proj(x))
        x = x[:, :, ::2, ::2]  # (B, in_planes, H/2, W/2); every stage change here has stride 2
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))  # (B, planes, H/2, W/2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (B, planes, H', W')
        out = self.bn2(self.conv2(out))  # (B, planes, H', W')
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs.

    Args:
        depth: 6n + 2 (20, 32, 44, 56, 110, ...).
        num_classes: output size.
        in_channels: input channels (3 for CIFAR).
        shortcut: "A" (parameter-free, the paper's CIFAR choice) or "B" (1x1 projection where needed).
        seed: init seed (local generator; the global RNG is not touched). Convs get He (Kaiming) normal
            init with fan_in, as in He et al.; BN weight 1, bias 0; the Linear gets PyTorch's default init.
        dtype: parameter dtype.

    Raises:
        ValueError / TypeError: depth not of the form 6n + 2, unknown shortcut, bad sizes or seed.
    """

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, shortcut: str = "A",
                 seed: int = 0, dtype: torch.dtype = torch.float32):
        super().__init__()
        check_positive_int(depth, "depth")
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        check_positive_int(num_classes, "num_classes")
        check_positive_int(in_channels, "in_channels")
        generator = check_seed(seed)
        self.depth, self.num_classes, self.shortcut = depth, num_classes, shortcut
        n = (depth - 2) // 6

        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False, device="meta")
        self.bn1 = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride if i == 0 else 1, shortcut))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes, device="meta")
        self.to_empty(device="cpu")  # BN tensors were real already: reset them below
        self._init_weights(generator)
        self.to(dtype)

    @torch.no_grad()
    def _init_weights(self, generator: torch.Generator) -> None:
        for m in self.modules():  # a fixed order: registration order
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
                m.reset_running_stats()
            elif isinstance(m, nn.Linear):
                default_init_(m.weight, m.bias, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, 32, 32) -> logits (B, num_classes)."""
        x = F.relu(self.bn1(self.conv1(x)))  # (B, 16, 32, 32)
        x = self.blocks(x)  # (B, 64, 8, 8)
        x = x.mean(dim=(2, 3))  # (B, 64)
        return self.fc(x)  # (B, num_classes)


def resnet20(num_classes: int = 10, *, shortcut: str = "A", seed: int = 0,
             dtype: torch.dtype = torch.float32) -> CifarResNet:
    """ResNet-20 (n = 3): 269,722 parameters with option A and 10 classes."""
    return CifarResNet(20, num_classes, shortcut=shortcut, seed=seed, dtype=dtype)


def resnet56(num_classes: int = 10, *, shortcut: str = "A", seed: int = 0,
             dtype: torch.dtype = torch.float32) -> CifarResNet:
    """ResNet-56 (n = 9): 853,018 parameters with option A and 10 classes."""
    return CifarResNet(56, num_classes, shortcut=shortcut, seed=seed, dtype=dtype)
