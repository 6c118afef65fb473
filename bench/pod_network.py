"""Pod network round-trip latency and throughput, beside the raw veth path.

- floor: two network namespaces joined by one veth pair (no bridge, no
  routing, no encapsulation): ping RTT (busybox, 50 x 20 ms, median of the
  per-run averages) and a TCP bulk transfer (busybox nc, --mb MiB);
- then for each backend (vxlan, host-gw) a local cluster of 3 nodes as
  `make up` makes it, and the same measurements between pods on one node
  and pods on two nodes, each printed with its ratio to the floor;
- and the time from a new node publishing its network (its backend
  annotations on the Node) to its route being on every other node.

    .venv/bin/python bench/pod_network.py [--mb 256] [--runs 3]

Not a test: it never fails because the machine is slow; read the ratios.
All namespaces, links and containers it makes are removed at the end.
"""

from __future__ import annotations

import argparse
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubelite.api import pod_pb2  # noqa: E402
from kubelite.client import Client  # noqa: E402
from kubelite.objects import convert  # noqa: E402
from tests.localcluster import LocalCluster, local_cluster  # noqa: E402
from tests.node_agent import wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
RTT = re.compile(r"min/avg/max = [\d.]+/([\d.]+)/")


def sh(*cmd: str, timeout: float = 120) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def rtt_ms(run: Any, address: str) -> float:
    run(f"ping -c 3 -i 0.02 -q {address}")  # warm-up: ARP and the first packet's path
    out = run(f"ping -c 50 -i 0.02 -q {address}")
    m = RTT.search(out)
    if not m:
        raise RuntimeError(f"ping {address}: {out}")
    return float(m.group(1))


def throughput_mbs(client: Any, server: Any, address: str, mb: int) -> float:
    """MiB/s of a bulk TCP transfer; server(cmd) runs the receiver, client(cmd) the sender."""
    done: list[str] = []
    t = threading.Thread(target=lambda: done.append(
        # nc's stdin must stay open (at EOF it would hang up): a FIFO held by the shell
        server("mkdir -p /tmp; rm -f /tmp/bench.fifo; mkfifo /tmp/bench.fifo; "
               "(nc -l -p 5001 </tmp/bench.fifo | wc -c) & exec 3>/tmp/bench.fifo; wait")))
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    client(f"dd if=/dev/zero bs=65536 count={mb * 16} 2>/dev/null | nc {address} 5001")
    t.join(120)
    took = time.monotonic() - start
    if not done or int(done[0].split()[-1]) != mb << 20:
        raise RuntimeError(f"transfer to {address} incomplete: {done}")
    return mb / took


def floor(mb: int, runs: int) -> tuple[float, float]:
    tag = uuid.uuid4().hex[:5]
    a, b = f"klbench-{tag}-a", f"klbench-{tag}-b"
    try:
        sh("ip", "netns", "add", a)
        sh("ip", "netns", "add", b)
        sh("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
           "netns", b)
        sh("ip", "-n", a, "addr", "add", "10.239.254.1/30", "dev", "eth0")
        sh("ip", "-n", b, "addr", "add", "10.239.254.2/30", "dev", "eth0")
        for ns in (a, b):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")

        def in_ns(ns: str) -> Any:
            return lambda script: sh("ip", "netns", "exec", ns, "busybox", "sh", "-c", script)

        rtt = statistics.median(rtt_ms(in_ns(a), "10.239.254.2") for _ in range(runs))
        tput = statistics.median(throughput_mbs(in_ns(a), in_ns(b), "10.239.254.2", mb)
                                 for _ in range(runs))
        return rtt, tput
    finally:
        subprocess.run(["ip", "netns", "del", a], check=False)
        subprocess.run(["ip", "netns", "del", b], check=False)


def make_pod(api: Client, name: str, node: str, command: str = "sleep 3600") -> Any:
    api.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": IMAGE,
                                 "command": ["sh", "-c", command]}]}}, pod_pb2.Pod))
    return wait_for(lambda: (p := api.get("pods", name, "default")).status.phase == "Running"
                    and p.status.podIP and p, 60, f"{name} running")


def in_pod(p: Any) -> Any:
    cid = p.status.containerStatuses[0].containerID.removeprefix("docker://")
    return lambda script: sh("docker", "exec", cid, "sh", "-c", script)


def route_latency(c: LocalCluster, api: Client) -> float:
    """kubelite-up --nodes 3 on the running 2-node cluster; time from the new node's
    backend annotations to its route on both others."""
    args = list(c.up_args)
    args[args.index("--nodes") + 1] = "3"
    c.up_args = args
    new = c.nodes[0].rsplit("-", 1)[0] + "-3"
    up = threading.Thread(target=c.up)
    up.start()
    published = wait_for(lambda: _published(api, new), 90, f"{new} publishing its network",
                         interval=0.01)
    cidr = api.get("nodes", new).spec.podCIDR
    for other in c.nodes[:2]:
        wait_for(lambda o=other: cidr in c.in_node(o, "ip", "route", "show", "proto",
                                                   "77").stdout, 30, "route", interval=0.01)
    took = time.monotonic() - published
    up.join(120)
    return took


def _published(api: Client, name: str) -> float | None:
    try:
        n = api.get("nodes", name)
    except Exception:  # noqa: BLE001 - not registered yet
        return None
    return time.monotonic() if "network.kubelite.io/public-ip" in n.metadata.annotations \
        else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256, help="MiB per transfer (default 256)")
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (median)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # run the clean-ups when killed
    base_rtt, base_tput = floor(args.mb, args.runs)
    print(f"floor (raw veth between two namespaces): RTT {base_rtt:.3f} ms, "
          f"{base_tput:.0f} MiB/s", flush=True)
    for backend in ("vxlan", "host-gw"):
        with local_cluster(backend) as c, c.client() as api:
            n1, n2 = c.nodes
            a1, a2, b1 = (make_pod(api, "a1", n1), make_pod(api, "a2", n1),
                          make_pod(api, "b1", n2))
            for label, src, dst in (("same node", a1, a2), ("cross node", a1, b1)):
                rtt = statistics.median(rtt_ms(in_pod(src), dst.status.podIP)
                                        for _ in range(args.runs))
                tput = statistics.median(throughput_mbs(in_pod(src), in_pod(dst),
                                                        dst.status.podIP, args.mb)
                                         for _ in range(args.runs))
                print(f"{backend:7s} {label:10s}: RTT {rtt:.3f} ms ({rtt / base_rtt:.2f}x "
                      f"floor), {tput:.0f} MiB/s ({tput / base_tput:.2f}x floor)", flush=True)
            took = route_latency(c, api)
            print(f"{backend:7s} new node's route on every other node: {took * 1000:.0f} ms "
                  "after it published its network", flush=True)


if __name__ == "__main__":
    main()
