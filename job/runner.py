"""One run of one pipeline for one interval: extract → transform → validate → load.

The data, the quarantined rows and the ledger's final "succeeded" are written
in ONE transaction, under an advisory lock keyed on the pipeline and interval,
so a run killed at any moment commits nothing and a rerun starts clean.
"""
from __future__ import annotations

import socket
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from job import config as c
from job import ledger
from job.db import describe_error, make_engine
from job.errors import EtlError, LoadError, RejectBudgetExceeded, RunLocked, one_line
from job.extract import Chunk, Reject, extract
from job.load import Loader
from job.logs import Log
from job.schedule import Interval
from job.transform import Schema, StepResult, Steps
from job.validate import Rules, check_budget

# Rejects kept in memory to explain a failed run (the rest roll back with it).
REJECT_SAMPLE = 100


@dataclass
class RunResult:
    run_id: int
    pipeline: str
    interval: str | None
    status: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_filtered: int = 0
    seconds: float = 0.0
    target: str = ""
    error: str | None = None

    def counts(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("rows_read", "rows_loaded", "rows_rejected", "rows_filtered")}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline(
    pipeline: c.Pipeline,
    url: str,
    interval: Interval | None,
    trigger: str = "manual",
    wait_for_lock: bool = False,
    log: Log | None = None,
    progress_seconds: float = 5.0,
) -> RunResult:
    """Run PIPELINE once; return its result or raise an EtlError (after recording it).

    Whatever goes wrong once the run is in the ledger, even a bug, ends the same
    way: nothing committed, the ledger row failed with the error, a run.failed
    log line, and an EtlError naming the pipeline.
    """
    log = log or Log()
    engine = make_engine(url, lock_timeout_s=3600 if wait_for_lock else 0)
    try:
        try:
            ledger.ensure(engine)
        except sa.exc.OperationalError as exc:
            raise LoadError(f"cannot reach the database ({engine.url.render_as_string(hide_password=True)}): {one_line(exc.orig)}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise LoadError(f"cannot create the ledger tables: {describe_error(exc)}") from None
        target = f"{pipeline.load.schema_}.{pipeline.load.table}" if pipeline.load.schema_ else pipeline.load.table
        try:
            with engine.begin() as conn:
                run_id = ledger.start(conn, pipeline.name, interval, trigger, target, socket.gethostname())
        except sa.exc.SQLAlchemyError as exc:
            raise _database_error(exc, pipeline, interval) from None
        result = RunResult(run_id, pipeline.name, str(interval) if interval else None, "running", target=target)
        log.info("run.start", run_id=run_id, pipeline=pipeline.name, interval=result.interval, trigger=trigger, target=target)
        started = time.monotonic()
        sample: list[Reject] = []
        try:
            with engine.begin() as conn:
                _lock(conn, pipeline, interval, wait_for_lock, run_id, log)
                ledger.abandon_stale(conn, pipeline.name, interval, run_id)
                _Pass(pipeline, interval, result, sample, log.every(progress_seconds), log, started).load(conn)
                result.status = "succeeded"
                result.seconds = round(time.monotonic() - started, 3)
                ledger.finish(conn, run_id, "succeeded", result.counts())
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then re-raised as an EtlError
            error = _as_etl_error(exc, pipeline, interval, sample)
            result.status, result.error = "failed", str(error)
            result.seconds = round(time.monotonic() - started, 3)
            _record_failure(engine, result, sample, log)
            details: dict[str, Any] = {}
            if not isinstance(exc, EtlError) or exc.__cause__ is not None:  # a bug or the user's code: keep where
                details["traceback"] = "".join(traceback.format_exception(exc))
            log.error("run.failed", **result.as_dict(), reject_sample=[_brief(r) for r in sample[:10]], **details)
            raise error from None
        log.info("run.succeeded", **result.as_dict())
        return result
    finally:
        engine.dispose()


def _as_etl_error(exc: Exception, pipeline: c.Pipeline, interval: Interval | None, sample: list[Reject]) -> EtlError:
    """The error a failed run reports: an EtlError of the right kind, naming the pipeline."""
    if isinstance(exc, RejectBudgetExceeded):
        error: EtlError = RejectBudgetExceeded(f"{exc} Most common reasons: {_top_reasons(sample)}")
    elif isinstance(exc, EtlError):
        error = exc
    elif isinstance(exc, sa.exc.SQLAlchemyError):
        error = _database_error(exc, pipeline, interval)
    else:
        error = EtlError(f"unexpected {type(exc).__name__}: {one_line(exc)} (a bug: the traceback is in the run.failed log line)")
    if f"pipeline {pipeline.name!r}" not in str(error):
        error = type(error)(f"pipeline {pipeline.name!r}: {error}")
    return error


@dataclass
class _Pass:
    """One pass of a run over its input: the stages, and the counts they add up."""

    pipeline: c.Pipeline
    interval: Interval | None
    result: RunResult
    sample: list[Reject]
    progress: Callable[[], bool]
    log: Log
    started: float

    def load(self, conn: sa.Connection) -> None:
        source = self.pipeline.source
        schema = Schema(source)
        stages = [schema.conform, Steps(self.pipeline.transform, self.interval).apply, Rules(self.pipeline.validate_).check]
        loader = Loader(conn, self.pipeline.load, self.pipeline.name, self.interval, source_types=schema.types)
        try:
            for chunk in extract(source, self.interval):
                self._chunk(chunk, stages, loader)
            check_budget(self.pipeline.reject_budget, self.result.rows_rejected, self.result.rows_read, final=True)
        except BaseException:
            loader.abort()
            raise
        self.result.rows_loaded = loader.finish()

    def _chunk(self, chunk: Chunk, stages: list[Callable[..., StepResult]], loader: Loader) -> None:
        result = self.result
        result.rows_read += chunk.rows_read
        frame, rejects = chunk.frame, list(chunk.rejects)
        for stage in stages:
            out = stage(frame, chunk.location)
            frame = out.frame
            rejects.extend(out.rejects)
            result.rows_filtered += out.dropped
        rejects.extend(loader.write(frame).rejects)
        loader.write_rejects(result.run_id, self.pipeline.name, rejects)
        result.rows_rejected += len(rejects)
        self.sample.extend(rejects[: REJECT_SAMPLE - len(self.sample)])
        check_budget(self.pipeline.reject_budget, result.rows_rejected, result.rows_read, final=False)
        if self.progress():
            elapsed = time.monotonic() - self.started
            self.log.info(
                "run.progress",
                run_id=result.run_id,
                rows_read=result.rows_read,
                rows_written=loader.rows_written,
                rows_rejected=result.rows_rejected,
                rows_per_s=round(result.rows_read / elapsed) if elapsed else None,
                bytes_read=chunk.bytes_read,  # with bytes_total, a fraction for progress bars (etlctl --wait)
                bytes_total=chunk.bytes_total,
            )


def lock_keys(pipeline: c.Pipeline, interval: Interval | None) -> tuple[int, int]:
    """Two int4 advisory-lock keys. Interval modes lock (pipeline, interval);
    modes that rewrite rows across intervals lock the whole target table."""
    if pipeline.load.mode in ("append", "overwrite_interval") and interval is not None:
        first, second = f"kubetl:{pipeline.name}", str(interval)
    else:
        first, second = f"kubetl-table:{pipeline.load.schema_ or ''}.{pipeline.load.table}", "*"
    return _int4(first), _int4(second)


def _int4(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _lock(conn: sa.Connection, pipeline: c.Pipeline, interval: Interval | None, wait: bool, run_id: int, log: Log) -> None:
    if conn.dialect.name != "postgresql":
        return  # SQLite: BEGIN IMMEDIATE already holds the database's write lock
    keys = dict(zip(("a", "b"), lock_keys(pipeline, interval)))
    if conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:a, :b)"), keys).scalar():
        return
    other = ledger.running(conn, pipeline.name, interval, other_than=run_id)
    who = f" (run {other['id']}, started {other['started_at']:%Y-%m-%d %H:%M:%S} on {other['host']})" if other else ""
    if not wait:
        raise RunLocked(
            f"another run of pipeline {pipeline.name!r} for {interval or 'its target'} is in progress{who}; "
            "wait for it, or pass --wait-for-lock"
        )
    log.info("run.waiting_for_lock", run_id=run_id, holder=other["id"] if other else None)
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:a, :b)"), keys)
    log.info("run.lock_acquired", run_id=run_id)


