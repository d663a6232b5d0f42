"""Store files are data, never trusted blindly: damaged or edited records are recomputed, damaged run
summaries are one-line errors, and no id read from a file or the command line becomes a path."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

from harness import Between, Check, Claim, Measurement, Tier, experiment, register
from harness.errors import HarnessError
from harness.run.history import load_history
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore, check_folder_writable
from harness.views.cli import main

CALLS: list[int] = []


@dataclass(frozen=True)
class StoreConfig:
    center: float = 2.0


@experiment("test_robust_store_toy", StoreConfig, outputs=("m",))
def store_toy(cfg, ctx) -> Measurement:
    CALLS.append(ctx.seed)
    return Measurement(scalars={"m": cfg.center + 0.01 * ctx.seed})


CLAIM = register(Claim(id="test-robust-store", source="t", statement="m near 2", paper_value="2",
                       experiment=store_toy, tiers={"smoke": Tier(2, StoreConfig()), "cpu": Tier(2, StoreConfig())},
                       checks=(Check("m", Between((1.0, 3.0))),)))


def _edit_number(text: str) -> str:
    record = json.loads(text)
    record["measurement"]["scalars"]["m"] = 99.0  # a hand-edited result
    return json.dumps(record)


@pytest.mark.parametrize("damage", [
    lambda t: t[: len(t) // 2],                    # truncated
    lambda t: "\x00\xff\xfe binary",                # binary
    lambda t: "[1, 2, 3]",                          # valid JSON of the wrong shape
    lambda t: t.replace('"m": 2.0', '"m": "two"'),  # text where a number belongs
    _edit_number,                                   # a number edited by hand
], ids=["truncated", "binary", "wrong-shape", "text-for-number", "edited-number"])
def test_robust_damaged_seed_record_is_recomputed_not_trusted(tmp_path, damage):
    store = ResultStore(tmp_path)
    first = run_claims([CLAIM], RunOptions(tier="smoke"), store)["claims"][0]
    path = store.seed_path(first["seeds"][0]["key"])
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    CALLS.clear()
    again = run_claims([CLAIM], RunOptions(tier="smoke"), store)["claims"][0]
    assert CALLS == [0]  # only the damaged seed is recomputed
    assert [s["cached"] for s in again["seeds"]] == [False, True]
    assert again["checks"][0]["estimate"] == first["checks"][0]["estimate"]
    assert store.load_seed(first["seeds"][0]["key"])["measurement"]["scalars"]["m"] == 2.0


@pytest.mark.parametrize("content,needle", [
    ('{"run_id": "r1", "status": "comp', "unreadable"),
    ("\x00\x01\x02", "unreadable"),
    ('["not", "a", "summary"]', "not an object"),
    ('{"run_id": "r1", "status": "complete", "claims": [{"id": "c", "checks": '
     '[{"metric": "m", "estimate": {"value": "abc", "lo": 1, "hi": 2}}]}]}', "text where a number belongs"),
    ('{"run_id": "../..", "status": "complete", "claims": []}', "is not its folder's name"),
    ('{"run_id": "r1", "status": "complete", "claims": [{"id": "../../x"}]}', "is not a claim id"),
])
def test_robust_damaged_run_summary_is_one_line_and_left_alone(tmp_path, capsys, content, needle):
    store = ResultStore(tmp_path / "results")
    path = store.root / "runs" / "r1" / "run.json"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(HarnessError, match=needle):
        store.load_run("r1")
    for argv in (["report", "r1", "--no-notebooks", "--reports", str(tmp_path / "rep")], ["gate", "r1"],
                 ["compare", "r1", "r1"]):
        assert main(["--results", str(store.root), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err
    assert path.read_text() == content  # nothing stored is overwritten
    assert not (tmp_path / "rep").exists()
    df = load_history(store)  # history shows the damage and goes on
    assert df.loc[0, "status"].startswith("unreadable")


@pytest.mark.parametrize("run_id", ["../..", "../../etc", "/tmp/x", "a/b", "..", "r1.json"])
def test_robust_run_ids_from_the_command_line_are_checked(tmp_path, capsys, run_id):
    for argv in (["report", run_id, "--reports", str(tmp_path / "rep")], ["gate", run_id],
                 ["compare", run_id, "latest"]):
        assert main(["--results", str(tmp_path / "results"), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert "is not a run id" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "rep").exists()


def test_robust_results_and_reports_must_be_writable_folders(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(HarnessError, match="is not a folder"):
        ResultStore(a_file).check_writable()
    with pytest.raises(HarnessError, match="is not a folder"):
        check_folder_writable(a_file / "sub", "--reports")
    with pytest.raises(HarnessError, match="empty string"):
        ResultStore("")
    ro = tmp_path / "ro"
    ro.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p) == str(ro) else real_access(p, m))
    with pytest.raises(HarnessError, match="read-only"):
        check_folder_writable(ro / "reports", "--reports")


def test_robust_a_failed_write_is_one_line_not_a_traceback(tmp_path, monkeypatch):
    from harness import atomic
    def no_space(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic.tempfile, "mkstemp", no_space)
    with pytest.raises(HarnessError, match="cannot write .*No space left"):
        ResultStore(tmp_path).save_run("r1", {"run_id": "r1"})
