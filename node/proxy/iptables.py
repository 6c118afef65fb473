"""iptables mode: the whole Service rule set as one `iptables-restore
--noflush` payload (kube-proxy's layout).

nat:
    PREROUTING, OUTPUT -> KUBE-SERVICES
        -d <clusterIP> -p <proto> --dport <port>  -> KUBE-SVC-<hash>
        (last) dst-type LOCAL                     -> KUBE-NODEPORTS
    KUBE-NODEPORTS: --dport <nodePort> -> KUBE-MARK-MASQ, KUBE-SVC-<hash>
    KUBE-SVC-<hash>: traffic not from a pod is marked for masquerade; with
        ClientIP affinity, first a `recent --rcheck` rule per endpoint; then
        one rule per endpoint i of n with `statistic --probability 1/(n-i)`
        (the last one unconditional): an even spread
    KUBE-SEP-<hash>: an endpoint reaching itself is marked (hairpin);
        DNAT to <ip>:<port> (`recent --set` with affinity)
    POSTROUTING -> KUBE-POSTROUTING: MASQUERADE what carries mark 0x4000
filter:
    INPUT/FORWARD/OUTPUT (new connections) -> KUBE-SERVICES: REJECT a
        Service port without endpoints (refused at once, not a timeout);
        INPUT -> KUBE-EXTERNAL-SERVICES: the same for its node port
    FORWARD -> KUBE-FORWARD: accept marked and established traffic

Each declared chain is flushed and refilled by the payload; KUBE-SVC-* and
KUBE-SEP-* chains that no longer belong to anything are flushed and deleted
in the same payload, so the table is never half old, half new.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable

from node.proxy.model import ServicePortInfo, endpoint_chain_suffix

MASQ_MARK = "0x4000"
NAT_CHAINS = ("KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ")
FILTER_CHAINS = ("KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD")
OWNED_PREFIXES = ("KUBE-SVC-", "KUBE-SEP-")
NEW = ["-m", "conntrack", "--ctstate", "NEW"]
JUMPS: tuple[tuple[str, str, list[str], str], ...] = (
    ("nat", "PREROUTING", [], "KUBE-SERVICES"),
    ("nat", "OUTPUT", [], "KUBE-SERVICES"),
    ("nat", "POSTROUTING", [], "KUBE-POSTROUTING"),
    ("filter", "INPUT", NEW, "KUBE-EXTERNAL-SERVICES"),
    ("filter", "INPUT", NEW, "KUBE-SERVICES"),
    ("filter", "FORWARD", NEW, "KUBE-SERVICES"),
    ("filter", "OUTPUT", NEW, "KUBE-SERVICES"),
    ("filter", "FORWARD", [], "KUBE-FORWARD"),
)


class IptablesError(Exception):
    pass


def _match(proto: str, port: int) -> str:
    return f"-p {proto} -m {proto} --dport {port}"


def render(ports: list[ServicePortInfo], cluster_cidr: str,
           existing_nat_chains: Iterable[str] = ()) -> str:
    """The payload for `ports`; `existing_nat_chains`: what the nat table has now
    (KUBE-SVC-*/KUBE-SEP-* among them that are not wanted any more are deleted)."""
    nat_chains: list[str] = list(NAT_CHAINS)
    nat: list[str] = [
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
        f"-A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}",
        '-A KUBE-POSTROUTING -m comment --comment "kubelite service traffic requiring SNAT" '
        "-j MASQUERADE --random-fully",
        f"-A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}",
    ]
    filt: list[str] = []
    services: list[str] = []
    nodeports: list[str] = []
    for sp in ports:
        m = _match(sp.protocol, sp.port)
        comment = f'-m comment --comment "{sp.key}'
        if not sp.endpoints:
            filt.append(f"-A KUBE-SERVICES -d {sp.cluster_ip}/32 {comment} has no endpoints\" "
                        f"{m} -j REJECT --reject-with icmp-port-unreachable")
            for ip in sp.external_ips:
                filt.append(f"-A KUBE-SERVICES -d {ip}/32 {comment} has no endpoints\" {m} "
                            "-j REJECT --reject-with icmp-port-unreachable")
            if sp.node_port:
                filt.append(f"-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL {comment} "
                            f"has no endpoints\" {_match(sp.protocol, sp.node_port)} "
                            "-j REJECT --reject-with icmp-port-unreachable")
            continue
        svc = f"KUBE-SVC-{sp.chain_suffix()}"
        nat_chains.append(svc)
        services.append(f"-A KUBE-SERVICES -d {sp.cluster_ip}/32 {comment} cluster IP\" {m} "
                        f"-j {svc}")
        for ip in sp.external_ips:
            services.append(f"-A KUBE-SERVICES -d {ip}/32 {comment} external IP\" {m} "
                            f"-j KUBE-MARK-MASQ")
            services.append(f"-A KUBE-SERVICES -d {ip}/32 {comment} external IP\" {m} -j {svc}")
        if sp.node_port:
            np = _match(sp.protocol, sp.node_port)
            nodeports.append(f"-A KUBE-NODEPORTS {comment}\" {np} -j KUBE-MARK-MASQ")
            nodeports.append(f"-A KUBE-NODEPORTS {comment}\" {np} -j {svc}")
        nat.append(f"-A {svc} ! -s {cluster_cidr} -d {sp.cluster_ip}/32 {comment} cluster IP\" "
                   f"{m} -j KUBE-MARK-MASQ")
        seps = [(ep, f"KUBE-SEP-{endpoint_chain_suffix(sp, ep)}") for ep in sp.endpoints]
        if sp.affinity_timeout:
            for ep, sep in seps:
                nat.append(f"-A {svc} {comment} -> {ep.ip}:{ep.port}\" -m recent --name {sep} "
                           f"--mask 255.255.255.255 --rsource --rcheck --seconds "
                           f"{sp.affinity_timeout} --reap -j {sep}")
        n = len(seps)
        for i, (ep, sep) in enumerate(seps):
            pick = "" if i == n - 1 else \
                f"-m statistic --mode random --probability {1.0 / (n - i):.10f} "
            nat.append(f"-A {svc} {comment} -> {ep.ip}:{ep.port}\" {pick}-j {sep}")
        for ep, sep in seps:
            nat_chains.append(sep)
            nat.append(f"-A {sep} -s {ep.ip}/32 {comment}\" -j KUBE-MARK-MASQ")
            recent = f"-m recent --name {sep} --mask 255.255.255.255 --rsource --set " \
                if sp.affinity_timeout else ""
            nat.append(f"-A {sep} {comment}\" -p {sp.protocol} {recent}-m {sp.protocol} "
                       f"-j DNAT --to-destination {ep.ip}:{ep.port}")
    services.append('-A KUBE-SERVICES -m comment --comment "kubelite service nodeports; '
                    'NOTE: this must be the last rule in this chain" -m addrtype --dst-type '
                    "LOCAL -j KUBE-NODEPORTS")
    stale = sorted(c for c in set(existing_nat_chains)
                   if c.startswith(OWNED_PREFIXES) and c not in nat_chains)
    lines = ["*filter", *(f":{c} - [0:0]" for c in FILTER_CHAINS), *filt,
             f"-A KUBE-FORWARD -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
             "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
             "COMMIT", "*nat", *(f":{c} - [0:0]" for c in nat_chains),
             *(f":{c} - [0:0]" for c in stale), *services, *nodeports, *nat,
             *(f"-X {c}" for c in stale), "COMMIT", ""]
    return "\n".join(lines)


def nat_chains() -> list[str]:
    return _chains("nat")


def apply(payload: str) -> None:
    r = subprocess.run(["iptables-restore", "-w", "--noflush"], input=payload,
                       capture_output=True, text=True, check=False)
    if r.returncode:
        raise IptablesError(f"iptables-restore: {r.stderr.strip()}")


def ensure_jumps() -> None:
    for table, chain, match, target in JUMPS:
        rule = [*match, "-m", "comment", "--comment", "kubelite service portals", "-j", target]
        # the chains exist once a payload declared them; the jump goes first in the chain
        if subprocess.run(["iptables", "-w", "-t", table, "-C", chain, *rule],
                          capture_output=True, check=False).returncode:
            r = subprocess.run(["iptables", "-w", "-t", table, "-I", chain, "1", *rule],
                               capture_output=True, text=True, check=False)
            if r.returncode:
                raise IptablesError(f"iptables -t {table} -I {chain}: {r.stderr.strip()}")


def remove_all() -> None:
    """Every jump and chain of this mode (switching to another mode, or cleaning up),
    the chains in one payload: thousands of them go in one transaction."""
    for table, chain, match, target in JUMPS:
        rule = [*match, "-m", "comment", "--comment", "kubelite service portals", "-j", target]
        while not subprocess.run(["iptables", "-w", "-t", table, "-D", chain, *rule],
                                 capture_output=True, check=False).returncode:
            pass
    nat = [c for c in nat_chains() if c.startswith(OWNED_PREFIXES) or c in NAT_CHAINS]
    filt = [c for c in _chains("filter") if c in FILTER_CHAINS]
    lines = []
    for table, names in (("nat", nat), ("filter", filt)):
        if names:
            lines += [f"*{table}", *(f":{c} - [0:0]" for c in names),
                      *(f"-X {c}" for c in names), "COMMIT"]
    if lines:
        apply("\n".join(lines) + "\n")


def _chains(table: str) -> list[str]:
    out = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                         check=False).stdout
    return [line[1:].split()[0] for line in out.splitlines() if line.startswith(":")]
