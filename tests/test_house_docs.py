"""docs/writing-claims.md: every worked example is written out and run at the smoke tier."""
import math
import re
from pathlib import Path

from test_house_loader import isolated  # noqa: F401 (a fixture)

from harness.claim.registry import get_claim
from harness.run.loader import load_claims, load_folder
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-claims.md"
EXAMPLE = re.compile(r'```python title="([^"]+)"\n(.*?)```', re.S)
IDS = re.compile(r'^    id="([a-z0-9-]+)",$', re.M)


def examples() -> dict[str, str]:
    return dict(EXAMPLE.findall(DOC.read_text()))


def test_docs_name_the_three_worked_examples():
    files = examples()
    assert list(files) == ["claims/ire_toy_flat_end.py", "my_claims/ire_drift.py", "my_claims/gd_quadratic.py"]
    for name, text in files.items():
        compile(text, name, "exec")  # each is a complete file


def test_docs_worked_examples_run_at_smoke(tmp_path, isolated, capsys):  # noqa: F811
    load_claims()
    ids = []
    for name, text in examples().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
        ids += IDS.findall(text)
    assert len(ids) == 3
    # claims/ example: the file a user adds to this repo's claims/ (loaded here from a copy of the folder)
    assert load_folder(tmp_path / "claims") == ["ire-toy-flat-end"]
    assert main(["list", "--claims-path", str(tmp_path / "my_claims")]) == 0
    listed = capsys.readouterr().out
    assert "ire-drift-beyond-gd" in listed and "gd-quadratic-threshold" in listed
    summary = run_claims([get_claim(i) for i in ids], RunOptions(tier="smoke"), ResultStore(tmp_path / "results"))
    for entry in summary["claims"]:
        assert entry["verdict"] in ("holds", "fails", "inconclusive"), (entry["id"], entry["checks"])
        for row in entry["checks"] + entry["reported"]:
            assert row["estimate"] is not None and math.isfinite(row["estimate"]["value"]), row
    drift = next(e for e in summary["claims"] if e["id"] == "ire-drift-beyond-gd")
    assert [r["metric"] for r in drift["reported"]] == ["drift_null"]
    # the doc's command line, as written (one process: --jobs 1)
    argv = ["--results", str(tmp_path / "results"), "run", "--claims-path", str(tmp_path / "my_claims"),
            "--claim", "gd-quadratic-threshold", "--tier", "smoke", "--jobs", "1", "--no-report"]
    assert main(argv) == 0
    assert "gd-quadratic-threshold" in capsys.readouterr().out


def test_docs_name_every_component_registry():
    """Each `NAME: Registry[...] = Registry(...)` in the library is listed in the reference, so a researcher
    finds every kind of named component a config can choose."""
    harness = DOC.parents[1] / "harness"
    found = re.compile(r"^([A-Z_]+): Registry\[", re.M)
    names = sorted({n for path in harness.rglob("*.py") for n in found.findall(path.read_text())})
    assert len(names) >= 8, names
    text = DOC.read_text()
    assert [n for n in names if f".{n}`" not in text] == []
