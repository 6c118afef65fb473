"""The pod network's netlink parts against the real kernel, inside network
namespaces this module creates (and removes, whatever happens): the bridge
and a pod's veth, the host-gw and vxlan backends' routes, neighbours and FDB
entries, their repair and removal."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from node.network import backends, plumbing
from node.network.backends import HostGW, Peer, VXLAN


def sh(*cmd: str) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, f"{' '.join(cmd)}: {r.stderr}"
    return r.stdout


@pytest.fixture()
def node() -> Iterator[str]:
    """A network namespace with eth0 10.239.250.11/24 (its peer end stays inside too)."""
    name = f"klit-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "wire")
        sh("ip", "-n", name, "addr", "add", "10.239.250.11/24", "dev", "eth0")
        for dev in ("eth0", "wire", "lo"):
            sh("ip", "-n", name, "link", "set", dev, "up")
        sh("ip", "-n", name, "route", "add", "default", "via", "10.239.250.1")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def inside(ns: str, fn: Callable[[], Any]) -> Any:
    """fn() with this thread's netlink in `ns` (what the agent gets from nsenter)."""
    return plumbing.in_netns(f"/run/netns/{ns}", lambda _ip: fn())


def test_bridge_and_pod_veth(node: str) -> None:
    pod_ns = f"{node}-pod"
    sh("ip", "netns", "add", pod_ns)
    holder = subprocess.Popen(["ip", "netns", "exec", pod_ns, "sleep", "60"])
    try:
        inside(node, lambda: plumbing.ensure_bridge("10.244.7.0/24", 1450))
        inside(node, lambda: plumbing.ensure_bridge("10.244.7.0/24", 1450))  # idempotent
        assert "10.244.7.1/24" in sh("ip", "-n", node, "addr", "show", "cni0")
        for _ in range(50):  # `ip netns exec` has entered the namespace
            if subprocess.run(["ip", "netns", "identify", str(holder.pid)], capture_output=True,
                              text=True).stdout.strip() == pod_ns:
                break
            time.sleep(0.05)
        host = inside(node, lambda: plumbing.add_pod("sandbox-1", holder.pid, "10.244.7.5", 24,
                                                      "10.244.7.1", 1450))
        assert host == plumbing.host_veth_name("sandbox-1")
        link = sh("ip", "-n", node, "-d", "link", "show", host)
        assert "master cni0" in link and "hairpin on" in link and "mtu 1450" in link
        assert "10.244.7.5/24" in sh("ip", "-n", pod_ns, "addr", "show", "eth0")
        assert "default via 10.244.7.1 dev eth0" in sh("ip", "-n", pod_ns, "route")
        assert "UP" in sh("ip", "-n", pod_ns, "link", "show", "lo")
        assert plumbing.pod_address(holder.pid) == "10.244.7.5"
        # the gateway answers from inside the pod
        sh("ip", "netns", "exec", pod_ns, "busybox", "ping", "-c", "1", "-W", "2", "10.244.7.1")
        assert inside(node, plumbing.host_veths) == [host]
        assert inside(node, lambda: plumbing.del_pod("sandbox-1"))
        assert "eth0" not in sh("ip", "-n", pod_ns, "link")
        assert not inside(node, lambda: plumbing.del_pod("sandbox-1"))  # already gone: fine
        # a different range later (the node was given another): the old address goes
        inside(node, lambda: plumbing.ensure_bridge("10.244.9.0/24", 1500))
        addrs = sh("ip", "-n", node, "addr", "show", "cni0")
        assert "10.244.9.1/24" in addrs and "10.244.7.1" not in addrs
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(["ip", "netns", "del", pod_ns], check=False)


