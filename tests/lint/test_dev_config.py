"""The GitHub workflow and skaffold.yaml, checked with what can run here.

actionlint is built from the Go module proxy (cached under ~/.cache/kubetl).
skaffold itself is not served by this machine's Go module proxy, so
skaffold.yaml is checked against what skaffold would do with it: its schema
version, and that the build and the helm release it describes work with this
repository's Dockerfile and chart."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from support import CHART, ROOT

ACTIONLINT = "v1.7.12"


@pytest.fixture(scope="session")
def actionlint() -> str:
    cache = Path(os.environ.get("KUBETL_CACHE", Path.home() / ".cache" / "kubetl"))
    gobin = cache / "bin" / f"actionlint-{ACTIONLINT}"
    binary = gobin / "actionlint"
    if not binary.exists():
        env = {**os.environ, "GOBIN": str(gobin), "GOMODCACHE": str(cache / "k8s" / "go" / "mod"),
               "GOCACHE": str(cache / "k8s" / "go" / "build"), "CGO_ENABLED": "0"}
        subprocess.run(["go", "install", f"github.com/rhysd/actionlint/cmd/actionlint@{ACTIONLINT}"],
                       env=env, check=True, capture_output=True, timeout=900)
    return str(binary)


def test_workflows_pass_actionlint(actionlint):
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    assert workflows
    out = subprocess.run([actionlint, "-no-color", *map(str, workflows)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    """The check above is only worth something if actionlint fails on a real mistake."""
    broken = tmp_path / ".github" / "workflows" / "broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n")
    out = subprocess.run([actionlint, "-no-color", str(broken)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 1 and "nope" in out.stdout


def test_the_kind_workflow_runs_the_e2e_suite_with_an_image_load_command():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "e2e-kind.yaml").read_text())
    steps = workflow["jobs"]["e2e"]["steps"]
    assert any(s.get("uses", "").startswith("helm/kind-action@") for s in steps)
    e2e = next(s for s in steps if "tests/e2e" in s.get("run", ""))
    assert e2e["env"]["KUBETL_IMAGE_LOAD"].startswith("kind load docker-image")


@pytest.fixture(scope="module")
def skaffold() -> dict:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


def test_skaffold_uses_the_current_schema(skaffold):
    # v4beta13 is the config version of skaffold v2.15 and later.
    assert skaffold["apiVersion"] == "skaffold/v4beta13" and skaffold["kind"] == "Config"


def test_skaffold_builds_this_dockerfile_with_its_base_image_argument(skaffold):
    [artifact] = skaffold["build"]["artifacts"]
    dockerfile = ROOT / artifact["context"] / artifact["docker"]["dockerfile"]
    assert dockerfile.is_file()
    args = re.findall(r"^ARG (\w+)", dockerfile.read_text(), re.M)
    assert set(artifact["docker"]["buildArgs"]) <= set(args)


def test_skaffold_deploys_the_chart_with_the_image_it_built(skaffold, helm, tmp_path):
    [release] = skaffold["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"]).resolve() == CHART
    image = skaffold["build"]["artifacts"][0]["image"]
    templates = release["setValueTemplates"]
    assert templates["image.repository"] == f"{{{{.IMAGE_REPO_{image}}}}}"
    assert templates["image.tag"] == f"{{{{.IMAGE_TAG_{image}}}}}"
    # What skaffold passes after filling the templates, rendered by the real helm.
    filled = {"image.repository": "kubetl", "image.tag": "abc123", "image.pullPolicy": templates["image.pullPolicy"]}
    args = [a for key, value in filled.items() for a in ("--set", f"{key}={value}")]
    out = subprocess.run([helm, "template", release["name"], str(CHART), "-n", release["namespace"], *args],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    images = {c["image"] for d in yaml.safe_load_all(out.stdout) if d and d["kind"] == "CronJob"
              for c in d["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]}
    assert images == {"kubetl:abc123"}
