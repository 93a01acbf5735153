"""Every source kind end to end: files, globs, templated paths, compression,
JSON lines, Parquet, an http URL (a loopback server) and a SQL query."""
from __future__ import annotations

import bz2
import gzip
import http.server
import threading
import zipfile

import pandas as pd
import pytest

from job.config import parse_config
from job.runner import run_pipeline
from job.schedule import parse_interval
from support import query

ROWS = "id,city\n1,Oslo\n2,Lima\n3,Pune\n"


def run(url: str, source: str, interval: str | None = None, load: str = "{table: t, mode: append}"):
    text = f"pipelines:\n  p:\n    source: {source}\n    load: {load}\n"
    pipeline = parse_config(text, env={}).pipeline("p")
    return run_pipeline(pipeline, url, parse_interval(interval) if interval else None)


@pytest.mark.parametrize("suffix", ["", ".gz", ".bz2", ".zip"])
def test_compressed_csv(pg_url, tmp_path, suffix):
    path = tmp_path / f"cities.csv{suffix}"
    data = ROWS.encode()
    if suffix == ".gz":
        path.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        path.write_bytes(bz2.compress(data))
    elif suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("cities.csv", data)
    else:
        path.write_bytes(data)
    assert run(pg_url, f"{{format: csv, path: '{path}'}}").rows_loaded == 3
    assert query(pg_url, "select city from t order by id") == [("Oslo",), ("Lima",), ("Pune",)]


def test_glob_reads_every_match_in_order(pg_url, tmp_path):
    for i in range(3):
        (tmp_path / f"part-{i}.csv").write_text(f"id,city\n{i},c{i}\n")
    assert run(pg_url, f"{{format: csv, path: '{tmp_path}/part-*.csv'}}").rows_loaded == 3


def test_path_templated_with_the_interval(pg_url, tmp_path):
    (tmp_path / "2024-01.csv").write_text("id,city\n1,jan\n")
    (tmp_path / "2024-02.csv").write_text("id,city\n2,feb\n")
    source = f"{{format: csv, path: '{tmp_path}/{{interval_start:%Y-%m}}.csv'}}"
    run(pg_url, source, "2024-02-01/2024-03-01")
    assert query(pg_url, "select city from t") == [("feb",)]


def test_headerless_csv_with_other_delimiter_and_encoding(pg_url, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("1;Malmö\n2;Zürich\n".encode("latin-1"))
    source = f"{{format: csv, path: '{path}', header: false, columns: [id, city], delimiter: ';', encoding: latin-1}}"
    run(pg_url, source)
    assert query(pg_url, "select city from t order by id") == [("Malmö",), ("Zürich",)]


def test_json_lines(pg_url, tmp_path):
    path = tmp_path / "events.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": 1, "ok": true, "score": 1.5}\n{"id": 2, "ok": false, "score": null}\n'))
    run(pg_url, f"{{format: jsonl, path: '{path}'}}")
    assert query(pg_url, "select id, ok, score from t order by id") == [(1, True, 1.5), (2, False, None)]


def test_jsonl_in_several_chunks_with_declared_types(pg_url, tmp_path):
    path = tmp_path / "events.jsonl"  # numbers as strings: typed by dtypes, chunk by chunk
    path.write_text("".join(f'{{"id": "{i}", "score": "{i}.5"}}\n' for i in range(5)))
    result = run(pg_url, f"{{format: jsonl, path: '{path}', chunk_rows: 2, dtypes: {{id: int, score: float}}}}")
    assert (result.rows_loaded, result.rows_rejected) == (5, 0)
    assert query(pg_url, "select sum(id), sum(score) from t") == [(10, 12.5)]