def test_host_gw_routes_refusal_and_repair(node: str) -> None:
    gw = HostGW("10.239.250.11", "10.244.0.0/24")
    sh("ip", "-n", node, "route", "add", "10.99.0.0/16", "via", "10.239.250.1")  # not ours
    peers = [Peer("n2", "10.239.250.12", "10.244.1.0/24"),
             Peer("far", "10.239.251.5", "10.244.2.0/24")]  # only through the gateway
    res = inside(node, lambda: gw.reconcile(peers))
    assert res.added == ["10.244.1.0/24"]
    assert "far (10.239.251.5) is reached through the gateway 10.239.250.1" in res.refused["far"]
    routes = sh("ip", "-n", node, "route")
    assert "10.244.1.0/24 via 10.239.250.12 dev eth0 proto 77" in routes
    assert "10.244.2.0" not in routes
    # deleted by hand: back on the next reconcile; a peer that moved: its route follows
    sh("ip", "-n", node, "route", "del", "10.244.1.0/24")
    moved = [Peer("n2", "10.239.250.13", "10.244.1.0/24")]
    assert inside(node, lambda: gw.reconcile(moved)).added == ["10.244.1.0/24"]
    assert "10.244.1.0/24 via 10.239.250.13" in sh("ip", "-n", node, "route")
    # a node that left: its route goes; routes that are not ours stay
    assert inside(node, lambda: gw.reconcile([])).removed == ["10.244.1.0/24"]
    routes = sh("ip", "-n", node, "route")
    assert "10.244.1.0" not in routes and "10.99.0.0/16 via 10.239.250.1" in routes


def test_vxlan_device_entries_in_order_and_removed_together(node: str) -> None:
    vx = VXLAN("10.239.250.11", "10.244.0.0/24", vni=1, port=8472, uplink_mtu=1500)
    data = inside(node, vx.setup)
    assert inside(node, vx.setup) == data  # idempotent: same device, same MAC
    link = sh("ip", "-n", node, "-d", "link", "show", "flannel.1")
    assert "vxlan id 1" in link and "local 10.239.250.11" in link and "dstport 8472" in link
    assert "nolearning" in link and "mtu 1450" in link
    assert "10.244.0.0/32" in sh("ip", "-n", node, "addr", "show", "flannel.1")
    p2 = Peer("n2", "10.239.250.12", "10.244.1.0/24", "aa:bb:cc:00:00:02")
    p3 = Peer("n3", "10.239.250.13", "10.244.2.0/24", "")
    res = inside(node, lambda: vx.reconcile([p2, p3]))
    assert res.added == ["10.244.1.0/24"] and "n3" in res.pending
    neigh = sh("ip", "-n", node, "neigh", "show", "dev", "flannel.1")
    fdb = sh("bridge", "-n", node, "fdb", "show", "dev", "flannel.1")
    routes = sh("ip", "-n", node, "route")
    assert "10.244.1.0 lladdr aa:bb:cc:00:00:02 PERMANENT" in neigh
    assert "aa:bb:cc:00:00:02 dst 10.239.250.12 self permanent" in fdb
    assert "10.244.1.0/24 via 10.244.1.0 dev flannel.1 proto 77 onlink" in routes
    # the route deleted by hand comes back
    sh("ip", "-n", node, "route", "del", "10.244.1.0/24")
    assert inside(node, lambda: vx.reconcile([p2])).added == ["10.244.1.0/24"]
    # n2 comes back with a new VTEP (its device was recreated): entries follow
    p2b = Peer("n2", "10.239.250.12", "10.244.1.0/24", "aa:bb:cc:00:00:22")
    inside(node, lambda: vx.reconcile([p2b]))
    fdb = sh("bridge", "-n", node, "fdb", "show", "dev", "flannel.1")
    assert "aa:bb:cc:00:00:22 dst 10.239.250.12" in fdb and "aa:bb:cc:00:00:02" not in fdb
    # n2 leaves: route, neighbour and FDB entry go together
    assert inside(node, lambda: vx.reconcile([])).removed == ["10.244.1.0/24"]
    assert "10.244.1.0" not in sh("ip", "-n", node, "route")
    assert "lladdr" not in sh("ip", "-n", node, "neigh", "show", "dev", "flannel.1")
    assert " dst " not in sh("bridge", "-n", node, "fdb", "show", "dev", "flannel.1")
    # another VNI in the configuration: the device is rebuilt
    vx2 = VXLAN("10.239.250.11", "10.244.0.0/24", vni=1, port=4789, uplink_mtu=1500)
    inside(node, vx2.setup)
    assert "dstport 4789" in sh("ip", "-n", node, "-d", "link", "show", "flannel.1")
    inside(node, vx2.teardown)
    assert "flannel.1" not in sh("ip", "-n", node, "link")
    assert backends.RTPROT_KUBELITE == 77
