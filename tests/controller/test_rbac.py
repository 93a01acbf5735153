"""The chart's etlctl Role on a real kube-apiserver: etlctl's commands work as
the chart's ServiceAccount (a token from the TokenRequest API), what the Role
leaves out is forbidden, and a static check keeps the Role equal to the API
calls in controller/ (catchup and `logs -f` make the same calls as backfill,
`run --wait` and `logs`)."""
from __future__ import annotations

import ast
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

import apiserver

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetl"
SERVICE_ACCOUNT = "kubetl-etlctl"  # release "kubetl", as the `cluster` fixture installs it
JAN = "2013-01-01T00:00:00Z/2013-02-01T00:00:00Z"
# What controller/ calls (see test_the_role_is_exactly_the_api_calls_in_controller), as (group, resource, verb).
EXPECTED = {
    ("batch", "jobs", "create"), ("batch", "jobs", "get"), ("batch", "jobs", "list"), ("batch", "jobs", "delete"),
    ("batch", "cronjobs", "list"), ("batch", "cronjobs", "patch"),
    ("", "pods", "list"), ("", "pods/log", "get"),
}


def role_rules(docs: list[dict]) -> set[tuple[str, str, str]]:
    [role] = [d for d in docs if d["kind"] == "Role"]
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


@pytest.fixture
def rbac_objects(cluster, helm) -> list[dict]:
    """The chart's etlctl ServiceAccount, Role and RoleBinding, rendered by helm and applied."""
    rendered = subprocess.run([helm, "template", "kubetl", str(CHART), "-n", cluster.namespace,
                               "--show-only", "templates/serviceaccounts.yaml"], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if d and d["metadata"]["labels"]["app.kubernetes.io/component"] == "etlctl"]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == [
        ("Role", SERVICE_ACCOUNT), ("RoleBinding", SERVICE_ACCOUNT), ("ServiceAccount", SERVICE_ACCOUNT)]
    cluster.kubectl("apply", "-n", cluster.namespace, "-f", "-", input=yaml.safe_dump_all(docs))
    return docs


@pytest.fixture
def as_etlctl(cluster, rbac_objects, tmp_path) -> Path:
    """A kubeconfig that authenticates as the chart's etlctl ServiceAccount."""
    request = cluster.core.create_namespaced_service_account_token(
        SERVICE_ACCOUNT, cluster.namespace, {"spec": {"expirationSeconds": 600}})
    admin = cluster.kubeconfig.read_text()
    assert f"token: {apiserver.ADMIN_TOKEN}\n" in admin
    path = tmp_path / "kubeconfig-etlctl"
    path.write_text(admin.replace(f"token: {apiserver.ADMIN_TOKEN}\n", f"token: {request.status.token}\n"))
    whoami = json.loads(kubectl_as(cluster, path, "auth", "whoami", "-o", "json").stdout)
    assert whoami["status"]["userInfo"]["username"] == f"system:serviceaccount:{cluster.namespace}:{SERVICE_ACCOUNT}"
    return path


def kubectl_as(cluster, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(cluster.tools / "kubectl"), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True)


