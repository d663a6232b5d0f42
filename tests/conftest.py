"""Shared fixtures: small files in the exact formats of data sets a user would download."""
import pickle

import numpy as np
import pytest
import torch


def write_fake_cifar10(folder, n_per_batch: int = 20, seed: int = 0):
    """cifar-10-batches-py/ with the real file names and python-pickle layout, tiny batches."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n_per_batch).tolist(),
                 b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"img_{i}.png".encode() for i in range(n_per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    return folder


@pytest.fixture(scope="session")
def fake_cifar10(tmp_path_factory):
    """Path of a fake cifar-10-batches-py folder (100 train, 20 test images)."""
    return write_fake_cifar10(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py")


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny problems gain nothing from intra-op threads and slow down badly on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
