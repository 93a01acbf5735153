"""Helpers for the Docker suite (a module of its own: `conftest` is not importable by name
when several test directories each have one)."""
from __future__ import annotations

import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from support import ROOT

POSTGRES_IMAGE = "kubetl.local/postgres:15"


def sh(*argv: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


@dataclass
class Build:
    seconds: float
    log: str  # the builder's output: steps, and which of them came from the cache

    def cached(self, fragment: str) -> bool:
        """Whether the build step whose instruction contains FRAGMENT was taken from the cache.
        Reads the classic builder's log (`Step N/M : ...` then ` ---> Using cache`) and
        BuildKit's plain progress (`#N [stage i/n] ...` then `#N CACHED`)."""
        for chunk in re.split(r"^Step \d+/\d+ : ", self.log, flags=re.M)[1:]:
            if fragment in chunk.splitlines()[0]:
                return " ---> Using cache" in chunk
        for step in re.finditer(r"^(#\d+) \[[^\]]+\] (.*)$", self.log, flags=re.M):
            if fragment in step.group(2):
                return re.search(rf"^{step.group(1)} CACHED$", self.log, flags=re.M) is not None
        raise AssertionError(f"no build step containing {fragment!r} in the build log:\n{self.log[-4000:]}")


def build(tag: str, base: str, context: Path = ROOT) -> Build:
    started = time.monotonic()
    out = sh("docker", "build", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(context))
    return Build(time.monotonic() - started, out.stdout + out.stderr)


def image_size(tag: str) -> int:
    return int(sh("docker", "image", "inspect", "-f", "{{.Size}}", tag).stdout)


def layers(tag: str) -> list[str]:
    return sh("docker", "image", "inspect", "-f", "{{range .RootFS.Layers}}{{println .}}{{end}}", tag).stdout.split()


def start_postgres(network: str, containers: list[str], *args: str) -> tuple[str, dict[str, str]]:
    """POSTGRES_IMAGE on NETWORK (ARGS as its command), ready for connections: (name, libpq env)."""
    server = f"pg-{uuid.uuid4().hex[:8]}"
    sh("docker", "run", "-d", "--name", server, "--network", network, "-e", "POSTGRES_USER=kubetl",
       "-e", "POSTGRES_PASSWORD=pw", "-e", "POSTGRES_DB=kubetl", POSTGRES_IMAGE, *args)
    containers.append(server)
    for _ in range(120):
        if sh("docker", "exec", server, "pg_isready", "-h", "127.0.0.1", "-U", "kubetl", "-d", "kubetl", check=False).returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(sh("docker", "logs", server, check=False).stderr)
    return server, {"PGHOST": server, "PGUSER": "kubetl", "PGPASSWORD": "pw", "PGDATABASE": "kubetl"}


def psql(server: str, sql: str) -> str:
    return sh("docker", "exec", server, "psql", "-U", "kubetl", "-d", "kubetl", "-tAc", sql).stdout.strip()
