"""The GitHub workflow and skaffold.yaml, checked with what can run here.

actionlint is built from the Go module proxy (cached under ~/.cache/kubetl).
skaffold.yaml is validated against the JSON schema skaffold publishes, taken
from its module source on the Go module proxy (no skaffold binary is built),
and checked for what skaffold would do with it: the build and the helm release
it describes work with this repository's Dockerfile and chart."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from support import CHART, ROOT

ACTIONLINT = "v1.7.12"
SKAFFOLD = "v2.16.1"  # its source carries the published config schemas, docs-v2/content/en/schemas


def go_env() -> dict[str, str]:
    cache = Path(os.environ.get("KUBETL_CACHE", Path.home() / ".cache" / "kubetl"))
    return {**os.environ, "GOMODCACHE": str(cache / "k8s" / "go" / "mod"), "GOCACHE": str(cache / "k8s" / "go" / "build"),
            "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}


@pytest.fixture(scope="session")
def actionlint() -> str:
    cache = Path(os.environ.get("KUBETL_CACHE", Path.home() / ".cache" / "kubetl"))
    gobin = cache / "bin" / f"actionlint-{ACTIONLINT}"
    binary = gobin / "actionlint"
    if not binary.exists():
        env = {**go_env(), "GOBIN": str(gobin)}
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


@pytest.fixture(scope="module")
def skaffold_schemas() -> Path:
    out = subprocess.run(["go", "mod", "download", "-json", f"github.com/GoogleContainerTools/skaffold/v2@{SKAFFOLD}"],
                         env=go_env(), check=True, capture_output=True, text=True, timeout=900)
    return Path(json.loads(out.stdout)["Dir"]) / "docs-v2" / "content" / "en" / "schemas"


def newest_schema(schemas: Path) -> str:
    def key(path: Path) -> tuple[int, int, int]:
        major, stage, number = re.fullmatch(r"v(\d+)(alpha|beta|)(\d*)", path.stem).groups()
        return int(major), {"alpha": 0, "beta": 1, "": 2}[stage], int(number or 0)
    return max(schemas.glob("v*.json"), key=key).stem


def test_skaffold_yaml_is_valid_for_the_newest_published_schema(skaffold, skaffold_schemas):
    version = newest_schema(skaffold_schemas)
    assert skaffold["apiVersion"] == f"skaffold/{version}"
    schema = json.loads((skaffold_schemas / f"{version}.json").read_text())
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(skaffold)]
    assert errors == []


def test_the_schema_check_catches_a_misspelt_key(skaffold, skaffold_schemas):
    schema = json.loads((skaffold_schemas / f"{newest_schema(skaffold_schemas)}.json").read_text())
    broken = {**skaffold, "deploy": {"helm": {"release": skaffold["deploy"]["helm"]["releases"]}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


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
