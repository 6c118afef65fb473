"""Pod addresses from the node's pod CIDR, kept on disk (CNI host-local style).

One file per address in use, `<dir>/<ip>`, holding its owner (the pod
sandbox's container id). A file is created with O_EXCL, so an address is
never handed out twice, even by two agents racing on the same directory;
the files survive an agent restart. Addresses are handed out round-robin
from the one after the last reserved (`last_reserved_ip`), so an address
just released is not reused at once (a client still talking to the old pod
should not reach the new one).

The network address, the gateway (the first host address, on cni0) and the
broadcast address are never handed out.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

LAST = "last_reserved_ip"


class IPAMError(Exception):
    pass


class IPAM:
    def __init__(self, directory: Path, cidr: str) -> None:
        self.net = ipaddress.ip_network(cidr, strict=True)
        if self.net.version != 4 or self.net.prefixlen > 30:
            raise IPAMError(f"pod CIDR {cidr}: need an IPv4 range of /30 or larger")
        self.gateway = self.net.network_address + 1
        # One directory per range: a node handed another CIDR starts afresh.
        self.dir = directory / str(self.net).replace("/", "-")
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def prefixlen(self) -> int:
        return self.net.prefixlen

    def _hosts(self) -> list[ipaddress.IPv4Address]:
        first = int(self.net.network_address) + 2
        last = int(self.net.broadcast_address) - 1
        return [ipaddress.IPv4Address(i) for i in range(first, last + 1)]

    def allocate(self, owner: str) -> str:
        """An address for `owner`; the same one again if it already has one."""
        mine = self.lookup(owner)
        if mine:
            return mine
        hosts = self._hosts()
        start = 0
        with contextlib.suppress(OSError, ValueError):
            last = ipaddress.IPv4Address((self.dir / LAST).read_text().strip())
            if last in self.net:
                start = (int(last) - int(hosts[0]) + 1) % len(hosts)
        for i in range(len(hosts)):
            ip = str(hosts[(start + i) % len(hosts)])
            try:
                fd = os.open(self.dir / ip, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(owner)
            tmp = self.dir / f".{LAST}.{os.getpid()}"
            tmp.write_text(ip)
            tmp.replace(self.dir / LAST)
            return ip
        raise IPAMError(f"no free address left in {self.net} "
                        f"({len(hosts)} addresses, all in use)")

    def entries(self) -> dict[str, str]:
        """address -> owner, for every address in use."""
        out = {}
        for p in self.dir.iterdir():
            if p.name.startswith(".") or p.name == LAST:
                continue
            with contextlib.suppress(OSError):
                out[p.name] = p.read_text().strip()
        return out

    def lookup(self, owner: str) -> str:
        return next((ip for ip, o in self.entries().items() if o == owner), "")

    def release(self, owner: str) -> list[str]:
        gone = [ip for ip, o in self.entries().items() if o == owner]
        for ip in gone:
            with contextlib.suppress(FileNotFoundError):
                (self.dir / ip).unlink()
        return gone

    def release_all_but(self, owners: Iterable[str]) -> list[str]:
        """Release every address whose owner is not in `owners` (after a restart)."""
        keep = set(owners)
        gone = []
        for ip, o in self.entries().items():
            if o not in keep:
                with contextlib.suppress(FileNotFoundError):
                    (self.dir / ip).unlink()
                gone.append(ip)
        return gone
