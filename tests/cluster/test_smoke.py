"""The local cluster does what the project's Kubernetes claims rely on."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.cluster

BUSYBOX = "kubetl.local/busybox:2"
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SC = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def pod(name: str, command: str, **extra) -> str:
    spec = {"restartPolicy": "Never", "securityContext": RESTRICTED,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", command], "securityContext": CONTAINER_SC}]}
    spec.update(extra)
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec})


def wait_phase(kubectl, name: str, phase: str, timeout: int = 120) -> None:
    """Wait for a pod's phase; a pod that ends in another phase fails at once, with its logs."""
    deadline = time.monotonic() + timeout
    current = ""
    while time.monotonic() < deadline:
        current = kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}").stdout
        if current == phase:
            return
        if current in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    logs = kubectl("logs", name, check=False)
    raise AssertionError(f"pod {name} is {current or 'not started'}, not {phase}; logs:\n{logs.stdout}{logs.stderr}")


def test_node_is_ready(kubectl):
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.33.")


def test_a_pod_from_a_loaded_image_runs_and_its_logs_read_back(kubectl):
    kubectl("apply", "-f", "-", input=pod("hello", "echo hello from $(id -u)"))
    wait_phase(kubectl, "hello", "Succeeded")
    assert kubectl("logs", "hello").stdout.strip() == "hello from 1000"


def job_spec(command: str) -> dict:
    return {"backoffLimit": 0, "template": {"spec": json.loads(pod("x", command))["spec"]}}


def test_a_job_completes(kubectl):
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"}, "spec": job_spec("echo done")}
    kubectl("apply", "-f", "-", input=json.dumps(job))
    kubectl("wait", "job/once", "--for=condition=Complete", "--timeout=120s")


def test_a_cronjob_fires_and_its_job_completes(kubectl):
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": job_spec("echo tick")}}}
    kubectl("apply", "-f", "-", input=json.dumps(cronjob))
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        jobs = json.loads(kubectl("get", "jobs", "-o", "json").stdout)["items"]
        done = [j for j in jobs if any(c["type"] == "Complete" and c["status"] == "True" for c in j["status"].get("conditions", []))]
        if done:
            assert done[0]["metadata"]["ownerReferences"][0]["name"] == "tick"
            return
        time.sleep(3)
    raise AssertionError("the CronJob's Job did not complete within 150 s")


def test_a_pod_reaches_another_through_a_clusterip_service_by_dns_name(kubectl):
    kubectl("apply", "-f", "-", input=pod("web", "mkdir -p /tmp/www && echo it-works > /tmp/www/index.html && httpd -f -p 8080 -h /tmp/www"))
    kubectl("expose", "pod", "web", "--port=80", "--target-port=8080")
    wait_phase(kubectl, "web", "Running")
    fqdn = f"web.{kubectl.namespace}.svc.cluster.local"
    # busybox-static's wget crashes in glibc's static resolver; its nc and nslookup do not.
    request = r"printf 'GET / HTTP/1.0\r\n\r\n'"
    kubectl("apply", "-f", "-", input=pod("client", f"{request} | nc -w 5 {fqdn} 80 && {request} | nc -w 5 web 80"))
    wait_phase(kubectl, "client", "Succeeded")
    assert kubectl("logs", "client").stdout.count("it-works") == 2


def test_a_pvc_binds_and_its_data_survives_the_pod(kubectl):
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    kubectl("apply", "-f", "-", input=json.dumps(pvc))
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}

    def with_volume(name, command):
        manifest = json.loads(pod(name, command, **volume))
        manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        return json.dumps(manifest)

    kubectl("apply", "-f", "-", input=with_volume("writer", "echo kept > /data/file"))
    wait_phase(kubectl, "writer", "Succeeded")
    assert kubectl("get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout == "Bound"
    kubectl("delete", "pod", "writer")
    kubectl("apply", "-f", "-", input=with_volume("reader", "cat /data/file"))
    wait_phase(kubectl, "reader", "Succeeded")
    assert kubectl("logs", "reader").stdout.strip() == "kept"


def test_a_privileged_pod_is_rejected_in_a_restricted_namespace(kubectl):
    manifest = json.loads(pod("bad", "true"))
    manifest["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    out = kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False)
    assert out.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in out.stderr and "privileged" in out.stderr
