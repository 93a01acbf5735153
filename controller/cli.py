"""`etlctl`: ad-hoc runs, backfills and catch-ups of kubetl pipelines, kubectl-style.

A thin layer over controller.runs. Exit codes: 0 success, 1 a run failed or
the API refused, 2 bad arguments.
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, NoReturn, Optional

import typer
import yaml

from controller import runs as r
from controller.kube import EtlctlError, Kube, connect
from job.errors import ConfigError
from job.schedule import Interval, interval_for_tick, parse_interval, parse_time

app = typer.Typer(name="etlctl", help="Run kubetl pipelines on Kubernetes: now, for past intervals, or to catch up.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
POLL_S = 2.0
BAR_WIDTH = 24


class Output(str, Enum):
    table = "table"
    json = "json"
    yaml = "yaml"


class Globals:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


@app.callback()
def main_options(
    kubeconfig: Annotated[Optional[str], typer.Option(help="Path to the kubeconfig file")] = None,
    context: Annotated[Optional[str], typer.Option(help="The kubeconfig context to use")] = None,
    namespace: Annotated[Optional[str], typer.Option("--namespace", "-n", help="Namespace of the release")] = None,
) -> None:
    Globals.kubeconfig, Globals.context, Globals.namespace = kubeconfig, context, namespace


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]


def kube() -> Kube:
    return connect(Globals.kubeconfig, Globals.context, Globals.namespace)


def fail(error: Exception) -> NoReturn:
    typer.echo(f"etlctl: error: {error}", err=True)
    raise typer.Exit(getattr(error, "exit_code", 2 if isinstance(error, ConfigError) else 1))


def show(rows: list[dict[str, Any]] | dict[str, Any], output: Output) -> None:
    if output == Output.json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    elif output == Output.yaml:
        typer.echo(yaml.safe_dump(json.loads(json.dumps(rows, default=str)), sort_keys=False).rstrip())
    else:
        rows = rows if isinstance(rows, list) else [rows]
        if not rows:
            typer.echo("No resources found.")
            return
        headers = [h.upper() for h in rows[0]]
        cells = [[_cell(v) for v in row.values()] for row in rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        for line in [headers, *cells]:
            typer.echo("   ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return "" if value is None else str(value)


def _interval(cronjob: dict[str, Any], interval: str | None, scheduled_at: str | None) -> Interval | None:
    if interval and scheduled_at:
        raise ConfigError("give --interval or --scheduled-at, not both")
    schedule = r.schedule_of(cronjob)
    tz = schedule[1] if schedule else "UTC"
    if interval:
        return parse_interval(interval, tz)
    if scheduled_at:
        if schedule is None:
            raise ConfigError("this pipeline has no schedule, so --scheduled-at means nothing; use --interval")
        moment = r.now() if scheduled_at == "now" else parse_time(scheduled_at, tz)
        return interval_for_tick(schedule[0], schedule[1], moment)
    return r.latest_interval(cronjob, r.now())


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env takes KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


# --- commands -------------------------------------------------------------------------------


@app.command("run")
def run_command(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name (its CronJob's kubetl.io/pipeline label)")],
    interval: Annotated[Optional[str], typer.Option(help="START/END, e.g. 2013-01-01/2013-02-01")] = None,
    scheduled_at: Annotated[Optional[str], typer.Option(help="A schedule tick (RFC 3339 or 'now'); runs the interval it covers")] = None,
    env: Annotated[list[str], typer.Option("--env", help="KEY=VALUE for the ETL container (repeatable)")] = [],  # noqa: B006
    arg: Annotated[list[str], typer.Option("--arg", help="Extra argument passed to etl-job run (repeatable)")] = [],  # noqa: B006
    image: Annotated[Optional[str], typer.Option(help="Run this image instead of the CronJob's")] = None,
    timeout: Annotated[Optional[int], typer.Option(help="Seconds before the Job is stopped (activeDeadlineSeconds)")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish; exit 0 only if it succeeded")] = False,
    follow: Annotated[bool, typer.Option(help="Stream the run's logs (across retries) until it finishes")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Run a pipeline now, as a Job made from its CronJob, with overrides."""
    try:
        k = kube()
        cronjob = r.pipeline(k, pipeline)
        overrides = r.Overrides(_interval(cronjob, interval, scheduled_at), _env(env), list(arg), image, timeout)
        job = r.start(k, cronjob, "manual", overrides)
        show(r.summary(job, r.schedule_of(cronjob)), output)
        if wait or follow:
            final = watch(k, job["metadata"]["name"], follow)
            if final != "succeeded":
                raise EtlctlError(f"run {job['metadata']['name']} {final}; see `etlctl logs {job['metadata']['name']}`")
    except (EtlctlError, ConfigError) as exc:
        fail(exc)


