"""`harness new-claim ID`: the claim file and smoke test it writes work as written."""
import importlib.util
import sys

import pytest
from test_house_loader import isolated, toy_claim, write  # noqa: F401 (isolated is a fixture)

from harness.claim.registry import get_claim
from harness.run.loader import load_claims, load_folder
from harness.run.runner import RunOptions, run_claims
from harness.run.store import ResultStore
from harness.views.cli import main
from harness.views.scaffold import write_claim


def run_generated_test(test_file, tmp_path):
    """Import a generated test module by path and call its one test function, as pytest would."""
    spec = importlib.util.spec_from_file_location(f"house_generated_{test_file.stem}", test_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, n) for n in dir(module) if n.startswith("test_")]
    assert len(tests) == 1
    tests[0](tmp_path)


def test_scaffold_outside_folder_claim_and_test_pass_as_written(tmp_path, isolated):  # noqa: F811
    load_folder(write(tmp_path / "base", {"house_scaf_base.py": toy_claim("house-scaf-base", "house_scaf_base")}))
    claim_file, test_file = write_claim("house-new", tmp_path / "mine", tmp_path / "mine", like="house-scaf-base")
    assert (claim_file.name, test_file.name) == ("house_new.py", "test_house_new.py")
    assert "TODO" in claim_file.read_text()
    run_generated_test(test_file, tmp_path / "t")
    claim = get_claim("house-new")
    assert claim.module == "house_new" and claim.experiment is get_claim("house-scaf-base").experiment
    # the placeholder band cannot hold: with two seeds (a finite interval) an unedited claim reads `fails`
    entry = run_claims([claim], RunOptions(tier="smoke", seeds=2), ResultStore(tmp_path / "r"))["claims"][0]
    assert entry["verdict"] == "fails" and entry["checks"][0]["estimate"]["value"] == pytest.approx(1.005)


def test_scaffold_package_claim_is_imported_by_module(tmp_path, isolated):  # noqa: F811
    load_folder(write(tmp_path / "base", {"house_scaf_base2.py": toy_claim("house-scaf-base2", "house_scaf_b2")}))
    pkg = write(tmp_path / "root" / "pkg_house_scaf", {"__init__.py": ""})
    sys.path.insert(0, str(tmp_path / "root"))
    _, test_file = write_claim("house-in-pkg", pkg, tmp_path / "root" / "tests", like="house-scaf-base2")
    assert "from pkg_house_scaf.house_in_pkg import CLAIM" in test_file.read_text()
    run_generated_test(test_file, tmp_path / "t")
    assert get_claim("house-in-pkg").module == "pkg_house_scaf.house_in_pkg"


def test_scaffold_default_like_writes_the_base_claims_configs(tmp_path, isolated):  # noqa: F811
    load_claims()
    assert main(["new-claim", "house-default", "--dir", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "test_house_default.py").is_file()
    load_folder(tmp_path / "d")
    new, base = get_claim("house-default"), get_claim("ire-toy-figure1")
    for tier in ("smoke", "cpu"):
        assert new.tiers[tier].config == base.tiers[tier].config
        assert new.tiers[tier].seeds == base.tiers[tier].seeds
    assert set(new.tiers) == {"smoke", "cpu"} and new.checks[0].metric == base.checks[0].metric


def test_scaffold_refuses_taken_ids_existing_files_and_bad_ids(tmp_path, isolated, capsys):  # noqa: F811
    def one_line_error(argv, match):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and match in err, err

    folder = str(tmp_path / "n")
    one_line_error(["new-claim", "ire-toy-figure1", "--dir", folder], "is taken: registered in")
    one_line_error(["new-claim", "Bad_Id", "--dir", folder], "lower-case words")
    one_line_error(["new-claim", "house-x", "--like", "no-such-claim", "--dir", folder], "unknown claim")
    assert main(["new-claim", "house-twice", "--dir", folder]) == 0
    capsys.readouterr()
    one_line_error(["new-claim", "house-twice", "--dir", folder], "exists; pass --force")
    assert main(["new-claim", "house-twice", "--dir", folder, "--force"]) == 0


def test_scaffold_writes_every_repo_claims_configs_as_code(tmp_path, isolated):  # noqa: F811
    """--like works for every claim here: its smoke and cpu configs come back equal from the written code."""
    repo_ids = [cid for cid, c in load_claims().items() if c.module.startswith("claims.")]
    assert repo_ids
    for cid in repo_ids:
        folder = tmp_path / cid.replace("-", "_")
        write_claim(f"house-like-{cid}", folder, folder, like=cid)
        load_folder(folder)
        new, base = get_claim(f"house-like-{cid}"), get_claim(cid)
        assert new.experiment is base.experiment
        for tier in ("smoke", "cpu"):
            assert new.tiers[tier].config == base.tiers[tier].config, (cid, tier)
