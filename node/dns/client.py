"""A minimal blocking DNS client: one question to one server, over UDP or TCP.
For tests, the benchmark and debugging (`python -m node.dns.client NAME [TYPE]
[SERVER[:PORT]]`); pods use their libc resolver."""

from __future__ import annotations

import secrets
import socket
import struct
import sys

from node.dns.wire import TYPE_NAMES, Response, encode_query, name_from_text, parse_response


def query(server: str, port: int, name: str, qtype: int, *, tcp: bool = False,
          timeout: float = 2.0, edns_size: int = 0) -> Response:
    """The parsed answer; raises TimeoutError / OSError when none comes."""
    qid = secrets.randbelow(65536)
    packet = encode_query(qid, name_from_text(name), qtype, edns_size=edns_size)
    return parse_response(exchange(server, port, packet, tcp=tcp, timeout=timeout))


def exchange(server: str, port: int, packet: bytes, *, tcp: bool = False,
             timeout: float = 2.0) -> bytes:
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    if tcp:
        with socket.create_connection((server, port), timeout) as s:
            s.sendall(struct.pack("!H", len(packet)) + packet)
            size = struct.unpack("!H", _recv_exact(s, 2))[0]
            return _recv_exact(s, size)
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect((server, port))
        s.send(packet)
        while True:
            data = s.recv(65535)
            if data[:2] == packet[:2]:
                return data


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-message")
        buf += chunk
    return buf


def main(argv: list[str]) -> None:
    types = {v: k for k, v in TYPE_NAMES.items()}
    name = argv[0]
    qtype = types[argv[1].upper()] if len(argv) > 1 else 1
    host, _, port = (argv[2] if len(argv) > 2 else "127.0.0.1:53").rpartition(":")
    r = query(host, int(port), name, qtype)
    print(f"rcode {r.rcode} flags 0x{r.flags:04x}")
    for rr in r.answer:
        print(".".join(rr.name) + ".", rr.ttl, TYPE_NAMES.get(rr.rtype, rr.rtype), rr.data)


if __name__ == "__main__":
    main(sys.argv[1:])
