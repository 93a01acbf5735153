"""The local cluster (hack/cluster.sh), brought up once per session."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def kubeconfig() -> Path:
    out = subprocess.run([str(ROOT / "hack" / "cluster.sh"), "up"], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"hack/cluster.sh up failed:\n{out.stderr[-4000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


class Kubectl:
    def __init__(self, tools: Path, kubeconfig: Path, namespace: str) -> None:
        self.base = [str(tools / "kubectl"), "--kubeconfig", str(kubeconfig)]
        self.namespace = namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([*self.base, "-n", self.namespace, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out


@pytest.fixture
def kubectl(kubeconfig, tools) -> Kubectl:
    namespace = f"smoke-{uuid.uuid4().hex[:6]}"
    admin = Kubectl(tools, kubeconfig, "default")
    admin("create", "namespace", namespace)
    admin("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    yield Kubectl(tools, kubeconfig, namespace)
    admin("delete", "namespace", namespace, "--wait=false", check=False)
