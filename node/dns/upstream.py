"""Forwarding names outside the cluster zone to the node's own resolvers.

A query is relayed as it came (EDNS options and all) under a fresh random
id from a fresh socket (so an off-path spoofer must guess both), over the
transport the client used; the answer goes back under the client's id. The
upstreams are tried in turn, each for at most TRY_TIMEOUT seconds and all
together for at most TOTAL_TIMEOUT, below a stub resolver's own 5 s, so a
dead upstream costs a pod one retry, not a hang. The last one that answered
is asked first next time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import struct

from node.dns import resolvconf
from node.dns.wire import (
    RR,
    FormatError,
    Name,
    encode_query,
    is_response,
    lower,
    parse_response,
)

log = logging.getLogger(__name__)

TRY_TIMEOUT = 2.0
TOTAL_TIMEOUT = 4.0

Server = tuple[str, int]


def parse_servers(flag: str, conf: resolvconf.ResolvConf, *, exclude: set[str]) -> list[Server]:
    """--dns-upstream: "" (the node's resolv.conf, without loopback stubs or
    our own addresses, which would loop), "none", or `ip[:port],[v6]:port,...`."""
    flag = flag.strip()
    if flag == "none":
        return []
    if not flag:
        return [(ns, 53) for ns in conf.nameservers
                if not resolvconf.is_loopback(ns) and ns not in exclude]
    out = []
    for item in filter(None, (x.strip() for x in flag.split(","))):
        host, port = item, "53"
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":") or "53"
        elif item.count(":") == 1:
            host, port = item.split(":")
        try:
            ipaddress.ip_address(host)
            number = int(port)
            if not 0 < number < 65536:
                raise ValueError(port)
        except ValueError:
            raise SystemExit(f"kubelite-node: --dns-upstream: invalid server {item!r} "
                             "(want ip, ip:port or [ipv6]:port, or `none`)") from None
        out.append((host, number))
    return out


class _OneAnswer(asyncio.DatagramProtocol):
    def __init__(self, qid: int, question: bytes, done: asyncio.Future[bytes]) -> None:
        self.qid = qid
        self.question = question
        self.done = done

    def datagram_received(self, data: bytes, addr: object) -> None:
        if (len(data) >= 12 and struct.unpack("!H", data[:2])[0] == self.qid
                and is_response(data) and _question_bytes(data) == self.question
                and not self.done.done()):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable: next server
        if not self.done.done():
            self.done.set_exception(exc)


def _question_bytes(packet: bytes) -> bytes:
    """The question section, lowercased (resolvers may randomise case, RFC 4343)."""
    try:
        resp = parse_response(packet)
    except FormatError:
        return b""
    q = resp.question
    return repr((lower(q.name), q.qtype, q.qclass)).encode() if q else b""


class Forwarder:
    def __init__(self, servers: list[Server], *, try_timeout: float = TRY_TIMEOUT,
                 total_timeout: float = TOTAL_TIMEOUT) -> None:
        self.servers = list(servers)
        self.try_timeout = try_timeout
        self.total_timeout = total_timeout

    def __bool__(self) -> bool:
        return bool(self.servers)

    async def forward(self, packet: bytes, *, tcp: bool = False) -> bytes | None:
        """The first upstream answer to `packet`, under its id; None when none answered."""
        orig = packet[:2]
        qid = secrets.randbelow(65536)
        ours = struct.pack("!H", qid) + packet[2:]
        question = _question_bytes(packet)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        for server in list(self.servers):
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                async with asyncio.timeout(min(self.try_timeout, left)):
                    if tcp:
                        data = await self._tcp(server, ours, qid, question)
                    else:
                        data = await self._udp(server, ours, qid, question)
            except (TimeoutError, OSError, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s:%d: %s", *server, e or type(e).__name__)
                continue
            if server != self.servers[0]:  # ask the one that works first from now on
                self.servers.remove(server)
                self.servers.insert(0, server)
            return orig + data[2:]
        return None

    async def _udp(self, server: Server, packet: bytes, qid: int, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _OneAnswer(qid, question, done), remote_addr=server)
        try:
            transport.sendto(packet)
            return await done
        finally:
            transport.close()

    async def _tcp(self, server: Server, packet: bytes, qid: int, question: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        try:
            writer.write(struct.pack("!H", len(packet)) + packet)
            await writer.drain()
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                data = await reader.readexactly(size)
                if (struct.unpack("!H", data[:2])[0] == qid and is_response(data)
                        and _question_bytes(data) == question):
                    return data
        finally:
            writer.close()

    async def resolve(self, name: Name, qtype: int) -> list[RR]:
        """Answer records for (name, qtype) (an ExternalName's target); [] on any failure."""
        raw = await self.forward(encode_query(0, name, qtype, edns_size=1232))
        if raw is None:
            return []
        try:
            resp = parse_response(raw)
        except FormatError:
            return []
        return resp.answer if resp.rcode == 0 else []
