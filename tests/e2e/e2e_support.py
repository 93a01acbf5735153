"""Helpers of the end-to-end suite (its own module: `conftest` cannot be imported by name)."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ETLCTL = str(Path(sys.executable).parent / "etlctl")
ETL_JOB = str(Path(sys.executable).parent / "etl-job")
RELEASE = "kubetl"
DATA = "/opt/kubetl/data/nycflights13"


def sh(*argv: str, check: bool = True, timeout: float = 900, **kwargs) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}")
    return out


@dataclass
class Target:
    """The cluster the suite runs on, and how images get into it."""

    kubeconfig: Path
    load: list[str]
    base_image: str
    postgres_image: str  # repository:tag
    postgres_is_local: bool  # built here, so it must be loaded too

    def load_images(self, *images: str) -> None:
        sh(*self.load, *images)


class Namespace:
    """A namespace of the test's own that enforces Pod Security "restricted"."""

    def __init__(self, target: Target, tools: Path, name: str) -> None:
        self.target, self.tools, self.name = target, tools, name
        self.env = {**os.environ, "KUBECONFIG": str(target.kubeconfig)}

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return sh(str(self.tools / "kubectl"), "-n", self.name, *args, check=check, input=input, timeout=timeout, env=self.env)

    def helm(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return sh(str(self.tools / "helm"), "-n", self.name, *args, check=check, timeout=timeout, env=self.env)

    def etlctl(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return sh(ETLCTL, "-n", self.name, *args, check=False, timeout=timeout, env=self.env)

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def sql(self, query: str) -> str:
        """Ask the release's PostgreSQL, from inside its pod."""
        out = self.kubectl("exec", f"statefulset/{RELEASE}-postgresql", "-c", "postgresql", "--",
                           "psql", "-U", "kubetl", "-d", "kubetl", "-tAc", query)
        return out.stdout.strip()

    def wait_for(self, what: str, check, timeout: float = 300, every: float = 2.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")

    def jobs(self, pipeline: str) -> list[dict]:
        return self.get("jobs", "-l", f"kubetl.io/pipeline={pipeline}")["items"]


def new_namespace(target: Target, tools: Path, prefix: str) -> Namespace:
    """A fresh namespace PREFIX-<random>."""
    ns = Namespace(target, tools, f"{prefix}-{uuid.uuid4().hex[:6]}")
    sh(str(tools / "kubectl"), "create", "namespace", ns.name, env=ns.env)
    sh(str(tools / "kubectl"), "label", "namespace", ns.name, "pod-security.kubernetes.io/enforce=restricted",
       "pod-security.kubernetes.io/warn=restricted", env=ns.env)
    return ns


def delete_namespace(ns: Namespace) -> None:
    ns.kubectl("delete", "namespace", ns.name, "--wait=false", check=False)