def test_parquet(pg_url, tmp_path):
    path = tmp_path / "data.parquet"
    frame = pd.DataFrame({"id": [1, 2], "when": pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"])})
    frame.to_parquet(path)
    run(pg_url, f"{{format: parquet, path: '{path}', chunk_rows: 1}}")
    assert [r[0] for r in query(pg_url, "select id from t order by id")] == [1, 2]
    assert query(pg_url, "select data_type from information_schema.columns where table_name = 't' and column_name = 'when'") == [
        ("timestamp with time zone",)]


@pytest.fixture
def http_dir(tmp_path):
    """A static file server on loopback, serving tmp_path."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_http_url_with_compression(pg_url, http_dir):
    directory, base = http_dir
    (directory / "cities.csv.gz").write_bytes(gzip.compress(ROWS.encode()))
    (directory / "cities.zip").write_bytes(b"")
    with zipfile.ZipFile(directory / "cities.zip", "w") as z:
        z.writestr("c.csv", ROWS)
    assert run(pg_url, f"{{format: csv, path: '{base}/cities.csv.gz'}}").rows_loaded == 3
    assert run(pg_url, f"{{format: csv, path: '{base}/cities.zip'}}", load="{table: z}").rows_loaded == 3


def test_parquet_over_http(pg_url, http_dir):
    directory, base = http_dir  # a URL's stream cannot seek, so it goes through a temporary file
    pd.DataFrame({"id": [1, 2, 3], "city": ["Oslo", "Lima", "Pune"]}).to_parquet(directory / "cities.parquet")
    assert run(pg_url, f"{{format: parquet, path: '{base}/cities.parquet', chunk_rows: 2}}").rows_loaded == 3
    assert query(pg_url, "select id, city from t order by id") == [(1, "Oslo"), (2, "Lima"), (3, "Pune")]


def test_http_404_is_bad_input(pg_url, http_dir):
    from job.errors import InputError

    _, base = http_dir
    with pytest.raises(InputError, match="HTTP 404"):
        run(pg_url, f"{{format: csv, path: '{base}/missing.csv'}}")


def test_sql_source_with_interval_parameters(pg_url, tmp_path):
    source_db = f"sqlite:///{tmp_path / 'source.db'}"
    import sqlalchemy as sa

    engine = sa.create_engine(source_db)
    with engine.begin() as conn:
        conn.execute(sa.text("create table orders (id int, placed text)"))
        conn.execute(sa.text("insert into orders values (1, '2024-01-05'), (2, '2024-02-05'), (3, '2024-01-30')"))
    engine.dispose()
    source = (f"{{format: sql, url: '{source_db}', dtypes: {{placed: date}}, "
              "query: 'select id, placed from orders where placed >= :interval_start and placed < :interval_end'}")
    # SQLite compares the bound datetimes as text, so compare on dates
    source = source.replace(":interval_start", "date(:interval_start)").replace(":interval_end", "date(:interval_end)")
    result = run(pg_url, source, "2024-01-01/2024-02-01")
    assert result.rows_loaded == 2
    assert sorted(r[0] for r in query(pg_url, "select id from t")) == [1, 3]


@pytest.mark.parametrize("fmt, line", [("csv", "{i},{i}\n"), ("jsonl", '{{"a": {i}, "b": {i}}}\n')])
def test_progress_in_bytes_runs_through_every_file_to_their_total_size(tmp_path, fmt, line):
    """What etlctl --wait draws its progress bar from: bytes of the files as stored, so gzip too."""
    from job.config import FileSource
    from job.extract import extract

    for part in ("a", "b"):
        with gzip.open(tmp_path / f"{part}.{fmt}.gz", "wt") as f:
            f.write("a,b\n" if fmt == "csv" else "")
            f.writelines(line.format(i=i) for i in range(30_000))
    source = FileSource(format=fmt, path=str(tmp_path / f"*.{fmt}.gz"), chunk_rows=5_000)
    chunks = list(extract(source, None))
    total = sum(p.stat().st_size for p in tmp_path.glob(f"*.{fmt}.gz"))
    positions = [c.bytes_read for c in chunks]
    assert {c.bytes_total for c in chunks} == {total}
    assert positions == sorted(positions) and 0 < positions[0] < total and positions[-1] == total
    assert sum(c.rows_read for c in chunks) == 60_000
