"""Which database a run talks to, and engines set up for how runs use them."""
from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy import event

from job.errors import one_line

EMBEDDED_DEFAULT = "sqlite:///kubetl.db"


def database_url(env: dict[str, str] | None = None) -> tuple[str, str]:
    """(url, where it came from): DATABASE_URL, else the PG* variables, else embedded SQLite."""
    env = os.environ if env is None else env
    if env.get("DATABASE_URL"):
        url = env["DATABASE_URL"]
        if url.startswith("postgres://"):
            url = "postgresql://" + url.removeprefix("postgres://")
        return url, "DATABASE_URL"
    if env.get("PGHOST") or env.get("PGDATABASE") or env.get("PGSERVICE"):
        # An empty URL lets libpq read PGHOST, PGPORT, PGUSER, PGPASSWORD... itself.
        return "postgresql+psycopg2://", "PG* environment variables"
    return EMBEDDED_DEFAULT, "embedded default (set DATABASE_URL or PGHOST for PostgreSQL)"


# How long a read (`etl-job runs`) waits for SQLite while a run commits.
READ_TIMEOUT_S = 30


def make_engine(url: str, lock_timeout_s: float = 0, read_only: bool = False) -> sa.Engine:
    """An engine for runs (writes) or, with READ_ONLY, for commands that only read the ledger."""
    parsed = sa.make_url(url)
    if parsed.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2
        parsed = parsed.set(drivername="postgresql+psycopg2")
    engine = sa.create_engine(parsed)
    if engine.dialect.name == "sqlite":
        if read_only:
            _sqlite_transactions(engine, READ_TIMEOUT_S, "BEGIN")
        else:
            _sqlite_transactions(engine, lock_timeout_s, "BEGIN IMMEDIATE")
    return engine


def _sqlite_transactions(engine: sa.Engine, lock_timeout_s: float, begin: str) -> None:
    """Writers take SQLite's write lock up front (BEGIN IMMEDIATE), so two runs
    serialise at the start instead of failing half-way; readers (plain BEGIN)
    take no write lock. Writers put the database in WAL mode, where readers
    see the last commit even while a big run's transaction is being written
    (in the default rollback mode they would wait for its commit)."""
    writer = begin != "BEGIN"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        dbapi_connection.execute(f"PRAGMA busy_timeout = {int(lock_timeout_s * 1000)}")
        if writer:
            dbapi_connection.execute("PRAGMA journal_mode = WAL")  # stays set in the database file

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        conn.exec_driver_sql(begin)


def describe_error(error: BaseException, limit: int = 300) -> str:
    """One line for a database error: the server's message and, from PostgreSQL,
    its detail (which key, which row), so a person can find the offending data."""
    error = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if primary:
        text = f"{primary}: {diag.message_detail}" if diag.message_detail else primary
        return one_line(" ".join(text.split()), limit)
    return one_line(error, limit)
