"""Netlink plumbing for pods (pyroute2): the node bridge and a veth per pod.

    cni0 (bridge, gateway address 10.244.1.1/24, in the node's namespace)
      +-- veth1a2b3c4d  <-- veth pair -->  eth0 10.244.1.5/24 in the pod
                                           default via 10.244.1.1

The pause container starts with no network (Docker's `none`); its network
namespace is /proc/<pid>/ns/net. The host end is named after the sandbox's
container id, so it can be found again after an agent restart; hairpin mode
is on so a pod reaches itself through a Service address.

Every call here is blocking netlink I/O: callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import ipaddress
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

BRIDGE = "cni0"
POD_IFNAME = "eth0"
CLONE_NEWNET = 0x40000000
T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


class PlumbingError(Exception):
    pass


def in_netns(path: str, fn: Callable[[IPRoute], T]) -> T:
    """fn(IPRoute in the network namespace at `path`).

    setns(2) moves only the calling thread, so this runs in a thread of its
    own that enters the namespace, opens its netlink socket there (a socket
    stays in the namespace it was made in) and goes back. No fork: pyroute2's
    own netns support forks a child, which is unsafe in a process running
    gRPC threads."""
    out: list[T] = []
    err: list[BaseException] = []

    def run() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(path, os.O_RDONLY)
        except OSError as e:
            os.close(own)
            err.append(e)
            return
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns {path}")
            try:
                with IPRoute() as ip:
                    out.append(fn(ip))
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:  # never reached in practice
                    os._exit(70)  # a thread stuck in a pod's namespace would do harm
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            err.append(e)
        finally:
            os.close(target)
            os.close(own)

    t = threading.Thread(target=run, name="netns", daemon=True)
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]


def host_veth_name(sandbox_id: str) -> str:
    return "veth" + hashlib.sha256(sandbox_id.encode()).hexdigest()[:8]


def _index(ip: IPRoute, name: str) -> int | None:
    found = ip.link_lookup(ifname=name)
    return found[0] if found else None


def _addresses(ip: IPRoute, index: int) -> set[str]:
    return {f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ip.get_addr(index=index, family=2)}


def link_mtu(name: str) -> int:
    with IPRoute() as ip:
        idx = _index(ip, name)
        if idx is None:
            raise PlumbingError(f"no interface {name}")
        return int(ip.get_links(idx)[0].get("IFLA_MTU"))


def uplink_of(address: str) -> str:
    """The interface that holds `address` (the node's own IP)."""
    with IPRoute() as ip:
        for a in ip.get_addr(family=2):
            if a.get("IFA_ADDRESS") == address:
                return str(ip.get_links(a["index"])[0].get("IFLA_IFNAME"))
    raise PlumbingError(f"no interface has the node address {address}")


def ensure_bridge(pod_cidr: str, mtu: int, name: str = BRIDGE) -> None:
    """cni0 up, with the gateway address of `pod_cidr` (and no other) and `mtu`."""
    net = ipaddress.ip_network(pod_cidr)
    gateway = f"{net.network_address + 1}/{net.prefixlen}"
    with IPRoute() as ip:
        idx = _index(ip, name)
        if idx is None:
            with contextlib.suppress(NetlinkError):
                ip.link("add", ifname=name, kind="bridge")
            idx = _index(ip, name)
            if idx is None:
                raise PlumbingError(f"could not create bridge {name}")
        have = _addresses(ip, idx)
        for a in have - {gateway}:  # a range from an earlier life of this node
            addr, _, plen = a.partition("/")
            ip.addr("del", index=idx, address=addr, prefixlen=int(plen))
        if gateway not in have:
            ip.addr("add", index=idx, address=str(net.network_address + 1),
                    prefixlen=net.prefixlen)
        ip.link("set", index=idx, mtu=mtu, state="up")


def add_pod(sandbox_id: str, pid: int, address: str, prefixlen: int, gateway: str,
            mtu: int, bridge: str = BRIDGE) -> str:
    """Wire the pod whose pause process is `pid`; the host-side veth's name."""
    host = host_veth_name(sandbox_id)
    netns = f"/proc/{pid}/ns/net"
    with IPRoute() as ip:
        br = _index(ip, bridge)
        if br is None:
            raise PlumbingError(f"bridge {bridge} is missing")
        old = _index(ip, host)
        if old is not None:  # a half-done earlier attempt
            ip.link("del", index=old)
        try:
            ip.link("add", ifname=host, kind="veth", mtu=mtu,
                    peer={"ifname": POD_IFNAME, "net_ns_pid": pid, "mtu": mtu})
        except NetlinkError as e:
            raise PlumbingError(f"creating veth {host} for pid {pid}: {e}") from None
        idx = _index(ip, host)
        ip.link("set", index=idx, master=br, state="up")
        ip.brport("set", index=idx, mode=1)  # hairpin: a pod reaches itself via a Service
    def configure(pod: IPRoute) -> None:
        lo = _index(pod, "lo")
        if lo is not None:
            pod.link("set", index=lo, state="up")
        eth = _index(pod, POD_IFNAME)
        if eth is None:
            raise PlumbingError(f"{POD_IFNAME} did not appear in the pod's namespace")
        pod.addr("add", index=eth, address=address, prefixlen=prefixlen)
        pod.link("set", index=eth, state="up")
        pod.route("add", dst="0.0.0.0/0", gateway=gateway, oif=eth)

    try:
        in_netns(netns, configure)
    except (NetlinkError, OSError, PlumbingError) as e:
        del_pod(sandbox_id)
        raise PlumbingError(f"configuring {POD_IFNAME} in pid {pid}'s namespace: {e}") from None
    return host


def pod_address(pid: int) -> str:
    """eth0's IPv4 address inside the namespace of `pid` ("" if none)."""
    def address(pod: IPRoute) -> str:
        eth = _index(pod, POD_IFNAME)
        addrs = pod.get_addr(index=eth, family=2) if eth is not None else []
        return str(addrs[0].get("IFA_ADDRESS")) if addrs else ""

    try:
        return in_netns(f"/proc/{pid}/ns/net", address)
    except (NetlinkError, OSError):
        return ""


def del_pod(sandbox_id: str) -> bool:
    """Remove the pod's veth pair (gone already when its namespace died)."""
    with IPRoute() as ip:
        idx = _index(ip, host_veth_name(sandbox_id))
        if idx is None:
            return False
        with contextlib.suppress(NetlinkError):
            ip.link("del", index=idx)
        return True


def host_veths(bridge: str = BRIDGE) -> list[str]:
    """Names of the veths attached to the bridge."""
    with IPRoute() as ip:
        br = _index(ip, bridge)
        if br is None:
            return []
        return [str(link.get("IFLA_IFNAME")) for link in ip.get_links()
                if link.get("IFLA_MASTER") == br]


def delete_link(name: str) -> None:
    with IPRoute() as ip:
        idx = _index(ip, name)
        if idx is not None:
            with contextlib.suppress(NetlinkError):
                ip.link("del", index=idx)


def set_sysctl(path: str, value: str) -> None:
    full = "/proc/sys/" + path.replace(".", "/")
    with open(full) as f:
        if f.read().strip() == value:
            return
    with open(full, "w") as f:
        f.write(value)


def ensure_addresses(device: str, addresses: list[str], label: str = "kubelite") -> None:
    """Exactly `addresses` (as /32s labelled `<device>:<label>`) on `device`, made as a
    dummy device unless it exists (`lo` for the userspace proxy); addresses of the
    device without our label are left alone."""
    tag = f"{device}:{label}"[:15]
    with IPRoute() as ip:
        idx = _index(ip, device)
        if idx is None:
            try:
                ip.link("add", ifname=device, kind="dummy")
            except NetlinkError as e:
                raise PlumbingError(f"creating dummy device {device}: {e}") from None
            idx = _index(ip, device)
            ip.link("set", index=idx, state="down")  # no ARP for the Service addresses
        have = {str(a.get("IFA_ADDRESS")) for a in ip.get_addr(index=idx, family=2)
                if a.get("IFA_LABEL") == tag}
        for addr in have - set(addresses):
            with contextlib.suppress(NetlinkError):
                ip.addr("del", index=idx, address=addr, prefixlen=32)
        for addr in sorted(set(addresses) - have):
            with contextlib.suppress(NetlinkError):  # EEXIST: someone else's, fine
                ip.addr("add", index=idx, address=addr, prefixlen=32, label=tag)
