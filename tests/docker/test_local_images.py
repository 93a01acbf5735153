"""The registry-free images hack/images.sh builds, held to the official images' contracts."""
from __future__ import annotations

import pytest

from docker_support import psql, start_postgres

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("command", [("postgres", "-c", "max_connections=42"), ("-c", "max_connections=42")],
                         ids=["postgres-c", "bare-c"])
def test_postgres_passes_server_options_through(base_images, network, command):
    # As with the official image: `docker run IMAGE postgres -c name=value`, or just `-c name=value`.
    name, containers = network
    server, _ = start_postgres(name, containers, *command)
    assert psql(server, "show max_connections") == "42"
    assert psql(server, "show listen_addresses") == "*"
