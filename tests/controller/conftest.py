"""etlctl against a real kube-apiserver + etcd holding the chart's objects."""
from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client, config

import apiserver

ROOT = Path(__file__).resolve().parents[2]
ETLCTL = str(Path(sys.executable).parent / "etlctl")


class Cluster:
    """One test's namespace, with the chart installed in it (objects only: nothing runs)."""

    def __init__(self, plane: apiserver.ControlPlane, tools: Path, namespace: str) -> None:
        self.plane, self.tools, self.namespace = plane, tools, namespace
        self.kubeconfig = plane.kubeconfig(namespace=namespace)
        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        self.batch, self.core = client.BatchV1Api(api), client.CoreV1Api(api)

    def kubectl(self, *args: str, input: str | None = None) -> str:
        out = subprocess.run([str(self.tools / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                             input=input, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def etlctl(self, *args: str, kubeconfig: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([ETLCTL, "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=timeout)

    def jobs(self, pipeline: str | None = None) -> list[client.V1Job]:
        selector = f"kubetl.io/pipeline={pipeline}" if pipeline else "kubetl.io/pipeline"
        return self.batch.list_namespaced_job(self.namespace, label_selector=selector).items

    def finish(self, name: str, succeeded: bool = True) -> None:
        """Do what the Job controller would when the pod ends."""
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        started = self.batch.read_namespaced_job_status(name, self.namespace).status.start_time
        started = started.strftime("%Y-%m-%dT%H:%M:%SZ") if started else now  # the API server refuses to change it
        if succeeded:
            conditions = [{"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
                          {"type": "Complete", "status": "True", "lastTransitionTime": now}]
            status = {"startTime": started, "completionTime": now, "active": 0, "succeeded": 1, "conditions": conditions}
        else:
            conditions = [{"type": "FailureTarget", "status": "True", "lastTransitionTime": now},
                          {"type": "Failed", "status": "True", "lastTransitionTime": now}]
            status = {"startTime": started, "active": 0, "failed": 1, "conditions": conditions}
        self.batch.patch_namespaced_job_status(name, self.namespace, {"status": status})

    def scheduled_job(self, cronjob_name: str, tick: datetime) -> str:
        """Create the Job the CronJob controller makes for TICK (its name, annotation and controller reference)."""
        cronjob = self.batch.read_namespaced_cron_job(cronjob_name, self.namespace)
        template = self.batch.api_client.sanitize_for_serialization(cronjob.spec.job_template)
        name = f"{cronjob_name}-{int(tick.timestamp()) // 60}"
        metadata = {**template.get("metadata", {}), "name": name,
                    "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": tick.strftime("%Y-%m-%dT%H:%M:%SZ")},
                    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cronjob_name,
                                         "uid": cronjob.metadata.uid, "controller": True, "blockOwnerDeletion": True}]}
        self.batch.create_namespaced_job(self.namespace, {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
                                                          "spec": template["spec"]})
        return name

    def start_running(self, name: str) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.batch.patch_namespaced_job_status(name, self.namespace, {"status": {"startTime": now, "active": 1}})


@pytest.fixture
def cluster(control_plane, tools) -> Cluster:
    namespace = f"etl-{uuid.uuid4().hex[:8]}"
    admin = Cluster(control_plane, tools, "default")
    admin.kubectl("create", "namespace", namespace)
    admin.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    cluster = Cluster(control_plane, tools, namespace)
    rendered = subprocess.run([str(tools / "helm"), "template", "kubetl", str(ROOT / "charts" / "kubetl"), "-n", namespace,
                               "--skip-tests"], capture_output=True, text=True, check=True).stdout
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=rendered)
    return cluster
