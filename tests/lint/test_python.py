"""Every Python file of the project passes pyflakes: no undefined or unused names.

An undefined name in a fixture only shows when that suite runs, late in CI;
here it fails in seconds."""
from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_pyflakes_finds_nothing():
    files = [str(p) for d in ("job", "controller", "tests", "hack") for p in sorted((ROOT / d).rglob("*.py"))]
    out = subprocess.run([sys.executable, "-m", "pyflakes", *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
