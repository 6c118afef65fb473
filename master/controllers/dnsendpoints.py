"""The kube-dns Endpoints: where the cluster DNS answers, one address per node.

kubelite runs no DNS pods: every node agent answers DNS itself on its
node's InternalIP, port 53 (UDP and TCP). The Service kube-system/kube-dns
(made by the master, no selector, clusterIP --cluster-dns) therefore gets
its Endpoints from here: each Ready node's InternalIP under `addresses`, a
node that is not Ready (its agent is down or its network is not up) under
`notReadyAddresses`, a node being deleted not at all, with the ports named
as the Service's: `dns` 53/UDP and `dns-tcp` 53/TCP. Proxies send the
cluster IP's traffic to the ready ones; nothing is written while the
Service does not exist.
"""

from __future__ import annotations

import logging
from typing import Any

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert
from master.controllers.base import Controller

log = logging.getLogger(__name__)

NAMESPACE, NAME = "kube-system", "kube-dns"
KEY = f"{NAMESPACE}/{NAME}"
PORTS = [{"name": "dns", "port": 53, "protocol": "UDP"},
         {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]


def node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


def internal_ip(node: Any) -> str:
    for a in node.status.addresses:
        if a.type == "InternalIP":
            return str(a.address)
    return ""


def dns_subsets(nodes: list[Any]) -> list[dict[str, Any]]:
    """The kube-dns Endpoints subsets (manifest form) for these Nodes."""
    ready, not_ready = [], []
    for node in sorted(nodes, key=lambda n: n.metadata.name):
        ip = internal_ip(node)
        if not ip or node.metadata.deletionTimestamp:
            continue
        addr = {"ip": ip, "nodeName": node.metadata.name,
                "targetRef": {"kind": "Node", "name": node.metadata.name,
                              "uid": node.metadata.uid}}
        (ready if node_ready(node) else not_ready).append(addr)
    if not ready and not not_ready:
        return []
    subset: dict[str, Any] = {"ports": PORTS}
    if ready:
        subset["addresses"] = ready
    if not_ready:
        subset["notReadyAddresses"] = not_ready
    return [subset]


class DNSEndpointsController(Controller):
    name = "dns-endpoints"
    workers = 1

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.nodes = self.informer("nodes", on_change=lambda _n: self.queue.add(KEY))
        self.services = self.informer("services", namespace=NAMESPACE,
                                      on_change=lambda _s: self.queue.add(KEY))
        self.endpoints = self.informer("endpoints", namespace=NAMESPACE,
                                       on_change=lambda _e: self.queue.add(KEY))

    async def reconcile(self, key: str) -> None:
        if self.services.get(KEY) is None:
            return
        want = convert.from_dict({"apiVersion": "v1", "kind": "Endpoints",
                                  "metadata": {"name": NAME, "namespace": NAMESPACE},
                                  "subsets": dns_subsets(self.nodes.items())},
                                 core_pb2.Endpoints)
        current = self.endpoints.get(KEY)
        if current is None:
            try:
                await self.client.create(want)
                return
            except APIStatusError as e:
                if not e.already_exists:
                    raise
                current = await self.client.get("endpoints", NAME, NAMESPACE)
        if list(current.subsets) == list(want.subsets):
            return
        new = core_pb2.Endpoints()
        new.CopyFrom(current)
        del new.subsets[:]
        new.subsets.extend(want.subsets)
        await self.client.update(new)
        log.info("kube-dns endpoints: %s", ", ".join(
            a.ip for s in new.subsets for a in s.addresses) or "no ready node")
