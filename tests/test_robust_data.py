"""Data files are checked before use and local faults are named as local (issue 22, items 3 and 5)."""
from __future__ import annotations

import builtins
import errno
import logging

import numpy as np
import pytest
from test_download import _fake_cifar_archive, _point, _Server, cache  # noqa: F401 (cache: a fixture)

from harness.data import download
from harness.data.text import stdlib_corpus
from harness.errors import DataError


def test_data_token_cache_with_a_shuffled_bin_is_rebuilt_with_a_warning(tmp_path, caplog):
    data = stdlib_corpus(tmp_path, max_bytes=50_000)
    original = np.array(data.train.data)
    shuffled = original.copy()
    np.random.default_rng(0).shuffle(shuffled)
    data.train.path.write_bytes(shuffled.tobytes())  # same size, other tokens
    with caplog.at_level(logging.WARNING):
        again = stdlib_corpus(tmp_path, max_bytes=50_000)
    assert "does not match its record (the sha256 of train.bin" in caplog.text
    assert np.array_equal(np.array(again.train.data), original)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stdlib_corpus(tmp_path, max_bytes=50_000)  # rebuilt, stamped: reused as is
    assert "reusing token cache" in caplog.text and "does not match" not in caplog.text


def test_data_part_file_that_is_a_folder_is_a_local_error_not_the_network(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    with _Server({"cifar-10-python.tar.gz": content}) as server:
        remote = _point(monkeypatch, "cifar10", server.url, content)
        (cache / (remote.filename + ".part")).mkdir(parents=True)
        with pytest.raises(download.LocalWriteError) as e:
            download.ensure("cifar10", quiet=True, timeout=5)
    msg = str(e.value)
    assert msg.startswith(f"cannot write the download {cache / remote.filename}.part: Is a directory")
    assert "Connection" not in msg and "\n" not in msg
    assert len(server.requests) == 1  # not retried, no other address tried


def test_data_full_disk_during_a_download_leaves_no_part_and_says_so(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    real_open = builtins.open

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, block):
            self.f.write(block[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fake_open(path, mode="r", *a, **k):
        f = real_open(path, mode, *a, **k)
        return Full(f) if str(path).endswith(".part") else f
    monkeypatch.setattr(download, "open", fake_open, raising=False)
    with _Server({"cifar-10-python.tar.gz": content}) as server:
        remote = _point(monkeypatch, "cifar10", server.url, content)
        with pytest.raises(DataError, match=r"\.part: No space left on device \(a local problem, not the network"):
            download.ensure("cifar10", quiet=True, timeout=5)
    assert not (cache / (remote.filename + ".part")).exists()


def test_data_read_only_data_folder_is_one_line(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    _point(monkeypatch, "cifar10", "http://127.0.0.1:9", content)
    cache.mkdir(parents=True)
    real_open = builtins.open

    def read_only(path, mode="r", *a, **k):
        if "a" in mode or "w" in mode:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, mode, *a, **k)
    monkeypatch.setattr(download, "open", read_only, raising=False)
    with pytest.raises(DataError, match=f"cannot write in the data directory {cache}: Permission denied"):
        download.ensure("cifar10", quiet=True)


def test_data_hand_written_verified_stamp_does_not_skip_the_hash(tmp_path, cache):
    remote = download.REMOTES["cifar10"]  # the published checksum and size
    cache.mkdir(parents=True)
    fake = cache / remote.filename
    fake.write_bytes(_fake_cifar_archive(tmp_path))
    st = fake.stat()
    (cache / (remote.filename + ".verified")).write_text(
        f"{remote.algorithm} {remote.digest} {st.st_size} {st.st_mtime_ns}\n")  # the old stamp, by hand
    with pytest.raises(DataError, match="replace it with the published cifar-10-python.tar.gz or delete it"):
        download.ensure("cifar10", quiet=True)


def test_data_stamp_is_checked_against_the_file_it_sits_beside(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    remote = _point(monkeypatch, "cifar10", "http://127.0.0.1:9", content)
    cache.mkdir(parents=True)
    (cache / remote.filename).write_bytes(content)
    download.ensure("cifar10", quiet=True)  # hashed once, stamped
    stamp = (cache / (remote.filename + ".verified")).read_text()
    assert stamp.startswith(f"md5 {remote.digest} {len(content)} ") and "sample-sha256:" in stamp
    bad = bytearray(content)
    bad[-1] ^= 1
    (cache / remote.filename).write_bytes(bytes(bad))  # replaced; the old stamp stays beside it
    with pytest.raises(DataError, match="replace it with the published"):
        download.ensure("cifar10", quiet=True)
