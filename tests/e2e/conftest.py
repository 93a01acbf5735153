"""End-to-end suite: the product as a user meets it, on a real cluster.

Any cluster works: set KUBECONFIG and KUBETL_IMAGE_LOAD to the command that
copies a local docker image into it (e.g. `kind load docker-image`), and
KUBETL_BASE_IMAGE / KUBETL_POSTGRES_IMAGE if the defaults (official images) do
not suit. Without KUBETL_IMAGE_LOAD the suite brings up the project's local
cluster (hack/cluster.sh) and builds everything from the registry-free local
base images (hack/images.sh).
"""
from __future__ import annotations

import copy
import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from e2e_support import DATA, ETL_JOB, Target, delete_namespace, new_namespace, sh
from support import CHART, ROOT, nycflights13_data


@pytest.fixture(scope="session")
def target(tools) -> Target:
    if os.environ.get("KUBETL_IMAGE_LOAD"):
        if not os.environ.get("KUBECONFIG"):
            raise pytest.UsageError("KUBETL_IMAGE_LOAD names how to load images into a cluster; set KUBECONFIG to that cluster too")
        return Target(Path(os.environ["KUBECONFIG"]), shlex.split(os.environ["KUBETL_IMAGE_LOAD"]),
                      os.environ.get("KUBETL_BASE_IMAGE", "python:3.11-slim"),
                      os.environ.get("KUBETL_POSTGRES_IMAGE", "postgres:16"), postgres_is_local=False)
    sh(str(ROOT / "hack" / "images.sh"), timeout=1800)
    kubeconfig = Path(sh(str(ROOT / "hack" / "cluster.sh"), "up", timeout=3600).stdout.strip().splitlines()[-1])
    return Target(kubeconfig, [str(ROOT / "hack" / "cluster.sh"), "load"], "kubetl.local/python:3.11",
                  "kubetl.local/postgres:15", postgres_is_local=True)


@pytest.fixture(scope="session")
def image(target: Target) -> str:
    """The kubetl image, built from this checkout and loaded into the cluster."""
    tag = "kubetl:e2e"
    sh("docker", "build", "-q", "--build-arg", f"BASE_IMAGE={target.base_image}", "-t", tag, str(ROOT), timeout=1800)
    target.load_images(tag, *([target.postgres_image] if target.postgres_is_local else []))
    return tag


@pytest.fixture(scope="module")
def namespace(target, tools, image):
    ns = new_namespace(target, tools, "e2e")
    yield ns
    delete_namespace(ns)


def e2e_values(target: Target) -> dict:
    """The flights example as shipped, plus what the tests need: a pipeline
    firing every minute, a pipeline with a broken input, a copy of `flights`
    held to a tenth of a CPU (slow enough to be killed mid-load), small requests."""
    repository, tag = target.postgres_image.rsplit(":", 1)
    small = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
    throttled = copy.deepcopy(yaml.safe_load((CHART / "values.yaml").read_text())["pipelines"]["flights"])
    throttled.pop("schedule")
    throttled["load"]["table"] = "flights_throttled"
    throttled["kubernetes"] = {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                             "limits": {"cpu": "100m", "memory": "1Gi"}}}
    return {
        "image": {"repository": "kubetl", "tag": "e2e", "pullPolicy": "Never"},
        "jobDefaults": {"resources": small, "backoffLimit": 2},
        "pipelines": {
            "airlines": {"schedule": "* * * * *", "timezone": "UTC"},
            "flights-throttled": throttled,
            "broken-input": {
                "description": "Expects a column the file lacks: the run must fail, loading nothing.",
                "source": {"format": "csv", "path": f"{DATA}/planes.csv", "dtypes": {"seats": "int", "wingspan": "int"}},
                "load": {"table": "broken", "mode": "append"},
            },
        },
        "postgresql": {
            "image": {"repository": repository, "tag": tag, "pullPolicy": "Never" if target.postgres_is_local else "IfNotPresent"},
            "persistence": {"size": "1Gi"},
            "resources": small,
        },
    }


@pytest.fixture(scope="module")
def values_file(target, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("values") / "e2e.yaml"
    path.write_text(yaml.safe_dump(e2e_values(target)))
    return path


@pytest.fixture(scope="session")
def expected_rows(tmp_path_factory):
    """Rows a clean run of the chart's `flights` pipeline loads for an interval,
    computed here by etl-job on SQLite from the same data, as an independent count."""

    pipelines = yaml.safe_load((CHART / "values.yaml").read_text())["pipelines"]
    config = tmp_path_factory.mktemp("expected") / "pipelines.yaml"
    config.write_text(yaml.safe_dump({"pipelines": pipelines}))
    cache: dict[str, int] = {}

    def rows(interval: str) -> int:
        if interval not in cache:
            db = config.parent / f"{len(cache)}.db"
            env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "NYCFLIGHTS13_DATA": str(nycflights13_data()),
                   "KUBETL_CONFIG": str(config)}
            sh(ETL_JOB, "run", "flights", "--interval", interval, env=env)
            out = sh(ETL_JOB, "runs", "-o", "json", env=env).stdout
            cache[interval] = json.loads(out)[0]["rows_loaded"]
        return cache[interval]

    return rows
