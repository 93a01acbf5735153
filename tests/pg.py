"""A throwaway PostgreSQL server for tests: fresh initdb, loopback, free port.

Debian's postgresql package provides the binaries (hack/setup.sh installs it).
PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` system user the package creates.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass


def pg_bin_dir() -> str:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for directory in reversed(candidates):
        if os.path.exists(os.path.join(directory, "initdb")):
            return directory
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    raise RuntimeError("PostgreSQL server binaries not found; run hack/setup.sh (installs Debian's postgresql)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    directory: str
    port: int
    bindir: str
    user: str = "postgres"
    password: str = "kubetl-test"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def libpq_env(self, database: str = "postgres") -> dict[str, str]:
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": database,
        }


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def start(base_dir: str | None = None) -> PostgresServer:
    bindir = pg_bin_dir()
    directory = tempfile.mkdtemp(prefix="kubetl-pg-", dir=base_dir)
    data = os.path.join(directory, "data")
    pwfile = os.path.join(directory, "pw")
    server = PostgresServer(directory, free_port(), bindir)
    with open(pwfile, "w") as f:
        f.write(server.password)
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    subprocess.run(
        _as_postgres([f"{bindir}/initdb", "-D", data, "-U", server.user, f"--pwfile={pwfile}", "-A", "scram-sha-256", "-E", "UTF8", "--no-sync", "--locale=C"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -k {directory} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
    subprocess.run(
        _as_postgres([f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(directory, "log"), "-o", options, "-w", "-t", "60", "start"]),
        check=True,
        capture_output=True,
    )
    return server


def stop(server: PostgresServer) -> None:
    subprocess.run(
        _as_postgres([f"{server.bindir}/pg_ctl", "-D", os.path.join(server.directory, "data"), "-m", "immediate", "-w", "stop"]),
        capture_output=True,
    )
    for _ in range(50):
        if not os.path.exists(os.path.join(server.directory, "data", "postmaster.pid")):
            break
        time.sleep(0.1)
    shutil.rmtree(server.directory, ignore_errors=True)
