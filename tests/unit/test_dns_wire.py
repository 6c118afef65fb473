"""The DNS wire format and the packet handler: parsing, compression,
truncation, EDNS0, error codes, forwarding (to a real UDP/TCP upstream on
loopback), the listeners, resolv.conf and the --dns-upstream flag."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from node.dns import client as dnsclient
from node.dns import resolvconf, wire
from node.dns.server import DNSHandler, DNSServer
from node.dns.upstream import Forwarder, parse_servers
from node.dns.wire import (
    AA,
    CNAME,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    QR,
    RA,
    RD,
    REFUSED,
    RR,
    SERVFAIL,
    SOA,
    SRV,
    TC,
    TXT,
    A,
    FormatError,
    Message,
    Question,
    encode_query,
    name_from_text,
    parse_query,
    parse_response,
)
from node.dns.zone import ClusterView, Zone
from tests.unit.test_dns_zone import FakeStore, endpoints, service

# ---- wire -------------------------------------------------------------------------


def test_round_trip_with_compression() -> None:
    web = name_from_text("web.default.svc.cluster.local")
    msg = Message(7, QR | AA, Question(web, A))
    msg.answer += [RR(web, A, 5, "10.96.0.20"),
                   RR(web, CNAME, 5, name_from_text("x.default.svc.cluster.local")),
                   RR(web, SRV, 5, (0, 100, 80, web))]
    msg.authority.append(RR(name_from_text("cluster.local"), SOA, 30,
                            (name_from_text("ns.dns.cluster.local"),
                             name_from_text("hostmaster.cluster.local"), 1, 2, 3, 4, 30)))
    packet = msg.encode()
    r = parse_response(packet)
    assert r.id == 7 and r.flags & AA and r.question == Question(web, A)
    assert [rr.data for rr in r.answer] == ["10.96.0.20", name_from_text(
        "x.default.svc.cluster.local"), (0, 100, 80, web)]
    assert r.authority[0].data[-1] == 30
    # the owner names after the question are 2-byte pointers
    assert len(packet) < 12 + 35 + 3 * (2 + 10) + 4 + 17 + 4 + 6 + 31 + 60


def test_parse_query_rejects_malformed_packets() -> None:
    good = encode_query(1, name_from_text("a.b"), A)
    assert parse_query(good).question.name == ("a", "b")
    for bad, why in [
        (good[:11], "header"),
        (good[:-2], "truncated question"),
        (good[:12] + b"\xc0\x0c\x00\x01\x00\x01", "loop"),  # a pointer to itself
        (good[:4] + b"\x00\x02" + good[6:], "2 questions"),
        (good[:12] + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", "label type"),
        (good[:12] + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01", "255"),
    ]:
        with pytest.raises(FormatError, match=why.split()[-1]):
            parse_query(bad)


def test_edns_size_bounds_the_udp_answer() -> None:
    q = parse_query(encode_query(1, ("a",), A, edns_size=4096))
    assert q.edns_size == 4096 and q.udp_limit() == wire.EDNS_SIZE
    assert parse_query(encode_query(1, ("a",), A, edns_size=100)).udp_limit() == 512
    assert parse_query(encode_query(1, ("a",), A)).udp_limit() == 512


def test_too_big_answer_is_truncated_to_header_and_question() -> None:
    msg = Message(1, QR, Question(("a",), A),
                  answer=[RR(("a",), A, 5, f"10.0.{i // 250}.{i % 250}") for i in range(40)])
    assert len(msg.encode()) > 512
    small = parse_response(msg.encode(512))
    assert small.flags & TC and not small.answer and small.question == Question(("a",), A)


# ---- the handler (no sockets) ---------------------------------------------------------


def headless_view(n: int) -> ClusterView:
    svcs = [service("web", ports=[{"name": "http", "port": 80}]),
            service("big", clusterIP="None")]
    eps = [endpoints("big", "default", {"addresses": [
        {"ip": f"10.244.{i // 200}.{i % 200 + 2}"} for i in range(n)]})]
    return ClusterView(FakeStore(svcs), FakeStore(eps))


def handler(upstreams: list[tuple[str, int]] | None = None, *, synced: bool = True,
            view: ClusterView | None = None) -> DNSHandler:
    return DNSHandler(Zone(), view or headless_view(3), Forwarder(upstreams or []),
                      synced=lambda: synced)


def run(h: DNSHandler, packet: bytes, *, tcp: bool = False) -> Any:
    out = h.answer(packet, tcp=tcp)
    if out is None or isinstance(out, bytes):
        return out
    return asyncio.run(_await(out))


async def _await(x: Awaitable[bytes | None]) -> bytes | None:
    return await x


def q(name: str, qtype: int = A, **kw: Any) -> bytes:
    return encode_query(4242, name_from_text(name), qtype, **kw)


def test_answer_flags_and_id() -> None:
    r = parse_response(run(handler(), q("web.default.svc.cluster.local")))
    assert r.id == 4242 and r.rcode == NOERROR
    assert r.flags & QR and r.flags & AA and r.flags & RD and not r.flags & RA
    assert [rr.data for rr in r.answer] == ["10.96.0.20"]
    nx = parse_response(run(handler(), q("nope.default.svc.cluster.local")))
    assert nx.rcode == NXDOMAIN and nx.authority[0].rtype == SOA


def test_error_codes() -> None:
    h = handler()
    assert run(h, b"\x00\x01") is None                       # not even a header: dropped
    assert parse_response(run(h, b"\x00\x07" + b"\x01\x00" + b"\x00" * 8 + b"\x05ab")).rcode \
        == FORMERR
    response = bytearray(q("web.default.svc.cluster.local"))
    response[2] |= 0x80
    assert run(h, bytes(response)) is None                   # a response is never answered
    notify = bytearray(q("cluster.local", SOA))
    notify[2] |= 4 << 3                                      # opcode NOTIFY
    assert parse_response(run(h, bytes(notify))).rcode == NOTIMP
    chaos = q("version.bind", TXT)[:-2] + struct.pack("!H", 3)
    assert parse_response(run(h, chaos)).rcode == REFUSED
    v1 = bytearray(q("web.default.svc.cluster.local", edns_size=1232))
    v1[-5] = 1                                               # EDNS version 1
    r = parse_response(run(h, bytes(v1)))
    opt = r.additional[-1]
    assert r.rcode == 0 and opt.rtype == wire.OPT and opt.ttl >> 24 == 1  # BADVERS = 16


def test_servfail_in_the_zone_until_the_caches_synced() -> None:
    h = handler(synced=False)
    assert parse_response(run(h, q("web.default.svc.cluster.local"))).rcode == SERVFAIL
    assert parse_response(run(h, q("example.com"))).rcode == REFUSED  # not the zone's


def test_outside_names_are_refused_at_once_without_upstream() -> None:
    t = time.monotonic()
    r = parse_response(run(handler(), q("example.com")))
    assert r.rcode == REFUSED and time.monotonic() - t < 0.1
    assert parse_response(run(handler(), q("9.9.9.9.in-addr.arpa", wire.PTR))).rcode == REFUSED


def test_truncation_over_udp_full_answer_over_tcp() -> None:
    h = handler(view=headless_view(60))
    udp = parse_response(run(h, q("big.default.svc.cluster.local")))
    assert udp.flags & TC and not udp.answer
    edns = parse_response(run(h, q("big.default.svc.cluster.local", edns_size=4096)))
    assert not edns.flags & TC and len(edns.answer) == 60           # 60 x 16 < 1232
    tcp = parse_response(run(h, q("big.default.svc.cluster.local"), tcp=True))
    assert not tcp.flags & TC and len(tcp.answer) == 60
    h = handler(view=headless_view(100))
    assert parse_response(run(h, q("big.default.svc.cluster.local", edns_size=4096))
                          ).flags & TC


# ---- forwarding, against a real upstream on loopback ---------------------------------------


class Upstream:
    """A UDP+TCP DNS server answering `example.com A` and `db.example.com A`."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.udp: Any = None
        self.tcp: Any = None
        self.port = 0

    def reply(self, packet: bytes) -> bytes:
        query = parse_query(packet)
        self.seen.append(query.id)
        name = ".".join(query.question.name).lower()
        ips = {"example.com": "93.184.216.34", "db.example.com": "10.1.2.3"}
        msg = Message(query.id, QR | RA | RD, query.question)
        if name == "big.example.com":  # ignores the client's size
            msg.answer = [RR(query.question.name, A, 60, f"10.9.0.{i}") for i in range(60)]
        elif name in ips:
            msg.answer.append(RR(query.question.name, A, 60, ips[name]))
        else:
            msg.flags |= NXDOMAIN
        return msg.encode()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        me = self

        class P(asyncio.DatagramProtocol):
            def connection_made(self, t: Any) -> None:
                self.t = t

            def datagram_received(self, data: bytes, addr: Any) -> None:
                self.t.sendto(me.reply(data), addr)

        self.udp, _ = await loop.create_datagram_endpoint(P, local_addr=("127.0.0.1", 0))
        self.port = self.udp.get_extra_info("sockname")[1]

        async def conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            size = struct.unpack("!H", await r.readexactly(2))[0]
            out = me.reply(await r.readexactly(size))
            w.write(struct.pack("!H", len(out)) + out)
            await w.drain()
            w.close()

        self.tcp = await asyncio.start_server(conn, "127.0.0.1", self.port)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


