"""Node failure: from a node's last heartbeat to all its Deployment pods
Running elsewhere, beside its floor (grace period + pod startup).

A local cluster of 2 nodes whose master runs --node-monitor-grace-period
10, --node-monitor-period 1 and default toleration seconds 0 (pods leave as
soon as the unreachable taint is on). Then:

- pod startup, measured in this run: as many bare pods as the victim node
  holds, for the surviving node (through the scheduler), create -> all
  Running;
- a Deployment of --replicas spread over both nodes; we wait for the victim's
  heartbeat Lease to be renewed (that instant is its last heartbeat), take
  its link down inside its network namespace and time until every pod of
  the Deployment is Running on the other node;
- ratio = that time / (grace + pod startup): 1.0 would be detection the
  instant the grace runs out and a restart as fast as a fresh start; the
  rest is the monitor period, the taint/eviction round trips, the
  ReplicaSet controller and the scheduler.

    .venv/bin/python bench/node_failure.py [--replicas 6] [--runs 1]

Not a test: it never fails because the machine is slow; read the ratio.
Everything it makes is removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import apps_pb2, pod_pb2  # noqa: E402
from kubelite.client import Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.localcluster import heal, local_cluster, partition  # noqa: E402
from tests.node_agent import wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
GRACE = 10
MASTER_ARGS = (f"--master-arg=--node-monitor-grace-period={GRACE}",
               "--master-arg=--node-monitor-period=1",
               "--master-arg=--default-unreachable-toleration-seconds=0",
               "--master-arg=--default-not-ready-toleration-seconds=0")


def deployment(name: str, replicas: int) -> Any:
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 5, "containers": [
        {"name": "app", "image": IMAGE, "command": ["sleep", "3600"]}]}
    return convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}},
        apps_pb2.Deployment)


def probe_pod(name: str, node: str) -> Any:
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "probe"}},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "nodeSelector": {"kubernetes.io/hostname": node},
                 "containers": [{"name": "app", "image": IMAGE,
                                 "command": ["sleep", "3600"]}]}}, pod_pb2.Pod)


def live(api: Client, app: str) -> list[Any]:
    return [p for p in api.list("pods", "default", label_selector=f"app={app}")[0]
            if not p.metadata.deletionTimestamp]


def all_running(api: Client, app: str, n: int, node: str = "") -> bool:
    pods = [p for p in live(api, app) if p.status.phase == "Running"]
    return len(pods) == n and all(not node or p.spec.nodeName == node for p in pods)


def one_run(replicas: int) -> tuple[float, float]:
    with local_cluster("vxlan", extra=MASTER_ARGS) as c, c.client() as api:
        api.create(deployment("web", replicas))
        wait_for(lambda: all_running(api, "web", replicas), 180, "web Running")
        counts: dict[str, int] = {}
        for p in live(api, "web"):
            counts[p.spec.nodeName] = counts.get(p.spec.nodeName, 0) + 1
        victim = max(c.nodes, key=lambda n: counts.get(n, 0))
        other = next(n for n in c.nodes if n != victim)
        moving = counts.get(victim, 0)

        t0 = time.monotonic()
        for i in range(moving):
            api.create(probe_pod(f"probe-{i}", other))
        wait_for(lambda: all_running(api, "probe", moving, other), 180, "probe Running",
                 interval=0.1)
        startup = time.monotonic() - t0
        for i in range(moving):
            api.delete("pods", f"probe-{i}", "default")

        renew = api.get("leases", victim, "kube-node-lease").spec.renewTime
        wait_for(lambda: api.get("leases", victim, "kube-node-lease").spec.renewTime != renew,
                 30, "a heartbeat", interval=0.05)
        t_beat = time.monotonic()
        partition(c, victim)
        try:
            wait_for(lambda: all_running(api, "web", replicas, other), 180,
                     "every web pod Running on the other node", interval=0.1)
            took = time.monotonic() - t_beat
        finally:
            heal(c, victim)
        print(f"  {moving} of {replicas} pods on {victim}: last heartbeat -> all Running on "
              f"{other}: {took:.1f} s; pod startup ({moving} pods, same run): {startup:.1f} s; "
              f"ratio {took / (GRACE + startup):.2f} (/ grace {GRACE} s + startup)")
        return took, startup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    results = [one_run(args.replicas) for _ in range(args.runs)]
    took = statistics.median(r[0] for r in results)
    startup = statistics.median(r[1] for r in results)
    print(f"node failure recovery: {took:.1f} s from the last heartbeat; floor grace {GRACE} s "
          f"+ startup {startup:.1f} s = {GRACE + startup:.1f} s; "
          f"ratio {took / (GRACE + startup):.2f}")


if __name__ == "__main__":
    main()
