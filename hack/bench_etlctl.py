#!/usr/bin/env python3
"""Time from invocation to Job created: `etlctl run` vs `kubectl create job --from`.

A measurement, not a test. Needs a release of the chart (hack/kube-demo.sh
makes one in namespace kubetl) and a kubeconfig (KUBECONFIG, or the local
cluster's). Both commands start a new process each time, as a user would, and
create a Job from the same CronJob; the Jobs are deleted afterwards. Prints the
median and spread of each and their ratio (the target is etlctl within 1.5x).

    .venv/bin/python hack/bench_etlctl.py [--namespace kubetl] [--pipeline airlines] [--runs 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env)
    return time.perf_counter() - started, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="kubetl")
    parser.add_argument("--release", default="kubetl")
    parser.add_argument("--pipeline", default="airlines")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    tools = Path(subprocess.run([str(ROOT / "hack" / "tools.sh")], check=True, capture_output=True, text=True).stdout.strip())
    kubeconfig = os.environ.get("KUBECONFIG") or str(Path.home() / ".cache" / "kubetl" / "cluster" / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    kubectl = [str(tools / "kubectl"), "-n", args.namespace]
    etlctl = [str(Path(sys.executable).parent / "etlctl"), "-n", args.namespace]
    label = f"bench-{uuid.uuid4().hex[:6]}"

    samples: dict[str, list[float]] = {"kubectl create job --from": [], "etlctl run": []}
    created: list[str] = []
    try:
        for i in range(args.runs):  # interleaved, so drift on the machine hits both alike
            seconds, _ = timed([*kubectl, "create", "job", f"{label}-{i}", f"--from=cronjob/{args.release}-{args.pipeline}"], env)
            samples["kubectl create job --from"].append(seconds)
            created.append(f"{label}-{i}")
            seconds, out = timed([*etlctl, "run", args.pipeline, "-o", "json"], env)
            samples["etlctl run"].append(seconds)
            created.append(json.loads(out)["run"])
    finally:
        if created:
            subprocess.run([*kubectl, "delete", "jobs", *created, "--wait=false"], capture_output=True, env=env)

    print(f"{'command':28} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.runs} runs each)")
    for name, values in samples.items():
        print(f"{name:28} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f}")
    ratio = statistics.median(samples["etlctl run"]) / statistics.median(samples["kubectl create job --from"])
    print(f"etlctl / kubectl: {ratio:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
