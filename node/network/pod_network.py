"""The node agent's pod network: from the Node's pod CIDR and the cluster's
network configuration to addresses for pods and routes to the other nodes.

start():
    waits for the master to give this Node a pod CIDR (spec.podCIDR) and for
    the ConfigMap kube-system/kubelite-network; sets ip_forward, the backend
    (vxlan device or nothing), the bridge cni0 with the gateway address, the
    masquerade rules; publishes on the Node the annotations other nodes need
    (backend type and data, public IP) and the condition NetworkUnavailable.
run():
    reconciles the routes to every other Node whenever Nodes change and every
    RESYNC seconds (a route deleted by hand comes back; a Node that leaves
    takes its routes with it).
setup_pod / teardown_pod: an address from IPAM and a veth per pod sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from pathlib import Path
from typing import Any

from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import netconf as nc
from master.apiserver.strategy import now_rfc3339
from master.informers import Informer
from node.network import backends, hostports, masq, plumbing
from node.network.ipam import IPAM

log = logging.getLogger(__name__)

RESYNC = 10.0


class NetworkNotReady(Exception):
    pass


class PodNetwork:
    def __init__(self, client: AsyncClient, node_name: str, node_ip: str, root: Path) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.root = root
        self.conf: nc.NetConf | None = None
        self.pod_cidr = ""
        self.mtu = 1500
        self.ipam: IPAM | None = None
        self.backend: backends.HostGW | backends.VXLAN | None = None
        self.ready = asyncio.Event()
        self.error = "pod network not started"
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.nodes = Informer(client, "nodes", on_add=self._node_event,
                              on_update=lambda _o, n: self._node_event(n),
                              on_delete=self._node_event)
        self.backend_data: dict[str, str] = {}
        self.hostports: dict[str, list[hostports.Mapping]] = {}  # sandbox id -> mappings
        self.last_sync: backends.Result | None = None
        self._informer: asyncio.Task[None] | None = None
        self.synced_at = 0.0

    def _node_event(self, _node: Any) -> None:
        self._changed.set()

    # ---- start ------------------------------------------------------------------

    async def _wait_for(self, what: str, fetch: Any) -> Any:
        said = False
        while True:
            try:
                value = await fetch()
                if value:
                    return value
            except APIStatusError as e:
                if not e.not_found:
                    log.warning("waiting for %s: %s", what, e.message)
            if not said:
                log.info("waiting for %s", what)
                said = True
            self.error = f"waiting for {what}"
            await asyncio.sleep(0.5)

    async def _node_cidr(self) -> str:
        node = await self.client.get("nodes", self.node_name)
        return str(node.spec.podCIDR)

    async def _netconf(self) -> str:
        cm = await self.client.get("configmaps", nc.CONFIGMAP_NAME, nc.CONFIGMAP_NAMESPACE)
        return str(cm.data.get(nc.KEY, ""))

    async def start(self) -> None:
        if self._informer is None:
            self._informer = asyncio.create_task(self.nodes.run(), name="network-nodes")
        text = await self._wait_for(
            f"the network configuration ({nc.CONFIGMAP_NAMESPACE}/{nc.CONFIGMAP_NAME})",
            self._netconf)
        try:
            self.conf = nc.parse(text)
        except nc.ConfigError as e:
            self.error = str(e)
            raise NetworkNotReady(f"{nc.CONFIGMAP_NAMESPACE}/{nc.CONFIGMAP_NAME}: {e}") from None
        self.pod_cidr = await self._wait_for("a pod CIDR for this node (spec.podCIDR)",
                                             self._node_cidr)
        if not ipaddress.ip_network(self.pod_cidr).subnet_of(
                ipaddress.ip_network(self.conf.network)):  # type: ignore[arg-type]
            raise NetworkNotReady(f"spec.podCIDR {self.pod_cidr} is outside the cluster "
                                  f"network {self.conf.network}")
        await asyncio.to_thread(self._setup_host)
        self.ipam = IPAM(self.root / "network" / "ipam", self.pod_cidr)
        await self.nodes.synced.wait()
        first = await self.sync_routes()
        if first.refused:  # host-gw across an L3 hop: refuse to start, saying why
            raise NetworkNotReady("; ".join(first.refused.values()))
        await self._publish()
        self.error = ""
        self.ready.set()
        log.info("pod network up: %s backend, pod CIDR %s, MTU %d",
                 self.conf.backend, self.pod_cidr, self.mtu)

    def _setup_host(self) -> None:
        assert self.conf is not None
        uplink_mtu = plumbing.link_mtu(plumbing.uplink_of(self.node_ip))
        if self.conf.backend == "vxlan":
            self.backend = backends.VXLAN(self.node_ip, self.pod_cidr, self.conf.vni,
                                          self.conf.port, uplink_mtu)
        else:
            self.backend = backends.HostGW(self.node_ip, self.pod_cidr)
            for stale in _vxlan_devices():
                plumbing.delete_link(stale)
        self.mtu = self.backend.mtu(uplink_mtu)
        self.backend_data = self.backend.setup()
        plumbing.set_sysctl("net.ipv4.ip_forward", "1")
        plumbing.ensure_bridge(self.pod_cidr, self.mtu)
        masq.ensure(self.conf.network)

    async def _publish(self) -> None:
        """Annotations for the other nodes, and NetworkUnavailable=False."""
        assert self.backend is not None
        want = {nc.ANN_BACKEND_TYPE: self.backend.kind,
                nc.ANN_BACKEND_DATA: json.dumps(self.backend_data, sort_keys=True),
                nc.ANN_PUBLIC_IP: self.node_ip}
        for _ in range(10):
            node = await self.client.get("nodes", self.node_name)
            if all(node.metadata.annotations.get(k) == v for k, v in want.items()):
                break
            node.metadata.annotations.update(want)
            try:
                await self.client.update(node)
                break
            except APIStatusError as e:
                if not e.conflict:
                    raise
        await self.set_condition(False, "RouteCreated" if self.backend.kind == "host-gw"
                                 else "VXLANIsUp", f"{self.backend.kind} backend is up")

    async def set_condition(self, unavailable: bool, reason: str, message: str) -> None:
        for _ in range(10):
            node = await self.client.get("nodes", self.node_name)
            cond = next((c for c in node.status.conditions if c.type == "NetworkUnavailable"),
                        None)
            status = "True" if unavailable else "False"
            if cond is not None and (cond.status, cond.reason, cond.message) == (
                    status, reason, message):
                return
            now = now_rfc3339()
            if cond is None:
                cond = node.status.conditions.add(type="NetworkUnavailable")
                cond.lastTransitionTime = now
            elif cond.status != status:
                cond.lastTransitionTime = now
            cond.status, cond.reason, cond.message = status, reason, message
            cond.lastHeartbeatTime = now
            try:
                await self.client.update_status(node)
                return
            except APIStatusError as e:
                if not e.conflict:
                    raise

    # ---- routes to the other nodes ------------------------------------------------

    def peers(self) -> list[backends.Peer]:
        out = []
        for n in self.nodes.items():
            if n.metadata.name == self.node_name or not n.spec.podCIDR:
                continue
            if n.metadata.deletionTimestamp:
                continue
            ann = n.metadata.annotations
            address = ann.get(nc.ANN_PUBLIC_IP) or next(
                (a.address for a in n.status.addresses if a.type == "InternalIP"), "")
            if not address or ann.get(nc.ANN_BACKEND_TYPE, self.backend.kind  # type: ignore[union-attr]
                                      ) != self.backend.kind:  # type: ignore[union-attr]
                continue
            mac = ""
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                mac = json.loads(ann.get(nc.ANN_BACKEND_DATA, "{}")).get("VtepMAC", "")
            out.append(backends.Peer(n.metadata.name, address, n.spec.podCIDR, mac))
        return sorted(out, key=lambda p: p.name)

    async def sync_routes(self) -> backends.Result:
        assert self.backend is not None
        async with self._lock:
            res = await asyncio.to_thread(self.backend.reconcile, self.peers())
        for dst in res.added:
            log.info("route to %s added", dst)
        for dst in res.removed:
            log.info("route to %s removed", dst)
        for name, why in res.refused.items():
            if self.last_sync is None or self.last_sync.refused.get(name) != why:
                log.error("no route to node %s: %s", name, why)
        for name, why in res.pending.items():
            log.info("no route to node %s yet: %s", name, why)
        if self.ready.is_set() and res.refused:
            await self.set_condition(True, "NoRouteToNodes", "; ".join(res.refused.values()))
        elif self.ready.is_set() and self.last_sync is not None and self.last_sync.refused:
            await self._publish()  # healed
        self.last_sync, self.synced_at = res, time.monotonic()
        return res

    async def run(self) -> None:
        try:
            await self.ready.wait()
            while True:
                self._changed.clear()
                try:
                    if await asyncio.to_thread(self._repair_host):
                        await self._publish()
                    await self.sync_routes()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - keep reconciling
                    log.warning("route sync failed: %s", e)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), RESYNC)
        finally:
            if self._informer is not None:
                self._informer.cancel()

    def _repair_host(self) -> bool:
        """Put back what someone removed by hand: the vxlan device, cni0, iptables.
        True when the backend data changed (a recreated vxlan device has a new MAC)."""
        assert self.backend is not None and self.conf is not None
        changed = False
        if isinstance(self.backend, backends.VXLAN):
            data = self.backend.setup()
            changed, self.backend_data = data != self.backend_data, data
        plumbing.ensure_bridge(self.pod_cidr, self.mtu)
        masq.ensure(self.conf.network)
        hostports.sync([m for ms in list(self.hostports.values()) for m in ms])
        return changed

    # ---- pods -------------------------------------------------------------------

    async def setup_pod(self, sandbox_id: str, pid: int, pod: Any) -> str:
        """An address and a veth for a new sandbox (its pause process is `pid`)."""
        if not self.ready.is_set():
            raise NetworkNotReady(self.error or "pod network not ready")
        assert self.ipam is not None
        ipam = self.ipam
        async with self._lock:
            address = await asyncio.to_thread(ipam.allocate, sandbox_id)
            try:
                await asyncio.to_thread(plumbing.add_pod, sandbox_id, pid, address,
                                        ipam.prefixlen, str(ipam.gateway), self.mtu)
            except Exception:
                await asyncio.to_thread(ipam.release, sandbox_id)
                raise
        await self._set_hostports(sandbox_id, hostports.mappings_of(pod, address))
        return address

    async def adopt(self, sandbox_id: str, pod: Any) -> str:
        """The address of a sandbox that already runs ("" if it has none)."""
        address = self.ipam.lookup(sandbox_id) if self.ipam is not None else ""
        if address and sandbox_id not in self.hostports:
            await self._set_hostports(sandbox_id, hostports.mappings_of(pod, address))
        return address

    async def _set_hostports(self, sandbox_id: str, ms: list[hostports.Mapping]) -> None:
        if self.hostports.get(sandbox_id, []) == ms:
            self.hostports.setdefault(sandbox_id, ms)
            return
        self.hostports[sandbox_id] = ms
        await self._sync_hostports()

    async def _sync_hostports(self) -> None:
        snapshot = [m for ms in list(self.hostports.values()) for m in ms]
        await asyncio.to_thread(hostports.sync, snapshot)

    async def teardown_pod(self, sandbox_id: str) -> None:
        async with self._lock:
            await asyncio.to_thread(plumbing.del_pod, sandbox_id)
            if self.ipam is not None:
                await asyncio.to_thread(self.ipam.release, sandbox_id)
        if self.hostports.pop(sandbox_id, None):
            await self._sync_hostports()

    async def gc(self, live_sandboxes: Any) -> None:
        """Release the addresses, veths and hostPorts of sandboxes that are gone;
        `live_sandboxes()` lists the running ones (called under the lock, so a
        sandbox being set up right now is never taken for a dead one)."""
        if self.ipam is None:
            return
        async with self._lock:
            live = set(await live_sandboxes())
            gone = await asyncio.to_thread(self.ipam.release_all_but, live)
            keep = {plumbing.host_veth_name(s) for s in live}
            for veth in await asyncio.to_thread(plumbing.host_veths):
                if veth.startswith("veth") and veth not in keep:
                    await asyncio.to_thread(plumbing.delete_link, veth)
        if gone:
            log.info("released the addresses of %d pod(s) that are gone", len(gone))
        stale = [s for s in self.hostports if s not in live]
        for s in stale:
            del self.hostports[s]
        if stale:
            await self._sync_hostports()


def _vxlan_devices() -> list[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ip:
        return [str(link.get("IFLA_IFNAME")) for link in ip.get_links()
                if str(link.get("IFLA_IFNAME", "")).startswith("flannel.")]
