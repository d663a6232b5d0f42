"""Models: scale-invariant and plain nets for the Edge-of-Stability claims, CIFAR ResNets, toy losses.

The Llama model lives in harness.models.llama and is imported from there (not re-exported here).
"""
from harness.models.cnn import ScaleInvariantCNN, SmallCNN
from harness.models.mlp import PlainMLP, ScaleInvariantMLP
from harness.models.resnet import CifarResNet, resnet20, resnet56
from harness.models.toys import Figure1Toy, RotatedToy, toy_trace

__all__ = [
    "ScaleInvariantMLP", "PlainMLP", "ScaleInvariantCNN", "SmallCNN", "CifarResNet", "resnet20", "resnet56",
    "Figure1Toy", "RotatedToy", "toy_trace",
]
