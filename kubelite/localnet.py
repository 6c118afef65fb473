"""The "machines" of a local cluster: one network namespace per node.

    root namespace                         node namespaces
    kl0 (bridge) 10.240.0.1/24  --veth--  eth0 10.240.0.11/24  (kubelite-node-1)
                                --veth--  eth0 10.240.0.12/24  (kubelite-node-2)

The bridge stands in for the L2 network between real hosts (and its address
for "the outside of the cluster"); each node namespace gets its own routing
table, iptables and pod network, as a VM would. With bridge netfilter on
(Docker turns it on and sets FORWARD to DROP), bridged frames pass through
the root namespace's FORWARD chain: KUBELITE-UP-<bridge> accepts the ones
between the nodes.

Everything is ensured, never assumed: `ensure` on a half-built set-up
completes it, `remove` deletes exactly what `ensure` made (recorded in the
state file first) and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import subprocess
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError


class LocalNetError(Exception):
    pass


@dataclasses.dataclass
class NodeNet:
    name: str
    netns: str
    veth: str  # the root side
    address: str  # in the node's namespace, on eth0


@dataclasses.dataclass
class LocalNet:
    bridge: str
    cidr: str
    nodes: list[NodeNet]

    @property
    def gateway(self) -> str:
        return str(ipaddress.ip_network(self.cidr).network_address + 1)

    @property
    def chain(self) -> str:
        return f"KUBELITE-UP-{self.bridge}"[:28]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def load(cls, path: Path) -> LocalNet | None:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(doc["bridge"], doc["cidr"], [NodeNet(**n) for n in doc["nodes"]])


def plan(bridge: str, cidr: str, names: list[str], netns_prefix: str = "kubelite-") -> LocalNet:
    net = ipaddress.ip_network(cidr, strict=True)
    if net.version != 4 or net.num_addresses < len(names) + 12:
        raise LocalNetError(f"--host-cidr {cidr}: too small for {len(names)} nodes")
    if len(bridge) > 15:
        raise LocalNetError(f"--bridge {bridge!r}: interface names have at most 15 characters")
    nodes = []
    for i, name in enumerate(names):
        veth = f"kl-{name}"
        if len(veth) > 15:
            veth = "kl-" + hashlib.sha256(f"{bridge}/{name}".encode()).hexdigest()[:12]
        nodes.append(NodeNet(name, f"{netns_prefix}{name}", veth,
                             str(net.network_address + 11 + i)))
    return LocalNet(bridge, str(net), nodes)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and r.returncode:
        raise LocalNetError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def _netns_list() -> set[str]:
    out = _ip("netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def check_free(ln: LocalNet) -> None:
    """Refuse a host CIDR some other interface of this machine already uses."""
    want = ipaddress.ip_network(ln.cidr)
    with IPRoute() as ip:
        names = {link["index"]: link.get("IFLA_IFNAME") for link in ip.get_links()}
        for a in ip.get_addr(family=2):
            have = ipaddress.ip_network(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}", strict=False)
            if have.overlaps(want) and names.get(a["index"]) != ln.bridge:
                raise LocalNetError(
                    f"--host-cidr {ln.cidr} overlaps {have} on {names.get(a['index'])}: "
                    "choose another range")


def ensure(ln: LocalNet) -> None:
    check_free(ln)
    plen = ipaddress.ip_network(ln.cidr).prefixlen
    with IPRoute() as ip:
        if not ip.link_lookup(ifname=ln.bridge):
            ip.link("add", ifname=ln.bridge, kind="bridge")
        br = ip.link_lookup(ifname=ln.bridge)[0]
        if not any(a.get("IFA_ADDRESS") == ln.gateway for a in ip.get_addr(index=br, family=2)):
            ip.addr("add", index=br, address=ln.gateway, prefixlen=plen)
        ip.link("set", index=br, state="up")
    _forward_rules(ln)
    have = _netns_list()
    for n in ln.nodes:
        if n.netns not in have:
            _ip("netns", "add", n.netns)
        inside = _ip("-n", n.netns, "-o", "-4", "addr", "show", "dev", "eth0", check=False)
        with IPRoute() as ip:
            root_end = ip.link_lookup(ifname=n.veth)
            if root_end and (inside.returncode or f"{n.address}/" not in inside.stdout):
                ip.link("del", index=root_end[0])  # half-made: start over
                root_end = []
            if not root_end:
                _ip("-n", n.netns, "link", "del", "eth0", check=False)
                ip.link("add", ifname=n.veth, kind="veth",
                        peer={"ifname": "eth0", "net_ns_fd": n.netns})
                root_end = ip.link_lookup(ifname=n.veth)
            ip.link("set", index=root_end[0], master=br, state="up")
        if inside.returncode or f"{n.address}/" not in inside.stdout:
            _ip("-n", n.netns, "addr", "add", f"{n.address}/{plen}", "dev", "eth0")
        _ip("-n", n.netns, "link", "set", "lo", "up")
        _ip("-n", n.netns, "link", "set", "eth0", "up")
        _ip("-n", n.netns, "route", "replace", "default", "via", ln.gateway)


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True,
                          check=False)


def _forward_rules(ln: LocalNet) -> None:
    payload = (f"*filter\n:{ln.chain} - [0:0]\n"
               f'-A {ln.chain} -i {ln.bridge} -o {ln.bridge} -m comment --comment '
               f'"kubelite-up: between the local nodes" -j ACCEPT\nCOMMIT\n')
    r = subprocess.run(["iptables-restore", "-w", "--noflush"], input=payload,
                       capture_output=True, text=True, check=False)
    if r.returncode:
        raise LocalNetError(f"iptables-restore: {r.stderr.strip()}")
    if _iptables("-C", "FORWARD", "-j", ln.chain).returncode:
        r = _iptables("-I", "FORWARD", "1", "-j", ln.chain)
        if r.returncode:
            raise LocalNetError(f"iptables -I FORWARD: {r.stderr.strip()}")


def remove(ln: LocalNet) -> list[str]:
    """Delete what `ensure` made; what was removed, for the user."""
    done = []
    have = _netns_list()
    for n in ln.nodes:
        if n.netns in have:  # its eth0 goes with it, and so the veth pair
            _ip("netns", "del", n.netns, check=False)
            done.append(f"netns {n.netns}")
        with IPRoute() as ip, contextlib.suppress(NetlinkError, IndexError):
            ip.link("del", index=ip.link_lookup(ifname=n.veth)[0])
    with IPRoute() as ip, contextlib.suppress(NetlinkError, IndexError):
        ip.link("del", index=ip.link_lookup(ifname=ln.bridge)[0])
        done.append(f"bridge {ln.bridge}")
    while not _iptables("-D", "FORWARD", "-j", ln.chain).returncode:
        pass
    if not _iptables("-F", ln.chain).returncode:
        _iptables("-X", ln.chain)
        done.append(f"iptables chain {ln.chain}")
    return done
