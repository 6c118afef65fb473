"""What every proxy mode programs, from Services and Endpoints: a flat list of
service ports, each with its virtual address, node port, affinity and the
ready endpoints for it. Pure: the same inputs give the same rules in every
mode (and the same order, so an unchanged cluster renders an unchanged
payload).

A Service port maps to the Endpoints port of the same name (the Endpoints
controller resolves named targetPorts per pod); headless and ExternalName
Services have no virtual address and are skipped.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Iterable
from typing import Any

DEFAULT_AFFINITY_TIMEOUT = 10800


@dataclasses.dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""


@dataclasses.dataclass(frozen=True)
class ServicePortInfo:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp, udp, sctp
    cluster_ip: str
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    affinity_timeout: int = 0  # seconds of ClientIP affinity; 0: none
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        """ns/name:port, kube-proxy's "service port name"."""
        return f"{self.namespace}/{self.name}" + (f":{self.port_name}" if self.port_name else "")

    def chain_suffix(self) -> str:
        return short_hash(f"{self.key}/{self.protocol}")


def short_hash(text: str) -> str:
    """16 characters of base32(sha256): chain names stay under iptables' 28."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def endpoint_chain_suffix(sp: ServicePortInfo, ep: Endpoint) -> str:
    return short_hash(f"{sp.key}/{sp.protocol}/{ep.ip}:{ep.port}")


def build(services: Iterable[Any], endpoints: Iterable[Any]) -> list[ServicePortInfo]:
    eps = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
    out = []
    for svc in services:
        spec = svc.spec
        if spec.type == "ExternalName" or not spec.clusterIP or spec.clusterIP == "None":
            continue
        ns, name = svc.metadata.namespace, svc.metadata.name
        timeout = 0
        if spec.sessionAffinity == "ClientIP":
            cfg = spec.sessionAffinityConfig.clientIP
            timeout = cfg.timeoutSeconds if cfg.HasField("timeoutSeconds") else \
                DEFAULT_AFFINITY_TIMEOUT
        e = eps.get((ns, name))
        for p in spec.ports:
            proto = (p.protocol or "TCP").lower()
            targets: set[Endpoint] = set()
            if e is not None:
                for subset in e.subsets:
                    port = next((ep for ep in subset.ports if ep.name == p.name and
                                 (ep.protocol or "TCP").lower() == proto), None)
                    if port is None and len(spec.ports) == 1 and len(subset.ports) == 1:
                        port = subset.ports[0]  # one unnamed port on each side
                    if port is None:
                        continue
                    for a in subset.addresses:
                        targets.add(Endpoint(a.ip, port.port, a.nodeName))
            node_port = p.nodePort if spec.type in ("NodePort", "LoadBalancer") else 0
            out.append(ServicePortInfo(ns, name, p.name, proto, spec.clusterIP, p.port,
                                       node_port, tuple(spec.externalIPs), timeout,
                                       tuple(sorted(targets))))
    return sorted(out, key=lambda s: (s.namespace, s.name, s.port_name, s.protocol))