def ok(out: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert out.returncode == 0, out.stderr
    assert "forbidden" not in out.stderr.lower(), out.stderr
    return out


def finish_when_created(cluster, pipeline: str, known: set[str]) -> threading.Thread:
    """Play the Job controller: mark the pipeline's first new Job succeeded."""
    def loop():
        for _ in range(150):
            new = [j for j in cluster.jobs(pipeline) if j.metadata.name not in known]
            if new:
                cluster.finish(new[0].metadata.name)
                return
            time.sleep(0.2)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_every_etlctl_command_works_as_the_charts_service_account(cluster, as_etlctl):
    rows = {row["pipeline"]: row for row in json.loads(ok(cluster.etlctl("list", "-o", "json", kubeconfig=as_etlctl)).stdout)}
    assert set(rows) == {"airlines", "flights"}

    run = json.loads(ok(cluster.etlctl("run", "flights", "--interval", "2013-01-01/2013-02-01", "-o", "json",
                                       kubeconfig=as_etlctl)).stdout)["run"]
    [job] = cluster.jobs("flights")
    assert job.metadata.name == run and job.metadata.annotations["kubetl.io/interval"] == JAN

    history = json.loads(ok(cluster.etlctl("history", "flights", "-o", "json", kubeconfig=as_etlctl)).stdout)
    assert [(h["run"], h["status"]) for h in history] == [(run, "pending")]

    # A pod of the run, as the Job controller would make it; with no kubelet it is never scheduled.
    template = cluster.batch.api_client.sanitize_for_serialization(job.spec.template)
    pod = {"apiVersion": "v1", "kind": "Pod", "spec": template["spec"],
           "metadata": {"name": f"{run}-pod", "labels": {**template["metadata"]["labels"], "job-name": run,
                                                         "batch.kubernetes.io/job-name": run}}}
    cluster.core.create_namespaced_pod(cluster.namespace, pod)
    status = json.loads(ok(cluster.etlctl("status", run, "-o", "json", kubeconfig=as_etlctl)).stdout)
    assert status["run"] == run and status["pods"] == f"{run}-pod (Pending)"
    # Its log is read (empty: the API server answers 204 for a pod no node runs yet).
    logs = ok(cluster.etlctl("logs", run, kubeconfig=as_etlctl))
    assert logs.stderr == f"==> {run}-pod <==\n" and logs.stdout == ""

    ok(cluster.etlctl("cancel", run, kubeconfig=as_etlctl))
    assert cluster.jobs("flights") == []

    ok(cluster.etlctl("suspend", "flights", kubeconfig=as_etlctl))
    assert cluster.batch.read_namespaced_cron_job("kubetl-flights", cluster.namespace).spec.suspend is True
    ok(cluster.etlctl("resume", "flights", kubeconfig=as_etlctl))
    assert cluster.batch.read_namespaced_cron_job("kubetl-flights", cluster.namespace).spec.suspend is False

    # --wait polls the Job until the (played) Job controller finishes it.
    thread = finish_when_created(cluster, "flights", known=set())
    out = ok(cluster.etlctl("run", "flights", "--interval", "2013-02-01/2013-03-01", "--wait", kubeconfig=as_etlctl))
    thread.join()
    assert "succeeded" in out.stderr

    # A backfill: list, create and poll as one loop; the interval that succeeded above is skipped.
    thread = finish_when_created(cluster, "flights", known={j.metadata.name for j in cluster.jobs("flights")})
    out = ok(cluster.etlctl("backfill", "flights", "--from", "2013-02-01", "--to", "2013-04-01", "-o", "json",
                            kubeconfig=as_etlctl))
    thread.join()
    assert [(r["interval"][:10], r["status"]) for r in json.loads(out.stdout)] == [
        ("2013-02-01", "skipped"), ("2013-03-01", "succeeded")]


@pytest.mark.parametrize("args, verb, resource", [
    (["get", "secrets"], "list", "secrets"),                            # the database password
    (["get", "secret", "kubetl-postgresql"], "get", "secrets"),
    (["delete", "cronjob", "kubetl-flights"], "delete", "cronjobs"),     # helm owns the CronJobs
    (["get", "cronjob", "kubetl-flights"], "get", "cronjobs"),           # etlctl lists by label, never gets by name
    (["create", "cronjob", "x", "--image=busybox:1.36", "--schedule=@daily"], "create", "cronjobs"),
    (["get", "jobs", "--watch-only", "--request-timeout=10s"], "watch", "jobs"),  # etlctl polls
    (["get", "pod", "any"], "get", "pods"),
    (["delete", "pod", "any"], "delete", "pods"),
    (["get", "configmaps"], "list", "configmaps"),
    (["get", "rolebindings"], "list", "rolebindings"),
])
def test_what_the_role_leaves_out_is_forbidden(cluster, as_etlctl, args, verb, resource):
    out = kubectl_as(cluster, as_etlctl, *args)
    assert out.returncode != 0
    user = f"system:serviceaccount:{cluster.namespace}:{SERVICE_ACCOUNT}"
    assert f'forbidden: User "{user}" cannot {verb} resource "{resource}"' in out.stderr, out.stderr


def test_runs_are_created_and_deleted_never_changed(cluster, as_etlctl):
    run = json.loads(ok(cluster.etlctl("run", "flights", "-o", "json", kubeconfig=as_etlctl)).stdout)["run"]
    user = f"system:serviceaccount:{cluster.namespace}:{SERVICE_ACCOUNT}"
    out = kubectl_as(cluster, as_etlctl, "label", "job", run, "x=y")
    assert out.returncode != 0 and f'forbidden: User "{user}" cannot patch resource "jobs"' in out.stderr, out.stderr
    batch = client.BatchV1Api(config.new_client_from_config(config_file=str(as_etlctl)))
    with pytest.raises(client.ApiException) as refused:
        batch.patch_namespaced_job_status(run, cluster.namespace, {"status": {"active": 1}})
    assert refused.value.status == 403
    assert f'User "{user}" cannot patch resource "jobs/status"' in json.loads(refused.value.body)["message"]


def test_a_role_binds_in_its_namespace_only(cluster, as_etlctl):
    out = kubectl_as(cluster, as_etlctl, "get", "cronjobs", "-n", "default")
    assert out.returncode != 0 and 'cannot list resource "cronjobs" in API group "batch" in the namespace "default"' in out.stderr


def test_etlctl_outside_its_namespace_is_forbidden(cluster, as_etlctl):
    out = cluster.etlctl("-n", "default", "list", kubeconfig=as_etlctl)
    assert out.returncode == 1
    assert "forbidden: you may not list" in out.stderr and "in namespace 'default'" in out.stderr


def test_the_api_server_grants_the_service_account_exactly_the_role(cluster, rbac_objects, as_etlctl):
    """SelfSubjectRulesReview, asked as the ServiceAccount: beyond the self-reviews
    every authenticated user may make, exactly the expected rules."""
    api = config.new_client_from_config(config_file=str(as_etlctl))
    review = client.AuthorizationV1Api(api).create_self_subject_rules_review({"spec": {"namespace": cluster.namespace}})
    self_reviews = {"authorization.k8s.io", "authentication.k8s.io"}
    granted = {(g, r, v) for rule in review.status.resource_rules if not set(rule.api_groups or []) <= self_reviews
               for g in rule.api_groups for r in rule.resources for v in rule.verbs}
    assert granted == EXPECTED == role_rules(rbac_objects)
    assert not review.status.incomplete


def api_calls() -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every Kubernetes API call in controller/.

    Calls are `kube.request(VERB, RESOURCE, ...)`, with RESOURCE named as RBAC
    does ("jobs.batch", "pods/log"); `runs._list(kube, RESOURCE, ...)` lists
    RESOURCE ("cronjobs", "jobs": batch; "pods": core)."""
    calls: set[tuple[str, str, str]] = set()
    unresolved = []
    for path in sorted((ROOT / "controller").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Attribute, ast.Name)):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if ast.unparse(node.func) == "self.http.request":  # Kube.request's own HTTP call
                continue
            constants = [a.value if isinstance(a, ast.Constant) else None for a in node.args[:2]]
            if name == "request" and len(constants) == 2:
                verb, resource = constants
                if verb and resource:
                    plural, _, group = resource.partition(".")
                    calls.add((group, plural, verb))
                elif not (path.name == "runs.py" and verb == "list"):  # _list's own call, resolved at its call sites
                    unresolved.append(f"{path.name}:{node.lineno}")
            elif name == "_list" and len(constants) == 2:
                if constants[1] is None:
                    unresolved.append(f"{path.name}:{node.lineno}")
                else:
                    calls.add(("" if constants[1] == "pods" else "batch", constants[1], "list"))
    assert not unresolved, f"API calls this test cannot read (name their verb and resource as literals): {unresolved}"
    return calls


def test_the_role_is_exactly_the_api_calls_in_controller(helm):
    """A new call in controller/ must come with its rule in the chart's Role, and a rule nothing calls must go."""
    rendered = subprocess.run([helm, "template", "kubetl", str(CHART), "--show-only", "templates/serviceaccounts.yaml"],
                              capture_output=True, text=True, check=True).stdout
    assert api_calls() == role_rules([d for d in yaml.safe_load_all(rendered) if d]) == EXPECTED
