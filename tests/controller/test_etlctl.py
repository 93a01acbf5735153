"""etlctl, the real CLI, against a real API server holding the chart's CronJobs."""
from __future__ import annotations

import json
import threading
import time

import pytest
from kubernetes import client

from job.schedule import interval_for_tick, intervals_between
from controller.runs import now

JAN = "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"


def only_job(cluster, pipeline="flights") -> client.V1Job:
    jobs = cluster.jobs(pipeline)
    assert len(jobs) == 1
    return jobs[0]


def test_list_shows_the_charts_pipelines(cluster):
    out = cluster.etlctl("list", "-o", "json")
    assert out.returncode == 0, out.stderr
    rows = {row["pipeline"]: row for row in json.loads(out.stdout)}
    assert rows["flights"]["schedule"] == "0 0 1 * * (UTC)" and rows["flights"]["suspended"] is False
    assert rows["airlines"]["schedule"] == "(ad hoc)"


def test_run_creates_a_job_like_kubectl_create_job_from_plus_overrides(cluster):
    out = cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01", "--env", "EXTRA=1",
                         "--arg", "--wait-for-lock", "--image", "kubetl:other", "--timeout", "600", "-o", "json")
    assert out.returncode == 0, out.stderr
    job = only_job(cluster)
    cronjob = cluster.batch.read_namespaced_cron_job("kubetl-flights", cluster.namespace)
    owner = job.metadata.owner_references[0]
    # Owned, so deleted with the CronJob; not controlled, so its history limits never prune it (controller/runs.py).
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("CronJob", "kubetl-flights", cronjob.metadata.uid, None)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.annotations["kubetl.io/interval"] == JAN
    assert job.metadata.labels["kubetl.io/trigger"] == "manual" and job.metadata.labels["kubetl.io/run-id"]
    pod = job.spec.template
    assert pod.metadata.labels["kubetl.io/trigger"] == "manual"
    container = pod.spec.containers[0]
    assert container.args == ["run", "flights", "--interval", JAN, "--wait-for-lock"]
    assert container.image == "kubetl:other" and job.spec.active_deadline_seconds == 600
    assert {e.name: e.value for e in container.env}["EXTRA"] == "1"
    assert json.loads(out.stdout)["run"] == job.metadata.name


def test_scheduled_at_maps_to_the_ticks_interval(cluster):
    assert cluster.etlctl("run", "flights", "--scheduled-at", "2013-02-01T00:00:00Z").returncode == 0
    assert only_job(cluster).metadata.annotations["kubetl.io/interval"] == JAN


def test_without_an_interval_a_scheduled_pipeline_runs_its_latest_interval(cluster):
    assert cluster.etlctl("run", "flights").returncode == 0
    expected = interval_for_tick("0 0 1 * *", "UTC", now())
    assert only_job(cluster).metadata.annotations["kubetl.io/interval"] == str(expected)


def test_second_run_of_a_running_interval_is_refused(cluster):
    assert cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01").returncode == 0
    cluster.start_running(only_job(cluster).metadata.name)
    again = cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01")
    assert again.returncode == 1
    assert f"of pipeline 'flights' for {JAN} is still running" in again.stderr
    assert len(cluster.jobs("flights")) == 1


@pytest.mark.parametrize("args, code, message", [
    (["run", "nope"], 1, "no pipeline 'nope' in namespace"),
    (["run", "flights", "--interval", "2013-02-01/2013-01-01"], 2, "is not before its end"),
    (["run", "flights", "--interval", "yesterday"], 2, "interval must be START/END"),
    (["run", "flights", "--env", "NOVALUE"], 2, "--env takes KEY=VALUE"),
    (["suspend", "airlines"], 1, "has no schedule"),
    (["backfill", "airlines", "--from", "2013-01-01", "--to", "2013-03-01"], 1, "has no schedule"),
    (["status", "no-such-run"], 1, "no run 'no-such-run' in namespace"),
])
def test_user_errors_are_one_clear_line(cluster, args, code, message):
    out = cluster.etlctl(*args)
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("etlctl: error: ") and message in out.stderr and out.stderr.count("\n") == 1


def test_rbac_forbidden_names_the_verb_and_resource(cluster, control_plane):
    import apiserver
    nobody = control_plane.kubeconfig(token=apiserver.NOBODY_TOKEN, namespace=cluster.namespace)
    out = cluster.etlctl("run", "flights", kubeconfig=nobody)
    assert out.returncode == 1
    assert f"forbidden: you may not list cronjobs.batch in namespace '{cluster.namespace}'" in out.stderr


def test_unreachable_api_server(cluster, tmp_path):
    dead = tmp_path / "kubeconfig"
    dead.write_text(cluster.kubeconfig.read_text().replace(cluster.plane.server, "https://127.0.0.1:1"))
    out = cluster.etlctl("list", kubeconfig=dead)
    assert out.returncode == 1 and "cannot reach the Kubernetes API server at https://127.0.0.1:1" in out.stderr


