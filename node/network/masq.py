"""iptables for the pod network, in the node's network namespace.

nat KUBELITE-POSTROUTING (from POSTROUTING):
    pod -> pod (both in the cluster CIDR): RETURN, so pods see real addresses
    pod -> anywhere else but multicast:    MASQUERADE (to the node's address)
filter KUBELITE-FORWARD (from FORWARD): accept to and from the cluster CIDR,
    so a FORWARD policy of DROP (Docker sets one) does not cut pods off.

Each chain is rewritten whole in one `iptables-restore --noflush` payload;
the jumps are added once, at the top of the built-in chains.
"""

from __future__ import annotations

import subprocess

NAT_CHAIN = "KUBELITE-POSTROUTING"
FILTER_CHAIN = "KUBELITE-FORWARD"
JUMPS = (("nat", "POSTROUTING", NAT_CHAIN), ("filter", "FORWARD", FILTER_CHAIN))
COMMENT = "kubelite pod network"


class IptablesError(Exception):
    pass


def _run(args: list[str], payload: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=payload, capture_output=True, text=True, check=False)


def payload(cluster_cidr: str) -> str:
    c = cluster_cidr
    return "\n".join([
        "*nat",
        f":{NAT_CHAIN} - [0:0]",
        f'-A {NAT_CHAIN} -s {c} -d {c} -m comment --comment "pod to pod: no masquerade" '
        "-j RETURN",
        f'-A {NAT_CHAIN} -s {c} ! -d 224.0.0.0/4 -m comment --comment '
        '"pods to outside the cluster" -j MASQUERADE --random-fully',
        "COMMIT",
        "*filter",
        f":{FILTER_CHAIN} - [0:0]",
        f'-A {FILTER_CHAIN} -s {c} -m comment --comment "from pods" -j ACCEPT',
        f'-A {FILTER_CHAIN} -d {c} -m comment --comment "to pods" -j ACCEPT',
        "COMMIT",
        "",
    ])


def ensure(cluster_cidr: str) -> None:
    r = _run(["iptables-restore", "-w", "--noflush"], payload(cluster_cidr))
    if r.returncode:
        raise IptablesError(f"iptables-restore: {r.stderr.strip()}")
    for table, chain, target in JUMPS:
        rule = ["-m", "comment", "--comment", COMMENT, "-j", target]
        if _run(["iptables", "-w", "-t", table, "-C", chain, *rule]).returncode:
            r = _run(["iptables", "-w", "-t", table, "-I", chain, "1", *rule])
            if r.returncode:
                raise IptablesError(f"iptables -t {table} -I {chain}: {r.stderr.strip()}")


def remove() -> None:
    for table, chain, target in JUMPS:
        rule = ["-m", "comment", "--comment", COMMENT, "-j", target]
        while not _run(["iptables", "-w", "-t", table, "-D", chain, *rule]).returncode:
            pass
        _run(["iptables", "-w", "-t", table, "-F", target])
        _run(["iptables", "-w", "-t", table, "-X", target])
