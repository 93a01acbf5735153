"""Every object the chart renders, for several value sets, accepted by a real
kube-apiserver (server-side dry run: schema, defaulting, admission including
Pod Security "restricted" on the namespace)."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest
import yaml

from support import CHART, ROOT

VALUE_SETS = {
    "defaults": [],
    "pgadmin": ["--set", "pgadmin.enabled=true"],
    "external-db": ["--set", "postgresql.enabled=false", "--set", "externalDatabase.host=db.example",
                    "--set", "externalDatabase.existingSecret=db"],
    "container-job": ["--set-json", 'containerJobs={"vacuum":{"schedule":"0 3 * * *","image":{"repository":"postgres","tag":"16"},'
                      '"command":["psql","-c","VACUUM"]}}'],
    "existing-secret": ["--set", "postgresql.auth.existingSecret=warehouse-db"],
    # Names long enough that their CronJob names are cut to 52 characters.
    "many-pipelines": ["--set-json", "pipelines=" + json.dumps({
        f"p{i:02d}-hourly-clickstream-sessions-by-country-device": {
            "schedule": f"{i} * * * *", "source": {"format": "csv", "path": f"/d/{i}.csv"}, "load": {"table": f"t{i}"}}
        for i in range(30)})],
}


@pytest.fixture(scope="module")
def restricted_namespace(control_plane, tools):
    admin = control_plane.kubeconfig()
    name = f"dry-{uuid.uuid4().hex[:6]}"
    kubectl = [str(tools / "kubectl"), "--kubeconfig", str(admin)]
    subprocess.run([*kubectl, "create", "namespace", name], check=True, capture_output=True)
    subprocess.run([*kubectl, "label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted"],
                   check=True, capture_output=True)
    # What the ServiceAccount controller (absent here) does for every namespace.
    subprocess.run([*kubectl, "create", "serviceaccount", "default", "-n", name], check=True, capture_output=True)
    return kubectl, name


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_objects_pass_server_side_dry_run(restricted_namespace, tools, name):
    kubectl, namespace = restricted_namespace
    rendered = subprocess.run([str(tools / "helm"), "template", "kubetl", str(CHART), "-n", namespace, *VALUE_SETS[name]],
                              check=True, capture_output=True, text=True).stdout
    kinds = [d["kind"] for d in yaml.safe_load_all(rendered) if d]
    out = subprocess.run([*kubectl, "apply", "-n", namespace, "--dry-run=server", "-f", "-"],
                         input=rendered, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("(server dry run)") == len(kinds)
    assert "Warning" not in out.stderr, out.stderr


def test_plain_manifests_pass_server_side_dry_run(restricted_namespace):
    kubectl, namespace = restricted_namespace
    manifests = (ROOT / "manifests" / "kubetl.yaml").read_text()
    out = subprocess.run([*kubectl, "apply", "-n", namespace, "--dry-run=server", "-f", "-"],
                         input=manifests, capture_output=True, text=True)
    assert out.returncode == 0 and "Warning" not in out.stderr, out.stderr
