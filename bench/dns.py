"""Cluster DNS query latency against its floor: a UDP echo on the same path.

Starts its own etcd and master (free ports, removed afterwards), writes
--services ClusterIP Services plus one headless Service with 10 endpoints,
runs the node agent's DNS alone (`python -m node.dns`, its own process, its
informers synced from the master) and, as the floor, a UDP echo server in
another process built the same way (asyncio datagram protocol). From this
process, one query at a time over UDP on loopback, it prints p50/p99 for:
a Service's A record, the headless A set, a hostname, SRV, an NXDOMAIN, and
the same over TCP (one connection), each beside the echo of a packet of the
same size (ratio of p50s), then sequential queries/s.

With --from-pod the DNS and the echo listen on Docker's bridge gateway and
the client runs in a pod-like network namespace (a pause container on the
bridge, entered with nsenter): the path a pod's query takes to its node,
veth and bridge included (the Service DNAT of 10.96.0.10 is not in it).

    .venv/bin/python bench/dns.py [--services 1000] [--queries 2000] [--from-pod]

Not a test: it never fails because the machine is slow; read the ratios.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import core_pb2  # noqa: E402
from kubelite.client import Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from node.dns.wire import SRV, A, encode_query, name_from_text, parse_response  # noqa: E402
from tests.cluster import ROOT, free_port, run_etcd, run_master  # noqa: E402

ECHO = textwrap.dedent("""
    import asyncio, sys
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t): self.t = t
        def datagram_received(self, data, addr): self.t.sendto(data, addr)
    async def main():
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(Echo, local_addr=(sys.argv[2], int(sys.argv[1])))
        await asyncio.Event().wait()
    asyncio.run(main())
""")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def udp_times(host: str, port: int, packet: bytes, n: int) -> list[float]:
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, port))
        s.settimeout(2)
        for _ in range(n):
            p = struct.pack("!H", secrets.randbelow(65536)) + packet[2:]
            t = time.perf_counter()
            s.send(p)
            while s.recv(65535)[:2] != p[:2]:
                pass
            out.append(time.perf_counter() - t)
    return out


def tcp_times(host: str, port: int, packet: bytes, n: int) -> list[float]:
    out = []
    with socket.create_connection((host, port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
            s.recv(size, socket.MSG_WAITALL)
            out.append(time.perf_counter() - t)
    return out


def populate(client: Client, services: int) -> None:
    ns = "bench"
    client.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": ns}}, core_pb2.Namespace))
    for i in range(services):
        client.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}",
                                                                "namespace": ns},
            "spec": {"clusterIP": f"10.96.{10 + i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80}]}}, core_pb2.Service))
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": ns},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}},
        core_pb2.Service))
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": ns},
        "subsets": [{"addresses": [{"ip": f"10.244.1.{i + 2}", "hostname": f"db-{i}"}
                                   for i in range(10)],
                     "ports": [{"name": "pg", "port": 5432}]}]}, core_pb2.Endpoints))


def _gateway() -> str:
    return subprocess.run(["docker", "network", "inspect", "bridge", "-f",
                           "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--from-pod", action="store_true",
                    help="query from a pause container's network namespace on Docker's bridge")
    ap.add_argument("--client", nargs=3, metavar=("HOST", "DNS_PORT", "ECHO_PORT"),
                    help=argparse.SUPPRESS)  # the measuring half, run inside the namespace
    args = ap.parse_args()
    if args.client:
        run(args, args.client[0], int(args.client[1]), int(args.client[2]))
        return
    host = _gateway() if args.from_pod else "127.0.0.1"
    dns_port, echo_port = free_port(), free_port()
    with run_etcd() as etcd, run_master(etcd.endpoint, "--no-scheduler",
                                        "--no-controllers") as master:
        with Client(server=master.address, timeout=30) as client:
            t = time.perf_counter()
            populate(client, args.services)
            print(f"wrote {args.services + 1} Services in {time.perf_counter() - t:.1f}s")
        procs = [
            subprocess.Popen([sys.executable, "-m", "node.dns", "--server", master.address,
                              "--dns-bind-address", host, "--port", str(dns_port),
                              "--dns-upstream", "none"], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([sys.executable, "-c", ECHO, str(echo_port), host]),
        ]
        pause = ""
        try:
            wait_serving(host, dns_port, args.services)
            if not args.from_pod:
                print("client: this process, over loopback\n")
                run(args, host, dns_port, echo_port)
                return
            pause = subprocess.run(["docker", "run", "-d", "--rm", "--network", "bridge",
                                    "kubelite/pause:latest"], capture_output=True, text=True,
                                   check=True).stdout.strip()
            pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", pause],
                                 capture_output=True, text=True, check=True).stdout.strip()
            print(f"client: in the network namespace of a pause container on the bridge, "
                  f"to {host}\n")
            subprocess.run(["nsenter", "-t", pid, "-n", sys.executable, __file__,
                            "--services", str(args.services), "--queries", str(args.queries),
                            "--client", host, str(dns_port), str(echo_port)], check=True)
        finally:
            if pause:
                subprocess.run(["docker", "rm", "-f", pause], capture_output=True)
            for p in procs:
                p.terminate()
                p.wait()


def wait_serving(host: str, port: int, services: int) -> None:
    last = f"svc-{services - 1}.bench.svc.cluster.local"
    probe = encode_query(1, name_from_text(last), A)
    deadline = time.monotonic() + 60
    t = time.perf_counter()
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(0.2)
                s.sendto(probe, (host, port))
                if parse_response(s.recv(4096)).answer:
                    break
        except OSError:
            time.sleep(0.1)
    print(f"DNS serving all of them {time.perf_counter() - t:.1f}s after start "
          "(process start + informer sync)")


def run(args: argparse.Namespace, host: str, dns_port: int, echo_port: int) -> None:
    n = args.queries
    cases = [
        ("A  svc (ClusterIP)", f"svc-{args.services // 2}.bench.svc.cluster.local", A),
        ("A  headless (10)", "db.bench.svc.cluster.local", A),
        ("A  db-3.db (hostname)", "db-3.db.bench.svc.cluster.local", A),
        ("SRV _pg._tcp.db", "_pg._tcp.db.bench.svc.cluster.local", SRV),
        ("NXDOMAIN", "nope.bench.svc.cluster.local", A),
    ]
    print(f"{'query':24} {'p50':>9} {'p99':>9}   {'echo p50':>9} {'echo p99':>9}  ratio p50")
    for label, name, qtype in cases:
        packet = encode_query(0, name_from_text(name), qtype)
        udp_times(host, dns_port, packet, 100)  # warm up
        dns = udp_times(host, dns_port, packet, n)
        echo = udp_times(host, echo_port, packet, n)
        print(f"{label:24} {pct(dns, 50) * 1e6:7.0f}us {pct(dns, 99) * 1e6:7.0f}us   "
              f"{pct(echo, 50) * 1e6:7.0f}us {pct(echo, 99) * 1e6:7.0f}us  "
              f"{pct(dns, 50) / pct(echo, 50):6.2f}x")
    packet = encode_query(0, name_from_text(cases[0][1]), A)
    tcp = tcp_times(host, dns_port, packet, n)
    print(f"{'A  svc over TCP':24} {pct(tcp, 50) * 1e6:7.0f}us {pct(tcp, 99) * 1e6:7.0f}us")
    t = time.perf_counter()
    udp_times(host, dns_port, packet, n)
    print(f"\nsequential: {n / (time.perf_counter() - t):.0f} queries/s from one client")


if __name__ == "__main__":
    main()
