"""Scheduler throughput: the pure plugin pipeline beside the real thing.

For 100, 1,000 and 5,000 simulated nodes (Node objects, no agent behind
them) and 1,000 pods (100m cpu, 64Mi each, 10 ReplicaSets):

- pure: framework.schedule() on an in-memory snapshot, each decision then
  "assumed" onto its node as the scheduler does: decisions/s and the p50/p99
  time of one decision. This is the floor: no API, no etcd.
- end to end: a real etcd and master (its scheduler holding the lease);
  pods created through the API by 10 clients, a watch records when each is
  bound: pods/s from the first create to the last bind, and the p50/p99 time
  from a pod's create to its bind.
- ratio: pure decisions/s over end-to-end pods/s, the cost of the API round
  trips (a bind, an event and the watches per pod).

    .venv/bin/python bench/scheduler.py [--pods 1000] [--nodes 100,1000,5000]

Not a test: it never fails because the machine is slow; read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import core_pb2, pod_pb2  # noqa: E402
from kubelite.client import AsyncClient  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from master.scheduler.framework import Snapshot, schedule  # noqa: E402
from master.scheduler.plugins import default_profile  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402

OWNERS = 10


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:8.2f}ms"


def make_node(i: int) -> Any:
    alloc = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    zone = f"zone-{i % 3}"
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"sim-{i:05d}",
                     "labels": {"kubernetes.io/hostname": f"sim-{i:05d}",
                                "topology.kubernetes.io/zone": zone}},
        "status": {"capacity": alloc, "allocatable": alloc,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }, core_pb2.Node)


def make_pod(i: int, ns: str = "default") -> Any:
    owner = f"rs-{i % OWNERS}"
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"bench-{i:05d}", "namespace": ns, "labels": {"app": owner},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": owner, "uid": owner, "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                 "resources": {"requests": {"cpu": "100m",
                                                            "memory": "64Mi"}}}]},
    }, pod_pb2.Pod)


def pure(n_nodes: int, n_pods: int) -> tuple[float, list[float]]:
    snap = Snapshot.build([make_node(i) for i in range(n_nodes)], [])
    profile = default_profile()
    rng = random.Random(1)
    pods = [make_pod(i) for i in range(n_pods)]
    times = []
    start = 0
    t0 = time.perf_counter()
    for p in pods:
        t = time.perf_counter()
        r = schedule(p, snap, profile, start=start, rng=rng)
        start = r.next_start
        p.spec.nodeName = r.node
        snap.by_name[r.node].add_pod(p)
        times.append(time.perf_counter() - t)
    return n_pods / (time.perf_counter() - t0), times


async def end_to_end(address: str, n_nodes: int, n_pods: int) -> tuple[float, list[float]]:
    c = AsyncClient(server=address, timeout=60)
    sem = asyncio.Semaphore(20)

    async def create(obj: Any) -> None:
        async with sem:
            await c.create(obj)

    await asyncio.gather(*(create(make_node(i)) for i in range(n_nodes)))
    await asyncio.sleep(1.0)  # the scheduler's node informer catches up
    _, rv = await c.list("pods", "default")
    created: dict[str, float] = {}
    bound: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for _typ, obj, _ in c.watch("pods", "default", resource_version=rv):
            if obj is not None and obj.spec.nodeName and obj.metadata.name not in bound:
                bound[obj.metadata.name] = time.perf_counter()
                if len(bound) >= n_pods:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    clients = [AsyncClient(server=address, timeout=60) for _ in range(10)]

    async def creator(k: int) -> None:
        for i in range(k, n_pods, len(clients)):
            p = make_pod(i)
            created[p.metadata.name] = time.perf_counter()
            await clients[k].create(p)

    t0 = time.perf_counter()
    await asyncio.gather(*(creator(k) for k in range(len(clients))))
    try:
        await asyncio.wait_for(done.wait(), 300)
    except TimeoutError:
        print(f"  only {len(bound)}/{n_pods} pods bound in 300 s")
    elapsed = max(bound.values(), default=t0) - t0
    watcher.cancel()
    lat = [bound[n] - created[n] for n in bound if n in created]
    for cl in clients:
        await cl.close()
    # Clean up for the next size: pods (unbound-style immediate delete) and nodes.
    async def delete(resource: str, name: str) -> None:
        async with sem:
            await c.delete(resource, name, "default", grace_period_seconds=0)

    await asyncio.gather(*(delete("pods", f"bench-{i:05d}") for i in range(n_pods)))
    await asyncio.gather(*(delete("nodes", f"sim-{i:05d}") for i in range(n_nodes)))
    await c.close()
    return len(bound) / elapsed if elapsed > 0 else 0.0, lat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--nodes", default="100,1000,5000")
    args = ap.parse_args()
    sizes = [int(x) for x in args.nodes.split(",")]
    print(f"# scheduler benchmark: {args.pods} pods (100m, 64Mi, {OWNERS} ReplicaSets) "
          "onto simulated nodes")
    print(f"{'nodes':>6} | {'pure dec/s':>10} {'p50':>10} {'p99':>10} | "
          f"{'e2e pods/s':>10} {'create->bound p50':>17} {'p99':>10} | {'pure/e2e':>8}")
    # No controllers: the benchmark pods name ReplicaSets that do not exist, which the
    # garbage collector would (rightly) delete.
    with run_etcd() as etcd, run_master(etcd.endpoint, "--no-controllers") as master:
        for n in sizes:
            rate, times = pure(n, args.pods)
            e2e_rate, lat = asyncio.run(end_to_end(master.address, n, args.pods))
            print(f"{n:>6} | {rate:10.0f} {ms(pct(times, 50))} {ms(pct(times, 99))} | "
                  f"{e2e_rate:10.0f} {ms(statistics.median(lat)) if lat else '-':>17} "
                  f"{ms(pct(lat, 99)) if lat else '-'} | "
                  f"{rate / e2e_rate if e2e_rate else float('inf'):8.1f}", flush=True)


if __name__ == "__main__":
    main()
