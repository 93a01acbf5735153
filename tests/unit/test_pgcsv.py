"""job.pgcsv renders dates and timestamps itself (for COPY, and for rejected
rows' JSON); it must say exactly what Python's datetime says."""
from __future__ import annotations

import io
import json
import random
from datetime import date, datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pytest

from job.pgcsv import render_temporal, write_csv
from job.transform import rows_as_json

EPOCH = datetime(1970, 1, 1)


def random_datetimes(n: int, fraction: bool) -> list[datetime | None]:
    rng = random.Random(7)
    lo, hi = datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)
    span = int((hi - lo).total_seconds())
    values: list[datetime | None] = [lo, hi, datetime(2000, 2, 29, 12), datetime(1900, 3, 1), datetime(1969, 12, 31, 23, 59, 59)]
    for _ in range(n):
        moment = lo + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1_000_000) if fraction else 0)
        values.append(moment if rng.random() > 0.1 else None)
    return values


def as_text(column: pa.ChunkedArray) -> list[str | None]:
    return render_temporal(column).to_pylist()


@pytest.mark.parametrize("fraction", [True, False])
def test_timestamps_match_python(fraction):
    values = random_datetimes(20_000, fraction)
    column = pa.chunked_array([values[:7000], values[7000:]], type=pa.timestamp("us"))
    expected = [None if v is None else v.isoformat(sep=" ", timespec="microseconds" if fraction else "seconds") for v in values]
    assert as_text(column) == expected


def test_timestamptz_renders_utc_with_offset():
    values = [datetime(2013, 1, 1, 10, tzinfo=timezone.utc), None, datetime(1950, 6, 30, 23, 59, 59, 500, tzinfo=timezone.utc)]
    column = pa.chunked_array([values], type=pa.timestamp("ns", tz="America/New_York"))
    assert as_text(column) == ["2013-01-01 10:00:00.000000+00", None, "1950-06-30 23:59:59.000500+00"]


def test_other_units_and_dates():
    seconds = pa.chunked_array([[0, -1, 253402300799]], type=pa.timestamp("s"))
    assert as_text(seconds) == ["1970-01-01 00:00:00", "1969-12-31 23:59:59", "9999-12-31 23:59:59"]
    nanos = pa.chunked_array([[1_499, 1_500, -1]], type=pa.timestamp("ns"))
    assert as_text(nanos) == ["1970-01-01 00:00:00.000001", "1970-01-01 00:00:00.000002", "1970-01-01 00:00:00.000000"]
    days = [date(1, 1, 1), date(2024, 2, 29), None, date(9999, 12, 31)]
    assert as_text(pa.chunked_array([days], type=pa.date32())) == ["0001-01-01", "2024-02-29", None, "9999-12-31"]
    assert as_text(pa.chunked_array([days], type=pa.date64())) == ["0001-01-01", "2024-02-29", None, "9999-12-31"]


def test_a_sliced_column_keeps_its_own_rows():
    values = [datetime(2020, 1, d) for d in range(1, 11)]
    column = pa.chunked_array([pa.array(values, type=pa.timestamp("us")).slice(3, 4)])
    assert as_text(column) == [f"2020-01-0{d} 00:00:00" for d in range(4, 8)]


def test_years_past_9999_are_left_to_arrow():
    column = pa.chunked_array([[datetime(9999, 12, 31) - EPOCH]], type=pa.duration("us")).cast(pa.int64())
    far = pa.chunked_array([[column[0].as_py() + 10**15]], type=pa.int64()).cast(pa.timestamp("us"))
    assert render_temporal(far) is far
    huge_seconds = pa.chunked_array([[2**62]], type=pa.timestamp("s"))
    assert render_temporal(huge_seconds) is huge_seconds


def test_other_columns_pass_through_and_csv_is_headerless():
    table = pa.table({"n": [1, None], "s": ["a,b", None], "t": pa.array([datetime(2013, 1, 1), None], type=pa.timestamp("us"))})
    numbers = table.column("n")
    assert render_temporal(numbers) is numbers
    sink = io.BytesIO()
    write_csv(table, sink)
    assert sink.getvalue().decode() == '1,"a,b","2013-01-01 00:00:00"\n,,\n'


def test_reject_rows_keep_their_times_to_the_microsecond():
    frame = pd.DataFrame({
        "tz": pd.to_datetime(["2013-01-01T10:00:00.123456Z", None], utc=True),
        "naive": pd.to_datetime(["2013-01-01 10:00:00", "1999-12-31 23:59:59.5"], format="ISO8601"),
        "n": pd.array([1, None], dtype="Int64"),
    }, index=[5, 9])
    assert [json.loads(row) for row in rows_as_json(frame)] == [
        {"tz": "2013-01-01T10:00:00.123456Z", "naive": "2013-01-01T10:00:00.000000", "n": 1},
        {"tz": None, "naive": "1999-12-31T23:59:59.500000", "n": None},
    ]
