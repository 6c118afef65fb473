"""API latency and throughput against the floor: raw etcd through aetcd.

Starts its own etcd and master (free ports, removed afterwards), then prints:
- for 1, 10 and 50 concurrent clients: raw aetcd put/get of a serialized pod
  (the floor) beside the API's Create/Get of the same pod, p50/p99 latency,
  objects/s, and the ratios API/etcd (p50) and etcd/API (throughput);
- watch fan-out: time for one change to reach 100 watchers.

    .venv/bin/python bench/api_latency.py [--ops 300] [--watchers 100]

Not a test: it never fails because the machine is slow; read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aetcd  # noqa: E402

from kubelite.api import pod_pb2  # noqa: E402
from kubelite.client import AsyncClient  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def ms(x: float) -> str:
    return f"{x * 1000:7.2f}ms"


def make_pod(name: str, ns: str) -> pod_pb2.Pod:
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]},
    }, pod_pb2.Pod)


async def _timed(workers: list[Any]) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*workers)
    return time.perf_counter() - t0


async def etcd_round(host: str, port: int, concurrency: int, ops: int
                     ) -> tuple[list[float], float, list[float], float]:
    """The floor: aetcd put/get of a serialized pod, same concurrency and count as the API."""
    value = make_pod("x", "default").SerializeToString()
    clients = [aetcd.Client(host=host, port=port) for _ in range(concurrency)]
    for c in clients:
        await c.connect()
    keys = [f"/bench/floor/{concurrency}/{i}".encode() for i in range(ops)]
    parts = [keys[i::concurrency] for i in range(concurrency)]
    puts: list[float] = []
    gets: list[float] = []

    async def worker(c: aetcd.Client, mine: list[bytes], out: list[float], verb: str) -> None:
        for k in mine:
            t = time.perf_counter()
            if verb == "put":
                await c.put(k, value)
            else:
                await c.get(k)
            out.append(time.perf_counter() - t)

    pairs = list(zip(clients, parts, strict=True))
    put_rate = ops / await _timed([worker(c, p, puts, "put") for c, p in pairs])
    get_rate = ops / await _timed([worker(c, p, gets, "get") for c, p in pairs])
    await clients[0].delete_prefix(b"/bench/")
    for c in clients:
        await c.close()
    return puts, put_rate, gets, get_rate


async def api_round(address: str, ns: str, concurrency: int, ops: int
                    ) -> tuple[list[float], float, list[float], float]:
    clients = [AsyncClient(server=address) for _ in range(concurrency)]
    names = [f"p{concurrency}-{i}" for i in range(ops)]
    creates: list[float] = []
    gets: list[float] = []

    async def worker(c: AsyncClient, mine: list[str], out: list[float], verb: str) -> None:
        for n in mine:
            t = time.perf_counter()
            if verb == "create":
                await c.create(make_pod(n, ns))
            else:
                await c.get("pods", n, ns)
            out.append(time.perf_counter() - t)

    parts = [names[i::concurrency] for i in range(concurrency)]
    t0 = time.perf_counter()
    pairs = list(zip(clients, parts, strict=True))
    await asyncio.gather(*(worker(c, p, creates, "create") for c, p in pairs))
    create_rate = ops / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c, p, gets, "get") for c, p in pairs))
    get_rate = ops / (time.perf_counter() - t0)
    for c in clients:
        await c.close()
    return creates, create_rate, gets, get_rate


async def fanout(address: str, ns: str, watchers: int, rounds: int) -> list[float]:
    clients = [AsyncClient(server=address) for _ in range(watchers)]
    _, rv = await clients[0].list("pods", ns)
    seen: dict[str, list[float]] = {}
    ready = asyncio.Semaphore(0)

    async def watch(c: AsyncClient) -> None:
        first = True
        async for _typ, obj, _ in c.watch("pods", ns, label_selector="fanout=yes",
                                         resource_version=rv, allow_bookmarks=True):
            if first:
                first = False
            if obj is not None:
                seen.setdefault(obj.metadata.name, []).append(time.perf_counter())

    tasks = [asyncio.create_task(watch(c)) for c in clients]
    await asyncio.sleep(2.0)  # let every stream reach etcd
    del ready
    results = []
    for r in range(rounds):
        name = f"fan-{r}"
        pod = make_pod(name, ns)
        pod.metadata.labels["fanout"] = "yes"
        t = time.perf_counter()
        await clients[0].create(pod)
        deadline = t + 30
        while len(seen.get(name, [])) < watchers and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        got = seen.get(name, [])
        if len(got) < watchers:
            print(f"  round {r}: only {len(got)}/{watchers} watchers saw the change in 30s")
            continue
        results.append(max(got) - t)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.close()
    return results


async def main_async(address: str, host: str, port: int, args: argparse.Namespace) -> None:
    ns = "default"
    print(f"{args.ops} objects per round; latency p50/p99 per call; "
          "ratio = API / etcd at the same concurrency (p50) and etcd / API (throughput)")
    print(f"{'clients':>7} {'op':>7} {'etcd p50':>10} {'etcd/s':>7} {'API p50':>10} "
          f"{'API p99':>10} {'API/s':>7} {'p50 x':>6} {'rate x':>6}")
    floor_put_p50 = 0.0
    for conc in (1, 10, 50):
        puts, put_rate, egets, eget_rate = await etcd_round(host, port, conc, args.ops)
        c_lat, c_rate, g_lat, g_rate = await api_round(address, ns, conc, args.ops)
        if conc == 1:
            floor_put_p50 = pct(puts, 50)
        for op, e_lat, e_rate, a_lat, a_rate in (("create", puts, put_rate, c_lat, c_rate),
                                                 ("get", egets, eget_rate, g_lat, g_rate)):
            print(f"{conc:>7} {op:>7} {ms(pct(e_lat, 50)):>10} {e_rate:7.0f} "
                  f"{ms(pct(a_lat, 50)):>10} {ms(pct(a_lat, 99)):>10} {a_rate:7.0f} "
                  f"{pct(a_lat, 50) / pct(e_lat, 50):6.1f} {e_rate / a_rate:6.1f}")
    print()
    res = await fanout(address, ns, args.watchers, args.rounds)
    if res:
        print(f"watch fan-out: one change reached {args.watchers} watchers in median "
              f"{ms(statistics.median(res))} (min {ms(min(res))}, max {ms(max(res))}, "
              f"{len(res)} rounds); x etcd put p50 (1 client): "
              f"{statistics.median(res) / floor_put_p50:.1f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=300)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    with run_etcd() as etcd, run_master(etcd.endpoint) as master:
        print(f"# kubelite API benchmark ({uuid.uuid4().hex[:6]}), master {master.address}")
        asyncio.run(main_async(master.address, etcd.host, etcd.port, args))


if __name__ == "__main__":
    main()
