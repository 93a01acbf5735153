"""The compose stack, with the local images: the ETL service builds on the local base and
loads the flights once PostgreSQL is healthy."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from docker_support import POSTGRES_IMAGE, ROOT, psql, sh

pytestmark = pytest.mark.docker


def compose_command() -> list[str]:
    """The Compose v2 plugin where it is installed, else docker-compose v1: what hack/images.sh
    installs from Debian bookworm, which packages no v2."""
    if sh("docker", "compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"]


def test_stack_builds_on_the_local_base_and_runs_the_pipeline_once_postgres_is_healthy(image):
    project = f"kubetltest{uuid.uuid4().hex[:6]}"
    tag = f"kubetl:test-{project}"
    # The compose file builds the etl image itself, on the base its variable names (python:3.11-slim
    # cannot be pulled here, so a build that ignored it would fail).
    env = {"KUBETL_BASE_IMAGE": "kubetl.local/python:3.11", "KUBETL_IMAGE": tag, "POSTGRES_IMAGE": POSTGRES_IMAGE,
           "COMPOSE_PROJECT_NAME": project, "PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_CLI_HINTS": "false"}
    compose = (*compose_command(), "-f", str(ROOT / "docker-compose.yaml"))
    try:
        sh(*compose, "build", "etl", env=env)
        labels = json.loads(sh("docker", "image", "inspect", "-f", "{{json .Config.Labels}}", tag).stdout)
        assert labels["org.opencontainers.image.title"] == "kubetl"
        up = sh(*compose, "up", "--no-build", "--exit-code-from", "etl", "etl", env=env, check=False)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert "loaded 328063 rows into flights_all" in up.stdout
        # --exit-code-from implies --abort-on-container-exit, which may stop postgres with etl:
        # start it again (a no-op if it runs) and read the table from its named volume.
        container = sh(*compose, "ps", "-a", "-q", "postgres", env=env).stdout.strip()
        assert container, "no postgres container in the compose project"
        sh(*compose, "start", "postgres", env=env)
        for _ in range(120):
            if sh("docker", "exec", container, "pg_isready", "-h", "127.0.0.1", "-U", "kubetl", "-d", "kubetl", check=False).returncode == 0:
                break
            time.sleep(0.5)
        assert psql(container, "select count(*) from flights_all") == "328063"
    finally:
        sh(*compose, "down", "-v", env=env, check=False)
        sh("docker", "rmi", tag, check=False)

