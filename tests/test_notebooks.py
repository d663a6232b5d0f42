"""Analysis notebooks: executed per claim, rendered into the report, failures shown beside the claim.

Tests that execute notebooks need the notebooks extra (nbconvert, nbclient, ipykernel); they skip with
the reason when it is missing. `nox -s tests` installs it, so CI runs them.
"""
from __future__ import annotations

import dataclasses

import pytest

from harness import Check, Claim, Measurement, Tier, Within, experiment, register
from harness.report import notebooks as nbs
from harness.report import render_report
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore

HOSTILE = "<script>alert(1)</script>"
MISSING = nbs.missing_modules()
nbformat = None if MISSING else __import__("nbformat")
needs_extra = pytest.mark.skipif(bool(MISSING), reason=f"notebooks extra missing ({', '.join(MISSING)}): "
                                 "pip install claim-harness[notebooks]")


@dataclasses.dataclass(frozen=True)
class NbConfig:
    steps: int = 3


@experiment("test_notebooks_tiny", NbConfig)
def nb_experiment(cfg: NbConfig, ctx) -> Measurement:
    import pandas as pd

    curve = pd.DataFrame({"step": list(range(cfg.steps)), "loss": [1.0 / (1 + s) for s in range(cfg.steps)]})
    return Measurement(scalars={"ratio": 2.0 + 0.01 * ctx.seed}, curves={"traj": curve})


def _claim(cid: str) -> Claim:
    return register(Claim(id=cid, source="Test 2024", statement=f"ratio near two {HOSTILE}", paper_value="2",
                          experiment=nb_experiment, tiers={"smoke": Tier(2, NbConfig()), "cpu": Tier(2, NbConfig())},
                          checks=(Check("ratio", Within(target=2.0, rtol=0.1)),)))


GOOD, BAD = _claim("test-notebooks-good"), _claim("test-notebooks-bad")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    store = ResultStore(root / "results")
    return store, run_claims([GOOD, BAD], RunOptions(tier="smoke"), store), root


def test_notebooks_template_cells_have_a_parameters_cell():
    cells = nbs.template_cells()
    assert cells[0]["markdown"] and cells[0]["source"].startswith("# Claim analysis")
    params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and "CLAIM_ID" in params[0]["source"] and not params[0]["markdown"]
    assert all(c["source"] for c in cells)


@needs_extra
def test_notebooks_build_injects_parameters_after_the_tagged_cell(tmp_path):
    nb = nbs.build_notebook("some-claim", "run-1", tmp_path)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = next(i for i, t in enumerate(tags) if "injected-parameters" in t)
    assert "parameters" in tags[at - 1] and tags[0] == ["injected-reset"]
    assert "CLAIM_ID = 'some-claim'" in nb.cells[at].source and repr(str(tmp_path)) in nb.cells[at].source
    nbformat.validate(nb)


@needs_extra
def test_notebooks_render_each_claim_and_a_failure_stays_beside_its_claim(run, tmp_path):
    store, summary, root = run
    custom = tmp_path / "custom"
    custom.mkdir()
    bad = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('planted notebook failure')")])
    nbformat.write(bad, custom / f"{BAD.id}.ipynb")
    index = render_report(store, summary["run_id"], root / "reports", notebooks=True, notebooks_dir=custom,
                          notebook_timeout_s=120)
    html = index.read_text()
    good_page = index.parent / "notebooks" / f"{GOOD.id}.html"
    bad_page = index.parent / "notebooks" / f"{BAD.id}.html"
    assert f'href="notebooks/{GOOD.id}.html"' in html and f'href="notebooks/{BAD.id}.html"' in html
    assert "notebook failed: a cell raised RuntimeError: planted notebook failure" in html
    good = good_page.read_text()
    assert "notebook-error" not in good and "<svg" not in good  # plots are data: images, no inline ids
    assert "data:image/svg+xml;base64," in good and "HOLDS" in good
    assert "<script" not in good.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in good
    assert not any(s in good for s in ("https://cdn", "http://cdn", "<link"))
    assert 'id="notebook-error"' in bad_page.read_text()
    executed = nbformat.read(index.parent / "notebooks" / f"{GOOD.id}.ipynb", as_version=4)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code")


@needs_extra
def test_notebooks_cell_time_limit_stops_a_slow_notebook(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(60)")])
    with nbs.kernel("python3", tmp_path) as km:
        error = nbs.execute(nb, 1.0, km)
        assert "longer than the 1 s limit" in error
        ok = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        assert nbs.execute(ok, 30.0, km) == ""  # the kernel was restarted and works again
        assert ok.cells[0].outputs[0]["data"]["text/plain"] == "2"


@needs_extra
def test_notebooks_missing_kernel_is_one_clear_error_per_claim(run, tmp_path):
    store, summary, _ = run
    index = render_report(store, summary["run_id"], tmp_path / "reports", notebooks=True,
                          notebook_kernel="no-such-kernel")
    html = index.read_text()
    assert html.count("no Jupyter kernel named &#39;no-such-kernel&#39; is installed") == 2 * 2  # row + section
    assert "--notebook-kernel" in html


def test_notebooks_missing_extra_says_how_to_install(run, tmp_path, monkeypatch):
    store, summary, _ = run
    monkeypatch.setattr(nbs, "missing_modules", lambda: ["nbconvert"])
    index = render_report(store, summary["run_id"], tmp_path / "reports", notebooks=True)
    html = index.read_text()
    assert "notebooks not rendered: pip install claim-harness[notebooks] (missing: nbconvert)" in html
    assert not (index.parent / "notebooks").exists()
    assert "test-notebooks-good" in html  # the rest of the report is there


@needs_extra
def test_notebooks_defang_removes_active_and_remote_content():
    raw = ('<div onclick="x()"><script>alert(1)</script><table><tbody><tr><td>1</td></tr></tbody></table>'
           '<img src="https://cdn.example/x.png"><a href="javascript:alert(1)">a</a>'
           '<img src="data:image/svg+xml;base64,AAAA"><link rel="stylesheet" href="//fonts/x.css"></div>')
    out = nbs.defang(raw)
    assert "<script" not in out and "onclick" not in out and "<link" not in out
    assert "https://" not in out and "javascript:" not in out
    assert "<tbody><tr><td>1</td></tr></tbody>" in out and 'src="data:image/svg+xml;base64,AAAA"' in out