def _complete_when_created(cluster, pipeline, succeed=True):
    def loop():
        for _ in range(100):
            jobs = cluster.jobs(pipeline)
            if jobs:
                cluster.finish(jobs[0].metadata.name, succeed)
                return
            time.sleep(0.2)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("succeed, code", [(True, 0), (False, 1)])
def test_wait_exits_with_the_runs_outcome(cluster, succeed, code):
    thread = _complete_when_created(cluster, "flights", succeed)
    out = cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01", "--wait")
    thread.join()
    assert out.returncode == code, out.stderr
    assert ("succeeded" if succeed else "failed") in out.stderr


class FakeJobController:
    """Finishes the oldest unfinished Job every STEP seconds (once a Job with the
    label TRIGGER exists, if given) and records the largest number of
    unfinished Jobs it ever saw."""

    def __init__(self, cluster, pipeline, step=0.5, trigger=None):
        self.cluster, self.pipeline, self.step, self.trigger = cluster, pipeline, step, trigger
        self.max_active, self.stop = 0, threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop.is_set():
            every = self.cluster.jobs(self.pipeline)
            jobs = [j for j in every if not j.status.conditions]
            self.max_active = max(self.max_active, len(jobs))
            if jobs and (self.trigger is None or any(j.metadata.labels["kubetl.io/trigger"] == self.trigger for j in every)):
                oldest = min(jobs, key=lambda j: j.metadata.creation_timestamp)
                self.cluster.finish(oldest.metadata.name)
            time.sleep(self.step)


def test_backfill_respects_parallel_and_a_rerun_creates_nothing(cluster):
    controller = FakeJobController(cluster, "flights")
    out = cluster.etlctl("backfill", "flights", "--from", "2013-01-01", "--to", "2013-04-01", "--parallel", "2", "-o", "json",
                         timeout=120)
    controller.stop.set()
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["interval"] for r in rows] == [
        "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z", "2013-02-01T00:00:00Z/2013-03-01T00:00:00Z",
        "2013-03-01T00:00:00Z/2013-04-01T00:00:00Z"]
    assert {r["status"] for r in rows} == {"succeeded"}
    assert 1 <= controller.max_active <= 2
    jobs = cluster.jobs("flights")
    assert len(jobs) == 3 and {j.metadata.labels["kubetl.io/trigger"] for j in jobs} == {"backfill"}
    # A backfill's runs of a table-locking mode (replace, upsert) queue for the lock instead of failing.
    assert sorted(j.spec.template.spec.containers[0].args for j in jobs) == [
        ["run", "flights", "--interval", row["interval"], "--wait-for-lock"] for row in rows]

    again = cluster.etlctl("backfill", "flights", "--from", "2013-01-01", "--to", "2013-04-01", "-o", "json")
    assert again.returncode == 0 and {r["status"] for r in json.loads(again.stdout)} == {"skipped"}
    assert len(cluster.jobs("flights")) == 3


def test_catchup_runs_the_intervals_missed_since_the_last_success(cluster):
    last = interval_for_tick("0 0 1 * *", "UTC", now())
    three_back = intervals_between("0 0 1 * *", "UTC", last.start.replace(year=last.start.year - 1), last.end)[-3]
    assert cluster.etlctl("run", "flights", "--interval", str(three_back)).returncode == 0
    cluster.finish(only_job(cluster).metadata.name)
    controller = FakeJobController(cluster, "flights", step=0.3)
    out = cluster.etlctl("catchup", "flights", "-o", "json")
    controller.stop.set()
    assert out.returncode == 0, out.stderr
    caught = [r["interval"] for r in json.loads(out.stdout)]
    assert caught == [str(i) for i in intervals_between("0 0 1 * *", "UTC", three_back.end, last.end)]
    assert len(caught) == 2
    assert cluster.etlctl("catchup", "flights").stderr.strip() == "flights: nothing to catch up"


def test_history_status_cancel_suspend_resume(cluster):
    assert cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01").returncode == 0
    name = only_job(cluster).metadata.name
    history = json.loads(cluster.etlctl("history", "flights", "-o", "json").stdout)
    assert [(h["run"], h["trigger"], h["interval"], h["status"]) for h in history] == [(name, "manual", JAN, "pending")]
    status = cluster.etlctl("status", name, "-o", "yaml")
    assert status.returncode == 0 and f"run: {name}" in status.stdout
    table = cluster.etlctl("history", "flights")
    assert table.stdout.splitlines()[0].split() == ["RUN", "PIPELINE", "TRIGGER", "INTERVAL", "STATUS", "STARTED", "DURATION", "RETRIES"]

    assert cluster.etlctl("cancel", name).returncode == 0
    assert cluster.jobs("flights") == []

    assert cluster.etlctl("suspend", "flights").stdout.strip() == "pipeline flights suspended"
    assert cluster.batch.read_namespaced_cron_job("kubetl-flights", cluster.namespace).spec.suspend is True
    assert cluster.etlctl("resume", "flights").returncode == 0
    assert cluster.batch.read_namespaced_cron_job("kubetl-flights", cluster.namespace).spec.suspend is False


