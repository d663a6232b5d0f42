"""Helpers shared by the tests/test_curvature_*.py modules (a plain module: they import what they use).

"""

import pytest
import torch
from torch import nn

# torch's first forward-mode AD call scripts its jvp decompositions (a torch-internal warning).
ignore_jit_script_warning = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning"
)


def make_bn_mlp(seed: int = 0, dropout: float = 0.0) -> nn.Module:
    """5 -> 8 (BatchNorm, tanh) -> 3: N = 91 parameters, float64."""
    torch.manual_seed(seed)
    layers = [nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)]
    if dropout:
        layers.insert(3, nn.Dropout(dropout))
    return nn.Sequential(*layers).to(torch.float64)


def make_data(n: int = 20, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """n points x (n, 5) float64 and labels y (n,) in {0, 1, 2}, for `make_bn_mlp`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)
