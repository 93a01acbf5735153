from datetime import datetime, timezone

import pytest

from job.errors import ConfigError
from job.schedule import Interval, interval_for_tick, intervals_between, next_tick, parse_interval, parse_time, previous_tick

UTC = timezone.utc


def t(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_tick_covers_the_interval_that_ends_at_it():
    assert interval_for_tick("0 0 1 * *", "UTC", t(2013, 2, 1)) == Interval(t(2013, 1, 1), t(2013, 2, 1))


def test_a_late_start_still_maps_to_the_tick_before_it():
    # A CronJob pod that starts 40 minutes late covers the same month.
    assert interval_for_tick("@monthly", "UTC", t(2013, 2, 1, 0, 40)) == Interval(t(2013, 1, 1), t(2013, 2, 1))


def test_month_ends_are_whole_months_including_february_and_leap_years():
    spans = intervals_between("@monthly", "UTC", t(2024, 1, 1), t(2024, 4, 1))
    assert [(i.start.month, (i.end - i.start).days) for i in spans] == [(1, 31), (2, 29), (3, 31)]


def test_day_31_schedule_skips_short_months():
    ticks = [t(2013, 1, 31)]
    for _ in range(3):
        ticks.append(next_tick("0 0 31 * *", "UTC", ticks[-1]))
    assert [x.month for x in ticks] == [1, 3, 5, 7]


def test_time_zone_schedule_follows_daylight_saving():
    # Midnight in New York is 05:00 UTC in winter and 04:00 UTC in summer.
    spring = interval_for_tick("0 0 * * *", "America/New_York", parse_time("2013-03-11T12:00:00Z"))
    assert spring == Interval(t(2013, 3, 10, 5), t(2013, 3, 11, 4))
    assert (spring.end - spring.start).total_seconds() == 23 * 3600


def test_previous_tick_inclusive_and_exclusive():
    assert previous_tick("0 * * * *", "UTC", t(2013, 1, 1, 5)) == t(2013, 1, 1, 5)
    assert previous_tick("0 * * * *", "UTC", t(2013, 1, 1, 5), inclusive=False) == t(2013, 1, 1, 4)


def test_intervals_between_only_whole_intervals():
    spans = intervals_between("0 0 * * *", "UTC", t(2013, 1, 1, 12), t(2013, 1, 4, 6))
    assert [str(s) for s in spans] == ["2013-01-02T00:00:00Z/2013-01-03T00:00:00Z", "2013-01-03T00:00:00Z/2013-01-04T00:00:00Z"]


def test_parse_interval_reads_naive_times_in_the_pipeline_zone():
    span = parse_interval("2013-01-01/2013-01-02", "America/New_York")
    assert span.start == t(2013, 1, 1, 5)


@pytest.mark.parametrize("text", ["2013-01-01", "2013-02-01/2013-01-01", "x/y", "2013-01-01/"])
def test_bad_intervals_are_config_errors(text: str):
    with pytest.raises(ConfigError):
        parse_interval(text)


def test_scheduled_time_auto_reads_the_cronjob_controllers_job_name():
    from job.cli import scheduled_time

    # 2013-02-01T00:00:00Z is 22,661,280 minutes after the epoch.
    assert scheduled_time("auto", "UTC", {"KUBETL_JOB_NAME": "kubetl-flights-22661280"}) == t(2013, 2, 1)
    manual = scheduled_time("auto", "UTC", {"KUBETL_JOB_NAME": "kubetl-flights-manual-x7k2q"})
    assert abs((manual - datetime.now(UTC)).total_seconds()) < 5
    assert scheduled_time("2013-02-01T00:00:00Z", "UTC", {}) == t(2013, 2, 1)
