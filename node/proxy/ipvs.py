"""ipvs mode: a kernel virtual server per Service address and port, with a
real server per endpoint (kube-proxy's ipvs mode, without ipset).

    -A -t 10.96.0.10:53 -s rr [-p <affinity timeout>]      virtual server
    -a -t 10.96.0.10:53 -r 10.244.1.4:53 -m -w 1           real server (NAT)

Virtual servers for every ClusterIP and external IP, and for every node
address with each NodePort. The addresses are bound to the dummy device
kube-ipvs0 (so the kernel takes them as local), `net.ipv4.vs.conntrack=1`
lets iptables masquerade IPVS traffic, and a small nat table marks what
needs SNAT: traffic to a Service not coming from a pod, and NodePort
traffic. A sync reads the kernel's table (`ipvsadm -S -n`) and applies only
the difference through `ipvsadm-restore`, so established connections to
endpoints that stay are kept.

Needs the ip_vs modules (`/proc/net/ip_vs`); `available()` says whether the
kernel has them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess

from node.proxy.model import ServicePortInfo

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sh", "dh", "sed", "nq")
DEVICE = "kube-ipvs0"
PROTO_FLAG = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service"}


class IPVSError(Exception):
    pass


def available() -> bool:
    return os.path.exists("/proc/net/ip_vs")


@dataclasses.dataclass(frozen=True)
class VirtualServer:
    protocol: str
    address: str
    port: int
    scheduler: str
    persistence: int = 0  # seconds; 0: none

    @property
    def ident(self) -> str:
        return f"{PROTO_FLAG[self.protocol]} {self.address}:{self.port}"

    def line(self, op: str = "-A") -> str:
        p = f" -p {self.persistence}" if self.persistence else ""
        return f"{op} {self.ident} -s {self.scheduler}{p}"


Table = dict[VirtualServer, set[tuple[str, int]]]


def desired(ports: list[ServicePortInfo], node_ips: list[str], scheduler: str) -> Table:
    if scheduler not in SCHEDULERS:
        raise IPVSError(f"--ipvs-scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    out: Table = {}
    for sp in ports:
        if sp.protocol not in PROTO_FLAG:
            continue
        addrs = [(sp.cluster_ip, sp.port)] + [(ip, sp.port) for ip in sp.external_ips]
        if sp.node_port:
            addrs += [(ip, sp.node_port) for ip in node_ips]
        reals = {(ep.ip, ep.port) for ep in sp.endpoints}
        for address, port in addrs:
            out[VirtualServer(sp.protocol, address, port, scheduler, sp.affinity_timeout)] = \
                set(reals)
    return out


def render(table: Table) -> list[str]:
    """The full rule set, as `ipvsadm-restore` lines, in a stable order."""
    lines = []
    for vs in sorted(table, key=lambda v: (v.address, v.port, v.protocol)):
        lines.append(vs.line())
        for ip, port in sorted(table[vs]):
            lines.append(f"-a {vs.ident} -r {ip}:{port} -m -w 1")
    return lines


def diff(current: Table, want: Table) -> list[str]:
    """ipvsadm-restore lines turning `current` into `want`, touching only what differs."""
    out: list[str] = []
    by_ident_cur = {vs.ident: vs for vs in current}
    by_ident_want = {vs.ident: vs for vs in want}
    for ident in sorted(by_ident_cur):
        if ident not in by_ident_want:
            out.append(f"-D {ident}")
    for ident, vs in sorted(by_ident_want.items()):
        old = by_ident_cur.get(ident)
        if old is None:
            out.append(vs.line("-A"))
            have: set[tuple[str, int]] = set()
        else:
            if (old.scheduler, old.persistence) != (vs.scheduler, vs.persistence):
                out.append(vs.line("-E"))
            have = current[old]
        for ip, port in sorted(have - want[vs]):
            out.append(f"-d {ident} -r {ip}:{port}")
        for ip, port in sorted(want[vs] - have):
            out.append(f"-a {ident} -r {ip}:{port} -m -w 1")
    return out


def parse_save(text: str) -> Table:
    """`ipvsadm -S -n` output -> Table."""
    table: Table = {}
    flag_proto = {"-t": "tcp", "-u": "udp", "--sctp-service": "sctp"}
    by_ident: dict[str, VirtualServer] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 3 or f[1] not in flag_proto:
            continue
        address, _, port = f[2].rpartition(":")
        if f[0] == "-A":
            sched = f[f.index("-s") + 1] if "-s" in f else "wlc"
            pers = int(f[f.index("-p") + 1]) if "-p" in f else 0
            vs = VirtualServer(flag_proto[f[1]], address, int(port), sched, pers)
            table[vs] = set()
            by_ident[vs.ident] = vs
        elif f[0] == "-a" and "-r" in f:
            vs = by_ident.get(f"{f[1]} {f[2]}")
            if vs is not None:
                rip, _, rport = f[f.index("-r") + 1].rpartition(":")
                table[vs].add((rip, int(rport)))
    return table


def nat_payload(ports: list[ServicePortInfo], cluster_cidr: str) -> str:
    """Masquerade marks for ipvs mode (what iptables mode does in KUBE-SVC-*)."""
    lines = ["*nat", ":KUBE-SERVICES - [0:0]", ":KUBE-POSTROUTING - [0:0]",
             ":KUBE-MARK-MASQ - [0:0]",
             "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
             "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
             "-A KUBE-POSTROUTING -j MASQUERADE --random-fully",
             "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"]
    for sp in ports:
        m = f"-p {sp.protocol} -m {sp.protocol} --dport {sp.port}"
        lines.append(f'-A KUBE-SERVICES ! -s {cluster_cidr} -d {sp.cluster_ip}/32 -m comment '
                     f'--comment "{sp.key} cluster IP" {m} -j KUBE-MARK-MASQ')
        if sp.node_port:
            lines.append(f'-A KUBE-SERVICES -m addrtype --dst-type LOCAL -m comment --comment '
                         f'"{sp.key} node port" -p {sp.protocol} -m {sp.protocol} --dport '
                         f"{sp.node_port} -j KUBE-MARK-MASQ")
    lines += ["COMMIT", ""]
    return "\n".join(lines)


class IPVSMode:
    name = "ipvs"

    def __init__(self, scheduler: str = "rr", node_ips: list[str] | None = None) -> None:
        if scheduler not in SCHEDULERS:
            raise IPVSError(f"--ipvs-scheduler: {scheduler!r} is not one of "
                            f"{', '.join(SCHEDULERS)}")
        if not available():
            raise IPVSError("ipvs mode needs the ip_vs kernel modules (/proc/net/ip_vs is "
                            "missing): load ip_vs, ip_vs_rr, ip_vs_wrr, ip_vs_sh or use "
                            "--proxy-mode iptables")
        self.scheduler = scheduler
        self.node_ips = node_ips or []
        self.last: list[str] = []

    def sync(self, ports: list[ServicePortInfo], cluster_cidr: str, full: bool) -> bool:
        from node.network import plumbing
        from node.proxy import iptables

        want = desired(ports, self.node_ips, self.scheduler)
        saved = subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True, text=True,
                               check=False)
        if saved.returncode:
            raise IPVSError(f"ipvsadm -S: {saved.stderr.strip()}")
        changes = diff(parse_save(saved.stdout), want)
        if changes:
            r = subprocess.run(["ipvsadm-restore"], input="\n".join(changes) + "\n",
                               capture_output=True, text=True, check=False)
            if r.returncode:
                raise IPVSError(f"ipvsadm-restore: {r.stderr.strip()}")
        plumbing.ensure_addresses(DEVICE, sorted({vs.address for vs in want
                                                  if vs.address not in self.node_ips}))
        plumbing.set_sysctl("net.ipv4.vs.conntrack", "1")
        iptables.apply(nat_payload(ports, cluster_cidr))
        iptables.ensure_jumps()
        return bool(changes) or full

    def cleanup(self) -> None:
        from node.network import plumbing
        from node.proxy import iptables

        current = parse_save(subprocess.run(["ipvsadm", "-S", "-n"], capture_output=True,
                                            text=True, check=False).stdout)
        lines = diff(current, {})
        if lines:
            subprocess.run(["ipvsadm-restore"], input="\n".join(lines) + "\n",
                           capture_output=True, text=True, check=False)
        plumbing.delete_link(DEVICE)
        iptables.remove_all()
