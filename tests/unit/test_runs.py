"""etlctl's arithmetic on CronJobs and Jobs (controller/runs.py): which interval a
Job covers, and which intervals a catch-up runs. Pure functions on the objects
the API returns; tests/controller runs the same against a real API server."""
from datetime import datetime, timezone

from controller.runs import interval_of, missed_intervals
from job.schedule import Interval, interval_for_tick, intervals_between, parse_time, tick_of_scheduled_job

UTC = timezone.utc
DAILY_NY = ("0 2 * * *", "America/New_York")


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def cronjob(schedule="0 0 1 * *", tz="UTC", created="2013-01-15T00:00:00Z", **status) -> dict:
    return {"metadata": {"name": "kubetl-flights", "creationTimestamp": created, "labels": {"kubetl.io/pipeline": "flights"}},
            "spec": {"schedule": schedule, "timeZone": tz}, "status": status}


def job(name: str, annotations: dict | None = None, done: bool = True) -> dict:
    conditions = [{"type": "Complete", "status": "True"}] if done else []
    return {"metadata": {"name": name, "annotations": annotations or {}}, "status": {"conditions": conditions}}


def scheduled(tick: datetime) -> dict:
    """A Job as the CronJob controller names it: <cronjob>-<minutes since the epoch>."""
    return job(f"kubetl-flights-{int(tick.timestamp()) // 60}")


def test_the_tick_is_read_from_the_cronjob_controllers_job_name():
    assert tick_of_scheduled_job("kubetl-flights-22701600") == t(2013, 3, 1)
    assert tick_of_scheduled_job("kubetl-flights-m201301010000-a1b2c") is None


def test_a_scheduled_job_covers_the_interval_that_ends_at_its_tick():
    assert interval_of(scheduled(t(2013, 3, 1)), ("0 0 1 * *", "UTC")) == "2013-02-01T00:00:00Z/2013-03-01T00:00:00Z"
    # The controller's annotation (in the CronJob's zone) wins over the name.
    annotated = job("kubetl-flights-22703040", {"batch.kubernetes.io/cronjob-scheduled-timestamp": "2013-03-31T22:00:00-04:00"})
    assert interval_of(annotated, DAILY_NY) == "2013-03-30T06:00:00Z/2013-03-31T06:00:00Z"


def test_manual_and_ad_hoc_jobs_cover_only_what_etlctl_wrote_on_them():
    manual = job("kubetl-flights-m-22703040", {"cronjob.kubernetes.io/instantiate": "manual"})
    assert interval_of(manual, ("0 0 1 * *", "UTC")) == ""
    assert interval_of(scheduled(t(2013, 3, 1)), None) == ""
    annotated = job("kubetl-flights-b201301010000-x", {"kubetl.io/interval": "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"})
    assert interval_of(annotated, ("0 0 1 * *", "UTC")) == "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"


def test_catchup_starts_after_the_latest_success_of_any_trigger():
    backfilled = job("b", {"kubetl.io/interval": "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"})
    missed = missed_intervals(cronjob(), [backfilled, scheduled(t(2013, 4, 1)), scheduled(t(2013, 5, 1)) | {"status": {}}],
                              t(2013, 6, 15))
    # April's run (tick May 1) has not finished: it is not done, so it is run again
    # (etlctl then waits on the running Job instead of starting another; see drive).
    assert [str(i) for i in missed] == ["2013-04-01T00:00:00Z/2013-05-01T00:00:00Z", "2013-05-01T00:00:00Z/2013-06-01T00:00:00Z"]


def test_catchup_with_no_jobs_left_goes_by_the_last_success_and_reruns_the_interval_before_it():
    missed = missed_intervals(cronjob(lastSuccessfulTime="2013-04-01T00:07:00Z"), [], t(2013, 5, 2))
    assert missed == intervals_between("0 0 1 * *", "UTC", t(2013, 3, 1), t(2013, 5, 1))


def test_catchup_of_a_pipeline_that_never_succeeded_starts_at_its_cronjobs_first_tick():
    missed = missed_intervals(cronjob(created="2013-01-15T00:00:00Z"), [job("f", done=False)], t(2013, 3, 10))
    assert missed == [Interval(t(2013, 1, 1), t(2013, 2, 1)), Interval(t(2013, 2, 1), t(2013, 3, 1))]


def test_ad_hoc_pipelines_have_nothing_to_catch_up():
    ad_hoc = cronjob()
    ad_hoc["metadata"]["annotations"] = {"kubetl.io/ad-hoc-only": "true"}
    assert missed_intervals(ad_hoc, [], t(2020, 1, 1)) == []


def test_daily_intervals_across_the_autumn_clock_change_are_25_hours():
    fall = interval_for_tick(*DAILY_NY, parse_time("2013-11-03T12:00:00Z"))
    assert (fall.start, fall.end) == (t(2013, 11, 2, 6), t(2013, 11, 3, 7))


def test_progress_shows_a_bar_on_a_terminal_and_a_percentage_in_plain_lines():
    from controller.cli import progress_text

    record = {"event": "run.progress", "rows_read": 120000, "rows_written": 118000, "rows_rejected": 2000,
              "rows_per_s": 95000, "bytes_read": 4_500_000, "bytes_total": 10_000_000}
    assert progress_text("r1", "running", record, tty=True) == (
        "run r1: running [###########-------------] 45%, 120000 rows read, 118000 written, 2000 rejected, 95000 rows/s")
    assert progress_text("r1", "running", record, tty=False) == (
        "run r1: running 45%, 120000 rows read, 118000 written, 2000 rejected, 95000 rows/s")
    # A URL or a query has no size known up front: counts only.
    unsized = {k: v for k, v in record.items() if not k.startswith("bytes")} | {"bytes_read": None, "bytes_total": None}
    assert progress_text("r1", "running", unsized, tty=True) == "run r1: running 120000 rows read, 118000 written, 2000 rejected, 95000 rows/s"
    finished = {"event": "run.succeeded", "rows_read": 336776, "rows_loaded": 26338, "rows_rejected": 527}
    assert progress_text("r1", "succeeded", finished, tty=False) == "run r1: succeeded 336776 rows read, 26338 written, 527 rejected"
