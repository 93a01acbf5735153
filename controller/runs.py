"""Pipelines are the chart's CronJobs; runs are Jobs made from their jobTemplate.

Like `kubectl create job --from=cronjob/...` (owner reference, the
`cronjob.kubernetes.io/instantiate: manual` annotation), plus what kubectl
will not do: overrides of the interval, env, args, image and timeout, and one
Job per schedule interval for backfills and catch-ups.

Unlike kubectl's, etlctl's owner reference does not make the CronJob the Job's
controller: the CronJob controller prunes the Jobs it controls down to its
history limits (3 successful by default) as soon as they finish, which would
delete a backfill's Jobs while it still waits on them and forget which
intervals are done. Owned but not controlled, they are still deleted with the
CronJob, and expire after the template's ttlSecondsAfterFinished.
"""
from __future__ import annotations

import copy
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from controller.kube import FIELD_MANAGER, EtlctlError, Kube
from job.schedule import Interval, interval_for_tick, intervals_between, parse_time, tick_of_scheduled_job

BATCH = "batch/v1"
PIPELINE_LABEL = "kubetl.io/pipeline"
TRIGGER_LABEL = "kubetl.io/trigger"
RUN_ID_LABEL = "kubetl.io/run-id"
INTERVAL_LABEL = "kubetl.io/interval-start"  # label-safe form of the start, for selecting
INTERVAL_ANNOTATION = "kubetl.io/interval"  # START/END as etl-job reads it
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"  # kubectl's mark of a Job made by hand from a CronJob
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"  # the CronJob controller's tick
FINISHED = ("succeeded", "failed")


def interval_label(interval: Interval) -> str:
    return interval.start.strftime("%Y%m%dT%H%M%SZ")


# --- reading -----------------------------------------------------------------------


def _list(kube: Kube, resource: str, selector: str) -> list[dict[str, Any]]:
    """Objects of a namespaced RESOURCE (cronjobs, jobs: batch/v1; pods: v1) matching SELECTOR."""
    group = "" if resource == "pods" else BATCH
    full = resource if group == "" else f"{resource}.batch"
    return kube.request("list", full, "GET", kube.path(group, resource), {"labelSelector": selector})["items"]


def pipelines(kube: Kube) -> list[dict[str, Any]]:
    found = _list(kube, "cronjobs", PIPELINE_LABEL)
    return sorted(found, key=lambda c: c["metadata"]["labels"][PIPELINE_LABEL])


def pipeline(kube: Kube, name: str) -> dict[str, Any]:
    found = _list(kube, "cronjobs", f"{PIPELINE_LABEL}={name}")
    if not found:
        known = ", ".join(c["metadata"]["labels"][PIPELINE_LABEL] for c in pipelines(kube)) or "none"
        raise EtlctlError(f"no pipeline {name!r} in namespace {kube.namespace!r} (pipelines there: {known})")
    return found[0]


def runs(kube: Kube, name: str | None = None) -> list[dict[str, Any]]:
    """A pipeline's Jobs (or every pipeline's), newest first."""
    selector = f"{PIPELINE_LABEL}={name}" if name else PIPELINE_LABEL
    return sorted(_list(kube, "jobs", selector), key=lambda j: j["metadata"]["creationTimestamp"], reverse=True)


def run(kube: Kube, name: str) -> dict[str, Any]:
    try:
        return kube.request("get", "jobs.batch", "GET", kube.path(BATCH, "jobs", name))
    except EtlctlError as exc:
        if exc.http_status == 404:
            raise EtlctlError(f"no run {name!r} in namespace {kube.namespace!r} (`etlctl history PIPELINE` lists runs)") from None
        raise


def state(job: dict[str, Any]) -> str:
    """succeeded, failed, running or pending, from the Job's conditions and counts."""
    status = job.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") == "True":
            if condition["type"] in ("Complete", "SuccessCriteriaMet"):
                return "succeeded"
            if condition["type"] in ("Failed", "FailureTarget"):
                return "failed"
    if status.get("active"):
        return "running"
    return "pending"


def interval_of(job: dict[str, Any], schedule: tuple[str, str] | None) -> str:
    """START/END the run covers, or "" when it covers none (an ad-hoc pipeline's run).

    etlctl writes it on its Jobs; a Job the CronJob controller made covers the
    interval of its tick under SCHEDULE (see schedule_of), as `etl-job
    --scheduled-at auto` computes it in the pod."""
    annotations = job["metadata"].get("annotations") or {}
    if INTERVAL_ANNOTATION in annotations or schedule is None or MANUAL_ANNOTATION in annotations:
        return annotations.get(INTERVAL_ANNOTATION, "")
    tick = annotations.get(SCHEDULED_ANNOTATION)
    moment = parse_time(tick) if tick else tick_of_scheduled_job(job["metadata"]["name"])
    return str(interval_for_tick(schedule[0], schedule[1], moment)) if moment else ""


