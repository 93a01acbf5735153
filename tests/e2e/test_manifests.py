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
def manifests(target, image, kubetl_namespace) -> str:
    """manifests/kubetl.yaml for this namespace, its images loaded. The kubetl image is
    tagged with the name the manifests use. PostgreSQL: kind pulls postgres:16 itself;
    the local cluster, which cannot pull, gets the local image written in its place
    (the user's own postgres:16 tag is left alone)."""
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    sh("docker", "tag", image, f"kubetl:{app_version}")
    target.load_images(f"kubetl:{app_version}")
    text = (ROOT / "manifests" / "kubetl.yaml").read_text()
    assert text.count("namespace: kubetl\n") == 1 and text.count('image: "postgres:16"') == 1
    text = text.replace("namespace: kubetl\n", f"namespace: {kubetl_namespace.name}\n")
    if target.postgres_is_local:
        text = text.replace('image: "postgres:16"', f'image: "{target.postgres_image}"')
    return text


def test_kubectl_apply_of_manifests_installs_a_working_system(kubetl_namespace, manifests):
    ns = kubetl_namespace
    ns.kubectl("create", "secret", "generic", "kubetl-postgresql", f"--from-literal=password={secrets.token_hex(12)}")
    ns.kubectl("apply", "-f", "-", input=manifests)
    ns.kubectl("rollout", "status", "statefulset/kubetl-postgresql", "--timeout=300s", timeout=320)

    listed = ns.etlctl("list", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert {"airlines", "flights"} <= {p["pipeline"] for p in yaml.safe_load(listed.stdout)}

    out = ns.etlctl("run", "airlines", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert ns.sql("SELECT count(*) FROM airlines") == "16"