MONTHLY = ("0 0 1 * *", "UTC")


def recent_months(count: int):
    """The last COUNT whole monthly intervals, oldest first."""
    last = interval_for_tick(*MONTHLY, now())
    return intervals_between(*MONTHLY, last.start.replace(year=last.start.year - 1), last.end)[-count:]


def test_catchup_counts_the_cronjobs_own_runs_as_done(cluster):
    """A Job the CronJob controller made covers its tick's interval, like `etl-job --scheduled-at auto` reads it."""
    three_back, two_back, last = recent_months(3)
    cluster.finish(cluster.scheduled_job("kubetl-flights", two_back.end))
    out = cluster.etlctl("catchup", "flights", "--dry-run", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert [row["interval"] for row in json.loads(out.stdout)] == [str(last)]
    history = json.loads(cluster.etlctl("history", "flights", "-o", "json").stdout)
    assert [(h["trigger"], h["interval"], h["status"]) for h in history] == [("scheduled", str(two_back), "succeeded")]

    cluster.finish(cluster.scheduled_job("kubetl-flights", last.end))
    assert cluster.etlctl("catchup", "flights").stderr.strip() == "flights: nothing to catch up"
    assert len(cluster.jobs("flights")) == 2


def test_catchup_after_the_jobs_expired_goes_by_the_cronjobs_last_success(cluster):
    """No Jobs left (ttlSecondsAfterFinished): status.lastSuccessfulTime bounds the catch-up,
    rerunning the interval before it too, since that Job may have covered an earlier tick."""
    before, last = recent_months(2)
    when = (last.end.replace(minute=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    cluster.batch.patch_namespaced_cron_job_status("kubetl-flights", cluster.namespace, {"status": {"lastSuccessfulTime": when}})
    out = cluster.etlctl("catchup", "flights", "--dry-run", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert [row["interval"] for row in json.loads(out.stdout)] == [str(last)]
    assert before.end == last.start


def test_catchup_refuses_a_range_that_is_really_a_backfill(cluster):
    """One manual run of January 2013 and nothing since: well over a hundred months 'missed'."""
    assert cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01").returncode == 0
    cluster.finish(only_job(cluster).metadata.name)
    out = cluster.etlctl("catchup", "flights")
    assert out.returncode == 2, out.stderr
    assert "missed since 2013-02-01T00:00Z, more than --max-runs 100" in out.stderr
    assert len(cluster.jobs("flights")) == 1
    planned = json.loads(cluster.etlctl("catchup", "flights", "--dry-run", "-o", "json").stdout)
    assert planned[0]["interval"] == "2013-02-01T00:00:00Z/2013-03-01T00:00:00Z" and len(planned) > 100


def test_backfill_waits_on_an_interval_already_running_instead_of_starting_it_again(cluster):
    """A backfill run again after Ctrl-C adopts the Jobs it left running."""
    assert cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01").returncode == 0
    running = only_job(cluster).metadata.name
    cluster.start_running(running)
    controller = FakeJobController(cluster, "flights", trigger="backfill")
    out = cluster.etlctl("backfill", "flights", "--from", "2013-01-01", "--to", "2013-03-01", "--parallel", "2", "-o", "json")
    controller.stop.set()
    assert out.returncode == 0, out.stderr
    assert f"already running as {running}; waiting for it" in out.stderr
    rows = json.loads(out.stdout)
    assert [(row["run"] == running, row["status"]) for row in rows] == [(True, "succeeded"), (False, "succeeded")]
    assert len(cluster.jobs("flights")) == 2


def test_backfill_reports_a_run_deleted_under_it_and_fails(cluster):
    def delete_first():
        for _ in range(100):
            if jobs := cluster.jobs("flights"):
                cluster.batch.delete_namespaced_job(jobs[0].metadata.name, cluster.namespace, propagation_policy="Background")
                return
            time.sleep(0.2)
    deleter = threading.Thread(target=delete_first, daemon=True)
    deleter.start()
    out = cluster.etlctl("backfill", "flights", "--from", "2013-01-01", "--to", "2013-02-01", "-o", "json")
    deleter.join()
    assert out.returncode == 1, out.stderr
    assert [row["status"] for row in json.loads(out.stdout)] == ["deleted"]
