"""A real Kubernetes control plane for tests: etcd + kube-apiserver, on loopback.

The binaries are built from the Go module proxy by hack/cluster/build-binaries.sh
(cached). There is no controller-manager or kubelet here: objects are stored,
validated, admitted and authorised for real, but nothing runs them. Tests that
need a Job to finish set its status through the API, as the Job controller would.
"""
from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pg import free_port

ROOT = Path(__file__).resolve().parents[1]
ADMIN_TOKEN = "kubetl-test-admin"
NOBODY_TOKEN = "kubetl-test-nobody"


@dataclass
class ControlPlane:
    directory: Path
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self, token: str = ADMIN_TOKEN, namespace: str = "default") -> Path:
        path = self.directory / f"kubeconfig-{token}-{namespace}"
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: test\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority: {self.directory / 'certs' / 'apiserver.crt'}\n"
            f"users:\n- name: user\n  user:\n    token: {token}\n"
            f"contexts:\n- name: test\n  context:\n    cluster: test\n    user: user\n    namespace: {namespace}\n"
            "current-context: test\n"
        )
        return path


def build_binaries() -> Path:
    out = subprocess.run([str(ROOT / "hack" / "cluster" / "build-binaries.sh"), "etcd", "kube-apiserver"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"building etcd and kube-apiserver failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


def start() -> ControlPlane:
    bin_dir = build_binaries()
    directory = Path(tempfile.mkdtemp(prefix="kubetl-apiserver-"))
    (directory / "certs").mkdir()
    subprocess.run(["openssl", "genrsa", "-out", str(directory / "sa.key"), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(directory / "sa.key"), "-pubout", "-out", str(directory / "sa.pub")],
                   check=True, capture_output=True)
    (directory / "tokens.csv").write_text(f"{ADMIN_TOKEN},admin,1,system:masters\n{NOBODY_TOKEN},nobody,2,\n")
    etcd_port, peer_port, port = free_port(), free_port(), free_port()
    plane = ControlPlane(directory, port)
    log = open(directory / "etcd.log", "w")
    plane.processes.append(subprocess.Popen(
        [str(bin_dir / "etcd"), "--data-dir", str(directory / "etcd"), "--name", "test",
         "--listen-client-urls", f"http://127.0.0.1:{etcd_port}", "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
         "--listen-peer-urls", f"http://127.0.0.1:{peer_port}", "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-cluster", f"test=http://127.0.0.1:{peer_port}", "--unsafe-no-fsync"],
        stdout=log, stderr=subprocess.STDOUT))
    log = open(directory / "apiserver.log", "w")
    plane.processes.append(subprocess.Popen(
        [str(bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
         "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={port}",
         f"--cert-dir={directory / 'certs'}", f"--token-auth-file={directory / 'tokens.csv'}",
         "--authorization-mode=RBAC", "--service-cluster-ip-range=10.96.0.0/16",
         "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
         f"--service-account-key-file={directory / 'sa.pub'}",
         f"--service-account-signing-key-file={directory / 'sa.key'}",
         "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,PodSecurity"],
        stdout=log, stderr=subprocess.STDOUT))
    _wait_ready(plane)
    return plane


def _wait_ready(plane: ControlPlane, timeout: float = 120) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in plane.processes:
            if process.poll() is not None:
                stop(plane, keep_logs=True)
                raise RuntimeError(f"{process.args[0]} exited; logs in {plane.directory}")
        try:
            request = urllib.request.Request(f"{plane.server}/readyz", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            if urllib.request.urlopen(request, context=context, timeout=2).status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    stop(plane, keep_logs=True)
    raise RuntimeError(f"kube-apiserver not ready after {timeout}s; logs in {plane.directory}")


def stop(plane: ControlPlane, keep_logs: bool = False) -> None:
    for process in reversed(plane.processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    if not keep_logs:
        shutil.rmtree(plane.directory, ignore_errors=True)

