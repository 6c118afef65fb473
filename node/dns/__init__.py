"""Cluster DNS, served by every node agent on its own address, port 53.

    pod --(resolv.conf: nameserver 10.96.0.10)--> kube-dns Service (proxy DNAT)
        --> <a node's InternalIP>:53 --> ClusterDNS of that node's agent
              Services/Endpoints informers --> ClusterView --> Zone (cluster.local)
              anything else --> Forwarder --> the node's resolv.conf upstreams

    wire.py        the message format (parse a query, encode an answer, TC)
    zone.py        what the names of the cluster zone resolve to (pure)
    server.py      UDP/TCP listeners and the packet-in/packet-out handler
    upstream.py    forwarding outside the zone, with short timeouts
    resolvconf.py  the node's resolv.conf (upstreams, dnsPolicy Default)

Glossary: NXDOMAIN = the name does not exist; NODATA = it exists, without a
record of the asked type (NOERROR, empty answer); both carry the zone's SOA,
whose minimum (30 s) is how long resolvers cache the miss.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kubelite.client import AsyncClient
from master.informers import Informer
from node.dns import resolvconf
from node.dns.server import DNSHandler, DNSServer
from node.dns.upstream import Forwarder, parse_servers
from node.dns.zone import ClusterView, Zone

log = logging.getLogger(__name__)

__all__ = ["ClusterDNS", "DNSOptions"]


@dataclass
class DNSOptions:
    domain: str = "cluster.local"
    cluster_dns: str = "10.96.0.10"   # the kube-dns Service IP(s), comma-separated
    host: str = "127.0.0.1"
    port: int = 53
    upstream: str = ""                # "" resolv.conf, "none", or ip[:port],...
    resolv_conf: str = resolvconf.DEFAULT_PATH


class ClusterDNS:
    """The node's DNS: its own Services and Endpoints informers, a server."""

    def __init__(self, client: AsyncClient, opts: DNSOptions) -> None:
        self.opts = opts
        self.services = Informer(client, "services")
        self.endpoints = Informer(client, "endpoints")
        self.view = ClusterView(self.services, self.endpoints)
        for inf in (self.services, self.endpoints):
            inf.on_add = inf.on_delete = self.view.invalidate
            inf.on_update = self.view.invalidate
        servers = parse_servers(opts.upstream, resolvconf.load(opts.resolv_conf),
                                exclude={opts.host, *opts.cluster_dns.split(",")})
        self.zone = Zone(opts.domain, dns_ip=opts.cluster_dns)
        self.handler = DNSHandler(self.zone, self.view, Forwarder(servers),
                                  synced=self.is_synced)
        self.server = DNSServer(self.handler, opts.host, opts.port)
        if not servers:
            log.info("cluster DNS: no upstream resolvers (%s): names outside %s are refused",
                     "--dns-upstream none" if opts.upstream == "none"
                     else f"none usable in {opts.resolv_conf}", opts.domain)
        else:
            log.info("cluster DNS upstreams: %s",
                     ", ".join(f"{h}:{p}" for h, p in servers))

    def is_synced(self) -> bool:
        return self.services.synced.is_set() and self.endpoints.synced.is_set()

    async def run(self) -> None:
        await asyncio.gather(self.services.run(), self.endpoints.run(), self.server.serve())
