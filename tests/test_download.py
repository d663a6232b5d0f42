"""The real download code (harness.data.download) against a loopback HTTP server serving fake archives in the
real formats: a good one, a corrupt one, one cut off mid-transfer, and none at all (offline)."""
import dataclasses
import hashlib
import http.server
import io
import socket
import tarfile
import threading
import time
import zipfile

import pytest
from conftest import write_fake_cifar10

from harness.data import download
from harness.errors import DataError


class _Server:
    """127.0.0.1 on a free port, in a thread; answers at most `max_requests` and stops by itself."""

    def __init__(self, files: dict, cut_first: bool = False, ignore_range: bool = False,
                 max_requests: int = 20, lifetime_s: float = 30.0):
        self.files, self.cut_first, self.ignore_range = files, cut_first, ignore_range
        self.requests: list[dict] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                owner.requests.append({"path": self.path, "range": self.headers.get("Range")})
                body = owner.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if self.headers.get("Range") and not owner.ignore_range:
                    start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if owner.cut_first and len(owner.requests) == 1:
                    payload = payload[: len(payload) // 2]  # promise everything, send half, hang up
                    self.close_connection = True
                self.wfile.write(payload)

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.2
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        deadline = time.monotonic() + lifetime_s

        def serve():
            while len(self.requests) < max_requests and time.monotonic() < deadline and not self._stop:
                self.httpd.handle_request()
            self.httpd.server_close()

        self._stop = False
        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stop = True
        self.thread.join(timeout=5)


def _fake_cifar_archive(tmp_path) -> bytes:
    folder = write_fake_cifar10(tmp_path / "src" / "cifar-10-batches-py", n_per_batch=10)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return buf.getvalue()


def _fake_wikitext_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, n in (("train", 400), ("valid", 60), ("test", 60)):
            z.writestr(f"wikitext-103-raw/wiki.{name}.raw", "".join(f" = Article {i} = \n text {i} .\n"
                                                                    for i in range(n)))
    return buf.getvalue()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv(download.ENV_URL, raising=False)
    monkeypatch.setenv(download.ENV_DIR, str(tmp_path / "cache"))
    return tmp_path / "cache"


def _point(monkeypatch, dataset: str, url: str, content: bytes) -> download.Remote:
    """The published remote, re-pointed at the loopback server, with the fake archive's checksum."""
    real = download.REMOTES[dataset]
    digest = hashlib.new(real.algorithm, content).hexdigest()
    remote = dataclasses.replace(real, urls=(f"{url}/{real.filename}",), digest=digest, size=len(content))
    monkeypatch.setitem(download.REMOTES, dataset, remote)
    return remote


def test_published_checksums_are_the_ones_documented():
    assert download.REMOTES["cifar10"].digest == "c58f30108f718f92721af3b95e74349a"
    assert download.REMOTES["cifar10"].algorithm == "md5"
    assert download.REMOTES["wikitext103"].algorithm == "sha256" and len(download.REMOTES["wikitext103"].digest) == 64


def test_data_dir_order(tmp_path, monkeypatch):
    monkeypatch.setenv(download.ENV_DIR, str(tmp_path / "env"))
    assert download.data_dir(tmp_path / "flag") == tmp_path / "flag"
    assert download.data_dir() == tmp_path / "env"
    monkeypatch.delenv(download.ENV_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.data_dir() == tmp_path / "xdg" / "claim-harness" / "data"


def test_good_cifar_archive_downloads_verifies_and_loads(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    with _Server({"cifar-10-python.tar.gz": content}) as server:
        _point(monkeypatch, "cifar10", server.url, content)
        assert download.pending_download("cifar10", "data/cifar-10-batches-py")["bytes"] == len(content)
        bar = io.StringIO()
        path = download.ensure("cifar10", stream=bar)
    assert path == cache / "cifar-10-python.tar.gz" and path.read_bytes() == content
    assert "100%" in bar.getvalue()
    assert not list(cache.glob("*.part"))
    assert download.pending_download("cifar10", "data/cifar-10-batches-py") is None
    from harness.data.datasets import check_data_source, load_dataset

    check_data_source("cifar10", "data/cifar-10-batches-py")  # present now: no request needed
    split = load_dataset("cifar10", n_train=50, n_test=10, root="data/cifar-10-batches-py", images=True)
    assert tuple(split.x_train.shape) == (50, 3, 32, 32) and split.provenance["format"] == "archive"


def test_corrupt_archive_is_a_checksum_error_and_nothing_is_kept(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    corrupt = content[:-100] + bytes(100)
    with _Server({"cifar-10-python.tar.gz": corrupt}) as server:
        _point(monkeypatch, "cifar10", server.url, content)
        with pytest.raises(DataError, match="md5 .* expected .*nothing kept") as e:
            download.ensure("cifar10", quiet=True)
    assert "\n" not in str(e.value)
    assert not (cache / "cifar-10-python.tar.gz").exists()
    assert not (cache / "cifar-10-python.tar.gz.part").exists()


def test_transfer_cut_off_mid_way_is_resumed_with_a_range_request(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    with _Server({"cifar-10-python.tar.gz": content}, cut_first=True) as server:
        _point(monkeypatch, "cifar10", server.url, content)
        path = download.ensure("cifar10", quiet=True)
    assert path.read_bytes() == content
    assert server.requests[0]["range"] is None
    assert server.requests[1]["range"] == f"bytes={len(content) // 2}-"


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    cache.mkdir(parents=True)
    (cache / "cifar-10-python.tar.gz.part").write_bytes(content[:1000])
    with _Server({"cifar-10-python.tar.gz": content}) as server:
        _point(monkeypatch, "cifar10", server.url, content)
        assert download.pending_download("cifar10", "")["bytes"] == len(content) - 1000
        download.ensure("cifar10", quiet=True)
    assert [r["range"] for r in server.requests] == ["bytes=1000-"]
    assert (cache / "cifar-10-python.tar.gz").read_bytes() == content


def test_server_ignoring_the_range_restarts_from_zero(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    cache.mkdir(parents=True)
    (cache / "cifar-10-python.tar.gz.part").write_bytes(b"x" * 500)  # would corrupt the file if appended to
    with _Server({"cifar-10-python.tar.gz": content}, ignore_range=True) as server:
        _point(monkeypatch, "cifar10", server.url, content)
        assert download.ensure("cifar10", quiet=True).read_bytes() == content


def test_offline_is_one_line_naming_the_file_and_where_to_put_it(cache, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on once the socket closes
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _point(monkeypatch, "cifar10", f"http://127.0.0.1:{port}", b"")
    with pytest.raises(DataError) as e:
        download.ensure("cifar10", quiet=True, timeout=2)
    msg = str(e.value)
    assert "\n" not in msg and "cifar-10-python.tar.gz" in msg and str(cache / "cifar-10-python.tar.gz") in msg
    from harness.data.datasets import check_data_source

    with pytest.raises(DataError, match="cannot download cifar-10-python.tar.gz"):
        check_data_source("cifar10", "")  # the preflight raises the same line before any seed runs


def test_mirror_variable_is_tried_first(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    with _Server({"cifar-10-python.tar.gz": content}) as server:
        remote = _point(monkeypatch, "cifar10", "http://127.0.0.1:9/unreachable", content)
        monkeypatch.setenv(download.ENV_URL, server.url + "/")
        assert download.fetch(remote, quiet=True).read_bytes() == content
    assert [r["path"] for r in server.requests] == ["/cifar-10-python.tar.gz"]


def test_explicit_data_root_keeps_working_and_a_missing_one_is_an_error(tmp_path, cache, fake_cifar10):
    assert download.resolve_root("cifar10", str(fake_cifar10)) == str(fake_cifar10)
    with pytest.raises(DataError, match="does not exist"):
        download.resolve_root("cifar10", str(tmp_path / "typo"))
    assert download.pending_download("cifar10", str(fake_cifar10)) is None


def test_wikitext_zip_downloads_extracts_and_tokenizes(tmp_path, cache, monkeypatch):
    content = _fake_wikitext_zip()
    with _Server({"wikitext-103-raw-v1.zip": content}) as server:
        _point(monkeypatch, "wikitext103", server.url, content)
        from harness.data.download import check_wikitext103
        from harness.data.text import wikitext103

        root = check_wikitext103("data/wikitext-103-raw")
        assert root == cache / "wikitext-103-raw"
        assert sorted(p.name for p in root.iterdir()) == ["wiki.test.raw", "wiki.train.raw", "wiki.valid.raw"]
        assert not list(cache.glob("*.tmp"))
        data = wikitext103("", tmp_path / "tokens", tokenizer="bytes")
    assert len(server.requests) == 1  # extracted once, then read from the cache
    assert data.provenance["source"] == "wikitext103" and len(data.provenance["content_sha256"]) == 64
    assert len(data.train) > len(data.val) > 0


def test_data_dir_option_reaches_the_download_cache(tmp_path, monkeypatch, capsys):
    from harness.views.cli import main

    monkeypatch.setenv(download.ENV_DIR, "unused")  # restored after the test; main() overrides it
    assert main(["--results", str(tmp_path / "r"), "--data-dir", str(tmp_path / "dd"), "list"]) == 0
    assert download.data_dir() == (tmp_path / "dd").resolve()


def test_a_file_put_there_by_hand_is_checked_once_before_use(tmp_path, cache, monkeypatch):
    content = _fake_cifar_archive(tmp_path)
    remote = _point(monkeypatch, "cifar10", "http://127.0.0.1:9", content)  # no server: nothing downloads
    cache.mkdir(parents=True)
    (cache / remote.filename).write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(DataError, match="replace it with the published cifar-10-python.tar.gz or delete it"):
        download.ensure("cifar10", quiet=True)
    (cache / remote.filename).write_bytes(content)
    assert download.ensure("cifar10", quiet=True) == cache / remote.filename
    assert (cache / (remote.filename + ".verified")).read_text().startswith(f"md5 {remote.digest} ")