def summary(job: dict[str, Any], schedule: tuple[str, str] | None) -> dict[str, Any]:
    meta, status = job["metadata"], job.get("status") or {}
    labels = meta.get("labels") or {}
    started, finished = status.get("startTime"), status.get("completionTime")
    return {
        "run": meta["name"],
        "pipeline": labels.get(PIPELINE_LABEL, ""),
        "trigger": labels.get(TRIGGER_LABEL, ""),
        "interval": interval_of(job, schedule),
        "status": state(job),
        "started": started or "",
        "duration": _duration(started, finished),
        "retries": status.get("failed") or 0,
    }


def _duration(started: Any, finished: Any) -> str:
    if not started or not finished:
        return ""
    to_time = lambda v: v if isinstance(v, datetime) else parse_time(str(v))  # noqa: E731
    return f"{(to_time(finished) - to_time(started)).total_seconds():.0f}s"


# --- schedule arithmetic on a CronJob ---------------------------------------------------


def schedule_of(cronjob: dict[str, Any]) -> tuple[str, str] | None:
    """(cron, time zone), or None for a pipeline with no schedule of its own."""
    if (cronjob["metadata"].get("annotations") or {}).get("kubetl.io/ad-hoc-only") == "true":
        return None
    return cronjob["spec"]["schedule"], cronjob["spec"].get("timeZone") or "UTC"


def schedule_of_run(kube: Kube, job: dict[str, Any]) -> tuple[str, str] | None:
    """The schedule of the pipeline a Job ran, or None (ad hoc, or the CronJob is gone)."""
    name = (job["metadata"].get("labels") or {}).get(PIPELINE_LABEL)
    found = _list(kube, "cronjobs", f"{PIPELINE_LABEL}={name}") if name else []
    return schedule_of(found[0]) if found else None


def latest_interval(cronjob: dict[str, Any], now: datetime) -> Interval | None:
    schedule = schedule_of(cronjob)
    return interval_for_tick(schedule[0], schedule[1], now) if schedule else None


def backfill_intervals(cronjob: dict[str, Any], start: datetime, end: datetime) -> list[Interval]:
    schedule = schedule_of(cronjob)
    if schedule is None:
        name = cronjob["metadata"]["labels"][PIPELINE_LABEL]
        raise EtlctlError(f"pipeline {name!r} has no schedule, so it has no intervals to backfill; use `etlctl run --interval`")
    intervals = intervals_between(schedule[0], schedule[1], start, end)
    if not intervals:
        raise EtlctlError(f"no whole schedule interval ({schedule[0]}, {schedule[1]}) fits between {start:%Y-%m-%dT%H:%M}Z and {end:%Y-%m-%dT%H:%M}Z", 2)
    return intervals


def missed_intervals(cronjob: dict[str, Any], jobs: list[dict[str, Any]], now: datetime) -> list[Interval]:
    """Schedule intervals from the last successful run up to NOW that no succeeded Job covers.

    The last successful run is the latest-ending interval of any succeeded Job,
    scheduled or etlctl's. Jobs expire, so the CronJob's status.lastSuccessfulTime
    counts too: the interval of the tick before it is taken as not done (that
    Job may have covered an earlier tick), which costs at most one idempotent
    rerun. With neither, the ticks since the CronJob was created."""
    schedule = schedule_of(cronjob)
    if schedule is None:
        return []
    done = {interval_of(j, schedule) for j in jobs if state(j) == "succeeded"} - {""}
    starts = [parse_time(i.split("/")[1]) for i in done]
    if last_success := (cronjob.get("status") or {}).get("lastSuccessfulTime"):
        starts.append(interval_for_tick(schedule[0], schedule[1], parse_time(str(last_success))).start)
    if not starts:
        starts.append(interval_for_tick(schedule[0], schedule[1], parse_time(str(cronjob["metadata"]["creationTimestamp"]))).end)
    return [i for i in intervals_between(schedule[0], schedule[1], max(starts), now) if str(i) not in done]


# --- creating runs ------------------------------------------------------------------------


@dataclass
class Overrides:
    interval: Interval | None = None
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    image: str | None = None
    timeout_s: int | None = None


