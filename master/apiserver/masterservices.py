"""The Services every cluster has: `default/kubernetes` and `kube-system/kube-dns`.

- `kubernetes` (ClusterIP: the first address of the service range, 10.96.0.1;
  port 443 named https, targetPort the API port) points at the masters. Each
  master keeps a key `/registry/masterleases/<ip>:<port>` alive on an etcd
  lease (Kubernetes' "lease" endpoint reconciler) and sets the Endpoints
  `default/kubernetes` to the live keys: masters come and go on their own, a
  master that dies drops out when its lease expires, one that stops removes
  itself at once. Every master writes the same answer, so it is idempotent.
- `kube-dns` (ClusterIP from --cluster-dns, 10.96.0.10; 53/UDP "dns", 53/TCP
  "dns-tcp") has no selector: its Endpoints are one address per Ready node
  (master/controllers/dnsendpoints.py), where each node agent answers DNS.

Both are created when missing and otherwise left as they are (an operator's
edit wins); a clusterIP taken by another Service is logged, not fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from kubelite.api import core_pb2
from kubelite.objects import convert
from kubelite.objects.kinds import by_resource
from master.apiserver import errors
from master.apiserver.registry import Registry
from master.apiserver.storage import Storage

log = logging.getLogger(__name__)

LEASES = "/registry/masterleases/"
LEASE_TTL = 15
REFRESH = 5.0
KUBERNETES = ("default", "kubernetes")
KUBE_DNS = ("kube-system", "kube-dns")


def kubernetes_service(cluster_ip: str, api_port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": api_port}]}}


def kube_dns_service(cluster_ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system",
                         "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                    "kubernetes.io/name": "KubeDNS"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                               {"name": "dns-tcp", "port": 53, "protocol": "TCP",
                                "targetPort": 53}]}}


async def ensure_service(registry: Registry, manifest: dict[str, Any]) -> None:
    """Create the Service unless one of that name exists; never fail the master."""
    svc = convert.from_dict(manifest, core_pb2.Service)
    name = f"{svc.metadata.namespace}/{svc.metadata.name}"
    try:
        await registry.create(svc)
        log.info("created Service %s (%s)", name, svc.spec.clusterIP)
    except errors.ApiError as e:
        if e.reason != "AlreadyExists":
            log.error("cannot create Service %s: %s", name, e.message)


def endpoints_for(masters: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Endpoints subsets for masters (ip, port): one subset per port, addresses sorted."""
    by_port: dict[int, list[str]] = defaultdict(list)
    for ip, port in masters:
        by_port[port].append(ip)
    return [{"addresses": [{"ip": ip} for ip in sorted(set(ips))],
             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
            for port, ips in sorted(by_port.items())]


def _parse_lease_key(key: str) -> tuple[str, int] | None:
    ip, _, port = key.removeprefix(LEASES).rpartition(":")
    return (ip, int(port)) if ip and port.isdigit() else None


class MasterEndpoints:
    """Keep this master in `default/kubernetes`'s Endpoints while it runs."""

    def __init__(self, registry: Registry, storage: Storage, ip: str, port: int, *,
                 ttl: int = LEASE_TTL, refresh: float = REFRESH) -> None:
        self.registry = registry
        self.storage = storage
        self.ip, self.port = ip, port
        self.ttl, self.refresh = ttl, refresh
        self.key = f"{LEASES}{ip}:{port}"
        self._lease = 0

    async def run(self) -> None:
        try:
            while True:
                try:
                    await self._beat()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - etcd or a conflict: next beat
                    log.warning("kubernetes endpoints: %s", e)
                    self._lease = 0
                await asyncio.sleep(self.refresh)
        finally:
            await asyncio.shield(self._leave())

    async def _beat(self) -> None:
        if not self._lease or not await self.storage.refresh_lease(self._lease):
            self._lease = await self.storage.grant_lease(self.ttl)
            await self.storage.put_leased(self.key, b"", self._lease)
        await self.reconcile()

    async def _leave(self) -> None:
        with contextlib.suppress(Exception):
            if self._lease:
                await self.storage.revoke_lease(self._lease)
            self._lease = 0
            await self.reconcile()

    async def reconcile(self) -> None:
        """Set the Endpoints to the masters whose lease keys are alive."""
        keys = await self.storage.keys(LEASES)
        masters = [m for m in map(_parse_lease_key, keys) if m is not None]
        subsets = endpoints_for(masters)
        ns, name = KUBERNETES
        kind = by_resource("endpoints")
        try:
            ep = await self.registry.get(kind, ns, name)
        except errors.ApiError as e:
            if e.reason != "NotFound":
                raise
            if not subsets:
                return
            doc = {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": name, "namespace": ns,
                                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                   "subsets": subsets}
            with contextlib.suppress(errors.ApiError):  # another master was first
                await self.registry.create(convert.from_dict(doc, core_pb2.Endpoints))
            return
        current = convert.to_dict(ep).get("subsets") or []
        if current == subsets:
            return
        want = convert.from_dict({"apiVersion": "v1", "kind": "Endpoints",
                                  "metadata": convert.to_dict(ep)["metadata"],
                                  "subsets": subsets}, core_pb2.Endpoints)
        await self.registry.update(want)  # with its resourceVersion: a conflict retries
        log.info("kubernetes endpoints: %s", ", ".join(f"{ip}:{p}" for ip, p in sorted(masters))
                 or "none")
