"""hostPort for pods on kubelite's network (the CNI portmap plugin's way).

nat KUBELITE-HOSTPORTS, jumped to from PREROUTING and OUTPUT for packets to
a local address, DNATs <node>:<hostPort> to <podIP>:<containerPort>
(optionally only for one hostIP); KUBELITE-HOSTPORTS-MASQ masquerades a pod
reaching its own hostPort (hairpin) and connections from the node itself, so
replies come back through the node. The chain is rewritten whole from the
set of mappings on every change, in one iptables-restore payload.
"""

from __future__ import annotations

import dataclasses
import subprocess

CHAIN = "KUBELITE-HOSTPORTS"
MASQ = "KUBELITE-HOSTPORTS-MASQ"
JUMPS = (("PREROUTING", CHAIN), ("OUTPUT", CHAIN), ("POSTROUTING", MASQ))
COMMENT = "kubelite hostports"


@dataclasses.dataclass(frozen=True, order=True)
class Mapping:
    protocol: str  # tcp, udp, sctp
    host_port: int
    host_ip: str
    pod_ip: str
    container_port: int
    pod: str = ""  # namespace/name, for the rule's comment


def mappings_of(pod: object, pod_ip: str) -> list[Mapping]:
    out = []
    key = f"{pod.metadata.namespace}/{pod.metadata.name}"  # type: ignore[attr-defined]
    for c in pod.spec.containers:  # type: ignore[attr-defined]
        for p in c.ports:
            if p.hostPort:
                out.append(Mapping((p.protocol or "TCP").lower(), p.hostPort,
                                   "" if p.hostIP in ("", "0.0.0.0") else p.hostIP, pod_ip,
                                   p.containerPort or p.hostPort, key))
    return out


def payload(mappings: list[Mapping]) -> str:
    lines = ["*nat", f":{CHAIN} - [0:0]", f":{MASQ} - [0:0]"]
    for m in sorted(mappings):
        dst = f"-d {m.host_ip}/32 " if m.host_ip else ""
        lines.append(f'-A {CHAIN} {dst}-p {m.protocol} -m {m.protocol} --dport {m.host_port} '
                     f'-m comment --comment "{m.pod} hostPort {m.host_port}" '
                     f"-j DNAT --to-destination {m.pod_ip}:{m.container_port}")
        lines.append(f"-A {MASQ} -s {m.pod_ip}/32 -d {m.pod_ip}/32 -p {m.protocol} "
                     f"-m {m.protocol} --dport {m.container_port} -j MASQUERADE")
        lines.append(f"-A {MASQ} -m addrtype --src-type LOCAL -d {m.pod_ip}/32 "
                     f"-p {m.protocol} -m {m.protocol} --dport {m.container_port} -j MASQUERADE")
    lines += ["COMMIT", ""]
    return "\n".join(lines)


def sync(mappings: list[Mapping]) -> None:
    r = subprocess.run(["iptables-restore", "-w", "--noflush"], input=payload(mappings),
                       capture_output=True, text=True, check=False)
    if r.returncode:
        raise RuntimeError(f"iptables-restore (hostports): {r.stderr.strip()}")
    for chain, target in JUMPS:
        match = ["-m", "addrtype", "--dst-type", "LOCAL"] if chain != "POSTROUTING" else []
        rule = [*match, "-m", "comment", "--comment", COMMENT, "-j", target]
        if subprocess.run(["iptables", "-w", "-t", "nat", "-C", chain, *rule],
                          capture_output=True, check=False).returncode:
            subprocess.run(["iptables", "-w", "-t", "nat", "-I", chain, "1", *rule],
                           capture_output=True, check=True)
