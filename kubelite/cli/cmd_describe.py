"""kubelite describe: one object in prose, with its events."""

from __future__ import annotations

import argparse
from datetime import datetime, UTC
from typing import Any

from kubelite.cli import describe as describer
from kubelite.cli.context import Context, as_dict, type_name_args
from kubelite.client import APIStatusError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("describe", help="Show details of a specific resource or group")
    p.add_argument("words", nargs="+", metavar="TYPE [NAME] | TYPE/NAME")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--show-events", default="true", choices=("true", "false"))
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    failed = False
    first = True
    for kind, names in type_name_args(args.words):
        ns = ctx.namespace if kind.namespaced else ""
        objs: list[Any] = []
        if names:
            for n in names:
                try:
                    objs.append(ctx.client.get(kind.resource, n, ns))
                except APIStatusError as e:
                    ctx.warn(f"Error from server ({e.reason}): {e.message}")
                    failed = True
        else:
            objs, _ = ctx.client.list(kind.resource, "" if args.all_namespaces else ns,
                                      label_selector=args.selector)
        for obj in objs:
            events: list[dict[str, Any]] = []
            if args.show_events == "true":
                sel = f"involvedObject.name={obj.metadata.name},involvedObject.kind={kind.kind}"
                evs, _ = ctx.client.list("events", obj.metadata.namespace or "default",
                                         field_selector=sel)
                events = [as_dict(e) for e in evs if not e.involvedObject.uid
                          or e.involvedObject.uid == obj.metadata.uid]
            if not first:
                ctx.print()
                ctx.print()
            first = False
            extra: dict[str, Any] = {}
            if kind.kind == "Service":
                extra["endpoints"] = _endpoints(ctx, obj)
            ctx.out.write(describer.describe(kind.kind, as_dict(obj), events,
                                             now=datetime.now(UTC), **extra))
    return 1 if failed else 0


def _endpoints(ctx: Context, svc: Any) -> dict[str, Any] | None:
    """The Service's Endpoints (kubectl shows `<none>` when there are none)."""
    try:
        return as_dict(ctx.client.get("endpoints", svc.metadata.name, svc.metadata.namespace))
    except APIStatusError as e:
        if e.not_found:
            return None
        raise
