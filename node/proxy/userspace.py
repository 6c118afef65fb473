"""userspace mode: the agent itself accepts on each Service address and
forwards, for hosts where iptables cannot be used.

Each ClusterIP (and external IP) is added as a /32 to `lo` (label
lo:kubelite), so packets for it - from pods through their default route to
the node, or from the node itself - are delivered locally; a listener per
Service port (TCP and UDP) on that address, and on 0.0.0.0:<nodePort> for
NodePorts, picks an endpoint round-robin (sticky per client address with
ClientIP affinity) and relays bytes both ways. A Service port without
endpoints closes a connection at once. Endpoints see the node's address as
the source, as with kube-proxy's userspace mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import socket
import time
from typing import Any

from node.proxy.model import Endpoint, ServicePortInfo

log = logging.getLogger(__name__)

UDP_IDLE = 60.0
DEVICE = "lo"


@dataclasses.dataclass
class Balancer:
    endpoints: tuple[Endpoint, ...] = ()
    affinity: int = 0
    _rr: Any = None
    _sticky: dict[str, tuple[Endpoint, float]] = dataclasses.field(default_factory=dict)

    def update(self, endpoints: tuple[Endpoint, ...], affinity: int) -> None:
        if endpoints != self.endpoints:
            self.endpoints = endpoints
            self._rr = itertools.cycle(endpoints) if endpoints else None
            self._sticky = {c: v for c, v in self._sticky.items() if v[0] in endpoints}
        self.affinity = affinity

    def pick(self, client: str) -> Endpoint | None:
        if self._rr is None:
            return None
        now = time.monotonic()
        if self.affinity:
            hit = self._sticky.get(client)
            if hit is not None and now - hit[1] < self.affinity:
                self._sticky[client] = (hit[0], now)
                return hit[0]
        ep: Endpoint = next(self._rr)
        if self.affinity:
            self._sticky[client] = (ep, now)
        return ep


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


class _UDPRelay(asyncio.DatagramProtocol):
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], tuple[asyncio.DatagramTransport, float]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._forward(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is None:
            ep = self.balancer.pick(addr[0])
            if ep is None:
                return
            front = self

            class Back(asyncio.DatagramProtocol):
                def datagram_received(self, reply: bytes, _a: Any) -> None:
                    if front.transport is not None:
                        front.transport.sendto(reply, addr)

            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                Back, remote_addr=(ep.ip, ep.port))
            session = (transport, time.monotonic())
            self.sessions[addr] = session
        session[0].sendto(data)
        self.sessions[addr] = (session[0], time.monotonic())

    def expire(self) -> None:
        now = time.monotonic()
        for addr, (t, seen) in list(self.sessions.items()):
            if now - seen > UDP_IDLE:
                t.close()
                del self.sessions[addr]

    def close(self) -> None:
        for t, _ in self.sessions.values():
            t.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()


class UserspaceMode:
    name = "userspace"

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.get_event_loop()
        # (proto, address, port) -> (server or relay, balancer)
        self.listeners: dict[tuple[str, str, int], tuple[Any, Balancer]] = {}
        self._conns: set[Any] = set()

    def sync(self, ports: list[ServicePortInfo], cluster_cidr: str, full: bool) -> bool:
        from node.network import plumbing

        plumbing.ensure_addresses(DEVICE, sorted({sp.cluster_ip for sp in ports} |
                                                 {ip for sp in ports for ip in sp.external_ips}))
        fut = asyncio.run_coroutine_threadsafe(self._apply(ports), self.loop)
        return fut.result(60)

    async def _apply(self, ports: list[ServicePortInfo]) -> bool:
        want: dict[tuple[str, str, int], ServicePortInfo] = {}
        for sp in ports:
            if sp.protocol not in ("tcp", "udp"):
                continue
            for address in (sp.cluster_ip, *sp.external_ips):
                want[(sp.protocol, address, sp.port)] = sp
            if sp.node_port:
                want[(sp.protocol, "0.0.0.0", sp.node_port)] = sp
        changed = False
        for key in list(self.listeners):
            if key not in want:
                self._close(self.listeners.pop(key)[0])
                changed = True
        for key, sp in want.items():
            entry = self.listeners.get(key)
            if entry is None:
                balancer = Balancer()
                try:
                    server = await self._listen(key, balancer)
                except OSError as e:
                    log.warning("userspace proxy: cannot listen on %s %s:%d: %s", *key, e)
                    continue
                entry = (server, balancer)
                self.listeners[key] = entry
                changed = True
            if entry[1].endpoints != sp.endpoints:
                changed = True
            entry[1].update(sp.endpoints, sp.affinity_timeout)
        for server, _ in self.listeners.values():
            if isinstance(server, _UDPRelay):
                server.expire()
        return changed

    async def _listen(self, key: tuple[str, str, int], balancer: Balancer) -> Any:
        proto, address, port = key
        loop = asyncio.get_running_loop()
        if proto == "udp":
            relay = _UDPRelay(balancer)
            await loop.create_datagram_endpoint(lambda: relay, local_addr=(address, port),
                                                reuse_port=False)
            return relay

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # asyncio holds a connection's task only weakly: keep it until it is done
            task = asyncio.current_task()
            self._conns.add(task)
            try:
                await relay(reader, writer)
            finally:
                self._conns.discard(task)

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("peername") or ("", 0)
            ep = balancer.pick(peer[0])
            if ep is None:
                writer.transport.abort()  # like a REJECT: no endpoints
                return
            try:
                up_r, up_w = await asyncio.wait_for(asyncio.open_connection(ep.ip, ep.port), 10)
            except (OSError, TimeoutError):
                writer.transport.abort()
                return
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
            for w in (writer, up_w):
                w.close()

        return await asyncio.start_server(handle, address, port, family=socket.AF_INET,
                                          reuse_address=True)

    @staticmethod
    def _close(server: Any) -> None:
        server.close()

    def cleanup(self) -> None:
        from node.network import plumbing

        for server, _ in self.listeners.values():
            self.loop.call_soon_threadsafe(server.close)
        self.listeners.clear()
        plumbing.ensure_addresses(DEVICE, [])
