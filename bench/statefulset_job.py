"""StatefulSet and Job timing on a local cluster, against one pod's time.

Starts its own etcd, master (scheduler + controllers) and one node agent:
- floor: one pod, create -> Running and Ready (readiness probe every 1 s),
  median of 5; and one pod of the Job's command, create -> Succeeded;
- StatefulSet of 5, OrderedReady: create -> all 5 Ready, divided by
  5 x the single-pod time (1.0 = no overhead beyond doing them in order);
- Job of 20 completions, parallelism 5, each pod `sleep 2`: create ->
  Complete, divided by the ideal 4 x one pod's run time.

    .venv/bin/python bench/statefulset_job.py

Not a test: it never fails because the machine is slow; read the ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import apps_pb2, batch_pb2, pod_pb2  # noqa: E402
from kubelite.client import APIStatusError, Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402
from tests.node_agent import ensure_docker, run_node, wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
PROBE = {"exec": {"command": ["true"]}, "periodSeconds": 1}


def pod_spec(command: list[str], restart: str = "Always", probe: bool = True) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": IMAGE, "command": command}
    if probe:
        c["readinessProbe"] = PROBE
    return {"terminationGracePeriodSeconds": 0, "restartPolicy": restart, "containers": [c]}


def ready(p: Any) -> bool:
    return p.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions)


def one_pod(c: Client, name: str, spec: dict[str, Any], done: Any) -> float:
    t = time.perf_counter()
    c.create(convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                                "metadata": {"name": name, "namespace": "default"},
                                "spec": spec}, pod_pb2.Pod))
    wait_for(lambda: done(c.get("pods", name, "default")), 60, name, interval=0.02)
    took = time.perf_counter() - t
    c.delete("pods", name, "default", grace_period_seconds=0)
    return took


def main() -> None:
    ensure_docker()
    print("# StatefulSet / Job timing, one node agent, this machine")
    with run_etcd() as etcd, run_master(etcd.endpoint) as m, \
            run_node(m.address, "--metrics-interval", "0") as node, \
            Client(server=m.address, timeout=30) as c:
        wait_for(lambda: c.get("nodes", node.name), 30, "node")
        singles = [one_pod(c, f"single-{i}", pod_spec(["sleep", "3600"]), ready)
                   for i in range(5)]
        single = statistics.median(singles)
        runs = [one_pod(c, f"run-{i}", pod_spec(["sleep", "2"], "Never", probe=False),
                        lambda p: p.status.phase == "Succeeded") for i in range(3)]
        run = statistics.median(runs)
        print(f"floor  one pod create->Ready: median {single:.2f}s; one `sleep 2` pod "
              f"create->Succeeded: median {run:.2f}s")

        sts = convert.from_dict({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"replicas": 5, "serviceName": "bench",
                     "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": pod_spec(["sleep", "3600"])}}},
            apps_pb2.StatefulSet)
        t = time.perf_counter()
        c.create(sts)
        wait_for(lambda: c.get("statefulsets", "bench", "default").status.readyReplicas == 5,
                 300, "5 ready", interval=0.05)
        took = time.perf_counter() - t
        print(f"sts    5 replicas OrderedReady: {took:.2f}s; / (5 x one pod) = "
              f"{took / (5 * single):.2f}")
        c.delete("statefulsets", "bench", "default")

        job = convert.from_dict({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"completions": 20, "parallelism": 5,
                     "template": {"spec": pod_spec(["sleep", "2"], "Never", probe=False)}}},
            batch_pb2.Job)
        t = time.perf_counter()
        c.create(job)
        wait_for(lambda: any(x.type == "Complete" and x.status == "True" for x in
                             c.get("jobs", "bench", "default").status.conditions),
                 600, "job complete", interval=0.05)
        took = time.perf_counter() - t
        print(f"job    20 completions, parallelism 5: {took:.2f}s; / (4 x one pod run) = "
              f"{took / (4 * run):.2f}")
        try:
            c.delete("jobs", "bench", "default")
        except APIStatusError:
            pass


if __name__ == "__main__":
    main()
