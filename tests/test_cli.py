"""The CLI answers bad input with one line and a non-zero exit, never a traceback."""
import subprocess
import sys

import pytest

from harness.cli import main


@pytest.mark.parametrize("argv,needle", [
    (["run", "--claim", "eos-scale-invariat"], "did you mean eos-scale-invariant"),
    (["run", "--tier", "huge"], "unknown tier 'huge'"),
    (["run", "--claim", "eos-scale-invariant", "--seeds", "zero"], "positive integer"),
    (["run", "--claim", "eos-scale-invariant", "--seeds", "0"], "positive integer"),
    (["run", "--claim", "eos-scale-invariant", "--set", "stepz=4"], "did you mean steps"),
    (["run", "--claim", "eos-scale-invariant", "--set", "steps"], "KEY=VALUE"),
    (["run", "--claim", "eos-scale-invariant", "--set", "data=cifar10",
      "--set", "data_root=/no/such/dir"], "does not exist"),
    (["run", "--claim", "eos-scale-invariant", "--tier", "paper"], "has no 'paper' tier"),
    (["report", "nonexistent-run"], "no run 'nonexistent-run'"),
    (["frobnicate"], "invalid choice"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    code = main(["--results", str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_list_shows_every_claim(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for cid in ("gd-edge-of-stability", "eos-scale-invariant", "sharpness-reduction",
                "normalization-reduces-sharpness"):
        assert cid in out


def test_cli_module_entry_point_exits_nonzero_on_bad_claim(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness", "--results", str(tmp_path), "run",
                           "--claim", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("harness: error: unknown claim 'nope'")
    assert "Traceback" not in proc.stderr
