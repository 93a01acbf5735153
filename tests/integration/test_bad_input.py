"""The malformed-input corpus: each case through the real `etl-job`, against a
real PostgreSQL that already holds a good load. Each must exit non-zero with
a message a person can act on, and leave the target exactly as it was."""
from __future__ import annotations

import bz2
import gzip
import socket
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from support import ROOT, query

HEADER = "id,ts,amount,note\n"
GOOD = HEADER + "".join(f"{i},2024-01-{i:02d}T00:00:00Z,{i}.5,row {i}\n" for i in range(1, 11))


def config(data: str, extra: str = "", fmt: str = "csv", dtypes: str = "{id: int, ts: timestamptz, amount: float}") -> str:
    return f"""
pipelines:
  facts:
    source: {{format: {fmt}, path: "{data}", dtypes: {dtypes}}}
    load: {{table: facts, mode: append}}
{extra}
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


def make_case(name: str, tmp: Path) -> tuple[str, str]:
    """Write the input of case NAME; return (config text, data path)."""
    path = tmp / f"{name}.csv"
    if name == "truncated_gzip":
        path = tmp / "data.csv.gz"
        path.write_bytes(gzip.compress(GOOD.encode() * 200)[:-200])
    elif name == "truncated_row":
        path.write_text(GOOD + "11,2024-01-11T00:0")
    elif name == "wrong_delimiter":
        path.write_text(GOOD.replace(",", ";"))
    elif name == "bad_encoding":
        path.write_bytes((GOOD + "12,2024-01-12T00:00:00Z,1,caf\xe9\n").encode("latin-1"))
    elif name == "type_errors":
        path.write_text(GOOD + "13,not a date,1,x\n14,2024-01-14T00:00:00Z,lots,y\n")
    elif name == "empty_file":
        path.write_text("")
    elif name == "missing_column":
        path.write_text(GOOD.replace("amount,", "").replace(".5,", ","))
    elif name == "extra_column":
        path.write_text("id,ts,amount,note,extra\n1,2024-01-01T00:00:00Z,1,a,b\n")
    elif name == "huge_field":
        path.write_text(HEADER + "1,2024-01-01T00:00:00Z,1,\"" + "x" * (17 << 20) + "\"\n")
    elif name == "long_field":  # over the limit, but fits a parse block: one rejected row
        path.write_text(HEADER + "1,2024-01-01T00:00:00Z,1,\"" + "x" * (1536 << 10) + "\"\n" + GOOD[len(HEADER):])
    elif name == "unclosed_quote":
        path.write_text(HEADER + '1,2024-01-01T00:00:00Z,1,"never closed\n' + GOOD[len(HEADER):] * 3)
    elif name == "zip_with_two_files":
        path = tmp / "data.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("a.csv", GOOD)
            z.writestr("b.csv", GOOD)
    elif name == "corrupt_bz2":
        path = tmp / "data.csv.bz2"
        path.write_bytes(bz2.compress(GOOD.encode())[:20] + b"garbage")
    elif name == "missing_file":
        path = tmp / "does-not-exist.csv"
    elif name == "unreachable_url":
        return config(f"http://127.0.0.1:{closed_port()}/data.csv"), ""
    elif name == "bad_config":
        return config(str(path)).replace("mode: append", "mode: apend"), ""
    elif name == "primary_key_clash":  # the user's key on the table; the data repeats id 1
        path.write_text(GOOD + "1,2024-01-01T12:00:00Z,9.5,again\n")
    elif name == "check_constraint":
        path.write_text(GOOD + "11,2024-01-11T00:00:00Z,-1,negative\n")
    elif name == "varchar_limit":
        path.write_text(GOOD + "12,2024-01-12T00:00:00Z,1,far too long\n")
    elif name == "column_missing_from_data":  # the user added a column to the table; the file lacks it
        path.write_text(GOOD)
    elif name == "failing_python_step":
        path.write_text(GOOD)
        return config(str(path), "    transform:\n      - python: etl_test_steps:explode\n"), str(path)
    elif name == "nul_byte":  # PostgreSQL text cannot hold NUL: a rejected row, not a crash
        path.write_text(GOOD + "15,2024-01-15T00:00:00Z,1,bad\x00note\n")
    return config(str(path)), str(path)


# Changes the user made to the target table before the case runs.
TABLE_CHANGES = {
    "primary_key_clash": "alter table facts add primary key (id)",
    "check_constraint": "alter table facts add constraint amount_positive check (amount > 0)",
    "varchar_limit": "alter table facts alter column note type varchar(6)",
    "column_missing_from_data": "alter table facts add column region text",
}


CASES = {
    # name: (exit code, message fragment)
    "truncated_gzip": (2, "input ends early or is corrupt"),
    "truncated_row": (1, "1 of 11 rows rejected (9.09%), over the budget of 0.00%; nothing was committed"),
    "wrong_delimiter": (2, "looks semicolon-separated but source.delimiter is ','"),
    "bad_encoding": (2, "not valid utf-8 text"),
    "type_errors": (1, "2 of 12 rows rejected (16.67%)"),
    "empty_file": (2, "the file is empty"),
    "missing_column": (2, "columns declared in dtypes are not in the file: ['amount']"),
    "extra_column": (2, "column(s) ['extra'] are not in table facts"),
    "huge_field": (2, "a value is far longer than source.max_field_bytes (1048576); a broken file?"),
    "long_field": (1, "'note is longer than source.max_field_bytes (1048576)' (1x)"),
    "unclosed_quote": (1, "'note holds a line break: an unclosed quote?"),
    "zip_with_two_files": (2, "must hold exactly one file"),
    "corrupt_bz2": (2, "input ends early or is corrupt"),
    "missing_file": (2, "does-not-exist.csv does not exist"),
    "unreachable_url": (2, "cannot read http://127.0.0.1:"),
    "bad_config": (2, "pipeline 'facts': load.mode: Input should be 'append', 'replace', 'upsert' or 'overwrite_interval'"),
    "primary_key_clash": (1, "pipeline 'facts': the database refused rows for table facts: "
                             'duplicate key value violates unique constraint "facts_pkey": Key (id)=(1) already exists.'),
    "check_constraint": (1, 'refused rows for table facts: new row for relation "facts" violates check constraint "amount_positive"'),
    "varchar_limit": (1, "refused rows for table facts: value too long for type character varying(6)"),
    "column_missing_from_data": (2, "table facts has column(s) ['region'] that the data lacks (they would load as NULL)"),
    "failing_python_step": (1, "pipeline 'facts': transform[0] python etl_test_steps:explode raised ValueError: cannot handle 10 rows"),
    "nul_byte": (1, "Most common reasons: 'note: text holds a NUL character, which a database text column cannot store' (1x)"),
}


@pytest.fixture
def loaded(pg_url, tmp_path, etl_job):
    """A database that already holds one good run of `facts`."""
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    cfg = tmp_path / "good.yaml"
    cfg.write_text(config(str(good)))
    result = etl_job("run", "facts", "-c", str(cfg), "--interval", "2024-01-01/2024-02-01", env={"DATABASE_URL": pg_url})
    assert result.returncode == 0, result.stderr
    return pg_url


def snapshot(url: str) -> list[tuple]:
    return query(url, "select * from facts order by id")


def execute(url: str, statement: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(statement))
    engine.dispose()


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_clearly_and_changes_nothing(case, loaded, tmp_path, etl_job):
    if case in TABLE_CHANGES:
        execute(loaded, TABLE_CHANGES[case])
    before = snapshot(loaded)
    text, _ = make_case(case, tmp_path)
    cfg = tmp_path / "case.yaml"
    cfg.write_text(text)
    env = {"DATABASE_URL": loaded, "PYTHONPATH": str(ROOT / "tests")}  # tests/ holds etl_test_steps
    result = etl_job("run", "facts", "-c", str(cfg), "--interval", "2024-01-01/2024-02-01", env=env)
    code, fragment = CASES[case]
    assert result.returncode == code, result.stderr
    assert fragment in result.stderr
    assert result.stderr.startswith("etl-job: error: ") and result.stderr.count("\n") == 1  # one line, no traceback
    assert snapshot(loaded) == before
    if case != "bad_config":  # a bad config fails before any run is recorded
        assert query(loaded, "select status, rows_loaded from etl_runs order by id desc limit 1") == [("failed", 0)]
        error = query(loaded, "select error from etl_runs order by id desc limit 1")[0][0]
        assert fragment in error and "pipeline 'facts'" in error


def test_a_nul_in_text_is_one_quarantined_row(loaded, tmp_path, etl_job):
    text, _ = make_case("nul_byte", tmp_path)
    cfg = tmp_path / "case.yaml"
    cfg.write_text(text + "    reject_budget: {count: 1}\n")
    result = etl_job("run", "facts", "-c", str(cfg), "--interval", "2024-01-01/2024-02-01", env={"DATABASE_URL": loaded})
    assert result.returncode == 0, result.stderr
    assert query(loaded, "select count(*) from facts") == [(10,)]
    [(reason, row)] = query(loaded, "select reason, row from etl_rejects")
    assert reason == "note: text holds a NUL character, which a database text column cannot store"
    assert '"note":"bad\\u0000note"' in row


def test_unreachable_database_fails_with_exit_1(tmp_path, etl_job):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    cfg = tmp_path / "good.yaml"
    cfg.write_text(config(str(good)))
    url = f"postgresql://nobody:x@127.0.0.1:{closed_port()}/nowhere"
    result = etl_job("run", "facts", "-c", str(cfg), env={"DATABASE_URL": url})
    assert result.returncode == 1
    assert "etl-job: error: cannot reach the database (postgresql+psycopg2://nobody:***@127.0.0.1:" in result.stderr
    assert "Connection refused" in result.stderr
    init = etl_job("init", env={"DATABASE_URL": url})
    assert init.returncode == 1 and init.stderr.startswith("etl-job: error: cannot reach the database (DATABASE_URL): ")


def test_validate_reports_every_problem_with_exit_2(tmp_path, etl_job):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(config("/x.csv").replace("mode: append", "mode: upsert") + "    schedule: sometimes\n")
    result = etl_job("validate", "-c", str(cfg))
    assert result.returncode == 2
    assert "pipeline 'facts': schedule: not a valid 5-field cron expression: 'sometimes'" in result.stderr
    assert "pipeline 'facts': load: mode upsert needs `keys`" in result.stderr


def test_validate_loads_python_steps_and_run_time_config_errors_name_the_pipeline(tmp_path, etl_job):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    cfg = tmp_path / "steps.yaml"
    cfg.write_text(config(str(good), "    transform:\n      - python: etl_test_steps:no_such_function\n"))
    env = {"PYTHONPATH": str(ROOT / "tests")}
    result = etl_job("validate", "-c", str(cfg), env=env)
    assert result.returncode == 2
    assert "pipeline 'facts': transform.0.python: cannot load etl_test_steps:no_such_function" in result.stderr
    result = etl_job("run", "facts", "-c", str(cfg), env=env)  # the embedded SQLite database
    assert result.returncode == 2
    assert result.stderr == ("etl-job: error: pipeline 'facts': transform[0] python: cannot load etl_test_steps:no_such_function: "
                             "module etl_test_steps has no function no_such_function\n")
