"""The DNS wire format (RFC 1035, EDNS0 from RFC 6891), only what a cluster
DNS needs: parse one query, build a response with name compression, and
read the few record types an upstream answer brings back (A, AAAA, CNAME).

A name is a tuple of labels, each a `str` holding the label's bytes as
latin-1, so any byte survives a round trip; comparisons are made on
`lower()` copies (DNS names are case-insensitive, RFC 4343), answers echo
the case the client asked with.

    query = parse_query(packet)                # raises FormatError
    out = Message(query.id, ..., question=query.question)
    out.answer.append(RR(name, A, 5, "10.96.0.1"))
    packet = out.encode(limit=512)             # TC set when it does not fit
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

# Record types and classes.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 255
IN = 1
TYPE_NAMES = {A: "A", NS: "NS", CNAME: "CNAME", SOA: "SOA", PTR: "PTR", MX: "MX", TXT: "TXT",
              AAAA: "AAAA", SRV: "SRV", OPT: "OPT", ANY: "ANY"}

# Response codes (BADVERS is an extended code: its high bits go in the OPT record).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, BADVERS = 0, 1, 2, 3, 4, 5, 16

# Header flag bits.
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080

UDP_LIMIT = 512        # without EDNS0 (RFC 1035 4.2.1)
EDNS_SIZE = 1232       # what we advertise and cap clients at (DNS flag day 2020)
MAX_NAME = 255
MAX_LABEL = 63

Name = tuple[str, ...]


class FormatError(ValueError):
    """The packet is not a well-formed DNS message."""


def name_from_text(text: str) -> Name:
    text = text.rstrip(".")
    return tuple(text.split(".")) if text else ()


def name_to_text(name: Name) -> str:
    return ".".join(name) + "."


def lower(name: Name) -> Name:
    return tuple(map(str.lower, name))


@dataclass(frozen=True)
class Question:
    name: Name
    qtype: int
    qclass: int = IN


@dataclass
class RR:
    """One resource record. `data` by type: an address string (A, AAAA), a
    Name (CNAME, PTR, NS), (priority, weight, port, target) for SRV,
    (mname, rname, serial, refresh, retry, expire, minimum) for SOA, or raw
    bytes for anything else."""

    name: Name
    rtype: int
    ttl: int
    data: Any
    rclass: int = IN


@dataclass
class Query:
    id: int
    flags: int
    question: Question
    edns_size: int = 0      # 0: the client sent no OPT record
    edns_version: int = 0
    dnssec_ok: bool = False

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def recursion_desired(self) -> bool:
        return bool(self.flags & RD)

    def udp_limit(self) -> int:
        """The largest UDP answer this client takes (RFC 6891 6.2.5: never below 512)."""
        if not self.edns_size:
            return UDP_LIMIT
        return max(UDP_LIMIT, min(self.edns_size, EDNS_SIZE))


# ---- reading -----------------------------------------------------------------------


def read_name(buf: bytes, offset: int) -> tuple[Name, int]:
    """The name at `offset` (following compression pointers) and the offset after it."""
    labels: list[str] = []
    end = -1
    length = 0
    jumps = 0
    while True:
        if offset >= len(buf):
            raise FormatError("name runs past the end of the message")
        n = buf[offset]
        if n & 0xC0 == 0xC0:
            if offset + 1 >= len(buf):
                raise FormatError("truncated compression pointer")
            if end < 0:
                end = offset + 2
            jumps += 1
            if jumps > 64:
                raise FormatError("compression pointer loop")
            offset = ((n & 0x3F) << 8) | buf[offset + 1]
            continue
        if n & 0xC0:
            raise FormatError(f"unsupported label type 0x{n:02x}")
        offset += 1
        if n == 0:
            break
        if offset + n > len(buf):
            raise FormatError("label runs past the end of the message")
        labels.append(buf[offset:offset + n].decode("latin-1"))
        length += n + 1
        if length + 1 > MAX_NAME:
            raise FormatError("name longer than 255 octets")
        offset += n
    return tuple(labels), (end if end >= 0 else offset)


def _header(buf: bytes) -> tuple[int, int, int, int, int, int]:
    if len(buf) < 12:
        raise FormatError("shorter than a DNS header")
    return struct.unpack("!6H", buf[:12])


def _skip_rr(buf: bytes, offset: int) -> tuple[int, int, int, int, bytes, Name]:
    """(type, class, ttl, offset after, rdata, owner) of the record at `offset`."""
    owner, offset = read_name(buf, offset)
    if offset + 10 > len(buf):
        raise FormatError("truncated resource record")
    rtype, rclass, ttl, rdlen = struct.unpack("!HHIH", buf[offset:offset + 10])
    offset += 10
    if offset + rdlen > len(buf):
        raise FormatError("record data runs past the end of the message")
    return rtype, rclass, ttl, offset + rdlen, buf[offset:offset + rdlen], owner


def parse_query(buf: bytes) -> Query:
    """One query. FormatError when malformed (the caller answers FORMERR if it
    can read the header, or drops the packet)."""
    qid, flags, qd, an, ns, ar = _header(buf)
    if qd != 1:
        raise FormatError(f"{qd} questions (exactly one is supported)")
    name, offset = read_name(buf, 12)
    if offset + 4 > len(buf):
        raise FormatError("truncated question")
    qtype, qclass = struct.unpack("!HH", buf[offset:offset + 4])
    offset += 4
    query = Query(qid, flags, Question(name, qtype, qclass))
    for i in range(an + ns + ar):
        rtype, rclass, ttl, offset, _, owner = _skip_rr(buf, offset)
        if rtype == OPT and i >= an + ns:
            if owner or query.edns_size:
                raise FormatError("malformed or repeated OPT record")
            query.edns_size = rclass
            query.edns_version = (ttl >> 16) & 0xFF
            query.dnssec_ok = bool(ttl & 0x8000)
    return query


def header_id(buf: bytes) -> int | None:
    return struct.unpack("!H", buf[:2])[0] if len(buf) >= 12 else None


def is_response(buf: bytes) -> bool:
    return len(buf) >= 4 and bool(buf[2] & 0x80)


@dataclass
class Response:
    """A parsed answer (from an upstream, or for a client)."""

    id: int
    flags: int
    question: Question | None
    answer: list[RR]
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


def _read_rr(buf: bytes, offset: int) -> tuple[RR, int]:
    """One record: A, AAAA, CNAME, PTR, NS, SRV and SOA decoded, others raw."""
    rtype, rclass, ttl, end, rdata, owner = _skip_rr(buf, offset)
    start = end - len(rdata)
    data: Any = rdata
    if rtype == A and len(rdata) == 4:
        data = str(ipaddress.IPv4Address(rdata))
    elif rtype == AAAA and len(rdata) == 16:
        data = str(ipaddress.IPv6Address(rdata))
    elif rtype in (CNAME, PTR, NS):
        data = read_name(buf, start)[0]
    elif rtype == SRV and len(rdata) > 6:
        data = (*struct.unpack("!HHH", rdata[:6]), read_name(buf, start + 6)[0])
    elif rtype == SOA:
        mname, at = read_name(buf, start)
        rname, at = read_name(buf, at)
        if at + 20 > end:
            raise FormatError("truncated SOA")
        data = (mname, rname, *struct.unpack("!5I", buf[at:at + 20]))
    return RR(owner, rtype, ttl, data, rclass), end


def parse_response(buf: bytes) -> Response:
    qid, flags, qd, an, ns, ar = _header(buf)
    offset = 12
    question = None
    for _ in range(qd):
        name, offset = read_name(buf, offset)
        if offset + 4 > len(buf):
            raise FormatError("truncated question")
        qtype, qclass = struct.unpack("!HH", buf[offset:offset + 4])
        offset += 4
        question = question or Question(name, qtype, qclass)
    sections: list[list[RR]] = [[], [], []]
    for section, count in zip(sections, (an, ns, ar), strict=True):
        for _ in range(count):
            rr, offset = _read_rr(buf, offset)
            section.append(rr)
    return Response(qid, flags, question, *sections)


# ---- writing -----------------------------------------------------------------------


class _Writer:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.names: dict[Name, int] = {}  # lowercased suffix -> offset
        self.exact: dict[Name, int] = {}  # whole names as given -> offset

    def name(self, name: Name, *, compress: bool = True) -> None:
        if compress and name in self.exact:  # the same owner again (most answers)
            self.buf += struct.pack("!H", 0xC000 | self.exact[name])
            return
        if name and name not in self.exact and len(self.buf) < 0x3FFF:
            self.exact[name] = len(self.buf)
        low = lower(name)
        for i in range(len(name)):
            suffix = low[i:]
            if compress and suffix in self.names:
                self.buf += struct.pack("!H", 0xC000 | self.names[suffix])
                return
            if len(self.buf) < 0x3FFF:
                self.names.setdefault(suffix, len(self.buf))
            raw = name[i].encode("latin-1")
            if not 0 < len(raw) <= MAX_LABEL:
                raise ValueError(f"bad label {name[i]!r} in {name_to_text(name)}")
            self.buf.append(len(raw))
            self.buf += raw
        self.buf.append(0)

    def rr(self, rr: RR) -> None:
        self.name(rr.name)
        self.buf += struct.pack("!HHI", rr.rtype, rr.rclass, rr.ttl)
        at = len(self.buf)
        self.buf += b"\0\0"
        d = rr.data
        if rr.rtype == A:
            self.buf += socket.inet_pton(socket.AF_INET, d)
        elif rr.rtype == AAAA:
            self.buf += socket.inet_pton(socket.AF_INET6, d)
        elif rr.rtype in (CNAME, PTR, NS):
            self.name(d)
        elif rr.rtype == SRV:
            self.buf += struct.pack("!HHH", d[0], d[1], d[2])
            self.name(d[3], compress=False)  # RFC 2782: no compression of the target
        elif rr.rtype == SOA:
            self.name(d[0])
            self.name(d[1])
            self.buf += struct.pack("!5I", *d[2:7])
        else:
            self.buf += bytes(d)
        struct.pack_into("!H", self.buf, at, len(self.buf) - at - 2)


@dataclass
class Message:
    id: int
    flags: int
    question: Question | None
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    edns: bool = False          # append an OPT record (the client sent one)
    ext_rcode: int = 0          # rcode above 15 (BADVERS)

    def encode(self, limit: int = 65535) -> bytes:
        """The message within `limit` octets: without the additional section
        (glue the client can ask for) if that is enough, else only header and
        question with TC set (RFC 2181 9: the client retries over TCP; a
        partial answer would mislead)."""
        packet = self._encode(self.answer, self.authority, self.additional, self.flags)
        if len(packet) <= limit:
            return packet
        if self.additional:
            packet = self._encode(self.answer, self.authority, [], self.flags)
            if len(packet) <= limit:
                return packet
        return self._encode([], [], [], self.flags | TC)

    def _encode(self, answer: list[RR], authority: list[RR], additional: list[RR],
                flags: int) -> bytes:
        w = _Writer()
        rcode = self.ext_rcode & 0xF if self.ext_rcode else flags & 0xF
        flags = (flags & ~0xF) | rcode
        extra = list(additional)
        if self.edns:
            ttl = (self.ext_rcode >> 4) << 24
            extra.append(RR((), OPT, ttl, b"", EDNS_SIZE))
        w.buf += struct.pack("!6H", self.id, flags, 1 if self.question else 0, len(answer),
                             len(authority), len(extra))
        if self.question:
            w.name(self.question.name)
            w.buf += struct.pack("!HH", self.question.qtype, self.question.qclass)
        for rr in (*answer, *authority, *extra):
            w.rr(rr)
        return bytes(w.buf)


def encode_query(qid: int, name: Name, qtype: int, *, rd: bool = True,
                 edns_size: int = 0) -> bytes:
    """A query packet (the forwarder's CNAME chase, tests and the benchmark)."""
    msg = Message(qid, RD if rd else 0, Question(name, qtype))
    if edns_size:
        msg.additional.append(RR((), OPT, 0, b"", edns_size))
    return msg.encode()


def error_response(buf: bytes, rcode: int) -> bytes | None:
    """FORMERR/SERVFAIL/... echoing the header id and, if readable, the question."""
    qid = header_id(buf)
    if qid is None:
        return None
    flags = QR | (struct.unpack("!H", buf[2:4])[0] & (RD | 0x7800)) | rcode
    question = None
    try:
        name, offset = read_name(buf, 12)
        if offset + 4 <= len(buf):
            question = Question(name, *struct.unpack("!HH", buf[offset:offset + 4]))
    except FormatError:
        pass
    return Message(qid, flags, question).encode()
