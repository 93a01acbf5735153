"""Load: write a run's chunks into its target table, inside the run's transaction.

Nothing here commits: the caller owns the one transaction per run, so a run
that dies at any point leaves the target as it was. Per mode:

  append              rows tagged with the run's batch key (pipeline + interval);
                      a rerun first deletes its own earlier batch
  overwrite_interval  delete the interval's rows, then insert
  upsert              stage, then delete matching keys and insert (last row wins)
  replace             build a new table, then swap it in by rename

On PostgreSQL rows go in through COPY, in a pipeline of three threads: the
caller parses and types chunk n+2 while a render thread turns chunk n+1 into
CSV and a COPY thread sends chunk n, so the server is kept busy. The work is in
Arrow, numpy, libpq and the server, which release the GIL. Elsewhere (SQLite)
rows go in through executemany, on the caller's thread.
Identifiers always go through SQLAlchemy or psycopg2.sql quoting, never
string formatting.
"""
from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from job import config as c
from job import ledger, pgcsv
from job.db import describe_error
from job.errors import InputError, LoadError
from job.schedule import Interval
from job.transform import StepResult, add_reason, frame_of, reject_rows
from job.types import cast, infer_type

BATCH_COLUMN = "_etl_batch"
SEQ_COLUMN = "_etl_seq"

SQL_TYPES: dict[str, Any] = {
    "int": sa.BigInteger,
    "float": lambda: sa.Float(precision=53),
    "numeric": sa.Numeric,
    "text": sa.Text,
    "bool": sa.Boolean,
    "date": sa.Date,
    "timestamp": lambda: sa.DateTime(timezone=False),
    "timestamptz": lambda: sa.DateTime(timezone=True),
}


def column_type_of(sql_type: sa.types.TypeEngine) -> c.ColumnType:
    """Map a reflected SQL column type back to a pipeline column type."""
    if isinstance(sql_type, sa.Boolean):
        return "bool"
    if isinstance(sql_type, sa.Integer):
        return "int"
    if isinstance(sql_type, sa.Float):
        return "float"
    if isinstance(sql_type, sa.Numeric):
        return "numeric"
    if isinstance(sql_type, sa.DateTime):
        return "timestamptz" if sql_type.timezone else "timestamp"
    if isinstance(sql_type, sa.Date):
        return "date"
    return "text"


class _Worker:
    """Runs calls on one background thread, in order; at most DEPTH wait in its
    queue, so memory stays flat. An error stops the worker and is raised in
    the thread that calls submit or drain next."""

    def __init__(self, name: str, depth: int) -> None:
        self._queue: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, function: Callable[..., None], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((function, args))

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    item[0](*item[1])
                except BaseException as exc:  # noqa: BLE001 - handed over at the next submit or drain
                    self._error = exc

    def drain(self) -> None:
        """Wait for every queued call; raise the first error any of them hit."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error


@dataclass
class LoadPlan:
    table: sa.Table  # the table rows are written into (target, staging or new)
    types: dict[str, c.ColumnType]  # the columns data may carry, with their types
    data_columns: list[str]  # the columns the data carries (fixed by its first chunk)
    required: list[str] = field(default_factory=list)  # the columns data must carry (no default in the table)


def work_table_name(table: str, role: str) -> str:
    """The name of a run's own table beside TABLE ("stage" or "new"): within
    PostgreSQL's 63-byte names, and never TABLE itself (a staging table of the
    target's name would hide it; a new table of its name would replace it)."""
    name = f"{table.encode()[:48].decode(errors='ignore')}__etl_{role}"
    return name if name != table else name + "_"


def required_columns(table: sa.Table) -> list[str]:
    """Columns of an existing table that the data must fill: the rest have a
    default, are generated, or are kubetl's own (`_etl_*`)."""
    return [
        col.name
        for col in table.columns
        if not col.name.startswith("_etl_")
        and col.server_default is None
        and col.computed is None
        and col.identity is None
        and col is not table.autoincrement_column
    ]


