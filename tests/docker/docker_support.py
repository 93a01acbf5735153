"""Helpers for the Docker suite (a module of its own: `conftest` is not importable by name
when several test directories each have one)."""
from __future__ import annotations

import subprocess
import time

from support import ROOT


def sh(*argv: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def build(tag: str, base: str) -> float:
    started = time.monotonic()
    sh("docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(ROOT))
    return time.monotonic() - started


def psql(server: str, sql: str) -> str:
    return sh("docker", "exec", server, "psql", "-U", "kubetl", "-d", "kubetl", "-tAc", sql).stdout.strip()
