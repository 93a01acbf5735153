"""`kubectl apply -f manifests/` installs the same system as the chart, as
hack/render-manifests.sh documents it: a Secret `kubetl-postgresql` made by the
user, images by their default names. The manifests name namespace `kubetl`
once (etlctl's RoleBinding); the test retargets that to a namespace of its own,
as a user would with kustomize, so it never touches a real `kubetl` namespace."""
from __future__ import annotations

import secrets

import pytest
import yaml

from e2e_support import delete_namespace, new_namespace, sh
from support import CHART, ROOT

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def kubetl_namespace(target, tools, image):
    ns = new_namespace(target, tools, "manifests")
    yield ns
    delete_namespace(ns)


@pytest.fixture(scope="module")
def default_images(target, image) -> None:
    """The images under the names the manifests use. On kind the cluster pulls
    postgres:16 itself; on the local cluster, which cannot pull, the locally
    built PostgreSQL image stands in under that name."""
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    names = [f"kubetl:{app_version}"]
    sh("docker", "tag", image, names[0])
    if target.postgres_is_local:
        sh("docker", "tag", target.postgres_image, "postgres:16")
        names.append("postgres:16")
    target.load_images(*names)


def test_kubectl_apply_of_manifests_installs_a_working_system(kubetl_namespace, default_images):
    ns = kubetl_namespace
    ns.kubectl("create", "secret", "generic", "kubetl-postgresql", f"--from-literal=password={secrets.token_hex(12)}")
    manifests = (ROOT / "manifests" / "kubetl.yaml").read_text()
    assert manifests.count("namespace: kubetl\n") == 1
    ns.kubectl("apply", "-f", "-", input=manifests.replace("namespace: kubetl\n", f"namespace: {ns.name}\n"))
    ns.kubectl("rollout", "status", "statefulset/kubetl-postgresql", "--timeout=300s", timeout=320)

    listed = ns.etlctl("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"airlines", "flights"} <= {p["pipeline"] for p in yaml.safe_load(listed.stdout)}

    out = ns.etlctl("run", "airlines", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ns.sql("SELECT count(*) FROM airlines") == "16"
