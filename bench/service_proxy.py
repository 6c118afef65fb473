"""Service proxy benchmarks.

1. Sync time for --services Services x --endpoints endpoints in iptables mode
   (build the model from API objects, read the nat table, render, apply with
   iptables-restore, check the jumps), beside a plain `iptables-restore
   --noflush` of the same payload in the same run; both in a network
   namespace of their own. Median of --runs.
2. On a local cluster (2 nodes, iptables mode): network programming latency,
   the time from an Endpoints change to the new backend answering through
   the ClusterIP from every node, p50/p99 over --changes changes.
3. Throughput through the ClusterIP beside straight to the pod's address.

    .venv/bin/python bench/service_proxy.py [--services 1000] [--endpoints 10]

Not a test: it never fails because the machine is slow; read the ratios.
Everything it creates (namespaces, links, chains, containers) is removed.
"""

from __future__ import annotations

import argparse
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pod_network import in_pod, make_pod, throughput_mbs  # noqa: E402
from kubelite.api import core_pb2  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from node.network.plumbing import in_netns  # noqa: E402


def objects(n_services: int, n_endpoints: int) -> tuple[list[Any], list[Any]]:
    services, endpoints = [], []
    for i in range(n_services):
        ip = f"10.96.{i // 250}.{i % 250 + 2}"
        services.append(convert.from_dict({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": "bench"},
            "spec": {"clusterIP": ip, "type": "NodePort" if i % 10 == 0 else "ClusterIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080,
                                "nodePort": 30000 + i if i % 10 == 0 else 0}]}},
            core_pb2.Service))
        endpoints.append(convert.from_dict({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": f"svc-{i}", "namespace": "bench"},
            "subsets": [{"addresses": [{"ip": f"10.244.{(i * n_endpoints + j) // 250 % 250}."
                                              f"{(i * n_endpoints + j) % 250 + 2}"}
                                       for j in range(n_endpoints)],
                         "ports": [{"name": "http", "port": 8080}]}]}, core_pb2.Endpoints))
    return services, endpoints


def inner(n_services: int, n_endpoints: int, runs: int) -> None:
    """Inside a fresh network namespace: our sync vs a plain iptables-restore."""
    from node.proxy import iptables, model
    from node.proxy.proxier import IptablesMode

    services, endpoints = objects(n_services, n_endpoints)
    ours, plain = [], []
    payload = ""
    for _ in range(runs):
        iptables.remove_all()
        mode = IptablesMode()
        t = time.perf_counter()
        ports = model.build(services, endpoints)
        mode.sync(ports, "10.244.0.0/16", full=True)
        ours.append(time.perf_counter() - t)
        payload = mode.last
        iptables.remove_all()
        t = time.perf_counter()
        subprocess.run(["iptables-restore", "-w", "--noflush"], input=payload, text=True,
                       check=True)
        plain.append(time.perf_counter() - t)
    rules = sum(1 for line in payload.splitlines() if line.startswith("-A"))
    o, p = statistics.median(ours), statistics.median(plain)
    print(f"sync of {n_services} Services x {n_endpoints} endpoints ({rules} rules): "
          f"{o * 1000:.0f} ms; plain iptables-restore of the same payload: {p * 1000:.0f} ms; "
          f"ratio {o / p:.2f}", flush=True)
    iptables.remove_all()


def sync_bench(args: argparse.Namespace) -> None:
    ns = f"klbench-px-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inner",
                        "--services", str(args.services), "--endpoints", str(args.endpoints),
                        "--runs", str(args.runs)], check=True, timeout=1800)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def fetch_from_node(netns: str, address: str, port: int) -> str:
    """GET / through `address` from inside a node's namespace (its OUTPUT chain)."""
    def connect(_ip: Any) -> socket.socket:
        return socket.socket()  # made in the node's namespace, stays there

    s = in_netns(f"/run/netns/{netns}", connect)
    try:
        s.settimeout(1)
        s.connect((address, port))
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return data.decode(errors="replace").strip().splitlines()[-1]
    except OSError:
        return ""
    finally:
        s.close()


def cluster_bench(args: argparse.Namespace) -> None:
    from tests.localcluster import local_cluster
    from tests.node_agent import wait_for

    server = "mkdir -p /www && hostname > /www/index.html && httpd -p 8080 -h /www && " \
             "sleep 3600"
    with local_cluster("host-gw") as c, c.client() as api:
        n1, n2 = c.nodes
        backends = [make_pod(api, f"be-{i}", n1 if i % 2 else n2, server) for i in range(2)]
        api.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "lat", "namespace": "default"},
            "spec": {"clusterIP": "10.96.200.1", "ports": [{"port": 80, "targetPort": 8080}]}},
            core_pb2.Service))
        eps = api.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "lat", "namespace": "default"}, "subsets": []},
            core_pb2.Endpoints))
        lat = []
        for i in range(args.changes):
            time.sleep(1.2)  # past the proxy's minimum sync interval: one change at a time
            target = backends[i % 2]
            eps.subsets.clear()
            sub = eps.subsets.add()
            sub.addresses.add(ip=target.status.podIP)
            sub.ports.add(port=8080)
            t = time.monotonic()
            eps = api.update(eps)
            for node in c.nodes:
                wait_for(lambda n=node, want=target.metadata.name: fetch_from_node(
                    c.netns(n), "10.96.200.1", 80) == want, 30, "the new backend",
                    interval=0.01)
            lat.append(time.monotonic() - t)
        lat.sort()
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"network programming latency over {len(lat)} changes (Endpoints write -> "
              f"answering through the ClusterIP from both nodes): p50 "
              f"{statistics.median(lat) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              "(changes 1.2 s apart, beyond the 1 s minimum sync interval)", flush=True)
        # throughput: ClusterIP vs the pod's own address
        sink = make_pod(api, "sink", n2, "sleep 3600")
        client = make_pod(api, "src", n1, "sleep 3600")
        api.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "sink", "namespace": "default"},
            "spec": {"clusterIP": "10.96.200.2", "ports": [{"port": 5001}]}}, core_pb2.Service))
        api.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "sink", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": sink.status.podIP}], "ports": [{"port": 5001}]}]},
            core_pb2.Endpoints))
        time.sleep(2)
        direct = statistics.median(throughput_mbs(in_pod(client), in_pod(sink),
                                                  sink.status.podIP, args.mb)
                                   for _ in range(args.runs))
        via = statistics.median(throughput_mbs(in_pod(client), in_pod(sink), "10.96.200.2",
                                               args.mb) for _ in range(args.runs))
        print(f"throughput across nodes: through the ClusterIP {via:.0f} MiB/s, straight to "
              f"the pod {direct:.0f} MiB/s, ratio {via / direct:.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--endpoints", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-sync", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--mb", type=int, default=128)
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(args.services, args.endpoints, args.runs)
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if not args.skip_sync:
        sync_bench(args)
    cluster_bench(args)


if __name__ == "__main__":
    main()
