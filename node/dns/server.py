"""The DNS server: UDP and TCP listeners on one address, answering the
cluster zone from the Services/Endpoints caches and relaying the rest.

    packet -> parse (FORMERR if malformed, dropped if it is itself a response)
           -> opcode QUERY? class IN? EDNS version 0?  (NOTIMP, REFUSED, BADVERS)
           -> Zone.resolve -> in the zone: answer (AA), SERVFAIL until the
                              caches have synced (a miss would be cached 30 s)
                           -> outside: Forwarder (SERVFAIL when no upstream
                              answered in time, REFUSED when there is none)
           -> encode; over UDP past the client's size (512, or its EDNS0
              size up to 1232): header + question with TC, the client
              retries over TCP

In-zone answers are computed synchronously in the protocol callback (no
task per query); only forwarded queries become tasks, at most MAX_PENDING
at once (beyond that: SERVFAIL at once rather than a growing backlog).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from node.dns import wire
from node.dns.upstream import Forwarder
from node.dns.wire import (
    AAAA,
    CNAME,
    FORMERR,
    NOTIMP,
    QR,
    RA,
    RD,
    REFUSED,
    SERVFAIL,
    A,
    FormatError,
    Message,
    Query,
)
from node.dns.zone import Answer, ClusterView, Zone

log = logging.getLogger(__name__)

MAX_PENDING = 1024
TCP_IDLE = 10.0
MAX_TCP_CONNECTIONS = 256
BIND_RETRY = 5.0

Reply = bytes | None | Awaitable[bytes | None]


class DNSHandler:
    """Packet in, packet out: everything but the sockets."""

    def __init__(self, zone: Zone, view: ClusterView, forwarder: Forwarder | None = None,
                 *, synced: Callable[[], bool] = lambda: True) -> None:
        self.zone = zone
        self.view = view
        self.forwarder = forwarder or Forwarder([])
        self.synced = synced
        self.pending = 0

    def answer(self, packet: bytes, *, tcp: bool) -> Reply:
        """The reply, or None (drop), or an awaitable of it (forwarded queries)."""
        try:
            query = wire.parse_query(packet)
        except FormatError as e:
            if wire.is_response(packet):
                return None
            log.debug("malformed query: %s", e)
            return wire.error_response(packet, FORMERR)
        if query.flags & QR:
            return None  # a response sent to us: never answer one (no loops)
        limit = 65535 if tcp else query.udp_limit()
        if query.opcode != 0:
            return self._reply(query, NOTIMP).encode(limit)
        if query.edns_version > 0:
            msg = self._reply(query, 0)
            msg.ext_rcode = wire.BADVERS
            return msg.encode(limit)
        if query.question.qclass != wire.IN:
            return self._reply(query, REFUSED).encode(limit)
        if self.zone.contains(query.question.name) and not self.synced():
            return self._reply(query, SERVFAIL).encode(limit)
        ans = self.zone.resolve(query.question, self.view)
        if ans.forward:
            if not self.forwarder:
                return self._reply(query, REFUSED).encode(limit)
            return self._pending(self._forward(packet, query, tcp=tcp, limit=limit))
        if ans.chase is not None and self.forwarder:
            return self._pending(self._chase(query, ans, limit))
        return self._message(query, ans).encode(limit)

    def _reply(self, query: Query, rcode: int) -> Message:
        flags = QR | (query.flags & (RD | 0x7800)) | rcode
        if self.forwarder:
            flags |= RA
        return Message(query.id, flags, query.question, edns=bool(query.edns_size))

    def _message(self, query: Query, ans: Answer) -> Message:
        msg = self._reply(query, ans.rcode)
        msg.flags |= wire.AA
        msg.answer, msg.authority, msg.additional = ans.answer, ans.authority, ans.additional
        return msg

    def _pending(self, work: Awaitable[bytes | None]) -> Awaitable[bytes | None] | bytes | None:
        if self.pending >= MAX_PENDING:
            if asyncio.iscoroutine(work):
                work.close()
            return None  # the client retries; answering would need the query again
        self.pending += 1

        async def run() -> bytes | None:
            try:
                return await work
            finally:
                self.pending -= 1
        return run()

    async def _forward(self, packet: bytes, query: Query, *, tcp: bool,
                       limit: int) -> bytes | None:
        data = await self.forwarder.forward(packet, tcp=tcp)
        if data is None:
            return self._reply(query, SERVFAIL).encode(limit)
        if len(data) > limit:  # an upstream that ignored the size we passed on
            flags = struct.unpack("!H", data[2:4])[0] | wire.TC
            return Message(query.id, flags, query.question,
                           edns=bool(query.edns_size)).encode(limit)
        return data

    async def _chase(self, query: Query, ans: Answer, limit: int) -> bytes | None:
        assert ans.chase is not None
        more = await self.forwarder.resolve(ans.chase, query.question.qtype)
        ans.answer += [rr for rr in more if rr.rtype in (A, AAAA, CNAME)]
        return self._message(query, ans).encode(limit)


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        reply = self.handler.answer(data, tcp=False)
        if isinstance(reply, bytes):
            assert self.transport is not None
            self.transport.sendto(reply, addr)
        elif reply is not None:
            task = asyncio.ensure_future(self._later(reply, addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _later(self, reply: Awaitable[bytes | None], addr: Any) -> None:
        data = await reply
        if data is not None and self.transport is not None:
            self.transport.sendto(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp: %s", exc)


class DNSServer:
    """UDP + TCP on host:port; `start()` raises OSError when it cannot bind."""

    def __init__(self, handler: DNSHandler, host: str, port: int) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.Server | None = None
        self.connections = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.tcp = await asyncio.start_server(self._client, self.host, self.port,
                                              reuse_address=True)
        try:
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _UDP(self.handler), local_addr=(self.host, self.port))
        except OSError:
            self.tcp.close()
            self.tcp = None
            raise

    async def stop(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.tcp is not None:
            self.tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.tcp.wait_closed(), 1)

    async def serve(self) -> None:
        """Bind (retrying while the address is taken or missing), then serve until cancelled."""
        said = ""
        while True:
            try:
                await self.start()
                break
            except OSError as e:
                if str(e) != said:
                    log.error("cluster DNS cannot listen on %s:%d: %s (retrying every %gs)",
                              self.host, self.port, e, BIND_RETRY)
                    said = str(e)
                await asyncio.sleep(BIND_RETRY)
        log.info("cluster DNS listening on %s:%d (udp, tcp)", self.host, self.port)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= MAX_TCP_CONNECTIONS:
            writer.close()
            return
        self.connections += 1
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE):
                    size = struct.unpack("!H", await reader.readexactly(2))[0]
                    packet = await reader.readexactly(size)
                reply = self.handler.answer(packet, tcp=True)
                if reply is not None and not isinstance(reply, bytes):
                    reply = await reply
                if reply is None:
                    continue
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.connections -= 1
            writer.close()
