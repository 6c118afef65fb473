"""Pod startup latency on a local cluster, beside `docker run -d` (the floor).

Starts its own etcd, master (with its scheduler) and one node agent, then:
- floor: `docker run -d` of the same image and command, 30 times one after
  another (p50/p99 per container), and 30 at once (wall time);
- one pod at a time (10 of them): create -> Running (polled);
- pods: 30 single-container pods created at once; a watch records when each
  turns Running: p50/p99 from create to Running, and the wall time for all;
- ratio: pod p50 / docker run p50 (a pod is two containers: pause + app);
- the agent's resident memory at idle and with the 30 pods running.

    .venv/bin/python bench/pod_startup.py [--pods 30]

Not a test: it never fails because the machine is slow; read the ratios.
Every container it starts is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from kubelite.api import pod_pb2  # noqa: E402
from kubelite.client import AsyncClient, Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402
from tests.node_agent import ensure_docker, run_node, wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
FLOOR_LABEL = "io.kubelite.bench=pod-startup"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:8.1f}ms"


def docker_run() -> float:
    t = time.perf_counter()
    subprocess.run(["docker", "run", "-d", "--label", FLOOR_LABEL, IMAGE, "sleep", "3600"],
                   check=True, capture_output=True)
    return time.perf_counter() - t


def remove_floor() -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={FLOOR_LABEL}"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def floor(n: int) -> tuple[list[float], float]:
    try:
        seq = [docker_run() for _ in range(n)]
        remove_floor()
        t = time.perf_counter()
        with ThreadPoolExecutor(n) as ex:
            list(ex.map(lambda _: docker_run(), range(n)))
        wall = time.perf_counter() - t
    finally:
        remove_floor()
    return seq, wall


def make_pod(i: int) -> Any:
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"start-{i:03d}", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]},
    }, pod_pb2.Pod)


async def one_at_a_time(address: str, n: int) -> list[float]:
    """Create a pod, wait until Running, delete it; n times."""
    c = AsyncClient(server=address, timeout=60)
    out = []
    for i in range(n):
        p = make_pod(900 + i)
        t = time.perf_counter()
        await c.create(p)
        while (await c.get("pods", p.metadata.name, "default")).status.phase != "Running":
            await asyncio.sleep(0.01)
        out.append(time.perf_counter() - t)
        await c.delete("pods", p.metadata.name, "default", grace_period_seconds=0)
    await c.close()
    return out


async def pods(address: str, n: int) -> tuple[list[float], float]:
    c = AsyncClient(server=address, timeout=60)
    _, rv = await c.list("pods", "default")
    created: dict[str, float] = {}
    running: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for _typ, obj, _rv in c.watch("pods", "default", resource_version=rv):
            name = obj.metadata.name if obj is not None else ""
            if obj is not None and obj.status.phase == "Running" and name not in running:
                running[name] = time.perf_counter()
                if len(running) >= n:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)

    async def create(i: int) -> None:
        p = make_pod(i)
        created[p.metadata.name] = time.perf_counter()
        await c.create(p)

    t0 = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(n)))
    try:
        await asyncio.wait_for(done.wait(), 300)
    except TimeoutError:
        print(f"  only {len(running)}/{n} pods Running after 300 s")
    wall = max(running.values(), default=t0) - t0
    watcher.cancel()
    await c.close()
    return [running[k] - created[k] for k in running], wall


def rss_mb(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=30)
    args = ap.parse_args()
    n = args.pods
    ensure_docker()
    print(f"# pod startup: {n} pods of {IMAGE} (`sleep 3600`), one node agent, this machine")
    seq, floor_wall = floor(n)
    print(f"floor  docker run -d: p50 {ms(statistics.median(seq))} p99 {ms(pct(seq, 99))} "
          f"one at a time; {n} at once: {floor_wall:.2f}s wall")
    with run_etcd() as etcd, run_master(etcd.endpoint) as master, \
            run_node(master.address, "--metrics-interval", "0") as agent:
        with Client(server=master.address) as c:
            wait_for(lambda: c.get("nodes", agent.name), 30, "node registration")
        time.sleep(3)
        idle = rss_mb(agent.proc.pid)
        single = asyncio.run(one_at_a_time(master.address, 10))
        print(f"pod    create->Running one at a time: p50 {ms(statistics.median(single))} "
              f"p99 {ms(pct(single, 99))} (10 pods); ratio to docker run p50: "
              f"{statistics.median(single) / statistics.median(seq):.1f}")
        lat, wall = asyncio.run(pods(master.address, n))
        time.sleep(2)
        busy = rss_mb(agent.proc.pid)
        print(f"pods   create->Running: p50 {ms(statistics.median(lat))} p99 {ms(pct(lat, 99))}; "
              f"all {len(lat)} in {wall:.2f}s wall")
        ratio = statistics.median(lat) / statistics.median(seq)
        print(f"ratio  pod p50 / docker run p50: {ratio:.1f}"
              f"   all pods / {n} docker runs at once (wall): {wall / floor_wall:.1f}")
        print(f"agent  RSS idle {idle:.1f} MiB, with {len(lat)} pods {busy:.1f} MiB")
        with Client(server=master.address) as c:
            for i in range(n):
                c.delete("pods", f"start-{i:03d}", "default", grace_period_seconds=0)


if __name__ == "__main__":
    main()
