"""The compose stack, with the local images: the ETL service builds on the local base and
loads the flights once PostgreSQL is healthy; pgAdmin comes up wired to the database."""
from __future__ import annotations

import http.cookiejar
import json
import re
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from docker_support import POSTGRES_IMAGE, ROOT, psql, sh
from pg import free_port

pytestmark = pytest.mark.docker
PGADMIN_IMAGE = "kubetl.local/pgadmin4:9"


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


@pytest.fixture(scope="session")
def pgadmin_image(base_images) -> str:
    sh(str(ROOT / "hack" / "images.sh"), "pgadmin")
    return PGADMIN_IMAGE


def test_pgadmin_profile_serves_pgadmin_with_the_database_registered_and_reachable(pgadmin_image):
    project = f"kubetltest{uuid.uuid4().hex[:6]}"
    port = free_port()
    env = {"PGADMIN_IMAGE": pgadmin_image, "POSTGRES_IMAGE": POSTGRES_IMAGE, "PGADMIN_PORT": str(port),
           "PGADMIN_PASSWORD": "admin-pw", "POSTGRES_PASSWORD": "db-pw", "COMPOSE_PROJECT_NAME": project,
           "PATH": "/usr/local/bin:/usr/bin:/bin", "DOCKER_CLI_HINTS": "false"}
    compose = (*compose_command(), "-f", str(ROOT / "docker-compose.yaml"), "--profile", "pgadmin")
    base = f"http://127.0.0.1:{port}"
    try:
        sh(*compose, "up", "-d", "pgadmin", env=env)
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{base}/misc/ping", timeout=5).read() == b"PING":
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError(sh(*compose, "logs", "pgadmin", env=env, check=False).stdout[-3000:])
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        with browser.open(f"{base}/login", timeout=30) as response:
            csrf = re.search(r'"csrfToken": "([^"]+)"', response.read().decode()).group(1)

        def call(path: str, body: dict | None = None, form: bool = False) -> tuple[str, str]:
            """PATH as pgAdmin's own UI calls it (the CSRF header on every request): (final URL, body)."""
            headers, data = {"X-pgA-CSRFToken": csrf}, None
            if body is not None:
                data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
            with browser.open(urllib.request.Request(base + path, data=data, headers=headers), timeout=30) as response:
                return response.geturl(), response.read().decode()

        # The compose file's login: the default e-mail, PGADMIN_PASSWORD
        url, _ = call("/authenticate/login", {"email": "admin@example.com", "password": "admin-pw",
                                              "csrf_token": csrf}, form=True)
        assert "/login" not in url, "pgAdmin refused the compose file's login"
        # The server from hack/compose/pgadmin-servers.json, loaded for that login ...
        groups = json.loads(call("/browser/server_group/nodes/")[1])["data"]
        servers = json.loads(call(f"/browser/server/nodes/{groups[0]['_id']}/")[1])["result"]
        assert [s["label"] for s in servers] == ["kubetl (compose)"]
        # ... which connects, through the compose network, to the compose PostgreSQL.
        _, connected = call(f"/browser/server/connect/{groups[0]['_id']}/{servers[0]['_id']}",
                            {"password": "db-pw", "save_password": False})
        assert json.loads(connected)["data"]["connected"] is True
        assert json.loads(connected)["data"]["version"] // 10000 == 15  # kubetl.local/postgres:15
    finally:
        sh(*compose, "down", "-v", env=env, check=False)
