"""The Service proxy of a node: Services and Endpoints in, rules out.

One loop per node agent. Informer events only mark the state dirty; a sync
runs at most every `min_sync` seconds (changes arriving meanwhile are
batched into one sync), only when the rendered rules differ from the last
ones applied, and in any case every `sync_period` seconds as a full resync
that rewrites everything (repairing rules someone deleted by hand).

Modes (node/proxy/): iptables (default), ipvs, userspace. They take the same
list of service ports (model.py), so they program the same Services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Callable
from typing import Any, Protocol

from kubelite.client import AsyncClient
from master.informers import Informer
from node.proxy import model

log = logging.getLogger(__name__)


class Mode(Protocol):
    name: str

    def sync(self, ports: list[model.ServicePortInfo], cluster_cidr: str, full: bool) -> bool:
        """Program `ports`; True when something was written."""

    def cleanup(self) -> None:
        """Remove everything this mode programmed."""


class IptablesMode:
    name = "iptables"

    def __init__(self) -> None:
        self.last = ""

    def sync(self, ports: list[model.ServicePortInfo], cluster_cidr: str, full: bool) -> bool:
        from node.proxy import iptables

        existing = iptables.nat_chains()
        payload = iptables.render(ports, cluster_cidr, existing)
        if payload == self.last and not full:
            return False
        iptables.apply(payload)
        iptables.ensure_jumps()
        self.last = payload
        return True

    def cleanup(self) -> None:
        from node.proxy import iptables

        iptables.remove_all()


def make_mode(name: str, *, node_ips: list[str], ipvs_scheduler: str = "rr") -> Mode:
    if name == "iptables":
        return IptablesMode()
    if name == "ipvs":
        from node.proxy.ipvs import IPVSMode

        return IPVSMode(scheduler=ipvs_scheduler, node_ips=node_ips)
    if name == "userspace":
        from node.proxy.userspace import UserspaceMode

        return UserspaceMode(asyncio.get_running_loop())
    raise ValueError(f"--proxy-mode: {name!r} is not one of iptables, ipvs, userspace, none")


class ServiceProxy:
    def __init__(self, client: AsyncClient, mode: Mode, cluster_cidr: Callable[[], str], *,
                 min_sync: float = 1.0, sync_period: float = 30.0) -> None:
        self.mode = mode
        self.cluster_cidr = cluster_cidr
        self.min_sync = min_sync
        self.sync_period = sync_period
        self._dirty = asyncio.Event()
        self.services = Informer(client, "services", on_add=self._changed,
                                 on_update=lambda _o, _n: self._changed(None),
                                 on_delete=self._changed)
        self.endpoints = Informer(client, "endpoints", on_add=self._changed,
                                  on_update=lambda _o, _n: self._changed(None),
                                  on_delete=self._changed)
        self.syncs = 0  # syncs that wrote rules
        self.last_sync_seconds = 0.0
        self.synced_at = 0.0
        self._udp: dict[str, set[model.Endpoint]] = {}

    def _changed(self, _obj: Any) -> None:
        self._dirty.set()

    def ports(self) -> list[model.ServicePortInfo]:
        return model.build(self.services.items(), self.endpoints.items())

    def sync_once(self, full: bool) -> bool:
        ports = self.ports()
        t = time.monotonic()
        wrote = self.mode.sync(ports, self.cluster_cidr(), full)
        if wrote:
            self.syncs += 1
            self.last_sync_seconds = time.monotonic() - t
        self.synced_at = time.monotonic()
        self._flush_udp_conntrack(ports)
        return wrote

    def _flush_udp_conntrack(self, ports: list[model.ServicePortInfo]) -> None:
        """A UDP 'connection' to a Service sticks to its endpoint in conntrack: when
        that endpoint goes, forget the entries so the next datagram is balanced anew."""
        now = {sp.key: set(sp.endpoints) for sp in ports if sp.protocol == "udp"}
        for sp in ports:
            if sp.protocol != "udp":
                continue
            gone = self._udp.get(sp.key, set()) - now[sp.key]
            for ep in gone:
                subprocess.run(["conntrack", "-D", "-p", "udp", "--orig-dst", sp.cluster_ip,
                                "--dst-nat", ep.ip], capture_output=True, check=False)
        self._udp = now

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.services.run(), name="proxy-services"),
                 asyncio.create_task(self.endpoints.run(), name="proxy-endpoints")]
        try:
            await self.services.synced.wait()
            await self.endpoints.synced.wait()
            last_full = 0.0
            last = 0.0
            while True:
                full = time.monotonic() - last_full >= self.sync_period
                try:
                    self._dirty.clear()
                    if await asyncio.to_thread(self.sync_once, full):
                        log.info("%s proxy: rules synced for %d service ports (%.0f ms)",
                                 self.mode.name, len(self.ports()),
                                 self.last_sync_seconds * 1000)
                    if full:
                        last_full = time.monotonic()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - retried on the next round
                    log.warning("%s proxy: sync failed: %s", self.mode.name, e)
                    self._dirty.set()
                last = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(),
                                           max(0.0, last_full + self.sync_period - last))
                wait = self.min_sync - (time.monotonic() - last)
                if wait > 0:  # batch what else arrives meanwhile into the same sync
                    await asyncio.sleep(wait)
        finally:
            for t in tasks:
                t.cancel()
