"""Every load mode, on PostgreSQL and SQLite, including reruns of the same interval."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import query
from job.config import parse_config
from job.errors import EtlError, InputError, LoadError, RejectBudgetExceeded
from job.logs import Log
from job.runner import run_pipeline
from job.schedule import parse_interval
from job.validate import Rules

JAN = parse_interval("2024-01-01/2024-02-01")
FEB = parse_interval("2024-02-01/2024-03-01")


def pipeline(tmp_path: Path, load: str, csv: str, extra: str = "", name: str = "p", chunk_rows: int = 50_000):
    data = tmp_path / "data.csv"
    data.write_text(csv)
    text = f"""
pipelines:
  {name}:
    source: {{format: csv, path: {data}, chunk_rows: {chunk_rows}, dtypes: {{id: int, ts: timestamptz, amount: float}}}}
    load: {load}
{extra}
"""
    return parse_config(text, env={}).pipeline(name)


CSV = "id,ts,amount,note\n1,2024-01-05T00:00:00Z,1.5,a\n2,2024-01-20T00:00:00Z,2.5,\n3,2024-01-31T23:59:59Z,3.5,\"quoted, with comma\"\n"


def test_append_twice_for_the_same_interval_leaves_one_copy(db_url, tmp_path):
    p = pipeline(tmp_path, "{table: facts, mode: append}", CSV)
    first = run_pipeline(p, db_url, JAN)
    second = run_pipeline(p, db_url, JAN)
    assert first.rows_loaded == second.rows_loaded == 3
    assert query(db_url, "select count(*) from facts") == [(3,)]
    run_pipeline(p, db_url, FEB)  # another interval adds its own batch
    assert query(db_url, "select count(*) from facts") == [(6,)]


def test_types_nulls_and_quoting_survive_the_load(db_url, tmp_path):
    p = pipeline(tmp_path, "{table: facts, mode: append}", CSV)
    run_pipeline(p, db_url, JAN)
    rows = query(db_url, "select id, amount, note from facts order by id")
    assert rows == [(1, 1.5, "a"), (2, 2.5, None), (3, 3.5, "quoted, with comma")]


def test_every_column_type_arrives_as_written(pg_url, tmp_path):
    """The COPY path renders each type as text itself (job.pgcsv); what the
    server stores must be exactly the values, over several chunks and threads,
    in a table of the declared types (numeric holds 15 significant digits: it
    passes through a float)."""
    data = tmp_path / "types.csv"
    data.write_text(
        "i,f,n,b,d,ts,tstz,t\n"
        "1,1.25,10.5,true,2024-02-29,2024-01-05 06:07:08.123456,2024-01-05T06:07:08.5+02:00,\"a \"\"quoted\"\", value\"\n"
        "-9007199254740993,-0.1,0.001,f,1901-12-13,1969-12-31 23:59:59,1960-06-30T00:00:00Z,\n"
        ",,,,,,,\n"
        "3,1e300,123456789.123456,0,9999-12-31,2000-01-01 00:00:00,2038-01-19T03:14:08Z,last\n"
    )
    text = f"""
pipelines:
  p:
    source:
      format: csv
      path: {data}
      chunk_rows: 1
      dtypes: {{i: int, f: float, n: numeric, b: bool, d: date, ts: timestamp, tstz: timestamptz, t: text}}
    load: {{table: typed, mode: replace}}