class Loader:
    def __init__(
        self,
        conn: sa.Connection,
        spec: c.Load,
        pipeline: str,
        interval: Interval | None,
        source_types: Mapping[str, c.ColumnType] | None = None,
    ) -> None:
        self.conn = conn
        # The source's column types, declared or settled by its first chunk
        # (Schema.types). pandas holds a date as a timestamp and a numeric as a
        # float; a table this run creates takes date and numeric from here.
        self.source_types = source_types if source_types is not None else {}
        self.spec = spec
        self.pipeline = pipeline
        self.interval = interval
        self.postgres = conn.dialect.name == "postgresql"
        self.metadata = sa.MetaData()
        self.plan: LoadPlan | None = None
        self.rows_written = 0
        self.batch_key = f"{pipeline}|{interval}" if interval else f"{pipeline}|*"
        # PostgreSQL: (render, send) threads, chunk -> CSV on one and CSV -> COPY on the
        # other, so the server never waits for rendering; started by the first write.
        self._workers: tuple[_Worker, _Worker] | None = None
        if spec.mode == "overwrite_interval" and interval is None:
            raise InputError("load mode overwrite_interval needs a run interval: pass --interval or --scheduled-at")

    @property
    def target_name(self) -> str:
        return f"{self.spec.schema_}.{self.spec.table}" if self.spec.schema_ else self.spec.table

    # --- per chunk -----------------------------------------------------------------

    def write(self, frame: pd.DataFrame) -> StepResult:
        """Conform FRAME to the target's columns and write it; return rejects."""
        if self.plan is None:
            self.plan = self._prepare(frame)
        frame, rejects = self._conform(frame)
        if len(frame):
            if self.spec.mode == "append":
                frame = frame.assign(**{BATCH_COLUMN: self.batch_key})
            self._write(self.plan.table, frame)
            self.rows_written += len(frame)
        return StepResult(frame, rejects)

    def write_rejects(self, run_id: int, pipeline: str, rejects: list[Any]) -> None:
        """Quarantine REJECTS in etl_rejects, in the run's transaction, in order with the data."""
        if not rejects:
            return
        if self.postgres:
            frame = pd.DataFrame(
                {"run_id": run_id, "pipeline": pipeline, "location": [r.location for r in rejects],
                 "reason": [r.reason for r in rejects], "row": [r.row for r in rejects]}
            )
            self._write(ledger.rejects, frame)
        else:
            ledger.write_rejects(self.conn, run_id, pipeline, rejects)

    def _write(self, table: sa.Table, frame: pd.DataFrame) -> None:
        if not self.postgres:  # SQLite: connections belong to the thread that made them
            self._insert(table, frame)
            return
        if self._workers is None:
            self._workers = _Worker("kubetl-render", depth=1), _Worker("kubetl-copy", depth=2)
        render, send = self._workers
        render.submit(self._render_csv, send, table, frame)

    def drain(self) -> None:
        """Wait for queued writes (raising their error); the connection is the caller's again."""
        workers, self._workers = self._workers, None
        if workers is not None:
            render, send = workers
            try:
                render.drain()
            finally:
                send.drain()

    def abort(self) -> None:
        """Stop the write threads after a failure, ignoring their errors: the transaction rolls back anyway."""
        try:
            self.drain()
        except BaseException:  # noqa: BLE001 - the original failure is the one that matters
            pass

    def _conform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Any]]:
        assert self.plan is not None
        extra = [col for col in frame.columns if col not in self.plan.types]
        if extra:
            raise InputError(
                f"column(s) {extra} are not in table {self.target_name} (it has {sorted(self.plan.types)}); "
                "drop them with a `drop` step or add them to the table"
            )
        missing = [col for col in self.plan.required if col not in frame.columns]
        if missing:
            raise InputError(
                f"table {self.target_name} has column(s) {missing} that the data lacks (they would load as NULL); "
                "add them to the data (e.g. a derive step) or give them a default in the table"
            )
        reasons = pd.Series(pd.NA, index=frame.index, dtype="string")
        typed = {}
        for column in frame.columns:
            kind = self.plan.types[column]
            typed[column], failed = cast(frame[column], kind)
            reasons = add_reason(reasons, failed, f"{column}: value does not fit the table's {kind} column")
            if kind == "text":
                holds_nul = typed[column].str.contains("\x00", regex=False).fillna(False).astype(bool)
                reasons = add_reason(reasons, holds_nul, f"{column}: text holds a NUL character, which a database text column cannot store")
        frame = frame_of(typed, frame.index)
        for key in self.spec.keys:
            if key not in frame.columns:
                raise InputError(f"upsert key column {key!r} is not in the data (columns: {list(frame.columns)})")
            reasons = add_reason(reasons, frame[key].isna(), f"key column {key} is null")
        if self.spec.mode == "overwrite_interval":
            column = self.spec.interval_column
            assert column is not None and self.interval is not None
            if column not in frame.columns:
                raise InputError(f"interval_column {column!r} is not in the data (columns: {list(frame.columns)})")
            moments = frame[column]
            if not isinstance(moments.dtype, pd.DatetimeTZDtype):
                moments = pd.to_datetime(moments, utc=True, errors="coerce")
            outside = ~((moments >= self.interval.start) & (moments < self.interval.end)).fillna(False).astype(bool)
            reasons = add_reason(reasons, outside, f"{column} outside the run interval {self.interval}")
        kept, rejects = reject_rows(frame, reasons)
        return kept, rejects

    # --- set-up and finish ---------------------------------------------------------------

    def _prepare(self, frame: pd.DataFrame) -> LoadPlan:
        existing = self._reflect(self.spec.table)
        data_types = {col: self._new_column_type(frame[col]) for col in frame.columns}
        mode = self.spec.mode
        if mode == "replace":
            new = self._create(work_table_name(self.spec.table, "new"), data_types, temporary=False)
            return LoadPlan(new, data_types, list(data_types))
        if existing is None:
            existing = self._create(self.spec.table, data_types, temporary=False, keys=self.spec.keys)
        types = {col.name: column_type_of(col.type) for col in existing.columns if col.name != BATCH_COLUMN}
        required = required_columns(existing)
        if mode == "append":
            if BATCH_COLUMN not in existing.columns:
                self._add_batch_column(existing)
                existing = self._reflect(self.spec.table)
                assert existing is not None
            self.conn.execute(existing.delete().where(existing.c[BATCH_COLUMN] == self.batch_key))
            return LoadPlan(existing, types, list(data_types), required)
        if mode == "overwrite_interval":
            column = existing.c.get(self.spec.interval_column or "")
            if column is None:
                raise InputError(f"interval_column {self.spec.interval_column!r} is not in table {self.target_name}")
            assert self.interval is not None
            self.conn.execute(existing.delete().where(column >= self.interval.start, column < self.interval.end))
            return LoadPlan(existing, types, list(data_types), required)
        # upsert: rows go to a staging table first, merged in finish()
        staging = self._create(work_table_name(self.spec.table, "stage"), types, temporary=True, sequence=True)
        return LoadPlan(staging, types, list(data_types), required)

    def _new_column_type(self, column: pd.Series) -> c.ColumnType:
        """The type of COLUMN in a table this run creates: its dtype's, or the
        source's date or numeric that the dtype stands for (a date only while
        every value is still a whole day)."""
        kind = infer_type(column, from_values=False)
        said = self.source_types.get(str(column.name))
        if kind == "float" and said == "numeric":
            return "numeric"
        if kind == "timestamp" and said == "date":
            days = column.dropna()
            if (days == days.dt.normalize()).all():
                return "date"
        return kind

    def finish(self) -> int:
        """Merge or swap as the mode needs; return the number of rows now loaded by this run."""
        self.drain()
        if self.plan is None:  # no chunk at all; an empty input never replaces a table with nothing
            return 0
        if self.spec.mode == "upsert":
            return self._merge_upsert()
        if self.spec.mode == "replace":
            self._swap()
        return self.rows_written

    def _merge_upsert(self) -> int:
        assert self.plan is not None
        staging = self.plan.table
        target = self._reflect(self.spec.table)
        assert target is not None
        keys = self.spec.keys
        columns = [col for col in self.plan.data_columns if col in staging.c]  # the rest keep their defaults
        # The last staged row of each key wins.
        latest = sa.select(sa.func.max(staging.c[SEQ_COLUMN])).group_by(*[staging.c[k] for k in keys])
        winners = sa.select(*[staging.c[col] for col in columns]).where(staging.c[SEQ_COLUMN].in_(latest))
        match = sa.and_(*[target.c[k] == staging.c[k] for k in keys])
        self.conn.execute(target.delete().where(sa.exists().where(match)))
        result = self.conn.execute(target.insert().from_select(columns, winners))
        self.conn.execute(sa.schema.DropTable(staging))
        return int(result.rowcount)

    def _swap(self) -> None:
        assert self.plan is not None
        old = self._reflect(self.spec.table)
        if old is not None:
            self.conn.execute(sa.schema.DropTable(old))
        prep = self.conn.dialect.identifier_preparer
        new_name = prep.quote(self.plan.table.name)
        if self.spec.schema_:
            new_name = f"{prep.quote_schema(self.spec.schema_)}.{new_name}"
        self.conn.execute(sa.text(f"ALTER TABLE {new_name} RENAME TO {prep.quote(self.spec.table)}"))

    # --- helpers -----------------------------------------------------------------------

    def _reflect(self, name: str) -> sa.Table | None:
        if not sa.inspect(self.conn).has_table(name, schema=self.spec.schema_):
            return None
        self._forget(name, self.spec.schema_)
        return sa.Table(name, self.metadata, autoload_with=self.conn, schema=self.spec.schema_)

    def _forget(self, name: str, schema: str | None) -> None:
        key = f"{schema}.{name}" if schema else name
        if key in self.metadata.tables:
            self.metadata.remove(self.metadata.tables[key])

    def _create(
        self,
        name: str,
        types: dict[str, c.ColumnType],
        temporary: bool,
        keys: list[str] | None = None,
        sequence: bool = False,
    ) -> sa.Table:
        if self.spec.mode == "replace" and self._reflect(name) is not None:
            self.conn.execute(sa.schema.DropTable(self._reflect(name)))  # a leftover of a killed run
        columns = [sa.Column(col, SQL_TYPES[kind](), quote=True) for col, kind in types.items()]
        if sequence:  # staging order, so the last row of a key wins the merge
            if self.postgres:
                columns.append(sa.Column(SEQ_COLUMN, sa.BigInteger, sa.Identity()))
            else:
                columns.append(sa.Column(SEQ_COLUMN, sa.Integer, primary_key=True))
        if self.spec.mode == "append" and not temporary:
            columns.append(sa.Column(BATCH_COLUMN, sa.Text, quote=True))
        key_columns = set(keys or [])
        for column in columns:
            if column.name in key_columns:
                column.nullable = False
        args: list[Any] = list(columns)
        if key_columns:
            args.append(sa.PrimaryKeyConstraint(*keys or []))
        schema = None if temporary else self.spec.schema_
        self._forget(name, schema)
        table = sa.Table(name, self.metadata, *args, quote=True, schema=schema, prefixes=["TEMPORARY"] if temporary else [])
        try:
            table.create(self.conn)
        except sa.exc.ProgrammingError as exc:
            raise LoadError(f"cannot create table {name}: {exc.orig}") from None
        return table

    def _add_batch_column(self, table: sa.Table) -> None:
        prep = self.conn.dialect.identifier_preparer
        self.conn.execute(sa.text(f"ALTER TABLE {prep.format_table(table)} ADD COLUMN {prep.quote(BATCH_COLUMN)} TEXT"))

    def _insert(self, table: sa.Table, frame: pd.DataFrame) -> None:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        try:
            self.conn.execute(table.insert(), records)
        except sa.exc.DBAPIError as exc:
            raise self._refused(table, exc) from None

    def _refused(self, table: sa.Table, error: BaseException) -> LoadError:
        """The database refused rows (a key, a CHECK or a length limit of the
        user's table): say which table and what the server said."""
        name = self.target_name if self.plan is not None and table is self.plan.table else table.name
        return LoadError(f"the database refused rows for table {name}: {describe_error(error)}")

    def _render_csv(self, send: _Worker, table: sa.Table, frame: pd.DataFrame) -> None:
        """On the render thread: FRAME as CSV through Arrow (much faster than
        pandas' to_csv), queued for the COPY thread SEND."""
        buffer = io.BytesIO()
        pgcsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        buffer.seek(0)
        send.submit(self._copy, table, list(frame.columns), buffer)

    def _copy(self, table: sa.Table, columns: list[str], csv: io.BytesIO) -> None:
        """On the COPY thread: send CSV into TABLE. It touches only the raw DBAPI connection."""
        import psycopg2
        from psycopg2 import sql

        target = sql.Identifier(table.name)
        if table.schema:
            target = sql.Identifier(table.schema, table.name)
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
            target, sql.SQL(", ").join(sql.Identifier(col) for col in columns)
        )
        cursor = self.conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(statement, csv)
        except psycopg2.Error as exc:
            raise self._refused(table, exc) from None
        finally:
            cursor.close()
