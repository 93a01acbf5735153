"""One release's life, in order, as a user lives it: install, scheduled and
ad-hoc runs, backfill, failures of the ETL pod and of PostgreSQL, upgrade,
uninstall. The tests share the release and run in file order; each says what
it relies on from the ones before it. Everything runs in a namespace that
enforces Pod Security "restricted", so any pod the chart or etlctl makes that
breaks those rules would be refused and fail its test."""
from __future__ import annotations

import json

import pytest

from e2e_support import RELEASE
from support import CHART

pytestmark = pytest.mark.cluster

JANUARY = "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"
YEAR = "2013-01-01T00:00:00Z/2014-01-01T00:00:00Z"


def rows_between(ns, start: str, end: str) -> int:
    """Rows of `flights` in [START, END), dates in UTC."""
    return int(ns.sql(f"SELECT count(*) FROM flights WHERE time_hour >= '{start}T00:00:00Z' AND time_hour < '{end}T00:00:00Z'"))


def succeeded(job: dict) -> bool:
    return any(c["type"] == "Complete" and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))


def test_helm_install_brings_up_postgres_and_helm_test_passes(namespace, values_file):
    namespace.helm("install", RELEASE, str(CHART), "-f", str(values_file), "--wait", "--timeout", "5m")
    assert namespace.get("namespace", namespace.name)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    out = namespace.helm("test", RELEASE, "--timeout", "3m")
    assert "Phase:          Succeeded" in out.stdout, out.stdout
    assert namespace.sql("SELECT to_regclass('etl_runs') IS NOT NULL") == "t"