def _record_failure(engine: sa.Engine, result: RunResult, sample: list[Reject], log: Log) -> None:
    try:
        with engine.begin() as conn:
            error = (result.error or "").replace("\x00", "\\x00")  # database text cannot hold NUL
            ledger.finish(conn, result.run_id, "failed", {**result.counts(), "rows_loaded": 0}, error)
            ledger.write_rejects(conn, result.run_id, result.pipeline, sample)
    except Exception as exc:  # noqa: BLE001 - the run's own error matters more; say why the ledger missed it
        log.warning("run.failure_not_recorded", run_id=result.run_id, reason=describe_error(exc))


def _top_reasons(sample: list[Reject], n: int = 3) -> str:
    counts = Counter(r.reason for r in sample)
    return "; ".join(f"{reason!r} ({count}x)" for reason, count in counts.most_common(n))


def _brief(reject: Reject) -> dict[str, Any]:
    return {"reason": reject.reason, "location": reject.location, "row": reject.row[:300]}


def _database_error(exc: sa.exc.SQLAlchemyError, pipeline: c.Pipeline, interval: Interval | None) -> EtlError:
    if "database is locked" in str(exc):  # SQLite: another run holds the write lock
        return RunLocked(f"another run is writing to the database (pipeline {pipeline.name!r}, {interval or 'no interval'}); "
                         "wait for it, or pass --wait-for-lock")
    return LoadError(f"database error: {describe_error(exc)}")
