"""Docker suite: builds the registry-free base images (hack/images.sh installs
Docker and starts dockerd when needed) and the kubetl image on them."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from docker_support import ROOT, build, sh


@pytest.fixture(scope="session")
def base_images() -> None:
    sh(str(ROOT / "hack" / "images.sh"))


@pytest.fixture(scope="session")
def image(base_images) -> str:
    tag = "kubetl:test"
    build(tag, "kubetl.local/python:3.11")
    return tag


@pytest.fixture
def network():
    """A docker bridge network of the test's own; removed with everything on it."""
    name = f"kubetl-test-{uuid.uuid4().hex[:8]}"
    sh("docker", "network", "create", name)
    containers: list[str] = []
    yield name, containers
    for container in containers:
        sh("docker", "rm", "-f", "-v", container, check=False)
    sh("docker", "network", "rm", name, check=False)


@pytest.fixture
def postgres(network):
    """kubetl.local/postgres:15 on the test's network, ready for connections."""
    name, containers = network
    server = f"pg-{uuid.uuid4().hex[:8]}"
    sh("docker", "run", "-d", "--name", server, "--network", name, "-e", "POSTGRES_USER=kubetl",
       "-e", "POSTGRES_PASSWORD=pw", "-e", "POSTGRES_DB=kubetl", "kubetl.local/postgres:15")
    containers.append(server)
    for _ in range(120):
        if sh("docker", "exec", server, "pg_isready", "-h", "127.0.0.1", "-U", "kubetl", "-d", "kubetl", check=False).returncode == 0:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(sh("docker", "logs", server, check=False).stderr)
    env = {"PGHOST": server, "PGUSER": "kubetl", "PGPASSWORD": "pw", "PGDATABASE": "kubetl"}
    return name, server, env


os.environ.setdefault("DOCKER_CLI_HINTS", "false")
