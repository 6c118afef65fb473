"""Node IPAM: hand each Node a pod CIDR from the cluster CIDR, and publish
the cluster's network configuration.

- A Node without spec.podCIDR gets the lowest free /24 (--node-cidr-mask-size)
  of --cluster-cidr (default 10.244.0.0/16), written to spec.podCIDR and
  spec.podCIDRs. It is kept across restarts because it lives on the Node; a
  Node that is deleted gives its range back (the free set is recomputed from
  the Nodes that exist, plus what this controller handed out and the cache
  has not shown yet, so one range is never given twice).
- No range left: a CIDRNotAvailable event on the Node, retried when Nodes go.
- The ConfigMap kube-system/kubelite-network (`net-conf.json`, flannel's
  shape) carries the cluster CIDR and the backend (--network-backend) to the
  node agents.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import Any

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient
from master.controllers.base import Controller
from kubelite.objects.netconf import CONFIGMAP_NAME, CONFIGMAP_NAMESPACE, KEY, NetConf

log = logging.getLogger(__name__)


class NodeIPAMController(Controller):
    name = "nodeipam"
    workers = 1  # allocations are serial: no two Nodes race for one range

    def __init__(self, client: AsyncClient, netconf: NetConf, *, mask_size: int = 24) -> None:
        super().__init__(client)
        self.check(netconf, mask_size)
        self.netconf = netconf
        self.cluster = ipaddress.ip_network(netconf.network)
        self.mask_size = mask_size
        self.nodes = self.informer("nodes", on_change=self.enqueue,
                                   on_delete=lambda _n: self._retry_waiting())
        self._given: dict[str, str] = {}  # node -> range written, until the cache shows it
        self._waiting: set[str] = set()  # nodes that found no free range

    @staticmethod
    def check(netconf: NetConf, mask_size: int) -> None:
        cluster = ipaddress.ip_network(netconf.network)
        if not cluster.prefixlen <= mask_size <= 30:
            raise ValueError(f"--node-cidr-mask-size: {mask_size} does not fit in the cluster "
                             f"CIDR {cluster} (must be {cluster.prefixlen}..30)")

    def _retry_waiting(self) -> None:
        for name in self._waiting:
            self.queue.add(name)
        self._waiting.clear()

    async def run(self) -> None:
        await self._publish_config()
        await super().run()

    async def _publish_config(self) -> None:
        want = self.netconf.to_json()
        try:
            cm = await self.client.get("configmaps", CONFIGMAP_NAME, CONFIGMAP_NAMESPACE)
        except APIStatusError as e:
            if not e.not_found:
                raise
            cm = core_pb2.ConfigMap(apiVersion="v1", kind="ConfigMap")
            cm.metadata.name, cm.metadata.namespace = CONFIGMAP_NAME, CONFIGMAP_NAMESPACE
            cm.data[KEY] = want
            await self.client.create(cm)
            return
        if cm.data.get(KEY) != want:
            log.info("network configuration changes to %s", want)
            cm.data[KEY] = want
            await self.client.update(cm)

    def _used(self, skip: str) -> set[ipaddress.IPv4Network]:
        used = set()
        cached = {n.metadata.name: n for n in self.nodes.items()}
        for name in list(self._given):
            if name not in cached or cached[name].spec.podCIDR:
                del self._given[name]  # deleted, or the cache caught up
        for n in cached.values():
            if n.metadata.name != skip and n.spec.podCIDR:
                with contextlib.suppress(ValueError):
                    used.add(ipaddress.ip_network(n.spec.podCIDR, strict=False))
        used |= {ipaddress.ip_network(c) for name, c in self._given.items() if name != skip}
        return used  # type: ignore[return-value]

    def _free(self, used: set[Any]) -> str:
        for sub in self.cluster.subnets(new_prefix=self.mask_size):
            if not any(sub.overlaps(u) for u in used):
                return str(sub)
        return ""

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None or node.spec.podCIDR or node.metadata.deletionTimestamp:
            return
        name = node.metadata.name
        cidr = self._given.get(name) or self._free(self._used(skip=name))
        if not cidr:
            self._waiting.add(name)
            self.recorder.event(node, "Normal", "CIDRNotAvailable",
                                f"Node {name} status is now: CIDRNotAvailable (no /"
                                f"{self.mask_size} left in {self.cluster})")
            return
        fresh = await self.client.get("nodes", name)
        if fresh.spec.podCIDR:
            return
        fresh.spec.podCIDR = cidr
        del fresh.spec.podCIDRs[:]
        fresh.spec.podCIDRs.append(cidr)
        self._given[name] = cidr
        await self.client.update(fresh)  # a conflict retries with back-off
        self.recorder.event(fresh, "Normal", "CIDRAssigned", f"Node {name} got pod CIDR {cidr}")
        log.info("node %s: pod CIDR %s", name, cidr)
