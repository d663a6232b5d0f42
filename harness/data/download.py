"""Data on first use: CIFAR-10 (python archive) and WikiText-103 (raw) fetched into a cache directory.

The cache directory is, first that is set: the `--data-dir` option (the CLI exports it as HARNESS_DATA so that
worker processes see it too), the HARNESS_DATA variable, else `$XDG_CACHE_HOME/claim-harness/data`
(`~/.cache/claim-harness/data`).

A download streams into `<file>.part` beside its final name, resuming with an HTTP Range request when a `.part`
is already there (a server that ignores the range sends the whole file again, which restarts it). Only once the
whole file is present and its checksum matches the published one is it renamed to its final name; a checksum
mismatch deletes the `.part` (nothing is kept) and raises. WikiText-103's zip is extracted into a temporary
folder that is renamed into place when complete, so no half-extracted folder is ever used.

HARNESS_DATA_URL (a base URL; `<base>/<file name>` is tried before the published addresses) serves a local
mirror, a machine without network, and the tests' loopback server. Standard library only (urllib).
"""
from __future__ import annotations

import contextlib
import errno
import http.client
import logging
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from harness.atomic import atomic_path
from harness.data.checksums import CHUNK, checksum, verified, write_stamp
from harness.errors import DataError

log = logging.getLogger(__name__)

ENV_DIR, ENV_URL = "HARNESS_DATA", "HARNESS_DATA_URL"


@dataclass(frozen=True)
class Remote:
    """A published file: where it is, its checksum and where that checksum comes from."""

    dataset: str
    filename: str
    urls: tuple[str, ...]
    algorithm: str            # hashlib name: md5 | sha256
    digest: str
    size: int                 # bytes (for the plan and the progress bar; the checksum decides)
    checksum_source: str
    folder: str               # what the loader reads once the file is in place (the archive itself, or a folder)


REMOTES = {
    "cifar10": Remote(
        "cifar10", "cifar-10-python.tar.gz", ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        "md5", "c58f30108f718f92721af3b95e74349a", 170_498_071,
        "the md5 published beside the file on the CIFAR-10 page (cs.toronto.edu/~kriz/cifar.html)",
        "cifar-10-python.tar.gz"),
    "wikitext103": Remote(
        "wikitext103", "wikitext-103-raw-v1.zip",
        ("https://wikitext.smerity.com/wikitext-103-raw-v1.zip",
         "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip"),
        "sha256", "91c00ae287f0d699e18605c84afc9e45c192bc6b7797ff8837e5474655a33794", 191_984_949,
        "the sha256 and size recorded for wikitext-103-raw-v1.zip in Hugging Face datasets' "
        "datasets/wikitext/dataset_infos.json (the authors publish no checksum)",
        "wikitext-103-raw"),
}
# data_root values the claims' configs name by default: when such a path is absent the cache is used instead
# (any other missing data_root is the user's own path, and an error).
DEFAULT_ROOTS = {"cifar10": ("", "data/cifar-10-batches-py", "data"),
                 "wikitext103": ("", "data/wikitext-103-raw", "data")}
_WIKI_FILES = ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw")
_EXPECTS = {"cifar10": "the cifar-10-batches-py folder or cifar-10-python.tar.gz",
            "wikitext103": "a folder with wiki.train.raw and wiki.valid.raw"}


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The download cache directory: `explicit`, else $HARNESS_DATA, else the per-user cache folder."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "claim-harness" / "data"


