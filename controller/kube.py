"""Kubernetes access for etlctl: configuration, and API errors a person can act on."""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as Urllib3Error

T = TypeVar("T")


class EtlctlError(Exception):
    """One clear line for the user; `exit_code` is what etlctl exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Kube:
    batch: client.BatchV1Api
    core: client.CoreV1Api
    namespace: str
    server: str


def connect(kubeconfig: str | None = None, context: str | None = None, namespace: str | None = None) -> Kube:
    """kubectl's rules: --kubeconfig, $KUBECONFIG, ~/.kube/config; in a pod, its service account."""
    in_cluster = os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token") and not (kubeconfig or context)
    try:
        if in_cluster and "KUBECONFIG" not in os.environ:
            config.load_incluster_config()
            default_ns = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read().strip()
            configuration = client.Configuration.get_default_copy()
        else:
            configuration = client.Configuration()
            config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = context or active["name"]
            contexts = {c["name"]: c for c in config.list_kube_config_contexts(config_file=kubeconfig)[0]}
            default_ns = contexts[chosen]["context"].get("namespace", "default")
    except (ConfigException, FileNotFoundError, KeyError, TypeError) as exc:
        raise EtlctlError(f"no usable Kubernetes configuration: {exc}") from None
    api = client.ApiClient(configuration)
    return Kube(client.BatchV1Api(api), client.CoreV1Api(api), namespace or default_ns, configuration.host)


def call(kube: Kube, verb: str, resource: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the API, turning failures into one actionable line."""
    try:
        return function(*args, **kwargs)
    except ApiException as exc:
        raise _explain(exc, kube, verb, resource) from None
    except (Urllib3Error, OSError) as exc:
        raise EtlctlError(f"cannot reach the Kubernetes API server at {kube.server}: {_reason(exc)}") from None


def _explain(exc: ApiException, kube: Kube, verb: str, resource: str) -> EtlctlError:
    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except ValueError:
        pass
    if exc.status == 403:
        return EtlctlError(
            f"forbidden: you may not {verb} {resource} in namespace {kube.namespace!r} "
            f"(RBAC: needs verb {verb!r} on {resource}); {message}"
        )
    if exc.status == 401:
        return EtlctlError(f"unauthorized: the API server rejected your credentials ({message or exc.reason})")
    return EtlctlError(f"{verb} {resource} failed: {message or exc.reason} (HTTP {exc.status})")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:200]
