"""tools/gpu-check, the device check, exercised on CPU at smoke sizes (the same stages, script and outputs)."""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "gpu-check"


def _module():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_gpu_check_is_an_executable_script():
    assert os.access(SCRIPT, os.X_OK) and SCRIPT.read_text().startswith("#!/usr/bin/env python3")


def test_a_stage_past_its_limit_is_stopped_and_recorded(tmp_path):
    gc = _module()
    stage = gc.run_stage("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], 1.0, tmp_path,
                         dict(os.environ))
    assert stage["timed_out"] and stage["rc"] != 0 and stage["wall_s"] < 30


def test_fake_cifar_standin_loads_with_the_real_loader(tmp_path):
    gc = _module()
    gc._fake_cifar(tmp_path, n_train=50, n_test=10)
    from harness.data.cifar10 import load_cifar10

    split = load_cifar10(tmp_path / "cifar-10-batches-py")
    assert len(split.y_train) == 50 and len(split.y_test) == 10


def test_gpu_check_smoke_runs_every_stage_and_writes_report_and_summary(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, HARNESS_DATA=str(tmp_path / "empty-cache"), OMP_NUM_THREADS="1")
    env.pop("HARNESS_DATA_URL", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), str(out), "--smoke", "--budget-s", "400",
                           "--claim", "ire-toy-figure1", "--only", "gd-edge-of-stability",
                           "--gpu-set", "n_train=64", "--gpu-set", "n_test=20"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = {s["stage"]: s for s in summary["stages"]}
    assert set(stages) == {"cpu-tier-on-gpu", "ire-overhead-gpu", "curvature", "gpu-tier-capped"}
    assert all(s["rc"] == 0 and not s["timed_out"] for s in stages.values())
    ran = {c["id"]: run["tier"] for run in summary["runs"] for c in run["claims"]}
    assert ran == {"ire-toy-figure1": "smoke", "ire-overhead": "smoke", "gd-edge-of-stability": "gpu"}
    for run in summary["runs"]:
        assert Path(run["report"]).is_file()
        assert all(not c["errors"] for c in run["claims"])
    assert "cifar10" in summary["data"]["standin"]  # no cache here: synthetic stand-ins, said so
    rows = summary["curvature"]["rows"]
    # both solver paths (the claim's; float32 copy + value stop) within the claims' 1e-3 of a tight float64 solve
    assert set(rows) == {"float64 cpu, claim path", "float32 copy + value stop cpu"}
    assert all(r["rel_diff_vs_reference"] < 1e-3 and r["cold_hvps"] > 0 for r in rows.values())
    assert rows["float32 copy + value stop cpu"]["warm_hvps"] <= rows["float64 cpu, claim path"]["warm_hvps"]
    assert "eos-scale-invariant" in summary["curvature"]["net"]
    sharing = summary["sharing"]["rows"]  # seeds sharing the device: 1 and 2 at once, each ran
    assert [r["k"] for r in sharing] == [1, 2] and all(r["rc"] == 0 and r["speed_up"] > 0 for r in sharing)
    assert "numerics" in summary and "cuda_matmul_allow_tf32" in summary["numerics"]
    assert not (out / "work").exists() and not (tmp_path / "empty-cache").exists()  # nothing left, cache untouched
    text = (out / "summary.md").read_text()
    assert text.startswith("# gpu-check: ok") and "| gd-edge-of-stability |" in text and text in proc.stdout
    assert "seeds sharing the device" in text and "cold HVPs (gradient-eq)" in text
