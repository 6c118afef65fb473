"""Deployment rollout speed on a local cluster, beside one pod's startup (the floor).

Starts its own etcd, master (scheduler + controllers) and one node agent, then:
- floor: one pod of the same template, create -> Ready, a few times one after
  another (median): what a single replacement costs at best;
- create: a Deployment of 30 replicas (`sleep 3600`, readiness probe every 1s,
  terminationGracePeriodSeconds 0) from create to 30 available;
- rollout: `set image` to a second tag of the same image (created here and
  removed afterwards), with the default strategy (25% surge, 25% unavailable),
  until `rollout status` would say "successfully rolled out";
- ratio: rollout time per pod / the floor. A rollout that replaced pods one at
  a time, each as fast as a lone pod starts, would score about 1; batches of
  surge + unavailable pods score below that unless the node itself is the
  limit (a rollout both starts and stops every pod: compare with `create`).

    .venv/bin/python bench/deployment.py [--replicas 30] [--floor-runs 5]

Not a test: it never fails because the machine is slow; read the figures.
Every container it starts is removed at the end (the node agent's label filter).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import apps_pb2, pod_pb2  # noqa: E402
from kubelite.client import Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402
from tests.node_agent import ensure_docker, run_node, wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
IMAGE2 = "kubelite/busybox:bench"
NS = "default"


def pod_spec(image: str) -> dict[str, Any]:
    return {"terminationGracePeriodSeconds": 0, "containers": [
        {"name": "c", "image": image, "command": ["sleep", "3600"],
         "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def floor(c: Client, runs: int) -> list[float]:
    """Create one pod, wait until Ready, delete it; `runs` times."""
    out = []
    for i in range(runs):
        p = convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": f"floor-{i}", "namespace": NS},
                               "spec": pod_spec(IMAGE)}, pod_pb2.Pod)
        t = time.perf_counter()
        c.create(p)
        while not ready(c.get("pods", p.metadata.name, NS)):
            time.sleep(0.01)
        out.append(time.perf_counter() - t)
        c.delete("pods", p.metadata.name, NS, grace_period_seconds=0)
    return out


def rolled_out(c: Client, name: str, replicas: int) -> bool:
    d = c.get("deployments", name, NS)
    st = d.status
    return (d.metadata.generation <= st.observedGeneration and st.updatedReplicas == replicas
            and st.replicas == replicas and st.availableReplicas == replicas)


def until(fn: Any, timeout: float = 600.0) -> float:
    t = time.perf_counter()
    while not fn():
        if time.perf_counter() - t > timeout:
            raise SystemExit(f"gave up after {timeout}s")
        time.sleep(0.02)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--replicas", type=int, default=30)
    ap.add_argument("--floor-runs", type=int, default=5)
    args = ap.parse_args()
    n = args.replicas
    ensure_docker()
    subprocess.run(["docker", "tag", IMAGE, IMAGE2], check=True, capture_output=True)
    print(f"# deployment rollout: {n} replicas of {IMAGE} (`sleep 3600`, readiness probe), "
          "one node agent, this machine")
    try:
        with run_etcd() as etcd, run_master(etcd.endpoint) as master, \
                run_node(master.address, "--metrics-interval", "0") as agent, \
                Client(server=master.address, timeout=30) as c:
            wait_for(lambda: c.get("nodes", agent.name), 30, "node registration")
            time.sleep(2)
            fl = floor(c, args.floor_runs)
            pod = statistics.median(fl)
            print(f"floor    one pod create->Ready: median {pod * 1000:.0f}ms "
                  f"(min {min(fl) * 1000:.0f}ms, {len(fl)} runs)")
            labels = {"app": "bench"}
            c.create(convert.from_dict({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "bench", "namespace": NS},
                "spec": {"replicas": n, "selector": {"matchLabels": labels},
                         "template": {"metadata": {"labels": labels},
                                      "spec": pod_spec(IMAGE)}}}, apps_pb2.Deployment))
            create = until(lambda: rolled_out(c, "bench", n))
            print(f"create   {n} replicas available in {create:.2f}s "
                  f"({create / n * 1000:.0f}ms per pod, {create / n / pod:.2f}x the floor)")
            d = c.get("deployments", "bench", NS)
            d.spec.template.spec.containers[0].image = IMAGE2
            c.update(d)  # what `set image` does
            roll = until(lambda: rolled_out(c, "bench", n))
            per_pod = roll / n
            print(f"rollout  set image, 25% surge / 25% unavailable: {roll:.2f}s for {n} pods "
                  f"({per_pod * 1000:.0f}ms per pod)")
            print(f"ratio    rollout per pod / pod startup: {per_pod / pod:.2f}   "
                  f"(rollout / create: {roll / create:.2f}; a rollout starts {n} pods and "
                  f"stops {n})")
            c.delete("deployments", "bench", NS)
            until(lambda: not c.list("pods", NS, label_selector="app=bench")[0], 120)
    finally:
        subprocess.run(["docker", "rmi", IMAGE2], capture_output=True)


if __name__ == "__main__":
    main()