def test_a_cronjob_fires_on_schedule_and_loads_the_rows(namespace):
    """`airlines` runs every minute in the e2e values."""
    def fired():
        return [j for j in namespace.jobs("airlines") if succeeded(j) and j["metadata"].get("ownerReferences")]

    jobs = namespace.wait_for("a scheduled airlines Job to complete", fired, timeout=180)
    assert jobs[0]["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert namespace.sql("SELECT count(*) FROM airlines") == "16"
    assert namespace.sql("SELECT DISTINCT trigger FROM etl_runs WHERE pipeline = 'airlines'") == "scheduled"
    # Quiet from here on: the rest of the suite counts Jobs and rows.
    out = namespace.etlctl("suspend", "airlines")
    assert out.returncode == 0, out.stderr


def test_etlctl_run_wait_follow_with_an_override_loads_exactly_one_month(namespace, expected_rows):
    out = namespace.etlctl("run", "flights", "--interval", JANUARY, "--env", "KUBETL_PROGRESS_SECONDS=0.5",
                           "--wait", "--follow")
    assert out.returncode == 0, out.stdout + out.stderr
    assert '"event": "run.succeeded"' in out.stdout, out.stdout[-2000:]  # --follow streamed the pod's log
    assert rows_between(namespace, "2013-01-01", "2013-02-01") == expected_rows(JANUARY) == 26338
    job = namespace.jobs("flights")[0]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KUBETL_PROGRESS_SECONDS"] == "0.5"
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"


def test_etlctl_run_of_a_broken_input_fails_and_shows_why(namespace):
    out = namespace.etlctl("run", "broken-input", "--wait", "--follow")
    assert out.returncode != 0
    assert "columns declared in dtypes are not in the file: ['wingspan']" in out.stdout + out.stderr
    assert namespace.sql("SELECT to_regclass('broken') IS NULL") == "t"
    assert namespace.sql("SELECT status FROM etl_runs WHERE pipeline = 'broken-input' LIMIT 1") == "failed"
    [job] = namespace.jobs("broken-input")
    assert job["status"]["failed"] == 1  # exit 2: the pod failure policy allows no retry


def test_backfill_three_months_twice_loads_each_once_and_starts_no_new_jobs(namespace, expected_rows):
    first = namespace.etlctl("backfill", "flights", "--from", "2013-03-01", "--to", "2013-06-01", "--parallel", "2")
    assert first.returncode == 0, first.stdout + first.stderr
    backfills = [j for j in namespace.jobs("flights") if j["metadata"]["labels"].get("kubetl.io/trigger") == "backfill"]
    assert len(backfills) == 3 and all(succeeded(j) for j in backfills)
    # Four succeeded runs, one more than the CronJob's successfulJobsHistoryLimit: etlctl's Jobs
    # are not the CronJob controller's to prune, so none went missing under the backfill.
    assert len(namespace.jobs("flights")) == 4

    again = namespace.etlctl("backfill", "flights", "--from", "2013-03-01", "--to", "2013-06-01", "--parallel", "2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len([j for j in namespace.jobs("flights") if j["metadata"]["labels"].get("kubetl.io/trigger") == "backfill"]) == 3
    for start, end in (("2013-03-01", "2013-04-01"), ("2013-04-01", "2013-05-01"), ("2013-05-01", "2013-06-01")):
        assert rows_between(namespace, start, end) == expected_rows(f"{start}T00:00:00Z/{end}T00:00:00Z")
    assert namespace.sql("SELECT count(*) FROM (SELECT 1 FROM flights GROUP BY year, month, day, carrier, flight, "
                         "origin, sched_dep_time HAVING count(*) > 1) d") == "0"


def test_an_etl_pod_killed_mid_load_is_retried_and_the_counts_are_exact(namespace, expected_rows):
    """A whole year in one run of `flights-throttled` (a tenth of a CPU); its pod is
    force-deleted once it reports progress, and the Job's next pod loads it all."""
    out = namespace.etlctl("run", "flights-throttled", "--interval", YEAR, "--env", "KUBETL_PROGRESS_SECONDS=0.2", "-o", "json")
    assert out.returncode == 0, out.stderr
    [job] = namespace.jobs("flights-throttled")
    name = job["metadata"]["name"]

    def loading_pod():
        for pod in namespace.get("pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]:
            logs = namespace.kubectl("logs", pod["metadata"]["name"], check=False).stdout
            if "run.progress" in logs:
                assert "run.succeeded" not in logs, "the run finished before it could be killed"
                return pod["metadata"]["name"]
        return None

    victim = namespace.wait_for("the run to report progress", loading_pod, timeout=240, every=0.5)
    namespace.kubectl("delete", "pod", victim, "--grace-period=0", "--force")
    # `etlctl logs -f` follows the run into the Job's next pod and exits with the run's outcome.
    followed = namespace.etlctl("logs", name, "-f", timeout=620)
    assert followed.returncode == 0, followed.stdout[-2000:] + followed.stderr
    assert '"event": "run.succeeded"' in followed.stdout
    pods = [p["metadata"]["name"] for p in namespace.get("pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]]
    assert victim not in pods and pods, pods
    assert int(namespace.sql("SELECT count(*) FROM flights_throttled")) == expected_rows(YEAR)
    statuses = namespace.sql("SELECT status FROM etl_runs WHERE pipeline = 'flights-throttled'").split()
    assert statuses.count("succeeded") == 1, statuses


def test_etlctl_cancel_stops_a_run_and_its_pod(namespace):
    out = namespace.etlctl("run", "flights-throttled", "--interval", JANUARY, "-o", "json")
    assert out.returncode == 0, out.stderr
    name = json.loads(out.stdout)["run"]
    pods = lambda: namespace.get("pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]  # noqa: E731
    namespace.wait_for("the run's pod to start", lambda: any(p["status"].get("phase") == "Running" for p in pods()), timeout=120)
    cancelled = namespace.etlctl("cancel", name)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"run {name} cancelled"
    namespace.wait_for("the run's pod to go", lambda: not pods(), timeout=120)
    assert [j["metadata"]["name"] for j in namespace.jobs("flights-throttled") if j["metadata"]["name"] == name] == []


def snapshot(namespace) -> dict[str, str]:
    """Row counts of every table the release loaded, and of its ledger."""
    return {table: namespace.sql(f"SELECT count(*) FROM {table}")
            for table in ("airlines", "flights", "flights_throttled", "etl_runs", "etl_rejects")}


def test_postgres_pod_deleted_comes_back_with_all_data(namespace):
    before = snapshot(namespace)
    assert int(before["flights_throttled"]) > 300_000
    namespace.kubectl("delete", "pod", f"{RELEASE}-postgresql-0")
    namespace.kubectl("rollout", "status", f"statefulset/{RELEASE}-postgresql", "--timeout=300s", timeout=320)
    namespace.kubectl("wait", f"pod/{RELEASE}-postgresql-0", "--for=condition=Ready", "--timeout=300s", timeout=320)
    assert snapshot(namespace) == before


def test_catchup_runs_the_minutes_missed_while_suspended(namespace):
    """`airlines` (every minute) has been suspended since its first scheduled run. The
    CronJob controller's own Jobs count as done, so the catch-up starts after the last
    of them and runs each minute since, once."""
    scheduled = [j for j in namespace.jobs("airlines") if j["metadata"]["labels"]["kubetl.io/trigger"] == "scheduled"]
    last_tick = max(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] for j in scheduled)
    plan = namespace.etlctl("catchup", "airlines", "--dry-run", "-o", "json")
    assert plan.returncode == 0, plan.stderr
    planned = [row["interval"] for row in json.loads(plan.stdout)]
    assert planned and planned[0].startswith(last_tick.replace("+00:00", "Z")), (last_tick, planned)

    out = namespace.etlctl("catchup", "airlines", "--parallel", "3", "-o", "json")  # replace mode: they queue for the lock
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads(out.stdout)
    assert [row["interval"] for row in rows][:len(planned)] == planned  # a minute may have passed since the plan
    assert {row["status"] for row in rows} == {"succeeded"}
    assert namespace.sql("SELECT count(*) FROM etl_runs WHERE pipeline = 'airlines' AND trigger = 'catchup' "
                         "AND status = 'succeeded'") == str(len(rows))
    assert namespace.sql("SELECT count(*) FROM airlines") == "16"


def password(namespace) -> str:
    secret = namespace.get("secret", f"{RELEASE}-postgresql")
    return secret["data"]["password"]


def test_helm_upgrade_keeps_the_generated_password_and_the_data(namespace, values_file):
    before, data = password(namespace), snapshot(namespace)
    namespace.helm("upgrade", RELEASE, str(CHART), "-f", str(values_file), "--set", "jobDefaults.successfulJobsHistoryLimit=1",
                   "--wait", "--timeout", "5m")
    assert password(namespace) == before
    assert snapshot(namespace) == data
    # `etlctl suspend airlines` (above) outlives the upgrade: the chart leaves that field to etlctl.
    assert namespace.get("cronjob", f"{RELEASE}-airlines")["spec"]["suspend"] is True
    # The jobs still reach the database with that password.
    out = namespace.etlctl("run", "airlines", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    # Without --follow or a terminal, --wait prints plain progress lines read from the pod's JSON log.
    assert ": succeeded 16 rows read, 16 written, 0 rejected" in out.stderr, out.stderr


def test_helm_uninstall_removes_the_release_and_keeps_the_data_volume(namespace):
    namespace.helm("uninstall", RELEASE, "--wait", "--timeout", "5m")
    for kind in ("cronjobs", "statefulsets", "configmaps", "services", "networkpolicies", "roles"):
        left = [o["metadata"]["name"] for o in namespace.get(kind)["items"] if o["metadata"]["name"].startswith(RELEASE)]
        assert left == [], f"{kind} left behind: {left}"
    assert namespace.get("pvc", f"data-{RELEASE}-postgresql-0")["status"]["phase"] == "Bound"
    assert namespace.get("secret", f"{RELEASE}-postgresql")["data"]["password"]