class _Bar:
    """A progress bar redrawn in place on a terminal; elsewhere one line per 10 %."""

    def __init__(self, name: str, total: int, done: int, stream: TextIO | None):
        self.name, self.total, self.done, self.stream = name, total, done, stream
        self.t0, self.start, self.last, self.tty = time.monotonic(), done, -1, bool(
            stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, n: int) -> None:
        self.done += n
        if self.stream is None or not self.total:
            return
        pct = min(100, 100 * self.done // self.total)
        if self.tty or pct // 10 != self.last // 10 or pct == 100 and self.last != 100:
            rate = (self.done - self.start) / max(time.monotonic() - self.t0, 1e-9) / 1e6
            line = (f"downloading {self.name} {pct:3d}% {self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB "
                    f"{rate:.1f} MB/s")
            self.stream.write(("\r" + line) if self.tty else line + "\n")
            self.stream.flush()
            self.last = pct

    def close(self) -> None:
        if self.stream is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _candidates(remote: Remote) -> list[str]:
    base = os.environ.get(ENV_URL, "").rstrip("/")
    return ([f"{base}/{remote.filename}"] if base else []) + list(remote.urls)


def _transfer(url: str, part: Path, remote: Remote, timeout: float, stream: TextIO | None) -> None:
    """Append the rest of `url` to `part` (Range request from its current size); a 200 restarts it."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "claim-harness",
                                                   **({"Range": f"bytes={have}-"} if have else {})})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the range starts at the end: the part is already whole
            return
        raise
    with response:
        resumed = have and response.status == 206
        if have and not resumed:
            log.info("%s: the server ignored the range request; downloading from the start", remote.filename)
        length = int(response.headers.get("Content-Length") or 0)
        bar = _Bar(remote.filename, (have if resumed else 0) + length or remote.size,
                   have if resumed else 0, stream)
        with _local(part), open(part, "ab" if resumed else "wb") as f:
            while block := _network(response.read, CHUNK):
                f.write(block)
                bar.update(len(block))
        bar.close()
        got = part.stat().st_size
        expected = (have if resumed else 0) + length
        if length and got < expected:  # connection closed early: keep the part for the next try
            raise OSError(f"transfer cut off at {got} of {expected} bytes")


class LocalWriteError(DataError):
    """The download could not be written here (a `.part` that is a folder, a read-only folder, a full
    disk): no other address is tried, and the message names the local cause, not the network."""


class _NetworkError(OSError):
    """A read from the connection failed (the network's fault: retried, resumed)."""


def _network(read, n: int) -> bytes:
    try:
        return read(n)
    except (OSError, http.client.HTTPException) as e:
        raise _NetworkError(f"connection lost: {e!r}") from e


@contextlib.contextmanager
def _local(part: Path):
    """Writes to `part`: an OSError that is not the network's is a LocalWriteError, and a part that
    filled the disk is deleted (nothing is left behind that could not be finished)."""
    try:
        yield
    except _NetworkError:
        raise
    except OSError as e:
        if e.errno == errno.ENOSPC:
            with contextlib.suppress(OSError):
                part.unlink()
        raise LocalWriteError(f"cannot write the download {part}: {e.strerror or e} (a local problem, not the "
                              f"network: free space or fix the folder, then run again)") from None


def fetch(remote: Remote, dest: str | os.PathLike | None = None, *, timeout: float = 60.0,
          attempts: int = 3, stream: TextIO | None = None, quiet: bool = False) -> Path:
    """The verified file `remote.filename` in `dest`, downloaded (or resumed) if absent.

    Args:
        remote: what to fetch (see REMOTES). dest: the folder (None: `data_dir()`).
        timeout: seconds without data before a connection is given up.
        attempts: transfers tried per address; each resumes where the previous one stopped.
        stream: where the progress bar goes (None: stderr). quiet: no progress bar.

    Returns:
        The path of the complete, checksum-verified file.

    Raises:
        DataError: one line naming the file and where to put it when no address answers (offline), or a
            checksum mismatch (the partial file is deleted first).
    """
    folder = data_dir(dest)
    final, part = folder / remote.filename, folder / (remote.filename + ".part")
    if final.is_file():
        return verified(final, remote)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data directory {folder}: {e}") from e
    stream = None if quiet else stream or sys.stderr
    with _locked(folder / (remote.filename + ".lock")):
        if final.is_file():  # another process finished it while this one waited
            return verified(final, remote)
        return _fetch_locked(remote, final, part, timeout, attempts, stream)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock (POSIX flock) so concurrent processes (torchrun ranks) never write one part file."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: the caller's single preflight is the only guard
        yield
        return
    try:
        f = open(path, "a")
    except OSError as e:
        raise LocalWriteError(f"cannot write in the data directory {path.parent}: {e.strerror or e} "
                              f"(--data-dir or ${ENV_DIR} names a writable folder)") from None
    with f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fetch_locked(remote: Remote, final: Path, part: Path, timeout: float, attempts: int,
                  stream: TextIO | None) -> Path:
    reasons = []
    for url in _candidates(remote):
        complete = False
        for _ in range(attempts):
            try:
                _transfer(url, part, remote, timeout, stream)
                complete = True
                break
            except LocalWriteError:
                raise  # the disk or folder here, not the network: no other address helps
            except (urllib.error.URLError, ValueError) as e:  # offline, refused, 404, bad URL: next address
                reasons.append(f"{url}: {getattr(e, 'reason', e)}")
                break
            except (OSError, http.client.HTTPException) as e:  # cut off mid-transfer: resume from the part
                reasons.append(f"{url}: {e!r}")
        if not complete:
            continue
        digest = checksum(part, remote.algorithm)
        if digest != remote.digest:
            part.unlink(missing_ok=True)
            raise DataError(f"{remote.filename} from {url} has {remote.algorithm} {digest}, expected "
                            f"{remote.digest} ({remote.checksum_source}); the download was deleted, nothing kept")
        with _local(part):
            os.replace(part, final)
        write_stamp(final, remote)
        log.info("%s: %s verified (%s), saved to %s", remote.filename, remote.algorithm, remote.digest, final)
        return final
    raise DataError(f"cannot download {remote.filename} ({reasons[-1] if reasons else 'no address'}); "
                    f"put {remote.filename} ({remote.urls[0]}) at {final}, or pass --set data_root=PATH")


def _extract_wikitext(archive: Path, target: Path) -> None:
    """wiki.*.raw out of the zip into `target`, through a temporary folder renamed when complete."""
    try:
        with atomic_path(target, directory=True) as tmp:
            with zipfile.ZipFile(archive) as z:
                for member in z.infolist():
                    name = Path(member.filename).name  # by base name: no path from the zip is used
                    if name in _WIKI_FILES and not member.is_dir():
                        with z.open(member) as src, open(tmp / name, "wb") as dst:
                            shutil.copyfileobj(src, dst, CHUNK)
            missing = [n for n in _WIKI_FILES[:2] if not (tmp / n).is_file()]
            if missing:
                raise DataError(f"{archive} holds no {', '.join(missing)}: not the WikiText-103 raw archive")
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"cannot extract {archive}: {e}") from e


def ensure(dataset: str, dest: str | os.PathLike | None = None, **fetch_options) -> Path:
    """What the loader of `dataset` reads, fetched and verified (and extracted) on first use.

    Args:
        dataset: "cifar10" (returns the .tar.gz, which the loader streams) or "wikitext103" (returns the
            extracted `wikitext-103-raw/` folder). dest: the cache directory (None: `data_dir()`).
        fetch_options: passed to `fetch`.

    Returns:
        A path to pass as data_root.

    Raises:
        DataError: as `fetch`, or a bad archive. KeyError: unknown dataset.
    """
    remote, folder = REMOTES[dataset], data_dir(dest)
    target = folder / remote.folder
    if target == folder / remote.filename:  # the loader reads the archive itself: fetch checks it before use
        return fetch(remote, folder, **fetch_options)
    if target.exists():  # extracted from a verified archive (or put there by hand, like a data_root)
        return target
    archive = fetch(remote, folder, **fetch_options)
    if dataset == "wikitext103":
        with _locked(folder / (remote.folder + ".lock")):
            if not target.exists():
                _extract_wikitext(archive, target)
    return target


def uses_cache(dataset: str, data_root: str) -> bool:
    """True when `data_root` is absent and a claim's default: the cache (and a download) stands in for it."""
    return dataset in REMOTES and str(data_root) in DEFAULT_ROOTS[dataset] and not (
        data_root and Path(data_root).exists())


def resolve_root(dataset: str, data_root: str, dest: str | os.PathLike | None = None, **fetch_options) -> str:
    """data_root if it exists; for a claim's default that is absent, the cache (downloading on first use).

    Raises:
        DataError: an explicit data_root that does not exist, or as `ensure`.
    """
    if not uses_cache(dataset, data_root):
        if data_root and not Path(data_root).exists():
            raise DataError(f"{dataset} data path '{data_root}' does not exist (expected {_EXPECTS[dataset]}; "
                            f"unset data_root to download into {data_dir(dest)})")
        return data_root
    return str(ensure(dataset, dest, **fetch_options))


def pending_download(dataset: str, data_root: str, dest: str | os.PathLike | None = None) -> dict | None:
    """What `resolve_root` would download (file, bytes, url, destination), or None if nothing."""
    if not uses_cache(dataset, data_root):
        return None
    remote, folder = REMOTES[dataset], data_dir(dest)
    if (folder / remote.folder).exists() or (folder / remote.filename).is_file():
        return None
    part = folder / (remote.filename + ".part")
    have = part.stat().st_size if part.exists() else 0
    return {"dataset": dataset, "file": remote.filename, "bytes": remote.size - have, "url": _candidates(remote)[0],
            "dest": str(folder / remote.filename)}


def check_wikitext103(data_root: str | os.PathLike) -> Path:
    """The folder holding wiki.train.raw and wiki.valid.raw; downloaded into the cache on first use.

    An empty data_root, or a claim's default that is absent, stands for the download cache (`resolve_root`:
    fetched, checksum-verified and extracted once, under a lock).

    Args:
        data_root: the folder with the raw files, the folder holding `wikitext-103-raw/`, or "".

    Returns:
        The folder with the raw files.

    Raises:
        DataError: an explicit path that lacks the files, or a download that fails (one line).
    """
    root = Path(resolve_root("wikitext103", str(data_root)))
    root = root / "wikitext-103-raw" if (root / "wikitext-103-raw").is_dir() else root
    missing = [str(root / n) for n in ("wiki.train.raw", "wiki.valid.raw") if not (root / n).is_file()]
    if missing:
        raise DataError(f"WikiText-103 file(s) missing: {', '.join(missing)}. Extract "
                        f"wikitext-103-raw-v1.zip so that wiki.train.raw and wiki.valid.raw lie in {root}, "
                        "or unset data_root to download it.")
    return root