"""
    result = run_pipeline(parse_config(text, env={}).pipeline("p"), pg_url, None)
    assert result.rows_loaded == 4
    columns = query(pg_url, "select column_name, data_type from information_schema.columns where table_name = 'typed' order by ordinal_position")
    assert columns == [("i", "bigint"), ("f", "double precision"), ("n", "numeric"), ("b", "boolean"), ("d", "date"),
                       ("ts", "timestamp without time zone"), ("tstz", "timestamp with time zone"), ("t", "text")]
    rows = query(pg_url, "select i, f, n::text, b, d::text, ts::text, tstz at time zone 'UTC', t from typed order by i nulls last")
    assert [tuple(str(v) if v is not None else None for v in row) for row in rows] == [
        ("-9007199254740993", "-0.1", "0.001", "False", "1901-12-13", "1969-12-31 23:59:59", "1960-06-30 00:00:00", None),
        ("1", "1.25", "10.5", "True", "2024-02-29", "2024-01-05 06:07:08.123456", "2024-01-05 04:07:08.500000", 'a "quoted", value'),
        ("3", "1e+300", "123456789.123456", "False", "9999-12-31", "2000-01-01 00:00:00", "2038-01-19 03:14:08", "last"),
        (None, None, None, None, None, None, None, None),
    ]


def test_replace_swaps_the_whole_table(db_url, tmp_path):
    p = pipeline(tmp_path, "{table: facts, mode: replace}", CSV)
    run_pipeline(p, db_url, None)
    p2 = pipeline(tmp_path, "{table: facts, mode: replace}", "id,ts,amount,note\n9,2024-01-01T00:00:00Z,9,z\n")
    run_pipeline(p2, db_url, None)
    assert query(db_url, "select id, note from facts") == [(9, "z")]


def test_upsert_updates_existing_keys_and_last_row_wins(db_url, tmp_path):
    p = pipeline(tmp_path, "{table: facts, mode: upsert, keys: [id]}", CSV)
    run_pipeline(p, db_url, None)
    update = "id,ts,amount,note\n2,2024-01-20T00:00:00Z,20,first\n4,2024-01-21T00:00:00Z,4,new\n2,2024-01-20T00:00:00Z,22,last\n"
    result = run_pipeline(pipeline(tmp_path, "{table: facts, mode: upsert, keys: [id]}", update), db_url, None)
    assert result.rows_loaded == 2
    assert query(db_url, "select id, amount, note from facts order by id") == [
        (1, 1.5, "a"), (2, 22.0, "last"), (3, 3.5, "quoted, with comma"), (4, 4.0, "new")]
    run_pipeline(pipeline(tmp_path, "{table: facts, mode: upsert, keys: [id]}", update), db_url, None)
    assert query(db_url, "select count(*) from facts") == [(4,)]


def test_overwrite_interval_replaces_only_that_interval(db_url, tmp_path):
    load = "{table: facts, mode: overwrite_interval, interval_column: ts}"
    run_pipeline(pipeline(tmp_path, load, CSV), db_url, JAN)
    feb = "id,ts,amount,note\n10,2024-02-02T00:00:00Z,1,f\n"
    run_pipeline(pipeline(tmp_path, load, feb), db_url, FEB)
    jan_again = "id,ts,amount,note\n7,2024-01-07T00:00:00Z,7,only\n"
    run_pipeline(pipeline(tmp_path, load, jan_again), db_url, JAN)
    assert query(db_url, "select id from facts order by id") == [(7,), (10,)]


def test_overwrite_interval_quarantines_rows_outside_the_interval(db_url, tmp_path):
    load = "{table: facts, mode: overwrite_interval, interval_column: ts}"
    p = pipeline(tmp_path, load, CSV + "4,2024-03-01T00:00:00Z,4,march\n", "    reject_budget: {count: 5}")
    result = run_pipeline(p, db_url, JAN)
    assert (result.rows_loaded, result.rows_rejected) == (3, 1)
    assert query(db_url, "select reason from etl_rejects")[0][0].startswith("ts outside the run interval")


def test_rejects_are_kept_with_reason_and_row_and_counted_in_the_ledger(db_url, tmp_path):
    bad = CSV + "x,2024-01-02T00:00:00Z,1,bad id\n5,2024-01-02T00:00:00Z,1,too,many\n"
    p = pipeline(tmp_path, "{table: facts}", bad, "    reject_budget: {count: 2}")
    result = run_pipeline(p, db_url, JAN)
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (5, 3, 2)
    rejects = sorted(query(db_url, "select reason, row from etl_rejects"))
    assert rejects[0][0] == "expected 4 fields, found 5" and "too,many" in rejects[0][1]
    assert rejects[1][0] == "id: cannot read 'x' as int" and json.loads(rejects[1][1])["note"] == "bad id"
    assert query(db_url, "select status, rows_read, rows_loaded, rows_rejected from etl_runs") == [("succeeded", 5, 3, 2)]


def test_over_budget_commits_nothing_but_records_why(db_url, tmp_path):
    good = pipeline(tmp_path, "{table: facts}", CSV)
    run_pipeline(good, db_url, JAN)
    bad = pipeline(tmp_path, "{table: facts}", CSV.replace("2.5", "two"), "    reject_budget: {ratio: 0.1}")
    with pytest.raises(RejectBudgetExceeded, match="1 of 3 rows rejected"):
        run_pipeline(bad, db_url, JAN)
    assert query(db_url, "select count(*) from facts") == [(3,)]
    assert query(db_url, "select status, rows_loaded from etl_runs order by id") == [("succeeded", 3), ("failed", 0)]
    assert query(db_url, "select count(*) from etl_rejects r join etl_runs x on x.id = r.run_id where x.status = 'failed'") == [(1,)]


def test_extra_column_against_an_existing_table_is_bad_input(db_url, tmp_path):
    run_pipeline(pipeline(tmp_path, "{table: facts}", CSV), db_url, JAN)
    wider = "id,ts,amount,note,surprise\n1,2024-01-05T00:00:00Z,1.5,a,b\n"
    with pytest.raises(InputError, match=r"column\(s\) \['surprise'\] are not in table facts"):
        run_pipeline(pipeline(tmp_path, "{table: facts}", wider), db_url, JAN)
    assert query(db_url, "select count(*) from facts") == [(3,)]


def test_hostile_identifiers_are_quoted_not_executed(db_url, tmp_path):
    table = 'x"; drop table etl_runs; --'
    csv = 'id,"a""b; drop table etl_runs",ts,amount\n1,v,2024-01-01T00:00:00Z,1\n'
    p = pipeline(tmp_path, f"{{table: '{table}', mode: upsert, keys: [id]}}", csv)
    run_pipeline(p, db_url, None)
    assert query(db_url, f'select count(*) from "{table.replace(chr(34), chr(34) * 2)}"') == [(1,)]
    assert query(db_url, "select count(*) from etl_runs") == [(1,)]


def execute(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


def test_a_key_the_user_put_on_the_table_refuses_a_duplicate_with_a_clear_error(db_url, tmp_path):
    execute(db_url, "create table facts (id bigint primary key, ts text, amount float, note text)")
    duplicate = CSV + "1,2024-01-06T00:00:00Z,9,again\n"
    p = pipeline(tmp_path, "{table: facts}", duplicate, chunk_rows=1)  # the clash is in a later chunk than the first
    refusal = "UNIQUE constraint failed: facts.id" if db_url.startswith("sqlite") else 'violates unique constraint "facts_pkey"'
    with pytest.raises(LoadError, match=f"pipeline 'p': the database refused rows for table facts: .*{refusal}"):
        run_pipeline(p, db_url, JAN)
    assert query(db_url, "select count(*) from facts") == [(0,)]
    assert query(db_url, "select status, rows_loaded from etl_runs") == [("failed", 0)]


def test_an_unexpected_error_is_still_a_recorded_failed_run(db_url, tmp_path, monkeypatch):
    # A fake: it stands for a bug in kubetl, which no input can produce on purpose.
    def bug(self, frame, location=""):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(Rules, "check", bug)
    out = io.StringIO()
    with pytest.raises(EtlError) as raised:
        run_pipeline(pipeline(tmp_path, "{table: facts}", CSV), db_url, JAN, log=Log(out))
    assert type(raised.value) is EtlError and raised.value.exit_code == 1
    assert str(raised.value) == "pipeline 'p': unexpected RuntimeError: a bug (a bug: the traceback is in the run.failed log line)"
    assert query(db_url, "select status, error from etl_runs") == [("failed", str(raised.value))]
    failed = json.loads(out.getvalue().splitlines()[-1])
    assert failed["event"] == "run.failed" and 'raise RuntimeError("a bug' in failed["traceback"]
    assert query(db_url, "select count(*) from etl_rejects") == [(0,)]
    engine = sa.create_engine(db_url)
    assert not sa.inspect(engine).has_table("facts")  # nothing committed
    engine.dispose()


@pytest.mark.parametrize("load", ["{table: facts}", "{table: facts, mode: upsert, keys: [id]}"])
def test_table_columns_the_data_lacks_must_have_a_default(db_url, tmp_path, load):
    execute(db_url, "create table facts (id bigint, ts text, amount float, note text, source text default 'csv')")
    run_pipeline(pipeline(tmp_path, load, CSV), db_url, JAN)
    assert query(db_url, "select source, count(*) from facts group by source") == [("csv", 3)]

    execute(db_url, "alter table facts add column region text")
    with pytest.raises(InputError, match=r"pipeline 'p': table facts has column\(s\) \['region'\] that the data lacks"):
        run_pipeline(pipeline(tmp_path, load, CSV.replace("1.5", "9")), db_url, JAN)
    assert query(db_url, "select count(*), sum(amount) from facts") == [(3, 7.5)]


@pytest.mark.parametrize(
    "mode, table",
    [
        ("upsert", "u" * 63),  # the longest name: a truncated staging name was the target's own
        ("upsert", "u" * 48 + "__etl_stage"),  # a name shaped like its own staging table's
        ("replace", "r" * 50 + "__etl_new"),
        ("replace", "r" * 48 + "__etl_new"),  # a name shaped like its own new table's
    ],
)
def test_a_runs_work_tables_never_take_the_targets_name(db_url, tmp_path, mode, table):
    load = f"{{table: {table}, mode: {mode}, keys: [id]}}" if mode == "upsert" else f"{{table: {table}, mode: {mode}}}"
    run_pipeline(pipeline(tmp_path, load, CSV), db_url, None)
    result = run_pipeline(pipeline(tmp_path, load, CSV.replace("1.5", "9")), db_url, None)
    assert result.rows_loaded == 3
    assert query(db_url, f"select id, amount from {table} order by id") == [(1, 9.0), (2, 2.5), (3, 3.5)]
