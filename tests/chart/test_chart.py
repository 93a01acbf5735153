"""The Helm chart, rendered by a real helm: lint, value sets, schema, Pod
Security "restricted", RBAC, and manifests/ kept in sync."""
from __future__ import annotations

import base64
import json
import subprocess

import pytest
import yaml

from support import CHART, ROOT
from job.config import Pipeline, parse_config

DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
PIPELINE = {"source": {"format": "csv", "path": "/d/x.csv"}, "load": {"table": "t"}}


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[dict], kind: str, name: str) -> dict:
    return next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)


def pod_specs(docs: list[dict]) -> list[tuple[str, dict]]:
    specs = []
    for d in docs:
        if d["kind"] == "CronJob":
            specs.append((d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif d["kind"] in ("StatefulSet", "Deployment", "Job"):
            specs.append((d["metadata"]["name"], d["spec"]["template"]["spec"]))
        elif d["kind"] == "Pod":
            specs.append((d["metadata"]["name"], d["spec"]))
    return specs


def container_of(docs: list[dict], cronjob: str) -> dict:
    return named(docs, "CronJob", cronjob)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("values", [None, {"pgadmin": {"enabled": True}}, {"postgresql": {"enabled": False},
                         "externalDatabase": {"host": "db.example", "existingSecret": "db"}}])
def test_lint_strict(render, tmp_path, values):
    out = render.run("lint", "--strict", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_defaults_render_the_whole_system(render):
    docs = render.template()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["ConfigMap", "CronJob", "CronJob", "NetworkPolicy", "Pod", "Role", "RoleBinding", "Secret",
                            "Service", "Service", "ServiceAccount", "ServiceAccount", "StatefulSet"])
    flights = named(docs, "CronJob", "rel-kubetl-flights")
    assert flights["spec"]["schedule"] == "0 0 1 * *" and flights["spec"]["timeZone"] == "UTC"
    assert flights["spec"]["concurrencyPolicy"] == "Forbid" and "suspend" not in flights["spec"]
    container = flights["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["run", "flights", "--scheduled-at", "auto"]
    assert container["image"] == "kubetl:0.1.0"
    env = env_of(container)
    assert env["PGHOST"] == "rel-kubetl-postgresql"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "rel-kubetl-postgresql", "key": "password"}}
    assert env["KUBETL_JOB_NAME"] == {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}
    [helm_test] = of_kind(docs, "Pod")
    assert helm_test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert helm_test["spec"]["containers"][0]["args"] == ["init"]  # creates the ledger if missing, then reads it


def test_pipeline_without_schedule_gets_a_suspended_cronjob_for_ad_hoc_runs(render):
    airlines = named(render.template(), "CronJob", "rel-kubetl-airlines")
    assert airlines["spec"]["suspend"] is True
    assert airlines["metadata"]["annotations"]["kubetl.io/ad-hoc-only"] == "true"
    assert airlines["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["run", "airlines"]


def test_pipeline_label_on_cronjob_job_and_pod(render):
    for cron in of_kind(render.template(), "CronJob"):
        name = cron["metadata"]["labels"]["kubetl.io/pipeline"]
        job = cron["spec"]["jobTemplate"]
        assert job["metadata"]["labels"]["kubetl.io/pipeline"] == name
        assert job["spec"]["template"]["metadata"]["labels"]["kubetl.io/pipeline"] == name
        assert job["metadata"]["labels"]["kubetl.io/trigger"] == "scheduled"


def test_configmap_is_what_etl_job_accepts_without_chart_keys(render, tmp_path):
    values = {"pipelines": {"flights": {"kubernetes": {"suspend": True, "resources": {"limits": {"memory": "2Gi"}}}}}}
    docs = render.template(values, tmp_path)
    text = named(docs, "ConfigMap", "rel-kubetl-pipelines")["data"]["pipelines.yaml"]
    assert "kubernetes" not in yaml.safe_load(text)["pipelines"]["flights"]
    config = parse_config(text, env={})
    assert set(config.pipelines) == {"airlines", "flights"}
    assert config.pipeline("flights").load.mode == "overwrite_interval"
    cron = named(docs, "CronJob", "rel-kubetl-flights")
    assert cron["spec"]["suspend"] is True
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "2Gi"
    assert named(docs, "CronJob", "rel-kubetl-airlines")["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"][0]["resources"]["limits"]["memory"] == "1Gi"


def test_per_pipeline_image_and_settings(render, tmp_path):
    values = {"jobDefaults": {"backoffLimit": 5, "env": [{"name": "A", "value": "1"}]},
              "pipelines": {"flights": {"kubernetes": {"image": {"repository": "reg/etl", "digest": "sha256:" + "a" * 64},
                                                         "backoffLimit": 0, "nodeSelector": {"pool": "etl"}}}}}
    docs = render.template(values, tmp_path)
    flights = named(docs, "CronJob", "rel-kubetl-flights")["spec"]["jobTemplate"]["spec"]
    assert flights["backoffLimit"] == 0 and flights["template"]["spec"]["nodeSelector"] == {"pool": "etl"}
    assert flights["template"]["spec"]["containers"][0]["image"] == "reg/etl@sha256:" + "a" * 64
    airlines = named(docs, "CronJob", "rel-kubetl-airlines")["spec"]["jobTemplate"]["spec"]
    assert airlines["backoffLimit"] == 5 and env_of(airlines["template"]["spec"]["containers"][0])["A"] == "1"


@pytest.mark.parametrize("override, image, pull_policy", [
    ({}, f"kubetl@{DIGEST}", "IfNotPresent"),
    ({"pullPolicy": "Always"}, f"kubetl@{DIGEST}", "Always"),
    # Another tag or repository is another image: the chart-wide digest pins kubetl:<appVersion> only.
    ({"tag": "0.2.0"}, "kubetl:0.2.0", "IfNotPresent"),
    ({"repository": "mirror.example/kubetl"}, "mirror.example/kubetl:0.1.0", "IfNotPresent"),
    ({"repository": "mirror.example/kubetl", "digest": OTHER_DIGEST}, f"mirror.example/kubetl@{OTHER_DIGEST}", "IfNotPresent"),
    ({"digest": OTHER_DIGEST}, f"kubetl@{OTHER_DIGEST}", "IfNotPresent"),
], ids=["none", "pull-policy", "tag", "repository", "repository-and-digest", "digest"])
def test_pipeline_image_override_and_the_chart_wide_digest(render, tmp_path, override, image, pull_policy):
    values = {"image": {"digest": DIGEST}, "pipelines": {"flights": {"kubernetes": {"image": override}}}}
    docs = render.template(values, tmp_path)
    flights = container_of(docs, "rel-kubetl-flights")
    assert (flights["image"], flights["imagePullPolicy"]) == (image, pull_policy)
    assert container_of(docs, "rel-kubetl-airlines")["image"] == f"kubetl@{DIGEST}"
    assert of_kind(docs, "Pod")[0]["spec"]["containers"][0]["image"] == f"kubetl@{DIGEST}"  # the helm test


def test_job_defaults_image_tag_applies_to_every_pipeline_without_the_digest(render, tmp_path):
    docs = render.template({"image": {"digest": DIGEST}, "jobDefaults": {"image": {"tag": "0.2.0"}}}, tmp_path)
    assert {container_of(docs, n)["image"] for n in ("rel-kubetl-flights", "rel-kubetl-airlines")} == {"kubetl:0.2.0"}


@pytest.mark.parametrize("image, expected", [
    ({"repository": "busybox", "tag": "1.36"}, "busybox:1.36"),
    ({"repository": "busybox", "digest": OTHER_DIGEST}, f"busybox@{OTHER_DIGEST}"),
    ({"repository": "busybox", "tag": "1.36", "pullPolicy": "Always"}, "busybox:1.36"),
])
def test_container_job_never_inherits_the_kubetl_image(render, tmp_path, image, expected):
    """Neither kubetl's tag (appVersion), nor its digest, nor its pull policy."""
    values = {"image": {"tag": "9.9.9", "digest": DIGEST, "pullPolicy": "Never"},
              "jobDefaults": {"image": {"repository": "reg/kubetl", "tag": "0.2.0"}},
              "containerJobs": {"vacuum": {"schedule": "0 3 * * *", "image": image}}}
    container = container_of(render.template(values, tmp_path), "rel-kubetl-vacuum")
    assert container["image"] == expected
    assert container.get("imagePullPolicy") == image.get("pullPolicy")  # unset: Kubernetes' default


def test_external_database(render, tmp_path):
    values = {"postgresql": {"enabled": False},
              "externalDatabase": {"host": "pg.data.svc", "port": 6432, "existingSecret": "warehouse", "secretKey": "pw"}}
    docs = render.template(values, tmp_path)
    assert not of_kind(docs, "StatefulSet") and not of_kind(docs, "Secret") and not of_kind(docs, "NetworkPolicy")
    env = env_of(named(docs, "CronJob", "rel-kubetl-flights")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])
    assert env["PGHOST"] == "pg.data.svc" and env["PGPORT"] == "6432"
    assert env["PGPASSWORD"] == {"secretKeyRef": {"name": "warehouse", "key": "pw"}}


def test_existing_secret(render, tmp_path):
    docs = render.template({"postgresql": {"auth": {"existingSecret": "mine"}}}, tmp_path)
    assert not of_kind(docs, "Secret")
    sts = of_kind(docs, "StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    assert env_of(sts)["POSTGRES_PASSWORD"] == {"secretKeyRef": {"name": "mine", "key": "password"}}


def test_generated_password_is_kept_on_uninstall_and_given_a_value_is_used(render, tmp_path):
    secret = of_kind(render.template({"postgresql": {"auth": {"password": "s3cret"}}}, tmp_path), "Secret")[0]
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert base64.b64decode(secret["data"]["password"]).decode() == "s3cret"
    generated = base64.b64decode(of_kind(render.template(), "Secret")[0]["data"]["password"]).decode()
    assert len(generated) == 24


def test_plain_container_job(render, tmp_path):
    values = {"containerJobs": {"vacuum": {"schedule": "0 3 * * *", "image": {"repository": "postgres", "tag": "16"},
                                           "command": ["psql", "-c", "VACUUM"], "suspend": True}}}
    cron = named(render.template(values, tmp_path), "CronJob", "rel-kubetl-vacuum")
    container = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "postgres:16" and container["command"] == ["psql", "-c", "VACUUM"]
    assert "args" not in container and cron["spec"]["suspend"] is True
    assert cron["metadata"]["labels"]["kubetl.io/kind"] == "container"
    assert env_of(container)["PGHOST"] == "rel-kubetl-postgresql"
    assert "podFailurePolicy" not in cron["spec"]["jobTemplate"]["spec"]  # its exit codes mean nothing to us


def test_bad_config_or_input_fails_the_job_without_retries(render):
    """etl-job's exit 2 (bad config or input) fails the Job at once; other failures retry."""
    job = named(render.template(), "CronJob", "rel-kubetl-flights")["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 2
    assert job["podFailurePolicy"]["rules"] == [
        {"action": "FailJob", "onExitCodes": {"containerName": "etl", "operator": "In", "values": [2]}}]


def test_many_pipelines(render, tmp_path):
    pipelines = {f"pipeline-number-{i:02d}-with-a-long-name": {
        "schedule": f"{i} * * * *", "source": {"format": "csv", "path": f"/d/{i}.csv"}, "load": {"table": f"t{i}"}}
        for i in range(40)}
    docs = render.template({"pipelines": pipelines}, tmp_path)
    crons = of_kind(docs, "CronJob")
    assert len(crons) == 42
    assert all(len(c["metadata"]["name"]) <= 52 for c in crons)
    assert len({c["metadata"]["name"] for c in crons}) == 42


def test_many_pipelines_with_names_cut_to_the_cronjob_limit(render, tmp_path):
    """Names that differ early stay distinct when cut to 52 characters."""
    pipelines = {f"p{i:02d}-hourly-clickstream-sessions-by-country-device": {
        "source": {"format": "csv", "path": f"/d/{i}.csv"}, "load": {"table": f"t{i}"}} for i in range(30)}
    assert all(len(name) <= 52 and len(f"rel-kubetl-{name}") > 52 for name in pipelines)
    crons = [c for c in of_kind(render.template({"pipelines": pipelines}, tmp_path), "CronJob")
             if c["metadata"]["labels"]["kubetl.io/pipeline"] in pipelines]
    assert len(crons) == 30
    assert {c["metadata"]["name"] for c in crons} == {f"rel-kubetl-{name}"[:52] for name in pipelines}
    for cron in crons:
        name = cron["metadata"]["labels"]["kubetl.io/pipeline"]
        assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["run", name]


LONG = "daily-revenue-by-region-and-product-line"  # 40 characters: rel-kubetl-LONG is 51


@pytest.mark.parametrize("values, first, second, cronjob", [
    ({"pipelines": {f"{LONG}-raw": PIPELINE, f"{LONG}-clean": PIPELINE}},
     f"pipelines.{LONG}-clean", f"pipelines.{LONG}-raw", f"rel-kubetl-{LONG}"),
    ({"containerJobs": {"flights": {"schedule": "@daily", "image": {"repository": "busybox", "tag": "1.36"}}}},
     "pipelines.flights", "containerJobs.flights", "rel-kubetl-flights"),
], ids=["cut-to-the-same-prefix", "pipeline-and-container-job"])
def test_two_jobs_on_one_cronjob_name_fail_naming_both(render, tmp_path, values, first, second, cronjob):
    out = render.run("template", "rel", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode != 0
    assert f'{first} and {second} would both be CronJob "{cronjob}"' in out.stderr, out.stderr
    assert 'CronJob names are "rel-kubetl-<name>" cut to 52 characters' in out.stderr


def test_rbac_is_exactly_what_etlctl_needs(render):
    role = of_kind(render.template(), "Role")[0]
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): {"create", "get", "list", "delete"},
        (("batch",), ("cronjobs",)): {"list", "patch"},
        (("",), ("pods",)): {"list"},
        (("",), ("pods/log",)): {"get"},
    }


def test_network_policy_admits_exactly_the_labelled_clients(render, tmp_path):
    docs = render.template({"pgadmin": {"enabled": True}}, tmp_path)
    policy = of_kind(docs, "NetworkPolicy")[0]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgresql"
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    clients = [d for d in docs if d["kind"] in ("CronJob", "Deployment", "Pod")]
    for doc in clients:
        meta = (doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"] if doc["kind"] == "CronJob"
                else doc["spec"]["template"]["metadata"] if doc["kind"] == "Deployment" else doc["metadata"])
        assert allowed.items() <= meta["labels"].items(), doc["metadata"]["name"]


@pytest.mark.parametrize("values", [None, {"pgadmin": {"enabled": True}},
                                    {"containerJobs": {"x": {"schedule": "@daily", "image": {"repository": "busybox", "tag": "1.36"}}}}])
def test_every_pod_passes_pod_security_restricted(render, tmp_path, values):
    for name, spec in pod_specs(render.template(values, tmp_path)):
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) > 0, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert spec.get("automountServiceAccountToken") is False, name
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC"), name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), name
            assert not sc.get("privileged"), name
            assert "hostPort" not in str(container.get("ports", "")), name


BAD_VALUES = [
    ({"image": {"pullPolicy": "Sometimes"}}, "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"),
    ({"jobDefaults": {"concurrencyPolicy": "Never"}}, "at '/jobDefaults/concurrencyPolicy': value must be one of 'Allow', 'Forbid', 'Replace'"),
    ({"jobDefaults": {"backoffLimit": -1}}, "at '/jobDefaults/backoffLimit': minimum: got -1, want 0"),
    ({"postgresql": {"persistence": {"size": "lots"}}}, "at '/postgresql/persistence/size'"),
    ({"pipelines": {"Bad Name": {"source": {"format": "csv"}, "load": {"table": "t"}}}}, "Bad Name"),
    ({"pipelines": {"p": {"source": {"format": "csv"}}}}, "missing property 'load'"),
    ({"postgresql": {"enabled": False}}, "at '/externalDatabase/existingSecret': minLength: got 0, want 1"),
    ({"imagePullSecret": []}, "additional properties 'imagePullSecret' not allowed"),
    ({"containerJobs": {"x": {"image": {"repository": "busybox"}}}}, "missing property 'schedule'"),
    ({"pipelines": {"p": {"source": {"format": "csv"}, "load": {"table": "t"}, "kubernetes": {"supend": True}}}},
     "additional properties 'supend' not allowed"),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    # A typo in a pipeline key would otherwise leave it silently unscheduled (an "ad-hoc" CronJob).
    ({"pipelines": {"flights": {"schedul": "0 0 1 * *"}}}, "at '/pipelines/flights': additional properties 'schedul' not allowed"),
    ({"pipelines": {"p": {**PIPELINE, "tranform": []}}}, "at '/pipelines/p': additional properties 'tranform' not allowed"),
    # A container job names its own image in full: no kubetl tag or digest to fall back on.
    ({"containerJobs": {"x": {"schedule": "@daily", "image": {"repository": "busybox"}}}},
     "at '/containerJobs/x/image': 'anyOf' failed\n  - at '/containerJobs/x/image': missing property 'tag'\n"
     "  - at '/containerJobs/x/image': missing property 'digest'"),
    ({"containerJobs": {"x": {"schedule": "@daily", "image": {"repository": "busybox", "tag": ""}}}},
     "at '/containerJobs/x/image/tag': minLength: got 0, want 1"),
    ({"containerJobs": {"x": {"schedule": "@daily", "image": {"tag": "1.36"}}}}, "at '/containerJobs/x/image': missing property 'repository'"),
    ({"containerJobs": {"x": {"schedule": "@daily", "image": {"repository": "busybox", "tag": "1"}, "backofLimit": 1}}},
     "at '/containerJobs/x': additional properties 'backofLimit' not allowed"),
    ({"pipelines": {"p": {**PIPELINE, "kubernetes": {"image": {"digest": "sha256:abc"}}}}}, "at '/pipelines/p/kubernetes/image/digest'"),
    ({"postgresql": {"image": {"digest": "latest"}}}, "at '/postgresql/image/digest'"),
    ({"pgadmin": {"image": {"repository": "dpage/pgadmin4", "tag": ""}}}, "at '/pgadmin/image/tag': minLength: got 0, want 1"),
]


@pytest.mark.parametrize("values, message", BAD_VALUES, ids=[str(i) for i in range(len(BAD_VALUES))])
def test_schema_rejects_bad_values_with_a_clear_message(render, tmp_path, values, message):
    out = render.run("template", "rel", str(CHART), values=values, tmp=tmp_path)
    assert out.returncode != 0
    assert "values don't meet the specifications of the schema" in out.stderr
    assert message in out.stderr, out.stderr


def test_schema_pipeline_keys_are_the_runtime_pipeline_fields():
    """The chart refuses unknown pipeline keys, so its list must be etl-job's Pipeline model's, plus `kubernetes`."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    pipeline = schema["definitions"]["pipeline"]
    assert pipeline["additionalProperties"] is False
    runtime = {field.alias or name for name, field in Pipeline.model_fields.items()}
    assert set(pipeline["properties"]) == runtime | {"kubernetes"}


def test_schema_container_jobs_take_every_job_setting():
    """containerJob lists jobSettings' keys (a draft-07 schema cannot extend a closed one): keep them in step."""
    definitions = json.loads((CHART / "values.schema.json").read_text())["definitions"]
    settings, container = definitions["jobSettings"]["properties"], definitions["containerJob"]["properties"]
    assert set(container) == set(settings) | {"schedule", "command", "args"}
    for key in set(settings) - {"image"}:
        assert container[key] == {"$ref": f"#/definitions/jobSettings/properties/{key}"}
    assert container["image"] == {"$ref": "#/definitions/versionedImage"}


def notes(render, tmp_path, values: dict | None = None) -> str:
    out = render.run("install", "rel", str(CHART), "--namespace", "etl", "--dry-run=client", values=values, tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\nNOTES:\n", 1)[1]


def test_notes_name_the_releases_own_pipeline_and_database(render, tmp_path):
    text = notes(render, tmp_path, {"pipelines": {"orders": PIPELINE}})
    assert "kubectl -n etl rollout status statefulset/rel-kubetl-postgresql" in text
    assert "etlctl -n etl run airlines --wait --follow" in text  # the first pipeline (values merge with the defaults)
    assert "kubectl -n etl create job airlines-now --from=cronjob/rel-kubetl-airlines" in text
    assert "flights" not in text.split("Next:")[1]


def test_notes_without_postgresql_or_pipelines(render, tmp_path):
    text = notes(render, tmp_path, {"postgresql": {"enabled": False}, "pipelines": None,
                                    "externalDatabase": {"host": "db.example", "existingSecret": "db"}})
    assert "rollout status" not in text and "statefulset" not in text
    assert "helm test rel -n etl" in text
    assert "etlctl" not in text and "create job" not in text and "--from=cronjob" not in text


def test_notes_long_pipeline_name_uses_the_cronjobs_cut_name(render, tmp_path):
    name = "a" + "b" * 50
    text = notes(render, tmp_path, {"pipelines": {name: PIPELINE}})
    assert f"--from=cronjob/rel-kubetl-{name}"[:len("--from=cronjob/") + 52] + "\n" in text
    assert f"etlctl -n etl run {name} --wait" in text


def test_pgadmin_runs_unprivileged_with_a_read_only_root(render, tmp_path):
    """The official image binds port 80 and writes /pgadmin4/config_distro.py and /var/lib/pgadmin."""
    docs = render.template({"pgadmin": {"enabled": True}}, tmp_path)
    deployment = named(docs, "Deployment", "rel-kubetl-pgadmin")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = env_of(container)
    port = int(env["PGADMIN_LISTEN_PORT"])
    assert port >= 1024 and container["ports"] == [{"name": "http", "containerPort": port}]
    assert env["PGADMIN_DISABLE_POSTFIX"]  # the entrypoint's `sudo postfix start` cannot work without privileges
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ("/var/lib/pgadmin", "/tmp", "/pgadmin4/config_distro.py"):
        assert "emptyDir" in volumes[mounts[path]["name"]] and not mounts[path].get("readOnly"), path
    config = mounts["/pgadmin4/config_distro.py"]
    assert config["subPath"] == "config_distro.py"
    # The file must exist in the volume before it is mounted, or the kubelet creates a directory there.
    [init] = pod["initContainers"]
    assert init["image"] == container["image"] == "dpage/pgadmin4:8"
    assert init["command"] == ["touch", "/config/config_distro.py"]
    assert init["volumeMounts"] == [{"name": config["name"], "mountPath": "/config"}]
    service = named(docs, "Service", "rel-kubetl-pgadmin")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_manifests_are_in_sync_with_the_chart(tmp_path):
    fresh = tmp_path / "kubetl.yaml"
    subprocess.run([str(ROOT / "hack" / "render-manifests.sh"), str(fresh)], check=True, capture_output=True)
    committed = ROOT / "manifests" / "kubetl.yaml"
    assert fresh.read_text() == committed.read_text(), "manifests/ is stale: run hack/render-manifests.sh"


def test_manifests_hold_no_password_and_no_test_hooks():
    docs = [d for d in yaml.safe_load_all((ROOT / "manifests" / "kubetl.yaml").read_text()) if d]
    assert not of_kind(docs, "Secret") and not of_kind(docs, "Pod")
    assert {c["metadata"]["name"] for c in of_kind(docs, "CronJob")} == {"kubetl-airlines", "kubetl-flights"}


def test_the_runtime_example_drops_straight_into_values(render, tmp_path):
    """examples/flights.yaml is valid chart values as it is: one schema for both."""
    example = yaml.safe_load((ROOT / "examples" / "flights.yaml").read_text())
    docs = render.template({"pipelines": example["pipelines"]}, tmp_path)
    names = {c["metadata"]["labels"]["kubetl.io/pipeline"] for c in of_kind(docs, "CronJob")}
    assert names == set(example["pipelines"])
    text = named(docs, "ConfigMap", "rel-kubetl-pipelines")["data"]["pipelines.yaml"]
    assert set(parse_config(text, env={}).pipelines) == set(example["pipelines"])
