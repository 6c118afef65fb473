"""The Service IP and NodePort ranges: which values exist, which to offer.

Pure arithmetic; where the taken values live (one etcd record per value,
written in the Service's own transaction) is master/apiserver/services.py.

Both ranges keep Kubernetes' split between a low band, preferred by static
(requested) values, and the rest, used first by dynamic allocation, so a
value someone writes into a manifest (kube-dns' 10.96.0.10, a NodePort
30080) is rarely already taken by a random pick. The low band's size is
Kubernetes' formula, worked for the defaults:

- IPs, 10.96.0.0/12: 2^20 addresses less the network and broadcast ones is
  1,048,574 usable; size/16 = 65,535, clamped to [16, 256] -> 256, so
  10.96.0.1 .. 10.96.1.0 is the static band and random picks come from
  10.96.1.1 .. 10.111.255.254 until that is full.
- ports, 30000-32767: 2,768 ports; size/32 = 86 (within [16, 128]), so
  30000 .. 30085 is the static band and random picks start at 30086.
A range smaller than the band's minimum (16) has no static band at all.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass


class RangeFull(Exception):
    pass


def _band(size: int, step: int, lo: int, hi: int) -> int:
    if size < lo:
        return 0
    return max(lo, min(hi, size // step))


def _pick(size: int, band: int, taken: set[int], rng: random.Random) -> int:
    """A free offset: random in [band, size) if any is free there, else in [0, band)."""
    for start, end in ((band, size), (0, band)):
        free_count = (end - start) - sum(1 for t in taken if start <= t < end)
        if free_count <= 0:
            continue
        if free_count > (end - start) // 2:  # mostly free: random probes find one fast
            while True:
                candidate = rng.randrange(start, end)
                if candidate not in taken:
                    return candidate
        # mostly taken: choose among the free ones exactly
        free = [o for o in range(start, end) if o not in taken]
        return rng.choice(free)
    raise RangeFull


@dataclass(frozen=True)
class IPRange:
    """The Service CIDR (--service-cluster-ip-range), IPv4 or IPv6."""

    cidr: str

    @classmethod
    def parse(cls, text: str) -> IPRange:
        """The range, or ValueError saying why it is not one."""
        try:
            net = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as e:
            raise ValueError(f"invalid CIDR {text!r}: {e}") from None
        if net.num_addresses < 4 if net.version == 4 else net.num_addresses < 2:
            raise ValueError(f"{text} is too small for a service range (/30 at most)")
        if net.version == 6 and net.prefixlen < 108:
            raise ValueError(f"{text} is too large for a service range (IPv6: /108 at least)")
        return cls(str(net))

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def base(self) -> int:
        """The integer value of offset 0: the address after the network address."""
        return int(self.network.network_address) + 1

    @property
    def size(self) -> int:
        """Usable addresses: without the network address (and IPv4's broadcast)."""
        n = self.network.num_addresses
        return n - 2 if self.network.version == 4 else n - 1

    @property
    def band(self) -> int:
        return _band(self.size, 16, 16, 256)

    def first(self) -> str:
        """The first usable address: the `kubernetes` Service's."""
        return self.address(0)

    def address(self, offset: int) -> str:
        return str(ipaddress.ip_address(self.base + offset))

    def offset(self, ip: str) -> int | None:
        """The offset of ip in the range, None when it is outside (or not usable)."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if addr.version != self.network.version:
            return None
        off = int(addr) - self.base
        return off if 0 <= off < self.size else None

    def contains(self, ip: str) -> bool:
        return self.offset(ip) is not None

    def pick(self, taken: Iterable[str], rng: random.Random | None = None) -> str:
        """A free address (RangeFull when none is)."""
        offsets = {o for o in (self.offset(ip) for ip in taken) if o is not None}
        return self.address(_pick(self.size, self.band, offsets, rng or random.Random()))


@dataclass(frozen=True)
class PortRange:
    """The NodePort range (--service-node-port-range), inclusive at both ends."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> PortRange:
        """`30000-32767` (or one port); ValueError saying why it is not a range."""
        lo, sep, hi = text.strip().partition("-")
        try:
            low = int(lo)
            high = int(hi) if sep else low
        except ValueError:
            raise ValueError(f"invalid port range {text!r}: want LOW-HIGH") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"invalid port range {text!r}: want 1 <= LOW <= HIGH <= 65535")
        return cls(low, high)

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    @property
    def band(self) -> int:
        return _band(self.size, 32, 16, 128)

    def contains(self, port: int) -> bool:
        return self.low <= port <= self.high

    def pick(self, taken: Iterable[int], rng: random.Random | None = None) -> int:
        offsets = {p - self.low for p in taken if self.contains(p)}
        return self.low + _pick(self.size, self.band, offsets, rng or random.Random())
