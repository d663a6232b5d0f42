"""The repository's tool scripts start: each imports what it needs from today's layout (a moved module once
left tools/dtype_compare.py failing at its first import)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("tool", ["tools/dtype_compare.py", "tools/gpu-check"])
def test_tools_import_and_print_their_help(tool):
    out = subprocess.run([sys.executable, str(ROOT / tool), "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.splitlines()[-1:] or out.stdout
    assert "usage:" in out.stdout
