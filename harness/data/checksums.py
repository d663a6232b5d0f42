"""Checksums of downloaded files and the `.verified` stamp that lets a later run skip the full hash.

A stamp records the published checksum the file matched, the file's size, mtime, ctime and inode, and the
sha256 of its first and last MiB, computed here: a stamp written by hand, or left beside a replaced file,
does not match, and the file is hashed in full before use. A file whose size is not the published size
is always hashed in full.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from harness.errors import DataError

log = logging.getLogger("harness.data.download")
CHUNK = 1 << 20


def checksum(path: Path, algorithm: str) -> str:
    """The hex digest of a file (md5 marked as not for security)."""
    h = hashlib.new(algorithm, usedforsecurity=False) if algorithm == "md5" else hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def stamp_text(final: Path, remote) -> str:
    """What the `.verified` stamp of `final` says once it matched the published checksum: the checksum, the
    file's size, mtime, ctime and inode, and the sha256 of its first and last MiB (hashed here, so a stamp
    written by hand or copied beside another file does not match the file it sits beside)."""
    st, sample = final.stat(), hashlib.sha256()
    with open(final, "rb") as f:
        sample.update(f.read(CHUNK))
        f.seek(max(0, st.st_size - CHUNK))
        sample.update(f.read(CHUNK))
    return (f"{remote.algorithm} {remote.digest} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino} "
            f"sample-sha256:{sample.hexdigest()}")


def write_stamp(final: Path, remote) -> None:
    """Record that `final` matched the published checksum, so later runs skip the full hash."""
    text = stamp_text(final, remote)  # before the write: the stamp is a sibling, not the file
    try:
        final.with_name(final.name + ".verified").write_text(text + "\n")
    except OSError as e:  # the file is verified; only the shortcut for next time is lost
        log.warning("cannot write %s.verified (%s): the next run hashes %s again", final, e.strerror, final.name)


def verified(final: Path, remote) -> Path:
    """`final` if it matches the published checksum: a file put there by hand is checked once, before use;
    after that its stamp (size and published size, stat, sampled hash) stands in for the full hash."""
    mark = final.with_name(final.name + ".verified")
    try:
        stamped = mark.is_file() and mark.read_text().strip() == stamp_text(final, remote)
    except (OSError, UnicodeDecodeError):
        stamped = False
    if stamped and final.stat().st_size == remote.size:
        return final
    digest = checksum(final, remote.algorithm)
    if digest != remote.digest:
        raise DataError(f"{final} has {remote.algorithm} {digest}, expected {remote.digest} "
                        f"({remote.checksum_source}); replace it with the published {remote.filename} or delete it")
    write_stamp(final, remote)
    return final
