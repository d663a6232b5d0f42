"""Atomic writes: a file (or folder) appears under its final name complete, or not at all.

Everything is written to a temporary name beside the target (same folder, so the same file system) and
renamed onto it with `os.replace`, which is atomic on POSIX: a reader sees the old content or the new, and a
killed process leaves at most a hidden `.<name>.<random>.tmp` behind, never a half-written target. On an
error the temporary is removed and the old target stays as it was.

Bottom layer: imports nothing from harness, so any module may use it.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask (e.g. 0o022), which `open` applies to new files and `mkstemp` ignores."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:  # Linux: read without changing it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (the lock keeps our own threads from racing)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto `path` when the block ends without an error.

    For writers that need a path rather than bytes (torch.save, a streamed write, an extracted folder). The
    temporary already exists (an empty file, or an empty folder with `directory=True`) so that its name is
    reserved; the writer overwrites or fills it. The parent folder is created if missing.

    Args:
        path: the final name.
        directory: reserve an empty folder instead of an empty file (a folder renamed into place whole).

    Yields:
        The temporary path.

    Raises:
        OSError: the folder cannot be written, or the rename fails (e.g. `path` is a non-empty folder).
            Whatever the block raises propagates; in every error case the temporary is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = f".{path.name}.", ".tmp"
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=suffix))
        os.chmod(tmp, 0o777 & ~current_umask())
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a shared store needs the umask's mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> None:
    """Write `data` to `path` atomically (see the module docstring).

    Args:
        path: the final name; its folder is created if missing.
        data: the whole content.
        fsync: flush the content to disk before the rename, so that after a power loss `path` holds the
            old content or the new one, never an empty file (costs a disk round trip per write).

    Raises:
        OSError: the folder cannot be written (read-only, a file in the way, disk full).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8",
                      fsync: bool = False) -> None:
    """Write `text` to `path` atomically, encoded with `encoding`; as `atomic_write_bytes` otherwise.

    Raises:
        OSError: as `atomic_write_bytes`. UnicodeEncodeError: `text` does not fit `encoding`.
    """
    atomic_write_bytes(path, text.encode(encoding), fsync=fsync)
