"""The cluster zone: what `<...>.cluster.local` means, as pure functions of
a view of the Services and Endpoints (Kubernetes' DNS specification, the
records CoreDNS's kubernetes plugin serves).

    <svc>.<ns>.svc.<zone>                 A/AAAA  the clusterIP(s); headless: the
                                                  ready endpoint addresses
                                          CNAME   type ExternalName
                                          SRV     every named port
    <host>.<svc>.<ns>.svc.<zone>          A/AAAA  a headless endpoint: its hostname
                                                  (StatefulSet pods) or dashed IP
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV    a named port: clusterIP services
                                                  point at <svc>, headless ones at
                                                  each endpoint's name
    <a-b-c-d>.<ns>.pod.<zone>             A       the address in the name
                                                  (CoreDNS's `pods insecure`)
    <zone>                                SOA, NS (ns.dns.<zone> = the DNS service IP)
    d.c.b.a.in-addr.arpa                  PTR     service IPs and headless endpoints

A name that exists with no record of the asked type is NODATA (NOERROR, no
answer, the SOA in authority); a name that does not exist is NXDOMAIN. Both
carry the SOA so resolvers cache the miss for NEGATIVE_TTL seconds. Names
outside the zone, and reverse names we know nothing of, are `forward`ed.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.dns.wire import (
    AAAA,
    ANY,
    CNAME,
    NOERROR,
    NS,
    NXDOMAIN,
    PTR,
    RR,
    SOA,
    SRV,
    A,
    Name,
    Question,
    lower,
    name_from_text,
)

TTL = 5
NEGATIVE_TTL = 30
REVERSE_V4 = ("in-addr", "arpa")
REVERSE_V6 = ("ip6", "arpa")
PROTOCOLS = {"_tcp": "TCP", "_udp": "UDP", "_sctp": "SCTP"}
MAX_CHASE = 8


class Store(Protocol):
    """An informer's cache (or a test's dict): objects by "namespace/name"."""

    def get(self, key: str) -> Any | None: ...

    def items(self) -> list[Any]: ...


class ClusterView:
    """Services and Endpoints as the DNS reads them. The reverse index (PTR,
    namespaces) is rebuilt on first use after `invalidate()`, which the
    informers' handlers call on every change."""

    def __init__(self, services: Store, endpoints: Store) -> None:
        self.services = services
        self.endpoints_store = endpoints
        self._reverse: dict[str, list[Name]] | None = None
        self._namespaces: set[str] = set()

    def invalidate(self, *_: Any) -> None:
        self._reverse = None

    def service(self, namespace: str, name: str) -> Any | None:
        return self.services.get(f"{namespace}/{name}")

    def endpoints(self, namespace: str, name: str) -> Any | None:
        return self.endpoints_store.get(f"{namespace}/{name}")

    def has_namespace(self, namespace: str) -> bool:
        self._index()
        return namespace in self._namespaces

    def reverse(self, ip: str) -> list[Name]:
        """Names (relative to the zone) whose address is `ip`."""
        return self._index().get(ip, [])

    def _index(self) -> dict[str, list[Name]]:
        if self._reverse is not None:
            return self._reverse
        index: dict[str, list[Name]] = {}
        namespaces = set()
        for svc in self.services.items():
            ns, name = svc.metadata.namespace, svc.metadata.name
            namespaces.add(ns)
            base = (name, ns, "svc")
            if is_headless(svc):
                for addr in ready_addresses(svc, self.endpoints(ns, name)):
                    index.setdefault(addr.ip, []).append((endpoint_name(addr), *base))
            elif svc.spec.type != "ExternalName":
                for ip in cluster_ips(svc):
                    index.setdefault(ip, []).append(base)
        self._reverse, self._namespaces = index, namespaces
        return index


def is_headless(svc: Any) -> bool:
    return bool(svc.spec.clusterIP == "None")


def cluster_ips(svc: Any) -> list[str]:
    ips = list(svc.spec.clusterIPs) or ([svc.spec.clusterIP] if svc.spec.clusterIP else [])
    return [ip for ip in ips if ip and ip != "None"]


def ready_addresses(svc: Any, eps: Any | None) -> list[Any]:
    """Ready addresses (and not-ready ones when the Service publishes them), one per IP."""
    if eps is None:
        return []
    out, seen = [], set()
    for subset in eps.subsets:
        addrs = list(subset.addresses)
        if svc.spec.publishNotReadyAddresses:
            addrs += list(subset.notReadyAddresses)
        for a in addrs:
            if a.ip not in seen:
                seen.add(a.ip)
                out.append(a)
    return out


