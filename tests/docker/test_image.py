"""The kubetl image, built here with no registry, run as users will run it."""
from __future__ import annotations

import json
import uuid

import pytest

from docker_support import ROOT, build, psql, sh

pytestmark = pytest.mark.docker
RUN = ("docker", "run", "--rm", "--read-only", "--tmpfs", "/tmp")


def env_args(env: dict[str, str]) -> list[str]:
    return [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]


def test_flights_example_loads_into_postgres_from_a_read_only_non_root_container(image, postgres):
    network, server, env = postgres
    out = sh(*RUN, "--network", network, *env_args(env), image, "run", "flights-all")
    assert "loaded 328063 rows into flights_all (336776 read, 8713 rejected" in out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["event"] == "run.succeeded"
    assert psql(server, "select count(*) from flights_all") == "328063"
    assert psql(server, "select count(*) from etl_rejects") == "8713"


def test_runs_as_a_fixed_non_root_user_with_a_read_only_root(image):
    assert sh(*RUN, "--entrypoint", "id", image, "-u").stdout.strip() == "10001"
    config = json.loads(sh("docker", "image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["etl-job"]
    assert config["Labels"]["org.opencontainers.image.title"] == "kubetl"
    write = sh(*RUN, "--entrypoint", "sh", image, "-c", "touch /opt/kubetl/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_embedded_default_needs_no_database(image):
    out = sh(*RUN, image, "run", "airlines")
    assert "loaded 16 rows into airlines" in out.stderr


def test_config_from_a_mounted_file_and_from_an_env_var(image, tmp_path):
    config = tmp_path / "pipelines.yaml"
    config.write_text("pipelines:\n  one:\n    source: {format: csv, path: /data/x.csv}\n    load: {table: t}\n")
    tmp_path.chmod(0o755)  # the container's user is 10001, not us
    config.chmod(0o644)
    mounted = sh(*RUN, "-v", f"{tmp_path}:/config:ro", image, "validate", "-c", "/config/pipelines.yaml")
    assert mounted.stdout.strip() == "ok: 1 pipeline(s): one"
    from_env = sh(*RUN, "-e", f"KUBETL_CONFIG_YAML={config.read_text()}", "-e", "KUBETL_CONFIG=", image, "list", "-o", "json")
    assert json.loads(from_env.stdout)[0]["name"] == "one"


def test_bad_config_exits_2_with_the_key_path(image):
    bad = "pipelines:\n  one:\n    source: {format: xml, path: x}\n    load: {table: t}\n"
    out = sh(*RUN, "-e", f"KUBETL_CONFIG_YAML={bad}", "-e", "KUBETL_CONFIG=", image, "run", "one", check=False)
    assert out.returncode == 2
    assert "pipeline 'one': source: Input tag 'xml' found using 'format' does not match any of the expected tags" in out.stderr


def test_unreachable_database_exits_1(image, network):
    name, _ = network
    out = sh(*RUN, "--network", name, "-e", "PGHOST=nobody-here", "-e", "PGUSER=x", image, "run", "airlines", check=False)
    assert out.returncode == 1 and "cannot reach the database" in out.stderr


def test_builds_and_runs_on_python_3_13(base_images):
    tag = "kubetl:test-py313"
    build(tag, "kubetl.local/python:3.13")
    assert sh(*RUN, "--entrypoint", "python3", tag, "--version").stdout.startswith("Python 3.13")
    assert "loaded 16 rows into airlines" in sh(*RUN, tag, "run", "airlines").stderr


def test_compose_stack_runs_the_pipeline_once_postgres_is_healthy(image):
    project = f"kubetltest{uuid.uuid4().hex[:6]}"
    env = {"KUBETL_IMAGE": image, "POSTGRES_IMAGE": "kubetl.local/postgres:15", "COMPOSE_PROJECT_NAME": project,
           "PATH": "/usr/local/bin:/usr/bin:/bin"}
    compose = ("docker-compose", "-f", str(ROOT / "docker-compose.yaml"))
    try:
        up = sh(*compose, "up", "--no-build", "--exit-code-from", "etl", "etl", env=env, check=False)
        assert up.returncode == 0, up.stdout[-2000:]
        assert "loaded 328063 rows into flights_all" in up.stdout
        count = sh("docker", "exec", f"{project}_postgres_1", "psql", "-U", "kubetl", "-d", "kubetl", "-tAc",
                   "select count(*) from flights_all")
        assert count.stdout.strip() == "328063"
    finally:
        sh(*compose, "down", "-v", env=env, check=False)
