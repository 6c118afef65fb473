"""Cross-node backends: how a packet for another node's pod CIDR gets there.

host-gw: a route per remote node, `10.244.2.0/24 via <node-2's address>`.
    Only possible when every node is one hop away (one L2 network); a node
    reached through a gateway is refused, with the reason.

vxlan: one device `flannel.<VNI>` (local = this node's address, UDP port
    8472, no learning, MTU = uplink - 50) holding this node's range's network
    address as a /32. Per remote node, in this order:
        neighbour (ARP)  10.244.2.0 lladdr <its VTEP MAC>     dev flannel.1
        FDB              <its VTEP MAC> dst <its node address> dev flannel.1
        route            10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink
    and removed together, route first. Remote VTEP MACs come from the Nodes'
    backend-data annotation.

Routes this module writes carry protocol RTPROT_KUBELITE, so a reconcile
finds exactly its own (removing stale ones, putting back any deleted by
hand) and never touches anyone else's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from kubelite.objects.netconf import VXLAN_OVERHEAD

log = logging.getLogger(__name__)

RTPROT_KUBELITE = 77
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
MAIN_TABLE = 254


@dataclasses.dataclass(frozen=True)
class Peer:
    name: str
    address: str  # the node's InternalIP (its public-ip annotation)
    pod_cidr: str
    vtep_mac: str = ""


@dataclasses.dataclass
class Result:
    added: list[str] = dataclasses.field(default_factory=list)
    removed: list[str] = dataclasses.field(default_factory=list)
    refused: dict[str, str] = dataclasses.field(default_factory=dict)  # node -> why not
    pending: dict[str, str] = dataclasses.field(default_factory=dict)  # node -> not yet


def _our_routes(ip: IPRoute) -> dict[str, Any]:
    out = {}
    for r in ip.get_routes(family=2, table=MAIN_TABLE):
        if r["proto"] == RTPROT_KUBELITE and r.get("RTA_DST"):
            out[f"{r.get('RTA_DST')}/{r['dst_len']}"] = r
    return out


class HostGW:
    kind = "host-gw"

    def __init__(self, local_address: str, pod_cidr: str) -> None:
        self.local = local_address
        self.pod_cidr = pod_cidr

    def mtu(self, uplink_mtu: int) -> int:
        return uplink_mtu

    def setup(self) -> dict[str, str]:
        """Prepare this node; the backend data other nodes need (none for host-gw)."""
        return {}

    def check(self, ip: IPRoute, peer: Peer) -> str:
        """Why `peer` cannot be reached directly ("" when it can)."""
        try:
            route = ip.route("get", dst=peer.address)[0]
        except NetlinkError as e:
            return f"no route to {peer.address}: {e}"
        gw = route.get("RTA_GATEWAY")
        if gw:
            return (f"host-gw needs every node on one L2 network: {peer.name} "
                    f"({peer.address}) is reached through the gateway {gw}")
        return ""

    def reconcile(self, peers: list[Peer]) -> Result:
        res = Result()
        with IPRoute() as ip:
            want: dict[str, Peer] = {}
            for p in peers:
                why = self.check(ip, p)
                if why:
                    res.refused[p.name] = why
                else:
                    want[p.pod_cidr] = p
            for dst, r in _our_routes(ip).items():
                p = want.get(dst)
                if p is not None and r.get("RTA_GATEWAY") == p.address:
                    del want[dst]  # already right
                    continue
                with contextlib.suppress(NetlinkError):
                    ip.route("del", dst=dst, table=MAIN_TABLE, proto=RTPROT_KUBELITE)
                if p is None:
                    res.removed.append(dst)
            for dst, p in want.items():
                ip.route("replace", dst=dst, gateway=p.address, proto=RTPROT_KUBELITE)
                res.added.append(dst)
        return res

    def teardown(self) -> None:
        with IPRoute() as ip:
            for dst in _our_routes(ip):
                with contextlib.suppress(NetlinkError):
                    ip.route("del", dst=dst, table=MAIN_TABLE, proto=RTPROT_KUBELITE)


class VXLAN:
    kind = "vxlan"

    def __init__(self, local_address: str, pod_cidr: str, vni: int = 1,
                 port: int = 8472, uplink_mtu: int = 1500) -> None:
        self.local = local_address
        self.pod_cidr = pod_cidr
        self.vni, self.port = vni, port
        self.device = f"flannel.{vni}"
        self.uplink_mtu = uplink_mtu

    def mtu(self, uplink_mtu: int) -> int:
        return uplink_mtu - VXLAN_OVERHEAD

    def _index(self, ip: IPRoute) -> int | None:
        found = ip.link_lookup(ifname=self.device)
        return found[0] if found else None

    def setup(self) -> dict[str, str]:
        """The vxlan device, as configured; {"VtepMAC": its MAC}."""
        mtu = self.mtu(self.uplink_mtu)
        net = ipaddress.ip_network(self.pod_cidr)
        with IPRoute() as ip:
            idx = self._index(ip)
            if idx is not None:
                link = ip.get_links(idx)[0]
                info = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
                kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
                if kind != "vxlan" or info is None or (
                        info.get("IFLA_VXLAN_ID"), info.get("IFLA_VXLAN_PORT"),
                        info.get("IFLA_VXLAN_LOCAL")) != (self.vni, self.port, self.local):
                    log.info("%s has another configuration: recreating it", self.device)
                    ip.link("del", index=idx)
                    idx = None
            if idx is None:
                ip.link("add", ifname=self.device, kind="vxlan", vxlan_id=self.vni,
                        vxlan_local=self.local, vxlan_port=self.port, vxlan_learning=0, mtu=mtu)
                idx = self._index(ip)
            want = f"{net.network_address}/32"
            for a in ip.get_addr(index=idx, family=2):
                have = f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"
                if have != want:
                    ip.addr("del", index=idx, address=a.get("IFA_ADDRESS"),
                            prefixlen=a["prefixlen"])
            if not ip.get_addr(index=idx, family=2):
                ip.addr("add", index=idx, address=str(net.network_address), prefixlen=32)
            ip.link("set", index=idx, mtu=mtu, state="up")
            mac = ip.get_links(idx)[0].get("IFLA_ADDRESS")
        return {"VtepMAC": str(mac)}

    def reconcile(self, peers: list[Peer]) -> Result:
        res = Result()
        with IPRoute() as ip:
            idx = self._index(ip)
            if idx is None:
                raise RuntimeError(f"{self.device} is missing")
            want: dict[str, Peer] = {}
            for p in peers:
                if not p.vtep_mac:
                    res.pending[p.name] = f"{p.name} has not published its VTEP MAC yet"
                else:
                    want[p.pod_cidr] = p
            gw_of = {dst: str(ipaddress.ip_network(dst).network_address) for dst in want}
            neigh = {n.get("NDA_DST"): n.get("NDA_LLADDR")
                     for n in ip.get_neighbours(ifindex=idx, family=2)}
            fdb = {(f.get("NDA_LLADDR"), f.get("NDA_DST"))
                   for f in ip.fdb("dump", ifindex=idx) if f.get("NDA_DST")}
            routes = _our_routes(ip)
            # Stale first: routes, then their neighbour and FDB entries.
            for dst, r in routes.items():
                p = want.get(dst)
                if p is not None and r.get("RTA_OIF") == idx and r.get("RTA_GATEWAY") == gw_of[dst]:
                    continue
                with contextlib.suppress(NetlinkError):
                    ip.route("del", dst=dst, table=MAIN_TABLE, proto=RTPROT_KUBELITE)
                if p is None:
                    res.removed.append(dst)
            live_gw = set(gw_of.values())
            live_fdb = {(p.vtep_mac, p.address) for p in want.values()}
            for dst_ip, mac in neigh.items():
                if dst_ip not in live_gw:
                    with contextlib.suppress(NetlinkError):
                        ip.neigh("del", dst=dst_ip, lladdr=mac, ifindex=idx)
            for mac, dst_ip in fdb:
                if (mac, dst_ip) not in live_fdb:
                    with contextlib.suppress(NetlinkError):
                        ip.fdb("del", ifindex=idx, lladdr=mac, dst=dst_ip)
            routes = _our_routes(ip)
            for dst, p in want.items():
                gw = gw_of[dst]
                if neigh.get(gw) != p.vtep_mac:
                    ip.neigh("replace", dst=gw, lladdr=p.vtep_mac, ifindex=idx,
                             state=NUD_PERMANENT)
                if (p.vtep_mac, p.address) not in fdb:
                    ip.fdb("replace", ifindex=idx, lladdr=p.vtep_mac, dst=p.address,
                           state=NUD_PERMANENT, flags=NTF_SELF)
                if dst not in routes:
                    ip.route("replace", dst=dst, gateway=gw, oif=idx, flags=RTNH_F_ONLINK,
                             proto=RTPROT_KUBELITE)
                    res.added.append(dst)
        return res

    def teardown(self) -> None:
        with IPRoute() as ip:
            idx = self._index(ip)
            if idx is not None:  # its neighbours, FDB entries and routes go with it
                with contextlib.suppress(NetlinkError):
                    ip.link("del", index=idx)
            for dst in _our_routes(ip):
                with contextlib.suppress(NetlinkError):
                    ip.route("del", dst=dst, table=MAIN_TABLE, proto=RTPROT_KUBELITE)