def endpoint_name(addr: Any) -> str:
    """The endpoint's label: its hostname, else its address with dashes (CoreDNS)."""
    if addr.hostname:
        return str(addr.hostname)
    return str(addr.ip).replace(".", "-").replace(":", "-")


def _family(ip: str) -> int:
    """A or AAAA for an address as the API stores it (validated there), 0 otherwise."""
    if ":" in ip:
        return AAAA
    return A if ip.count(".") == 3 else 0


def reverse_ip(name: Name) -> str | None:
    """The address a complete in-addr.arpa / ip6.arpa name stands for."""
    name = lower(name)
    try:
        if name[-2:] == REVERSE_V4 and len(name) == 6:
            return str(ipaddress.IPv4Address(".".join(reversed(name[:4]))))
        if name[-2:] == REVERSE_V6 and len(name) == 34:
            nibbles = "".join(reversed(name[:32]))
            return str(ipaddress.IPv6Address(int(nibbles, 16)))
    except ValueError:
        return None
    return None


@dataclass
class Answer:
    rcode: int = NOERROR
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    forward: bool = False       # not ours: ask the upstream resolvers
    chase: Name | None = None   # an ExternalName target outside the zone: resolve it upstream


class Zone:
    def __init__(self, domain: str = "cluster.local", *, dns_ip: str = "10.96.0.10",
                 ttl: int = TTL, negative_ttl: int = NEGATIVE_TTL) -> None:
        self.origin = lower(name_from_text(domain))
        self.dns_ips = [ip for ip in dns_ip.split(",") if ip]
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.serial = int(time.time()) & 0xFFFFFFFF
        self.ns_name: Name = ("ns", "dns", *self.origin)

    def contains(self, name: Name) -> bool:
        n = len(self.origin)
        return lower(name[len(name) - n:]) == self.origin if len(name) >= n else False

    def soa(self, owner: Name | None = None) -> RR:
        data = (self.ns_name, ("hostmaster", *self.origin), self.serial, 7200, 1800, 86400,
                self.negative_ttl)
        return RR(owner or self.origin, SOA, self.negative_ttl, data)

    # ---- entry point --------------------------------------------------------------

    def resolve(self, q: Question, view: ClusterView, depth: int = 0) -> Answer:
        if not self.contains(q.name):
            ip = reverse_ip(q.name) if q.qtype in (PTR, ANY) else None
            names = view.reverse(ip) if ip else []
            if names:
                return Answer(answer=[RR(q.name, PTR, self.ttl, (*n, *self.origin))
                                      for n in names])
            return Answer(forward=True)
        parts = tuple(reversed(lower(q.name[:len(q.name) - len(self.origin)])))
        if not parts:
            return self._apex(q)
        if parts == ("dns",):
            return self._nodata()
        if parts == ("dns", "ns"):
            return self._addresses(q, self.dns_ips)
        if parts[0] == "svc":
            return self._svc(q, parts[1:], view, depth)
        if parts[0] == "pod":
            return self._pod(q, parts[1:])
        return self._nxdomain()

    # ---- answers ------------------------------------------------------------------

    def _nodata(self) -> Answer:
        return Answer(authority=[self.soa()])

    def _nxdomain(self) -> Answer:
        return Answer(rcode=NXDOMAIN, authority=[self.soa()])

    def _records(self, answer: list[RR], additional: list[RR] | None = None) -> Answer:
        if not answer:
            return self._nodata()
        return Answer(answer=answer, additional=additional or [])

    def _addresses(self, q: Question, ips: list[str], owner: Name | None = None) -> Answer:
        want = {A, AAAA} if q.qtype == ANY else {q.qtype}
        return self._records([RR(owner or q.name, _family(ip), self.ttl, ip)
                              for ip in ips if _family(ip) in want])

    def _apex(self, q: Question) -> Answer:
        if q.qtype == SOA:
            return Answer(answer=[self.soa(q.name)])
        if q.qtype == NS:
            glue = [RR(self.ns_name, _family(ip), self.ttl, ip) for ip in self.dns_ips
                    if _family(ip)]
            return Answer(answer=[RR(q.name, NS, self.ttl, self.ns_name)], additional=glue)
        return self._nodata()

    def _pod(self, q: Question, parts: Name) -> Answer:
        if len(parts) < 2:
            return self._nodata()
        if len(parts) > 2:
            return self._nxdomain()
        dashed = parts[1]
        text = dashed.replace("-", ".") if dashed.count("-") == 3 else dashed.replace("-", ":")
        try:
            ip = str(ipaddress.ip_address(text))
        except ValueError:
            return self._nxdomain()
        return self._addresses(q, [ip])

    def _svc(self, q: Question, parts: Name, view: ClusterView, depth: int) -> Answer:
        if not parts:
            return self._nodata()
        if len(parts) == 1:
            return self._nodata() if view.has_namespace(parts[0]) else self._nxdomain()
        ns, name = parts[0], parts[1]
        svc = view.service(ns, name)
        if svc is None or len(parts) > 4:
            return self._nxdomain()
        eps = view.endpoints(ns, name)
        base: Name = (name, ns, "svc", *self.origin)
        if len(parts) == 2:
            return self._service(q, svc, eps, base, view, depth)
        if len(parts) == 3 and not parts[2].startswith("_"):
            addrs = ([a.ip for a in ready_addresses(svc, eps) if endpoint_name(a) == parts[2]]
                     if is_headless(svc) else [])
            return self._addresses(q, addrs) if addrs else self._nxdomain()
        proto = PROTOCOLS.get(parts[2])
        port = parts[3][1:] if len(parts) == 4 and parts[3].startswith("_") else None
        records, extra = self._srv(q, svc, eps, base, proto, port)
        if not records:
            return self._nxdomain()
        if len(parts) == 3:  # _<proto>.<svc>...: an empty non-terminal
            return self._nodata()
        if q.qtype not in (SRV, ANY):
            return self._nodata()
        return self._records(records, extra)

    def _service(self, q: Question, svc: Any, eps: Any, base: Name, view: ClusterView,
                 depth: int) -> Answer:
        if svc.spec.type == "ExternalName":
            return self._external(q, svc, view, depth)
        if q.qtype == SRV:
            records, extra = self._srv(q, svc, eps, base, None, None)
            return self._records(records, extra)
        if is_headless(svc):
            return self._addresses(q, [a.ip for a in ready_addresses(svc, eps)])
        return self._addresses(q, cluster_ips(svc))

    def _external(self, q: Question, svc: Any, view: ClusterView, depth: int) -> Answer:
        target = name_from_text(svc.spec.externalName.lower())
        cname = RR(q.name, CNAME, self.ttl, target)
        if not target:
            return self._nodata()
        if q.qtype == CNAME:
            return Answer(answer=[cname])
        if not self.contains(target):
            return Answer(answer=[cname], chase=target)
        if depth >= MAX_CHASE:
            return Answer(answer=[cname])
        more = self.resolve(Question(target, q.qtype), view, depth + 1)
        return Answer(rcode=more.rcode, answer=[cname, *more.answer], authority=more.authority,
                      additional=more.additional, chase=more.chase)

    def _srv(self, q: Question, svc: Any, eps: Any, base: Name, proto: str | None,
             port_name: str | None) -> tuple[list[RR], list[RR]]:
        """SRV records (and their A/AAAA glue) of the named ports that match."""
        def wanted(name: str, protocol: str) -> bool:
            return bool(name) and (proto is None or (protocol or "TCP") == proto) and (
                port_name is None or name.lower() == port_name)

        def owner(p: Any) -> Name:
            if port_name is not None:
                return q.name
            return (f"_{p.name}", f"_{(p.protocol or 'TCP').lower()}", *base)

        records: list[RR] = []
        glue: dict[tuple[Name, str], RR] = {}
        if not is_headless(svc):
            for p in svc.spec.ports:
                if wanted(p.name, p.protocol):
                    records.append(RR(owner(p), SRV, self.ttl, (0, 100, p.port, base)))
            if records:
                glue = {(base, ip): RR(base, _family(ip), self.ttl, ip)
                        for ip in cluster_ips(svc)}
            return records, list(glue.values())
        ready = {a.ip for a in ready_addresses(svc, eps)}
        seen: set[tuple[str, int, str]] = set()
        for subset in (eps.subsets if eps is not None else []):
            addrs = [a for a in (*subset.addresses, *subset.notReadyAddresses) if a.ip in ready]
            for p in subset.ports:
                if not wanted(p.name, p.protocol):
                    continue
                for a in addrs:
                    if (a.ip, p.port, p.name) in seen:
                        continue
                    seen.add((a.ip, p.port, p.name))
                    target = (endpoint_name(a), *base)
                    records.append(RR(owner(p), SRV, self.ttl, (0, 0, p.port, target)))
                    glue[(target, a.ip)] = RR(target, _family(a.ip), self.ttl, a.ip)
        # Equal weights summing to about 100, as CoreDNS gives them.
        weight = max(1, 100 // len(records)) if records else 0
        for r in records:
            r.data = (0, weight, r.data[2], r.data[3])
        return records, list(glue.values())