def job_from_cronjob(cronjob: dict[str, Any], trigger: str, overrides: Overrides) -> dict[str, Any]:
    """The Job `kubectl create job --from=cronjob/X` would make, with kubetl's labels and overrides."""
    name = cronjob["metadata"]["labels"][PIPELINE_LABEL]
    template = copy.deepcopy(cronjob["spec"]["jobTemplate"])
    # A letter first: an all-digit suffix would read as a CronJob controller's tick (tick_of_scheduled_job).
    run_id = secrets.choice(string.ascii_lowercase) + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(4))
    when = overrides.interval.start.strftime("%Y%m%d%H%M") if overrides.interval else ""
    job_name = f"{cronjob['metadata']['name'][:40]}-{trigger[0]}{when}-{run_id}".replace("--", "-")
    labels = {**(template.get("metadata") or {}).get("labels", {}), PIPELINE_LABEL: name, TRIGGER_LABEL: trigger, RUN_ID_LABEL: run_id}
    annotations = {**(template.get("metadata") or {}).get("annotations", {}), MANUAL_ANNOTATION: "manual"}
    if overrides.interval:
        labels[INTERVAL_LABEL] = interval_label(overrides.interval)
        annotations[INTERVAL_ANNOTATION] = str(overrides.interval)
    spec = template["spec"]
    pod = spec["template"]
    pod.setdefault("metadata", {}).setdefault("labels", {}).update({TRIGGER_LABEL: trigger, RUN_ID_LABEL: run_id})
    container = pod["spec"]["containers"][0]
    if (cronjob["metadata"].get("labels") or {}).get("kubetl.io/kind", "pipeline") == "pipeline":
        args = ["run", name] + (["--interval", str(overrides.interval)] if overrides.interval else [])
        container["args"] = args + overrides.args
    elif overrides.interval or overrides.args:
        raise EtlctlError(f"{name!r} is a plain container job: --interval, --scheduled-at and --arg do not apply", 2)
    if overrides.env:
        env = [e for e in container.get("env") or [] if e["name"] not in overrides.env]
        container["env"] = env + [{"name": k, "value": v} for k, v in overrides.env.items()]
    if overrides.image:
        container["image"] = overrides.image
    if overrides.timeout_s:
        spec["activeDeadlineSeconds"] = overrides.timeout_s
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob["metadata"]["name"],
             "uid": cronjob["metadata"]["uid"], "blockOwnerDeletion": True}  # no "controller": see the module docstring
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": job_name, "labels": labels, "annotations": annotations, "ownerReferences": [owner]},
            "spec": spec}


def unfinished(jobs: list[dict[str, Any]], schedule: tuple[str, str] | None, interval: Interval) -> list[dict[str, Any]]:
    """The JOBS covering INTERVAL that are still pending or running."""
    return [j for j in jobs if state(j) not in FINISHED and interval_of(j, schedule) == str(interval)]


def start(kube: Kube, cronjob: dict[str, Any], trigger: str, overrides: Overrides) -> dict[str, Any]:
    """Create one run; refuse if a run of the same interval is still going."""
    name = cronjob["metadata"]["labels"][PIPELINE_LABEL]
    if overrides.interval:
        same = unfinished(runs(kube, name), schedule_of(cronjob), overrides.interval)
        if same:
            raise EtlctlError(f"run {same[0]['metadata']['name']} of pipeline {name!r} for {overrides.interval} is still "
                              "running; wait for it or `etlctl cancel` it")
    body = job_from_cronjob(cronjob, trigger, overrides)
    return kube.request("create", "jobs.batch", "POST", kube.path(BATCH, "jobs"), {"fieldManager": FIELD_MANAGER}, body)


def cancel(kube: Kube, name: str) -> None:
    """Delete the Job and, in the background, its pods."""
    kube.request("delete", "jobs.batch", "DELETE", kube.path(BATCH, "jobs", name), body={"propagationPolicy": "Background"})


def set_suspended(kube: Kube, cronjob: dict[str, Any], suspended: bool) -> None:
    kube.request("patch", "cronjobs.batch", "PATCH", kube.path(BATCH, "cronjobs", cronjob["metadata"]["name"]),
                 {"fieldManager": FIELD_MANAGER}, {"spec": {"suspend": suspended}}, "application/merge-patch+json")


def pods_of(kube: Kube, job_name: str) -> list[dict[str, Any]]:
    return sorted(_list(kube, "pods", f"job-name={job_name}"), key=lambda p: p["metadata"]["creationTimestamp"])


def now() -> datetime:
    return datetime.now(timezone.utc)
