"""Bad input is one line naming the problem and a non-zero exit, before any compute (issue 10, item 11).

Every case here fails in the planning phase, so no seed runs."""
from __future__ import annotations

import pytest

from harness.views import cli
from harness.views.cli import main

C = "eos-scale-invariant-relu"  # a claim whose config is a GDConfig itself (no ladder around it)


@pytest.mark.parametrize("argv,needle", [
    (["run", "--claim", C, "--tier", ""], "unknown tier ''"),
    (["run", "--claim", C, "--claim", C, "--tier", "smoke"], "claim(s) given more than once: " + C),
    (["run", "--claim", C, "--jobs", "100000"], "--jobs 100000 is more than"),
    (["run", "--claim", C, "--seeds", "99999999"], "--seeds 99999999 is more than 10000"),
    (["run", "--claim", C, "--device", "meta"], "device 'meta' cannot compute here"),
    (["run", "--claim", C, "--device", ""], "--device must name a device"),
    (["run", "--claim", C, "--set", "optim.lr=nan"], "lr must be in (0.0, inf), got nan"),
    (["run", "--claim", C, "--set", "optim.weight_decay=inf"], "weight_decay must be in [0.0, inf), got inf"),
    (["run", "--claim", C, "--set", "widths="], "config key 'widths' must not be empty"),
    (["run", "--claim", C, "--tier", "smoke", "--set", "band=1.8"], "config key 'band' needs 2 values, got 1"),
    (["run", "--claim", C, "--seed-offset", "-1"], "--seed-offset expects a non-negative integer"),
    (["run", "--claim", C, "--tier", "smoke", "--notebook-timeout", "inf"], "positive, finite number of seconds"),
    (["history", "--claim", "eos-scale-invariat"], "unknown claim 'eos-scale-invariat'; did you mean"),
    (["history", "--tier", "huge"], "unknown tier 'huge'"),
    (["report", "../.."], "'../..' is not a run id"),
    (["compare", "../..", "latest"], "'../..' is not a run id"),
    (["gate", "/etc"], "'/etc' is not a run id"),
])
def test_robust_cli_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    code = main(["--results", str(tmp_path / "results"), *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "results" / "cache").exists()  # nothing computed


def test_robust_cli_results_or_reports_that_are_files_fail_before_compute(tmp_path, capsys):
    a_file = tmp_path / "afile"
    a_file.write_text("keep me")
    assert main(["--results", str(a_file), "run", "--claim", C, "--tier", "smoke"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["--results", str(tmp_path / "r"), "run", "--claim", C, "--tier", "smoke",
                 "--reports", str(a_file)]) == 2
    assert "--reports" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert main(["--results", "", "list"]) == 2
    assert a_file.read_text() == "keep me"


def test_robust_cli_a_claims_package_that_registers_nothing_is_an_error(monkeypatch, capsys):
    monkeypatch.setattr(cli, "load_claims", lambda: {})
    monkeypatch.setattr(cli, "all_claims", lambda: {})
    assert main(["list"]) == 2
    assert "registered no claims" in capsys.readouterr().err
