"""Atomic writes: the target holds the old content or the new, and no temporary is left behind."""
import pytest

from harness.atomic import atomic_path, atomic_write_bytes, atomic_write_text


class Planted(Exception):
    pass


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("fsync", [False, True])
def test_atomic_write_bytes_replaces_the_file_and_creates_its_folder(tmp_path, fsync):
    path = tmp_path / "sub" / "x.bin"
    atomic_write_bytes(path, b"old", fsync=fsync)
    atomic_write_bytes(path, b"\x00new", fsync=fsync)
    assert path.read_bytes() == b"\x00new" and _names(path.parent) == ["x.bin"]


def test_atomic_write_text_encodes_utf8(tmp_path):
    path = tmp_path / "x.txt"
    atomic_write_text(path, "σ ≤ 2/η\n")
    assert path.read_bytes() == "σ ≤ 2/η\n".encode() and _names(tmp_path) == ["x.txt"]


def test_atomic_write_text_that_cannot_be_encoded_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(path, "σ", encoding="ascii")
    assert path.read_text() == "old" and _names(tmp_path) == ["x.txt"]


def test_atomic_path_renames_only_on_success(tmp_path):
    path = tmp_path / "ckpt.pt"
    with atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.is_file() and not path.exists()  # the name is reserved
        tmp.write_bytes(b"new")
    assert path.read_bytes() == b"new" and _names(tmp_path) == ["ckpt.pt"]


def test_atomic_path_error_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"old")
    with pytest.raises(Planted), atomic_path(path) as tmp:
        tmp.write_bytes(b"half")
        raise Planted
    assert path.read_bytes() == b"old" and _names(tmp_path) == ["ckpt.pt"]


def test_atomic_path_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "extracted"
    with pytest.raises(Planted), atomic_path(target, directory=True) as tmp:
        (tmp / "a.txt").write_text("a")
        raise Planted
    assert _names(tmp_path) == []
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir()
        (tmp / "a.txt").write_text("a")
    assert _names(tmp_path) == ["extracted"] and (target / "a.txt").read_text() == "a"


def test_atomic_path_failed_rename_removes_the_temporary(tmp_path):
    target = tmp_path / "full"
    target.mkdir()
    (target / "keep").write_text("k")  # os.replace cannot put a folder onto a non-empty one
    with pytest.raises(OSError), atomic_path(target, directory=True) as tmp:
        (tmp / "a.txt").write_text("a")
    assert _names(tmp_path) == ["full"] and _names(target) == ["keep"]