@contextlib.asynccontextmanager
async def running_upstream() -> AsyncIterator[Upstream]:
    """(Not an async fixture: those run on the session's loop, the tests on their own.)"""
    u = Upstream()
    await u.start()
    try:
        yield u
    finally:
        u.close()


def _dead_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_forwards_outside_names_under_a_fresh_id() -> None:
    async with running_upstream() as upstream:
        h = handler([("127.0.0.1", upstream.port)])
        for tcp in (False, True):
            out = h.answer(q("Example.COM"), tcp=tcp)
            assert not isinstance(out, bytes) and out is not None
            r = parse_response(await out)  # type: ignore[arg-type]
            assert r.id == 4242 and r.flags & RA and [rr.data for rr in r.answer] == [
                "93.184.216.34"]
            assert upstream.seen[-1] != 4242 or len(upstream.seen) > 2
        nx = parse_response(await h.answer(q("nope.example.com"), tcp=False))  # type: ignore[misc]
        assert nx.rcode == NXDOMAIN


async def test_dead_upstream_is_skipped_then_servfail_in_bounded_time() -> None:
    async with running_upstream() as upstream:
        dead = ("127.0.0.1", _dead_port())
        fwd = Forwarder([dead, ("127.0.0.1", upstream.port)], try_timeout=0.3, total_timeout=1)
        h = DNSHandler(Zone(), headless_view(1), fwd)
        r = parse_response(await h.answer(q("example.com"), tcp=False))  # type: ignore[misc]
        assert r.answer and fwd.servers[0][1] == upstream.port  # the live one first from now on
        only_dead = DNSHandler(Zone(), headless_view(1),
                               Forwarder([("192.0.2.1", 53)], try_timeout=0.3, total_timeout=0.5))
        t = time.monotonic()
        r = parse_response(await only_dead.answer(q("example.com"), tcp=False))  # type: ignore[misc]
        assert r.rcode == SERVFAIL and time.monotonic() - t < 1.0


