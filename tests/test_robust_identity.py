"""Code identity and scaffolding (issue 22, item 4): a --claims-path claim's helpers are part of its
cache key, and `harness new-claim` checks an id by the loader's own rule before writing anything."""
from __future__ import annotations

import pytest
from test_house_loader import isolated, toy_claim, write  # noqa: F401 (isolated: a fixture)

from harness.run import provenance
from harness.run.loader import load_folder
from harness.views.cli import main


def _claim_with_helper(exp: str, helper_import: str) -> str:
    return toy_claim(f"ident-{exp.replace('_', '-')}", exp).replace(
        "from dataclasses import dataclass", f"from dataclasses import dataclass\n{helper_import}").replace(
        "cfg.offset + 0.01 * ctx.seed", "cfg.offset + OFFSET + 0.01 * ctx.seed")


@pytest.mark.parametrize("layout", ["folder", "package"])
def test_identity_editing_a_claims_path_helper_changes_the_cache_key(tmp_path, isolated, layout):
    exp = f"ident_{layout}"
    if layout == "folder":
        folder = write(tmp_path / "mine", {f"{exp}.py": _claim_with_helper(exp, "from _ident_helper import OFFSET"),
                                           "_ident_helper.py": "OFFSET = 0.0\n"})
        helper = folder / "_ident_helper.py"
    else:
        folder = write(tmp_path / "ident_pkg", {"__init__.py": "", f"{exp}.py": _claim_with_helper(
            exp, "from ident_pkg._helper import OFFSET"), "_helper.py": "OFFSET = 0.0\n"})
        helper = folder / "_helper.py"
    load_folder(folder)
    provenance._module_closure_hash.cache_clear()
    before = provenance.experiment_code_hash(exp)
    provenance._module_closure_hash.cache_clear()
    assert provenance.experiment_code_hash(exp) == before  # unchanged code, unchanged key
    helper.write_text("OFFSET = 0.5\n")
    provenance._module_closure_hash.cache_clear()
    assert provenance.experiment_code_hash(exp) != before


def test_identity_installed_modules_are_not_hashed_as_the_users_own(tmp_path, isolated):
    folder = write(tmp_path / "mine2", {"ident_np.py": _claim_with_helper("ident_np", "import numpy\nOFFSET = 0.0")})
    load_folder(folder)
    provenance._module_closure_hash.cache_clear()
    assert provenance._user_file("numpy", folder) is None and provenance._user_file("json", folder) is None


@pytest.mark.parametrize("claim_id,needle", [
    ("test-x", "its file test_x.py would be skipped by the loader"),
    ("x-test", "its file x_test.py would be skipped by the loader"),
    ("conftest", "its file conftest.py would be skipped by the loader"),
    ("class", "'class' is a Python keyword, not a module name"),
    ("json", "module name 'json' is already taken"),
    ("os", "module name 'os' is already taken"),
    ("ok-id\n", "is not a claim id"),
    ("a" * 300, "is longer than 80 characters"),
    ("Bad_Id", "is not a claim id"),
])
def test_identity_new_claim_refuses_an_id_the_loader_would_skip_or_refuse(tmp_path, capsys, monkeypatch,
                                                                        claim_id, needle):
    (tmp_path / "mine").mkdir()  # a plain folder of claims, loaded with --claims-path
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code = main(["new-claim", claim_id, "--dir", str(tmp_path / "mine"),
                 "--tests-dir", str(tmp_path / "tests")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and needle in err, err
    assert len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


def test_identity_new_claim_outside_the_repository_does_not_create_a_shadowing_claims_folder(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["new-claim", "my-claim"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not this repository's claims package: it would shadow the package" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert main(["new-claim", "my-claim", "--dir", str(tmp_path / "mine")]) == 0  # a folder of its own is fine
    assert (tmp_path / "mine" / "my_claim.py").is_file()
