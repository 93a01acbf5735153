"""The kubetl image, built here with no registry, run as users will run it."""
from __future__ import annotations

import base64
import json
import re
import shutil
import uuid

import pytest

import apiserver
from docker_support import ROOT, build, image_size, layers, psql, sh

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
    # The image sets KUBETL_CONFIG (the examples); KUBETL_CONFIG_YAML outranks it.
    from_env = sh(*RUN, "-e", f"KUBETL_CONFIG_YAML={config.read_text()}", image, "list", "-o", "json")
    assert [p["name"] for p in json.loads(from_env.stdout)] == ["one"]


def test_bad_config_exits_2_with_the_key_path(image):
    bad = "pipelines:\n  one:\n    source: {format: xml, path: x}\n    load: {table: t}\n"
    out = sh(*RUN, "-e", f"KUBETL_CONFIG_YAML={bad}", image, "run", "one", check=False)
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


def test_a_one_line_code_change_rebuilds_and_ships_only_the_source_layer(image, tmp_path, capsys):
    # The change goes into a copy of the build context (what .dockerignore admits), never the repo.
    context = tmp_path / "context"
    context.mkdir()
    for name in ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    for name in ("job", "controller", "examples"):
        shutil.copytree(ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    marker = f"0.1.0+rebuild.{uuid.uuid4().hex[:8]}"
    init = context / "job" / "__init__.py"
    changed, count = re.subn(r"^__version__ = .*$", f'__version__ = "{marker}"', init.read_text(), flags=re.M)
    assert count == 1
    init.write_text(changed)

    tag = f"kubetl:test-rebuild-{uuid.uuid4().hex[:6]}"
    rebuild = build(tag, "kubetl.local/python:3.11", context)
    try:
        shipped = next(int(size) for size in sh("docker", "history", "--human=false", "--format", "{{.Size}}", tag).stdout.split()
                       if int(size) > 0)
        with capsys.disabled():
            print(f"\n[image] {image}: {image_size(image) / 1e6:.0f} MB; rebuild after a one-line code change: "
                  f"{rebuild.seconds:.1f} s, shipping one {shipped / 1e3:.0f} kB layer")
        # The dependencies came from the cache, the project was reinstalled ...
        assert rebuild.cached("-r /tmp/requirements.txt") and rebuild.cached("compileall"), rebuild.log[-4000:]
        assert not rebuild.cached("--root /stage"), rebuild.log[-4000:]
        # ... the new image runs the changed code ...
        assert sh(*RUN, tag, "version").stdout.strip() == marker
        # ... and differs from the old one in its last layer only: that is all a push or a node pulls.
        before, after = layers(image), layers(tag)
        assert after[:-1] == before[:-1] and after[-1] != before[-1]
    finally:
        sh("docker", "rmi", tag, check=False)


def test_etlctl_in_the_image_starts_a_run_on_a_real_api_server(image, control_plane, tmp_path):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(control_plane.kubeconfig()))
    namespace = f"docker-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace({"metadata": {"name": namespace}})
    pod = {"restartPolicy": "Never", "containers": [{"name": "etl", "image": image, "args": ["run", "flights-all"]}]}
    client.BatchV1Api(api).create_namespaced_cron_job(namespace, {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "kubetl-flights-all", "labels": {"kubetl.io/pipeline": "flights-all"}},
        "spec": {"schedule": "0 6 * * *", "jobTemplate": {"spec": {"template": {"spec": pod}}}}})
    # A kubeconfig the container's user can read, with the CA inline and the admin token.
    ca = base64.b64encode((control_plane.directory / "certs" / "apiserver.crt").read_bytes()).decode()
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: test\n  cluster:\n    server: {control_plane.server}\n    certificate-authority-data: {ca}\n"
        f"users:\n- name: admin\n  user:\n    token: {apiserver.ADMIN_TOKEN}\n"
        f"contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\n    namespace: {namespace}\n"
        "current-context: test\n")
    tmp_path.chmod(0o755)
    (tmp_path / "config").chmod(0o644)
    try:
        out = sh(*RUN, "--network", "host", "-v", f"{tmp_path}:/kube:ro", "--entrypoint", "etlctl", image,
                 "--kubeconfig", "/kube/config", "run", "flights-all", "--interval", "2013-01-01/2013-02-01", "-o", "json")
        run = json.loads(out.stdout)
        jobs = client.BatchV1Api(api).list_namespaced_job(namespace).items
        assert [job.metadata.name for job in jobs] == [run["run"]]
        assert jobs[0].spec.template.spec.containers[0].args[:3] == ["run", "flights-all", "--interval"]
        assert run["pipeline"] == "flights-all" and run["interval"].startswith("2013-01-01")
    finally:
        client.CoreV1Api(api).delete_namespace(namespace)
