"""Run intervals and cron arithmetic, shared by etl-job and etlctl.

An interval is half-open, [start, end), in UTC. A scheduled tick at time T
covers the interval that ends at T and starts at the tick before it: the
CronJob that fires at 06:00 on the 1st loads the month that just ended.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from job.errors import ConfigError

_EPSILON = timedelta(seconds=1)

# The nicknames Kubernetes CronJobs accept, spelled as plain cron.
_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _expand(expr: str) -> str:
    return _NICKNAMES.get(expr.strip(), expr.strip())


def check_cron(expr: str) -> None:
    """Raise ValueError unless EXPR is a 5-field cron expression or nickname."""
    expanded = _expand(expr)
    if len(expanded.split()) != 5 or not croniter.is_valid(expanded):
        raise ValueError(f"not a valid 5-field cron expression: {expr!r}")


@dataclass(frozen=True, order=True)
class Interval:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval bounds must be time-zone aware")
        if not self.start < self.end:
            raise ConfigError(f"interval start {self.start.isoformat()} is not before its end {self.end.isoformat()}")

    def __str__(self) -> str:
        return f"{_fmt(self.start)}/{_fmt(self.end)}"

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


def _fmt(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str, tz: str = "UTC") -> datetime:
    """An ISO 8601 date or date-time; naive values are read in TZ and returned in UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"not an ISO 8601 date or time: {text!r} (e.g. 2013-01-01 or 2013-01-01T06:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(timezone.utc)


def parse_interval(text: str, tz: str = "UTC") -> Interval:
    """'START/END' in ISO 8601, e.g. 2013-01-01/2013-02-01."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"interval must be START/END, e.g. 2013-01-01/2013-02-01; got {text!r}")
    return Interval(parse_time(parts[0], tz), parse_time(parts[1], tz))


def _iter(expr: str, tz: str, moment: datetime) -> croniter:
    return croniter(_expand(expr), moment.astimezone(ZoneInfo(tz)))


def previous_tick(expr: str, tz: str, moment: datetime, inclusive: bool = True) -> datetime:
    """The latest tick at or before MOMENT (strictly before if not inclusive)."""
    if inclusive:
        nxt = next_tick(expr, tz, moment - _EPSILON)
        if nxt == moment.astimezone(timezone.utc):
            return nxt
    return _iter(expr, tz, moment).get_prev(datetime).astimezone(timezone.utc)


def next_tick(expr: str, tz: str, moment: datetime) -> datetime:
    """The first tick strictly after MOMENT."""
    return _iter(expr, tz, moment).get_next(datetime).astimezone(timezone.utc)


def interval_for_tick(expr: str, tz: str, scheduled_at: datetime) -> Interval:
    """The interval covered by the tick at (or last before) SCHEDULED_AT."""
    end = previous_tick(expr, tz, scheduled_at, inclusive=True)
    start = previous_tick(expr, tz, end, inclusive=False)
    return Interval(start, end)


def tick_of_scheduled_job(job_name: str) -> datetime | None:
    """The tick a CronJob controller's Job was created for, or None for a Job named otherwise.

    The controller names each Job `<cronjob>-<scheduled minutes since the Unix
    epoch>`; the suffix is the one record of the tick that every Kubernetes
    version writes (1.28+ also annotate it, in the CronJob's time zone).
    """
    suffix = job_name.rpartition("-")[2]
    return datetime.fromtimestamp(int(suffix) * 60, timezone.utc) if suffix.isdigit() else None


def intervals_between(expr: str, tz: str, start: datetime, end: datetime) -> list[Interval]:
    """Every whole schedule interval inside [START, END), in order (for backfills)."""
    out: list[Interval] = []
    tick = previous_tick(expr, tz, start, inclusive=True)
    if tick < start:
        tick = next_tick(expr, tz, start)
    while True:
        nxt = next_tick(expr, tz, tick)
        if nxt > end:
            return out
        out.append(Interval(tick, nxt))
        tick = nxt