def watch(k: Kube, name: str, follow: bool) -> str:
    """Wait for Job NAME to finish, showing progress (or its logs); return its final state."""
    followed: set[str] = set()
    tty = sys.stderr.isatty()
    last = ""
    while True:
        job = r.run(k, name)
        current = r.state(job)
        if follow:
            for pod in r.pods_of(k, name):
                pod_name = pod["metadata"]["name"]
                if pod_name not in followed and (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed"):
                    followed.add(pod_name)
                    _stream_logs(k, pod_name)
        else:
            line = _progress_line(k, name, current, tty)
            if line != last:
                typer.echo(f"\r{line}\x1b[K" if tty else line, err=True, nl=not tty)  # on a terminal: redraw the line
                last = line
        if current in r.FINISHED:
            if tty and not follow:
                typer.echo("", err=True)
            return current
        time.sleep(POLL_S)


def _progress_line(k: Kube, name: str, current: str, tty: bool) -> str:
    """The run's latest progress, from its newest pod's JSON log lines (see progress_text)."""
    for pod in reversed(r.pods_of(k, name)):
        try:
            text = k.request("get", "pods/log", "GET", k.path("", "pods", pod["metadata"]["name"], "log"), {"tailLines": 20})
        except EtlctlError:  # no logs yet is normal while the pod starts
            continue
        for raw in reversed(text.splitlines()):
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") in ("run.progress", "run.succeeded", "run.failed"):
                return progress_text(name, current, record, tty)
        break
    return f"run {name}: {current}"


def progress_text(name: str, current: str, record: dict[str, Any], tty: bool) -> str:
    """`run NAME: running [#########-----------] 45%, 120000 rows read, ...` from an
    etl-job progress record. The bar (a terminal only) and the percentage come from
    bytes_read/bytes_total, which etl-job reports for files whose size it knows."""
    done, total = record.get("bytes_read"), record.get("bytes_total")
    if current == "succeeded":
        done = total
    fraction = ""
    if done is not None and total:
        share = min(done / total, 1.0)
        bar = f"[{'#' * round(share * BAR_WIDTH):-<{BAR_WIDTH}}] " if tty else ""
        fraction = f" {bar}{share:.0%},"
    return (f"run {name}: {current}{fraction} {record.get('rows_read', 0)} rows read, "
            f"{record.get('rows_written', record.get('rows_loaded', 0))} written, {record.get('rows_rejected', 0)} rejected"
            + (f", {record['rows_per_s']} rows/s" if record.get("rows_per_s") else ""))


def _stream_logs(k: Kube, pod: str) -> None:
    stream = k.request("get", "pods/log", "GET", k.path("", "pods", pod, "log"), {"follow": "true"}, stream=True)
    for chunk in stream.stream(4096, decode_content=True):
        sys.stdout.write(chunk.decode(errors="replace"))
        sys.stdout.flush()


@app.command()
def backfill(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name")],
    start: Annotated[str, typer.Option("--from", help="Start of the range (ISO 8601)")],
    end: Annotated[str, typer.Option("--to", help="End of the range, exclusive (ISO 8601)")],
    parallel: Annotated[int, typer.Option(min=1, max=50, help="Runs active at once, at most")] = 1,
    output: OutputOption = Output.table,
) -> None:
    """One run per schedule interval in [FROM, TO); intervals that already succeeded are skipped."""
    try:
        k = kube()
        cronjob = r.pipeline(k, pipeline)
        tz = (r.schedule_of(cronjob) or ("", "UTC"))[1]
        intervals = r.backfill_intervals(cronjob, parse_time(start, tz), parse_time(end, tz))
        results = drive(k, cronjob, intervals, parallel, "backfill")
    except (EtlctlError, ConfigError) as exc:
        fail(exc)
    show(results, output)
    if any(row["status"] not in ("succeeded", "skipped") for row in results):
        raise typer.Exit(1)


@app.command()
def catchup(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name")],
    parallel: Annotated[int, typer.Option(min=1, max=50, help="Runs active at once, at most")] = 1,
    max_runs: Annotated[int, typer.Option(min=1, help="Refuse to start more runs than this (a range that large is a backfill)")] = 100,
    dry_run: Annotated[bool, typer.Option(help="Show the missed intervals; start nothing")] = False,
    output: OutputOption = Output.table,
) -> None:
    """Run every schedule interval missed since the last successful run."""
    try:
        k = kube()
        cronjob = r.pipeline(k, pipeline)
        missed = r.missed_intervals(cronjob, r.runs(k, pipeline), r.now())
        if not missed:
            typer.echo(f"{pipeline}: nothing to catch up", err=True)
            return
        if dry_run:
            show([{"interval": str(i), "run": "", "status": "missed"} for i in missed], output)
            return
        if len(missed) > max_runs:
            raise EtlctlError(f"{len(missed)} intervals of {pipeline!r} missed since {missed[0].start:%Y-%m-%dT%H:%MZ}, more than "
                              f"--max-runs {max_runs}; check with --dry-run, then raise --max-runs or use `etlctl backfill`", 2)
        results = drive(k, cronjob, missed, parallel, "catchup")
    except (EtlctlError, ConfigError) as exc:
        fail(exc)
    show(results, output)
    if any(row["status"] not in ("succeeded", "skipped") for row in results):
        raise typer.Exit(1)


def drive(k: Kube, cronjob: dict[str, Any], intervals: list[Interval], parallel: int, trigger: str) -> list[dict[str, Any]]:
    """Run INTERVALS with at most PARALLEL active. Intervals a Job already loaded
    are skipped; those a Job is still loading are waited for, not started again
    (so a backfill interrupted with Ctrl-C resumes by running it again)."""
    name = cronjob["metadata"]["labels"][r.PIPELINE_LABEL]
    schedule = r.schedule_of(cronjob)
    done: dict[str, str] = {}  # interval -> the name of a Job that loaded it
    loading: dict[str, str] = {}  # interval -> the name of a Job still loading it
    for job in r.runs(k, name):
        current = r.state(job)
        if current == "succeeded":
            done.setdefault(r.interval_of(job, schedule), job["metadata"]["name"])
        elif current not in r.FINISHED:
            loading.setdefault(r.interval_of(job, schedule), job["metadata"]["name"])
    results: dict[str, dict[str, Any]] = {}
    active: dict[str, str] = {}  # interval -> Job, for the intervals this call waits on
    for interval in map(str, intervals):
        if interval in done:
            results[interval] = {"interval": interval, "run": done[interval], "status": "skipped"}
        elif interval in loading:
            active[interval] = loading[interval]
            results[interval] = {"interval": interval, "run": active[interval], "status": "running"}
            typer.echo(f"{trigger} {name} {interval}: already running as {active[interval]}; waiting for it", err=True)
        else:
            results[interval] = {"interval": interval, "run": "", "status": "queued"}
    queue = [i for i in intervals if results[str(i)]["status"] == "queued"]
    while queue or active:
        if active:
            states = {job["metadata"]["name"]: r.state(job) for job in r.runs(k, name)}
            for interval, job_name in list(active.items()):
                current = states.get(job_name, "deleted")  # cancelled, or deleted by hand
                if current in (*r.FINISHED, "deleted"):
                    results[interval]["status"] = current
                    del active[interval]
                    typer.echo(f"{trigger} {name} {interval}: {current} ({job_name})", err=True)
        while queue and len(active) < parallel:
            interval = str(queue[0])
            # Runs of modes that lock the whole table (replace, upsert) queue for it instead of failing.
            job = r.start(k, cronjob, trigger, r.Overrides(interval=queue.pop(0), args=["--wait-for-lock"]))
            active[interval] = job["metadata"]["name"]
            results[interval].update(run=job["metadata"]["name"], status="running")
            typer.echo(f"{trigger} {name} {interval}: started {job['metadata']['name']}", err=True)
        if active:
            time.sleep(POLL_S)
    return list(results.values())


@app.command("list")
def list_command(output: OutputOption = Output.table) -> None:
    """Pipelines: schedule, suspended, last run and its status."""
    try:
        k = kube()
        latest: dict[str, dict[str, Any]] = {}
        for job in r.runs(k):
            latest.setdefault(job["metadata"]["labels"][r.PIPELINE_LABEL], job)
        rows = []
        for cronjob in r.pipelines(k):
            name = cronjob["metadata"]["labels"][r.PIPELINE_LABEL]
            schedule = r.schedule_of(cronjob)
            last = latest.get(name)
            rows.append({
                "pipeline": name,
                "schedule": f"{schedule[0]} ({schedule[1]})" if schedule else "(ad hoc)",
                "suspended": bool(cronjob["spec"].get("suspend")) and schedule is not None,
                "last_run": last["metadata"]["name"] if last else "",
                "last_status": r.state(last) if last else "",
                "last_interval": r.interval_of(last, schedule) if last else "",
            })
    except EtlctlError as exc:
        fail(exc)
    show(rows, output)


@app.command()
def history(pipeline: Annotated[str, typer.Argument(help="Pipeline name")], output: OutputOption = Output.table) -> None:
    """A pipeline's runs, newest first."""
    try:
        k = kube()
        schedule = r.schedule_of(r.pipeline(k, pipeline))
        rows = [r.summary(j, schedule) for j in r.runs(k, pipeline)]
    except EtlctlError as exc:
        fail(exc)
    show(rows, output)


@app.command()
def status(run: Annotated[str, typer.Argument(help="Run (Job) name")], output: OutputOption = Output.table) -> None:
    """One run: its state, interval and pods."""
    try:
        k = kube()
        job = r.run(k, run)
        row = r.summary(job, r.schedule_of_run(k, job))
        row["pods"] = ", ".join(f"{p['metadata']['name']} ({(p.get('status') or {}).get('phase', '?')})" for p in r.pods_of(k, run))
    except EtlctlError as exc:
        fail(exc)
    show(row, output)


@app.command()
def logs(
    run: Annotated[str, typer.Argument(help="Run (Job) name")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep streaming until the run finishes")] = False,
) -> None:
    """The logs of every pod of a run (each retry), oldest first."""
    try:
        k = kube()
        r.run(k, run)
        if follow:
            final = watch(k, run, follow=True)
            raise typer.Exit(0 if final == "succeeded" else 1)
        for pod in r.pods_of(k, run):
            typer.echo(f"==> {pod['metadata']['name']} <==", err=True)
            typer.echo(k.request("get", "pods/log", "GET", k.path("", "pods", pod["metadata"]["name"], "log")), nl=False)
    except EtlctlError as exc:
        fail(exc)


@app.command()
def cancel(run: Annotated[str, typer.Argument(help="Run (Job) name")]) -> None:
    """Stop a run: delete its Job and pods."""
    try:
        k = kube()
        r.cancel(k, run)
    except EtlctlError as exc:
        fail(exc)
    typer.echo(f"run {run} cancelled")


@app.command()
def suspend(pipeline: Annotated[str, typer.Argument(help="Pipeline name")]) -> None:
    """Stop scheduled runs of a pipeline (ad-hoc runs still work)."""
    _set_suspended(pipeline, True)


@app.command()
def resume(pipeline: Annotated[str, typer.Argument(help="Pipeline name")]) -> None:
    """Resume scheduled runs of a pipeline (`etlctl catchup` runs what was missed)."""
    _set_suspended(pipeline, False)


def _set_suspended(pipeline: str, suspended: bool) -> None:
    try:
        k = kube()
        cronjob = r.pipeline(k, pipeline)
        if r.schedule_of(cronjob) is None:
            raise EtlctlError(f"pipeline {pipeline!r} has no schedule; there is nothing to {'suspend' if suspended else 'resume'}")
        r.set_suspended(k, cronjob, suspended)
    except EtlctlError as exc:
        fail(exc)
    typer.echo(f"pipeline {pipeline} {'suspended' if suspended else 'resumed'}")


def main() -> None:
    app()