async def test_external_name_cname_is_chased_upstream() -> None:
    async with running_upstream() as upstream:
        view = ClusterView(FakeStore([service("db", type="ExternalName", clusterIP="",
                                              externalName="db.example.com")]), FakeStore([]))
        h = DNSHandler(Zone(), view, Forwarder([("127.0.0.1", upstream.port)]))
        r = parse_response(await h.answer(q("db.default.svc.cluster.local"), tcp=False))  # type: ignore[misc]
        assert [(rr.rtype, rr.data) for rr in r.answer] == [
            (CNAME, name_from_text("db.example.com")), (A, "10.1.2.3")]
        dead = DNSHandler(Zone(), view, Forwarder([("192.0.2.1", 53)], try_timeout=0.2,
                                                   total_timeout=0.3))
        r = parse_response(await dead.answer(q("db.default.svc.cluster.local"),  # type: ignore[misc]
                                             tcp=False))
        assert r.rcode == NOERROR and [rr.rtype for rr in r.answer] == [CNAME]
        alone = handler(view=view)  # no upstream: the CNAME alone, the client follows it
        r = parse_response(run(alone, q("db.default.svc.cluster.local")))
        assert [rr.rtype for rr in r.answer] == [CNAME]


# ---- listeners ---------------------------------------------------------------------------


async def test_server_answers_udp_and_tcp_and_retries_a_taken_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from node.dns import server as servermod

    monkeypatch.setattr(servermod, "BIND_RETRY", 0.2)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    srv = DNSServer(handler(view=headless_view(60)), "127.0.0.1", port)
    task = asyncio.create_task(srv.serve())
    await asyncio.sleep(0.3)
    assert srv.udp is None and srv.tcp is None  # port taken: not serving, still trying
    taken.close()
    for _ in range(50):
        if srv.udp is not None:
            break
        await asyncio.sleep(0.1)

    def queries() -> tuple[Any, Any]:
        udp = dnsclient.query("127.0.0.1", port, "big.default.svc.cluster.local", A)
        tcp = dnsclient.query("127.0.0.1", port, "big.default.svc.cluster.local", A, tcp=True)
        return udp, tcp

    udp, tcp = await asyncio.to_thread(queries)
    assert udp.flags & TC and len(tcp.answer) == 60
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# ---- resolv.conf and --dns-upstream ----------------------------------------------------------


