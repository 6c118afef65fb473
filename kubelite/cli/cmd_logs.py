"""kubelite logs: a container's output, proxied by the master from its node.

    kubelite logs POD [CONTAINER] [-c C] [-f] [-p] [--tail N] [--timestamps]
                  [--since 5m] [--limit-bytes N]
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from kubelite.cli.context import CLIError, Context

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([a-zµμ]*)")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("logs", help="Print the logs for a container in a pod")
    p.add_argument("pod", metavar="POD", help="the pod (NAME or pod/NAME)")
    p.add_argument("container_arg", nargs="?", default="", metavar="CONTAINER")
    p.add_argument("-c", "--container", default="")
    p.add_argument("-f", "--follow", action="store_true",
                   help="stream the logs as they are written")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous instance of the container, if it restarted")
    p.add_argument("--tail", type=int, default=-1,
                   help="lines of recent log to show (default -1: all)")
    p.add_argument("--timestamps", action="store_true")
    p.add_argument("--since", default="", help="only logs newer than a duration, e.g. 5s, 2m")
    p.add_argument("--limit-bytes", type=int, default=0)
    p.set_defaults(func=run)


def parse_duration(text: str, flag: str = "--since") -> float:
    """Go's time.ParseDuration (what kubectl's duration flags take), in seconds."""
    def bad(detail: str) -> CLIError:
        return CLIError(f'invalid argument "{text}" for "{flag}" flag: time: {detail}')

    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise bad(f'invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m:
            raise bad(f'invalid duration "{text}"')
        number, unit = m.groups()
        if not unit:
            raise bad(f'missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise bad(f'unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _UNITS[unit]
        pos = m.end()
    return sign * total


def pod_name(word: str) -> str:
    """NAME, pod/NAME or pods/NAME."""
    kind, sep, name = word.partition("/")
    if not sep:
        return word
    if kind not in ("pod", "pods", "po") or not name:
        raise CLIError(f"cannot use {word}: only pods are supported (pod/NAME)")
    return name


def run(ctx: Context, args: argparse.Namespace) -> int:
    name = pod_name(args.pod)
    if args.container and args.container_arg and args.container != args.container_arg:
        raise CLIError("only one of -c or an inline [CONTAINER] arg is allowed")
    container = args.container or args.container_arg
    since = None
    if args.since:
        seconds = parse_duration(args.since)
        if seconds <= 0:
            raise CLIError("--since must be greater than 0")
        since = max(1, round(seconds))
    if args.limit_bytes < 0:
        raise CLIError("--limit-bytes must be greater than 0")
    out = ctx.out.buffer if hasattr(ctx.out, "buffer") else None
    for data in ctx.client.logs(
            ctx.namespace, name, container, follow=args.follow, previous=args.previous,
            tail_lines=args.tail if args.tail >= 0 else None, timestamps=args.timestamps,
            since_seconds=since, limit_bytes=args.limit_bytes or None):
        if out is not None:
            out.write(data)
            out.flush()
        else:
            ctx.out.write(data.decode(errors="replace"))
            ctx.out.flush()
    return 0
