"""The run ledger: `etl_runs` (one row a run) and `etl_rejects` (quarantined rows).

A run's final ledger update is written in the same transaction as its data,
so "succeeded" in the ledger and rows in the target are committed together.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from job.extract import Reject

metadata = sa.MetaData()

runs = sa.Table(
    "etl_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("pipeline", sa.Text, nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True)),
    sa.Column("interval_end", sa.DateTime(timezone=True)),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # running | succeeded | failed | abandoned
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_loaded", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_filtered", sa.BigInteger, nullable=False, default=0),
    sa.Column("target", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("error", sa.Text),
    sa.Index("etl_runs_pipeline_interval", "pipeline", "interval_start", "status"),
)

rejects = sa.Table(
    "etl_rejects",
    metadata,
    sa.Column("run_id", sa.BigInteger, sa.ForeignKey("etl_runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("pipeline", sa.Text, nullable=False),
    sa.Column("location", sa.Text),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("row", sa.Text, nullable=False),  # JSON: the row as it was when rejected
)

# A fixed advisory-lock key so concurrent first runs don't race to create the ledger.
_LEDGER_DDL_LOCK = 0x6B75_6574


def now() -> datetime:
    return datetime.now(timezone.utc)


def ensure(engine: sa.Engine) -> None:
    """Create the ledger tables if they are missing (safe to call concurrently)."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_DDL_LOCK})
        metadata.create_all(conn, checkfirst=True)


def exists(conn: sa.Connection) -> bool:
    """Whether the ledger tables are there (read commands do not create them)."""
    return sa.inspect(conn).has_table(runs.name)


def start(conn: sa.Connection, pipeline: str, interval: Any, trigger: str, target: str, host: str) -> int:
    result = conn.execute(
        runs.insert().values(
            pipeline=pipeline,
            interval_start=interval.start if interval else None,
            interval_end=interval.end if interval else None,
            trigger=trigger,
            status="running",
            started_at=now(),
            target=target,
            host=host,
        )
    )
    return int(result.inserted_primary_key[0])


def finish(conn: sa.Connection, run_id: int, status: str, counts: dict[str, int], error: str | None = None) -> None:
    conn.execute(
        runs.update().where(runs.c.id == run_id).values(status=status, finished_at=now(), error=error, **counts)
    )


def abandon_stale(conn: sa.Connection, pipeline: str, interval: Any, run_id: int) -> int:
    """Mark earlier 'running' rows of this pipeline and interval as abandoned.

    Called while holding the run lock: any such row belongs to a run that died
    (a killed pod) without writing its end.
    """
    query = runs.update().where(runs.c.pipeline == pipeline, runs.c.status == "running", runs.c.id != run_id)
    if interval is not None:
        query = query.where(runs.c.interval_start == interval.start, runs.c.interval_end == interval.end)
    result = conn.execute(query.values(status="abandoned", finished_at=now(), error="the run ended without reporting (killed?)"))
    return result.rowcount


def running(conn: sa.Connection, pipeline: str, interval: Any, other_than: int) -> dict[str, Any] | None:
    """The latest run still marked running for PIPELINE and INTERVAL, other than run OTHER_THAN."""
    query = (
        sa.select(runs)
        .where(runs.c.pipeline == pipeline, runs.c.status == "running", runs.c.id != other_than)
        .order_by(runs.c.id.desc())
    )
    if interval is not None:
        query = query.where(runs.c.interval_start == interval.start)
    row = conn.execute(query.limit(1)).mappings().first()
    return dict(row) if row else None


def write_rejects(conn: sa.Connection, run_id: int, pipeline: str, items: Iterable[Reject]) -> int:
    rows = [
        {"run_id": run_id, "pipeline": pipeline, "location": r.location, "reason": r.reason, "row": r.row}
        for r in items
    ]
    if rows:
        conn.execute(rejects.insert(), rows)
    return len(rows)


def recent(conn: sa.Connection, pipeline: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
    if pipeline:
        query = query.where(runs.c.pipeline == pipeline)
    return [dict(r) for r in conn.execute(query).mappings()]


def reject_reasons(conn: sa.Connection, run_id: int, limit: int = 20) -> list[dict[str, Any]]:
    count = sa.func.count().label("rows")
    query = (
        sa.select(rejects.c.reason, count)
        .where(rejects.c.run_id == run_id)
        .group_by(rejects.c.reason)
        .order_by(count.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
