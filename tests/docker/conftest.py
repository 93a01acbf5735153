"""Docker suite: builds the registry-free base images (hack/images.sh installs
Docker and starts dockerd when needed) and the kubetl image on them."""
from __future__ import annotations

import os
import uuid

import pytest

from docker_support import ROOT, build, sh, start_postgres


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
    server, env = start_postgres(name, containers)
    return name, server, env


os.environ.setdefault("DOCKER_CLI_HINTS", "false")
