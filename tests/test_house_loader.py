"""Claims from outside the repository (--claims-path, entry points) and the strict registry's refusals."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.claim import registry
from harness.claim.registry import get_claim
from harness.errors import HarnessError
from harness.run import loader
from harness.run.loader import load_claims, load_entry_points, load_folder, load_package
from harness.views.cli import main

REPO = Path(__file__).resolve().parents[1]


def toy_claim(claim_id: str, exp: str, seeds: int = 1) -> str:
    """A claim file with its own tiny experiment (unique names per file: they share one process)."""
    return textwrap.dedent(f'''
        from dataclasses import dataclass

        from harness import AtLeast, Check, Claim, Measurement, Tier, experiment, register


        @dataclass(frozen=True)
        class Cfg_{exp}:
            offset: float = 1.0


        @experiment("{exp}", Cfg_{exp})
        def run_{exp}(cfg, ctx):
            return Measurement(scalars={{"x": cfg.offset + 0.01 * ctx.seed}})


        CLAIM = register(Claim(
            id="{claim_id}", source="test", statement="x is at least 0.5", paper_value="1",
            experiment=run_{exp},
            tiers={{"smoke": Tier({seeds}, Cfg_{exp}()), "cpu": Tier({seeds}, Cfg_{exp}())}},
            checks=(Check("x", AtLeast(0.5)),)))
    ''')


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def isolated(monkeypatch):
    """A registry, sys.path and module table that the test's loads leave as they found them.

    The repository's claims load first, so that what the test adds (and this removes) is only its own.
    """
    load_claims()
    monkeypatch.setattr(registry, "_CLAIMS", dict(registry._CLAIMS))
    monkeypatch.setattr(registry, "_EXPERIMENTS", dict(registry._EXPERIMENTS))
    monkeypatch.setattr(loader, "_SOURCES", list(loader._SOURCES))
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    installed = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix}]
    for name in set(sys.modules) - before:
        path = getattr(sys.modules[name], "__file__", None)
        if path is not None and any(Path(path).resolve().is_relative_to(p) for p in [REPO, *installed]):
            continue  # keep harness/ modules and installed packages (torch registers its operators once)
        del sys.modules[name]


def test_claim_module_is_the_registering_module():
    load_claims()
    assert get_claim("ire-toy-figure1").module == "claims.ire_toy_figure1"


def test_loader_duplicate_id_in_a_second_file_names_both(tmp_path, isolated):
    write(tmp_path / "pkg_house_dup", {"__init__.py": "", "a.py": toy_claim("house-dup", "house_dup_a"),
                                       "b.py": toy_claim("house-dup", "house_dup_b")})
    sys.path.append(str(tmp_path))
    with pytest.raises(HarnessError, match="registered twice") as err:
        load_package("pkg_house_dup")
    assert str(tmp_path / "pkg_house_dup" / "a.py") in str(err.value)
    assert str(tmp_path / "pkg_house_dup" / "b.py") in str(err.value)


def test_loader_duplicate_of_a_repo_claim_names_both_files(tmp_path, isolated):
    load_claims()
    write(tmp_path, {"house_dup_repo.py": toy_claim("ire-toy-figure1", "house_dup_repo")})
    with pytest.raises(HarnessError, match="registered twice") as err:
        load_folder(tmp_path)
    assert str(REPO / "claims" / "ire_toy_figure1.py") in str(err.value)
    assert str(tmp_path / "house_dup_repo.py") in str(err.value)


def test_loader_duplicate_across_two_claims_paths(tmp_path, isolated):
    first = write(tmp_path / "one", {"house_two_a.py": toy_claim("house-two", "house_two_a")})
    second = write(tmp_path / "two", {"house_two_b.py": toy_claim("house-two", "house_two_b")})
    assert load_folder(first) == ["house-two"]
    with pytest.raises(HarnessError, match=f"in {first / 'house_two_a.py'} and in {second / 'house_two_b.py'}"):
        load_folder(second)


def test_loader_reloading_one_file_is_not_a_duplicate(tmp_path, isolated):
    folder = write(tmp_path, {"house_again.py": toy_claim("house-again", "house_again")})
    assert load_folder(folder) == load_folder(folder) == ["house-again"]
    assert loader.loaded_sources()[-1] == str(folder.resolve())


def test_register_attributes_a_replaced_copy_to_its_caller(tmp_path, isolated):
    write(tmp_path, {"house_base.py": toy_claim("house-base", "house_base"),
                     "house_copy.py": "import dataclasses\nfrom house_base import CLAIM as BASE\n"
                                      "from harness import register\n"
                                      "CLAIM = register(dataclasses.replace(BASE, id='house-copy'))\n"})
    load_folder(tmp_path)
    assert get_claim("house-copy").module == "house_copy"
    with pytest.raises(ValueError, match="house_copy.py and in .*house_third"):
        exec(compile("import dataclasses\nfrom harness import register\nimport house_copy\n"
                     "register(dataclasses.replace(house_copy.CLAIM))", "house_third", "exec"),
             {"__name__": "house_third"})


def test_loader_import_failure_names_the_file(tmp_path, isolated):
    write(tmp_path / "syntax", {"house_broken.py": "CLAIM = (\n"})
    with pytest.raises(HarnessError, match=r"house_broken .*syntax/house_broken\.py\) failed to load: SyntaxError"):
        load_folder(tmp_path / "syntax")
    write(tmp_path / "deep", {"house_uses_helper.py": "import _house_helper\n",
                              "_house_helper.py": "raise RuntimeError('boom')\n"})
    with pytest.raises(HarnessError, match=r"house_uses_helper\.py\) failed to load: RuntimeError: boom "
                                           r"\(raised at .*_house_helper\.py:1\)"):
        load_folder(tmp_path / "deep")


def test_loader_folder_that_registers_nothing_is_an_error(tmp_path, isolated):
    with pytest.raises(HarnessError, match="no such folder"):
        load_folder(tmp_path / "missing")
    write(tmp_path / "empty", {"test_house_only.py": "", "_house_private.py": ""})
    with pytest.raises(HarnessError, match=r"registers no claims \(no claim files in it\)"):
        load_folder(tmp_path / "empty")
    write(tmp_path / "quiet", {"house_quiet.py": "X = 1\n"})
    with pytest.raises(HarnessError, match=r"registers no claims \(files: house_quiet\.py\)"):
        load_folder(tmp_path / "quiet")
    write(tmp_path / "pkg_house_quiet", {"__init__.py": "", "house_q.py": "X = 1\n"})
    with pytest.raises(HarnessError, match="package 'pkg_house_quiet' .*__init__.py.* registers no claims"):
        load_folder(tmp_path / "pkg_house_quiet")


def test_loader_refuses_a_namespace_folder_as_claims_package(tmp_path, isolated):
    write(tmp_path / "house_ns_claims", {"one.py": toy_claim("house-ns", "house_ns")})
    sys.path.insert(0, str(tmp_path))  # as the working directory is, under `python -m harness`
    with pytest.raises(HarnessError, match="is a folder without __init__.py .*house_ns_claims.*run harness from "
                                           "another folder"):
        load_package("house_ns_claims")


def test_loader_refuses_a_file_that_would_shadow_a_module(tmp_path, isolated):
    write(tmp_path, {"json.py": toy_claim("house-json", "house_json")})
    with pytest.raises(HarnessError, match="module name 'json' is already taken by .*json"):
        load_folder(tmp_path)
    write(tmp_path / "bad", {"house-dash.py": toy_claim("house-dash", "house_dash")})
    with pytest.raises(HarnessError, match="not a Python module name; rename the file .*house_dash.py"):
        load_folder(tmp_path / "bad")


def test_loader_package_folder_loads_like_claims(tmp_path, isolated):
    write(tmp_path / "pkg_house_ok", {"__init__.py": "", "one.py": toy_claim("house-pkg-one", "house_pkg_one"),
                                      "test_one.py": "raise AssertionError('a test is not a claim module')\n"})
    assert load_folder(tmp_path / "pkg_house_ok") == ["house-pkg-one"]
    assert get_claim("house-pkg-one").module == "pkg_house_ok.one"


def _dist(root: Path, module: str) -> None:
    info = root / "house_ep_dist-0.1.dist-info"
    write(info, {"METADATA": "Metadata-Version: 2.1\nName: house-ep-dist\nVersion: 0.1\n",
                 "entry_points.txt": f"[claim_harness.claims]\nhouse = {module}\n"})


def test_loader_entry_point_group_loads_a_package(tmp_path, isolated):
    write(tmp_path / "house_ep_pkg", {"__init__.py": "", "c.py": toy_claim("house-ep", "house_ep")})
    _dist(tmp_path, "house_ep_pkg")
    sys.path.insert(0, str(tmp_path))
    assert load_entry_points() == ["house-ep"]
    dup = write(tmp_path / "dup", {"house_ep_dup.py": toy_claim("house-ep", "house_ep_dup")})
    with pytest.raises(HarnessError, match=r"house_ep_pkg/c\.py and in .*house_ep_dup\.py"):
        load_folder(dup)


def test_loader_entry_point_that_registers_nothing(tmp_path, isolated):
    write(tmp_path, {"house_ep_empty.py": "X = 1\n"})
    _dist(tmp_path, "house_ep_empty")
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(HarnessError, match=r"entry point 'house' \(claim_harness.claims of house-ep-dist\) "
                                           r"'house_ep_empty' .* registers no claims"):
        load_entry_points()


def test_cli_claims_path_is_accepted_by_every_subcommand(tmp_path, isolated, capsys):
    folder = write(tmp_path / "mine", {"house_cli.py": toy_claim("house-cli", "house_cli")})
    assert main(["list", "--claims-path", str(folder)]) == 0
    assert "house-cli" in capsys.readouterr().out
    parser_commands = ("list", "run", "report", "history", "compare", "perf", "gate", "new-claim")
    from harness.views.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(parser_commands) <= set(sub.choices)
    for name, command in sub.choices.items():
        assert any("--claims-path" in a.option_strings for a in command._actions), name
    assert main(["--results", str(tmp_path / "r"), "history", "--claims-path", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such folder" in err


def test_cli_runs_a_claim_from_an_outside_folder(tmp_path):
    """Issue 11's "done when": a claim in a folder outside the repo runs through --claims-path, with
    its own experiment, in worker processes (--jobs 2) that must find it too."""
    folder = write(tmp_path / "outside", {"house_outside.py": toy_claim("house-outside", "house_outside", seeds=2)})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--claims-path", str(folder),
                           "--claim", "house-outside", "--tier", "smoke", "--results", str(tmp_path / "results"),
                           "--no-report", "--jobs", "2"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "HOLDS         house-outside" in proc.stdout
    assert "2 seeds" in proc.stdout and "x: 1.005 [" in proc.stdout
    assert (tmp_path / "results" / "runs").is_dir()  # --results after the subcommand is honoured
