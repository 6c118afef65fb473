"""Resource quantities: "100m", "1.5", "128Mi", "1G", "1e3".

A quantity is a decimal number with an optional suffix: binary (Ki Mi Gi Ti
Pi Ei, powers of 1024), decimal SI (n u m "" k M G T P E, powers of 1000) or
a decimal exponent (e3, E-2). Values are kept as Decimal so "0.1" cpu plus
"0.2" cpu is exactly 300m, and compared in base units (cores, bytes).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_PATTERN = re.compile(_REGEX)
_MESSAGE = f"quantities must match the regular expression '{_REGEX}'"

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def canonical_input(value: int | float | str) -> str:
    """The text form of a manifest scalar (`cpu: 1` and `cpu: 0.5` are numbers in YAML)."""
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    return str(value)


def parse(text: str) -> Decimal:
    """The value in base units; ValueError with Kubernetes' message when malformed."""
    m = _PATTERN.match(text.strip()) if text else None
    if not m:
        raise ValueError(_MESSAGE)
    number, suffix = m.groups()
    try:
        value = Decimal(number)
    except InvalidOperation:
        raise ValueError(_MESSAGE) from None
    if suffix in _BINARY:
        return value * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return value.scaleb(_DECIMAL[suffix])
    exp = re.fullmatch(r"[eE]([-+]?[0-9]+)", suffix)
    if exp:
        return value.scaleb(int(exp.group(1)))
    raise ValueError(_MESSAGE)


def milli(text: str) -> int:
    """Millis of the value, rounded up like Kubernetes' MilliValue (cpu "1.5" -> 1500)."""
    v = parse(text) * 1000
    return int(v.to_integral_value(rounding="ROUND_CEILING"))


def value(text: str) -> int:
    """Whole base units, rounded up (memory "1.5Ki" -> 1536)."""
    return int(parse(text).to_integral_value(rounding="ROUND_CEILING"))


def format_bytes(n: int) -> str:
    """Largest exact binary suffix: 134217728 -> "128Mi"."""
    for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        unit = 1024**power
        if n and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def format_milli(m: int) -> str:
    """cpu millis as Kubernetes prints them: 1500 -> "1500m", 2000 -> "2"."""
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"
