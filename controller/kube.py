"""Kubernetes access for etlctl: configuration, a small JSON REST client, and
API errors a person can act on.

The official client loads the configuration (kubeconfig with its contexts,
exec plugins and tokens, or the pod's service account), but requests go
through urllib3 directly, as plain JSON: the client's typed API classes import
and build ~1,500 model classes, which alone took a second per etlctl
invocation (hack/bench_etlctl.py). Everything etlctl does with the API is a
handful of REST calls on plain dicts anyway."""
from __future__ import annotations

import json
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

FIELD_MANAGER = "etlctl"  # how our changes show in managedFields (and in helm's conflict messages)
TIMEOUT = urllib3.Timeout(connect=10, read=60)
# One more try to connect, never a resent request (a create must not happen twice):
# urllib3's default of 3 retries makes an unreachable server take 40 s to report.
RETRIES = urllib3.Retry(total=1, connect=1, read=False, redirect=False)
STREAM_TIMEOUT = urllib3.Timeout(connect=10, read=None)  # a followed log may be quiet for long


class EtlctlError(Exception):
    """One clear line for the user; `exit_code` is what etlctl exits with, and
    `http_status` the API server's answer when it refused a request."""

    def __init__(self, message: str, exit_code: int = 1, http_status: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.http_status = http_status


@dataclass
class Kube:
    namespace: str
    server: str
    http: urllib3.PoolManager
    # The Authorization header, asked for on every call: the loaders' refresh hook
    # renews expiring tokens (exec plugins, projected token files) during a long --wait.
    authorization: Callable[[], str | None] = lambda: None

    def request(self, verb: str, resource: str, method: str, path: str, query: dict[str, Any] | None = None,
                body: Any = None, content_type: str = "application/json", stream: bool = False) -> Any:
        """One API call: the decoded JSON (text for logs; the raw response with STREAM).
        VERB and RESOURCE (`create`, `jobs.batch`) name it in errors, as RBAC does."""
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.server.rstrip("/") + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json, */*"}
        if token := self.authorization():
            headers["Authorization"] = token
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        try:
            response = self.http.request(method, url, body=data, headers=headers, preload_content=not stream,
                                         timeout=STREAM_TIMEOUT if stream else TIMEOUT)
        except (Urllib3Error, OSError) as exc:
            raise EtlctlError(f"cannot reach the Kubernetes API server at {self.server}: {_reason(exc)}") from None
        if response.status >= 300:
            raise _explain(response.status, response.data if not stream else response.read(), self, verb, resource)
        if stream:
            return response
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(response.data)
        return response.data.decode(errors="replace")

    def path(self, group: str, resource: str, name: str | None = None, sub: str | None = None) -> str:
        """/api/v1/namespaces/NS/pods[/NAME[/SUB]] for group "", /apis/GROUP/... otherwise."""
        prefix = "/api/v1" if group == "" else f"/apis/{group}"
        parts = [prefix, "namespaces", quote(self.namespace, safe=""), resource]
        parts += [quote(p, safe="") for p in (name, sub) if p]
        return "/".join(parts)


def connect(kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None) -> Kube:
    """kubectl's rules: --kubeconfig, $KUBECONFIG, ~/.kube/config; in a pod, its service account."""
    from kubernetes import config  # the loaders only; see the module docstring
    from kubernetes.client import Configuration
    from kubernetes.config.config_exception import ConfigException

    in_cluster = os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token") and not (kubeconfig or context)
    try:
        if in_cluster and "KUBECONFIG" not in os.environ:
            configuration = Configuration()
            config.load_incluster_config(client_configuration=configuration)
            default_ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip()
        else:
            configuration = Configuration()
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = context or active["name"]
            default_ns = {c["name"]: c for c in contexts}[chosen]["context"].get("namespace", "default")
    except (ConfigException, FileNotFoundError, KeyError, TypeError) as exc:
        raise EtlctlError(f"no usable Kubernetes configuration: {exc}") from None
    return Kube(namespace or default_ns, configuration.host, _pool(configuration), lambda: _authorization(configuration))


def _pool(configuration: Any) -> urllib3.PoolManager:
    tls: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE}
    if configuration.ssl_ca_cert:
        tls["ca_certs"] = configuration.ssl_ca_cert
    if configuration.cert_file:
        tls["cert_file"], tls["key_file"] = configuration.cert_file, configuration.key_file
    if getattr(configuration, "tls_server_name", None):
        tls["server_hostname"] = configuration.tls_server_name
    if not configuration.verify_ssl:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return urllib3.PoolManager(num_pools=2, maxsize=4, retries=RETRIES, **tls)


def _authorization(configuration: Any) -> str | None:
    """The bearer token header, refreshed by the loader's hook (exec plugins, token files)."""
    setting = configuration.auth_settings().get("BearerToken")
    return setting["value"] if setting and setting.get("value") else None


def _explain(status: int, body: bytes, kube: Kube, verb: str, resource: str) -> EtlctlError:
    message, reason = "", ""
    try:
        decoded = json.loads(body or b"{}")
        message, reason = decoded.get("message", ""), decoded.get("reason", "")
    except ValueError:
        message = body.decode(errors="replace")[:200]
    if status == 403:
        text = (f"forbidden: you may not {verb} {resource} in namespace {kube.namespace!r} "
                f"(RBAC: needs verb {verb!r} on {resource}); {message}")
    elif status == 401:
        text = f"unauthorized: the API server rejected your credentials ({message or reason or 'Unauthorized'})"
    else:
        text = f"{verb} {resource} failed: {message or reason} (HTTP {status})"
    return EtlctlError(text, http_status=status)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:200]