def test_resolv_conf_parsing_and_systemd_resolved(tmp_path: Path) -> None:
    conf = resolvconf.parse("# c\nnameserver 10.0.0.2\nnameserver 127.0.0.53 ; x\n"
                            "domain a.example\nsearch b.example c.example\noptions ndots:2 "
                            "edns0\noptions rotate\n")
    assert conf.nameservers == ["10.0.0.2", "127.0.0.53"]
    assert conf.searches == ["b.example", "c.example"]
    assert conf.options == ["ndots:2", "edns0", "rotate"]
    assert resolvconf.load(str(tmp_path / "missing")) == resolvconf.ResolvConf()
    stub, real = tmp_path / "stub", tmp_path / "real"
    stub.write_text("nameserver 127.0.0.53\nsearch corp\noptions edns0\n")
    real.write_text("nameserver 10.9.9.9\n")
    monkey = resolvconf.DEFAULT_PATH
    try:
        resolvconf.DEFAULT_PATH = str(stub)
        got = resolvconf.load(str(stub), resolved=str(real))
    finally:
        resolvconf.DEFAULT_PATH = monkey
    assert got.nameservers == ["10.9.9.9"] and got.searches == ["corp"]


def test_upstream_flag() -> None:
    conf = resolvconf.ResolvConf(["127.0.0.53", "::1", "10.0.0.2", "10.96.0.10", "fd00::2"])
    assert parse_servers("", conf, exclude={"10.96.0.10"}) == [("10.0.0.2", 53),
                                                               ("fd00::2", 53)]
    assert parse_servers("none", conf, exclude=set()) == []
    assert parse_servers("1.1.1.1, 127.0.0.1:5353,[fd00::1]:54", conf, exclude=set()) == [
        ("1.1.1.1", 53), ("127.0.0.1", 5353), ("fd00::1", 54)]
    for bad in ("dns.example", "1.1.1.1:0", "1.1.1.1:x"):
        with pytest.raises(SystemExit, match=r"--dns-upstream: invalid server"):
            parse_servers(bad, conf, exclude=set())


def test_glue_is_dropped_before_the_answer_is_truncated() -> None:
    msg = Message(1, QR, Question(("a",), SRV),
                  answer=[RR(("a",), SRV, 5, (0, 10, 80, (f"host-{i}", "b", "c")))
                          for i in range(12)],
                  additional=[RR((f"host-{i}", "b", "c"), A, 5, f"10.0.0.{i}")
                              for i in range(12)])
    assert len(msg.encode()) > 512
    r = parse_response(msg.encode(512))
    assert not r.flags & TC and len(r.answer) == 12 and not r.additional


async def test_oversized_upstream_answer_is_truncated_for_udp() -> None:
    async with running_upstream() as upstream:
        h = handler([("127.0.0.1", upstream.port)])
        udp = parse_response(await h.answer(q("big.example.com"), tcp=False))  # type: ignore[misc]
        assert udp.flags & TC and not udp.answer and udp.id == 4242
        tcp = parse_response(await h.answer(q("big.example.com"), tcp=True))  # type: ignore[misc]
        assert len(tcp.answer) == 60


async def test_forwarded_queries_beyond_the_cap_are_dropped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from node.dns import server as servermod

    monkeypatch.setattr(servermod, "MAX_PENDING", 1)
    h = handler([("192.0.2.1", 53)])
    first = h.answer(q("example.com"), tcp=False)
    assert first is not None and not isinstance(first, bytes)
    assert h.answer(q("example.org"), tcp=False) is None  # dropped: the client retries
    assert isinstance(h.answer(q("web.default.svc.cluster.local"), tcp=False), bytes)
    task = asyncio.ensure_future(first)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert h.pending == 0


async def test_tcp_idle_connections_are_closed_and_capped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from node.dns import server as servermod

    monkeypatch.setattr(servermod, "TCP_IDLE", 0.3)
    monkeypatch.setattr(servermod, "MAX_TCP_CONNECTIONS", 1)
    port = _dead_port()
    srv = DNSServer(handler(), "127.0.0.1", port)
    await srv.start()
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(r2.read(), 1) == b""   # over the cap: closed at once
        packet = q("web.default.svc.cluster.local")
        w1.write(struct.pack("!H", len(packet)) + packet)
        size = struct.unpack("!H", await r1.readexactly(2))[0]
        assert parse_response(await r1.readexactly(size)).answer
        assert await asyncio.wait_for(r1.read(), 2) == b""   # idle: closed after TCP_IDLE
        for w in (w1, w2):
            w.close()
    finally:
        await srv.stop()
