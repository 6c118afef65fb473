"""A local cluster as `make up` makes it (kubelite-up: etcd, a master, node
agents in network namespaces on a bridge), with names, ports and a host
range of its own so it never meets a cluster a user runs on this machine.
`kubelite-down` removes it; the context manager then checks that nothing
(namespace, link, chain, container) is left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import random
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from kubelite import localnet
from kubelite.client import Client, load_config
from tests.cluster import ROOT, free_port
from tests.node_agent import ensure_docker, node_containers, remove_node_containers


@dataclasses.dataclass
class LocalCluster:
    state: Path
    env: dict[str, str]
    net: localnet.LocalNet
    backend: str
    up_args: list[str]

    def up(self) -> subprocess.CompletedProcess[str]:
        """Run kubelite-up again (it repairs what is missing)."""
        return subprocess.run([sys.executable, "-c", "from kubelite.up import main; main()",
                               *self.up_args], cwd=ROOT, env=self.env, capture_output=True,
                              text=True, timeout=180, check=False)

    @property
    def nodes(self) -> list[str]:
        return [n.name for n in self.net.nodes]

    def netns(self, node: str) -> str:
        return next(n.netns for n in self.net.nodes if n.name == node)

    def address(self, node: str) -> str:
        return next(n.address for n in self.net.nodes if n.name == node)

    def client(self) -> Client:
        return Client(load_config(self.env["KUBELITE_CONFIG"]), timeout=30)

    def in_node(self, node: str, *cmd: str,
                timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns(node), *cmd],
                              capture_output=True, text=True, timeout=timeout, check=False)


def partition(cluster: LocalCluster, node: str) -> None:
    """Cut a node off the LAN: its uplink down inside its network namespace."""
    subprocess.run(["ip", "-n", cluster.netns(node), "link", "set", "eth0", "down"],
                   check=True)


def heal(cluster: LocalCluster, node: str) -> None:
    """Undo partition(): the link up and the default route (gone with the link) back."""
    ns = cluster.netns(node)
    subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
    subprocess.run(["ip", "-n", ns, "route", "replace", "default", "via", cluster.net.gateway],
                   check=True)


def free_host_cidr() -> str:
    with contextlib.suppress(Exception):
        from pyroute2 import IPRoute

        with IPRoute() as ip:
            used = [ipaddress.ip_network(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}",
                                         strict=False) for a in ip.get_addr(family=2)]
        for _ in range(100):
            cand = ipaddress.ip_network(f"10.239.{random.randint(1, 254)}.0/24")
            if not any(cand.overlaps(u) for u in used):
                return str(cand)
    raise RuntimeError("no free 10.239.x.0/24 for a test cluster")


@contextlib.contextmanager
def local_cluster(backend: str = "vxlan", nodes: int = 2,
                  extra: tuple[str, ...] = ()) -> Iterator[LocalCluster]:
    ensure_docker()
    tag = uuid.uuid4().hex[:5]
    tmp = Path(tempfile.mkdtemp(prefix=f"kubelite-local-{tag}-"))
    state = tmp / "cluster"
    env = {**os.environ, "KUBELITE_LOCAL_DIR": str(state),
           "KUBELITE_CONFIG": str(tmp / "config"), "KUBELITE_SERVER": ""}
    prefix, bridge = f"t{tag}-", f"klt{tag}"
    args = ["--port", str(free_port()), "--etcd-port", str(free_port()),
            "--nodes", str(nodes), "--node-prefix", prefix, "--bridge", bridge,
            "--netns-prefix", f"klt{tag}-", "--host-cidr", free_host_cidr(),
            "--network-backend", backend, *extra]
    net = localnet.plan(bridge, args[args.index("--host-cidr") + 1],
                        [f"{prefix}{i}" for i in range(1, nodes + 1)], f"klt{tag}-")
    cluster = LocalCluster(state, env, net, backend, args)
    try:
        r = cluster.up()
        if r.returncode:
            raise RuntimeError(f"kubelite-up failed:\n{r.stdout}\n{r.stderr}")
        yield cluster
    finally:
        r = subprocess.run([sys.executable, "-c", "from kubelite.up import main_down; "
                            "main_down()"], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=180, check=False)
        for n in net.nodes:  # in case down itself failed
            remove_node_containers(n.name)
        left = leftovers(net)
        if left:  # never leave them, even when reporting them
            localnet.remove(net)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        assert not left, f"kubelite-down left behind: {left}"


def leftovers(net: localnet.LocalNet) -> list[str]:
    out = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                           check=False).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           check=False).stdout
    chains = subprocess.run(["iptables", "-w", "-S"], capture_output=True, text=True,
                            check=False).stdout
    for n in net.nodes:
        if n.netns in netns.split():
            out.append(f"netns {n.netns}")
        if f" {n.veth}@" in links or f" {n.veth}:" in links:
            out.append(f"link {n.veth}")
        if node_containers(n.name):
            out.append(f"containers of {n.name}")
    if f" {net.bridge}:" in links:
        out.append(f"bridge {net.bridge}")
    if net.chain in chains:
        out.append(f"chain {net.chain}")
    return out
