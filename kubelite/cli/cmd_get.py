"""kubelite get: tables like kubectl's, -o wide|yaml|json|name, -l, -A, -w."""

from __future__ import annotations

import argparse
import time
from typing import Any

import grpc

from kubelite.cli import output
from kubelite.cli.context import Context, type_name_args
from kubelite.client import APIStatusError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("get", help="Display one or many resources")
    p.add_argument("words", nargs="*", metavar="TYPE[.GROUP] [NAME] | TYPE/NAME")
    p.add_argument("-o", "--output", default="", help="wide|yaml|json|name")
    p.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    p.add_argument("--field-selector", default="", help="e.g. status.phase=Running")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-w", "--watch", action="store_true", help="watch for changes after listing")
    p.add_argument("--watch-only", action="store_true", help="watch without listing first")
    p.add_argument("--show-labels", action="store_true")
    p.add_argument("--no-headers", action="store_true")
    p.add_argument("--ignore-not-found", action="store_true")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    output.check_format(args.output)
    groups = type_name_args(args.words)
    ns = "" if args.all_namespaces else ctx.namespace
    if args.watch or args.watch_only:
        kind, names = groups[0]
        return _watch(ctx, args, kind, names, ns)
    failed = False
    printed_any = False
    multi = len(groups) > 1
    for kind, names in groups:
        objs: list[Any] = []
        if names:
            for n in names:
                try:
                    objs.append(ctx.client.get(kind.resource, n, "" if not kind.namespaced
                                               else ctx.namespace))
                except APIStatusError as e:
                    if e.not_found and args.ignore_not_found:
                        continue
                    ctx.warn(f"Error from server ({e.reason}): {e.message}")
                    failed = True
        else:
            objs, _ = ctx.client.list(kind.resource, ns if kind.namespaced else "",
                                      label_selector=args.selector,
                                      field_selector=args.field_selector)
        if not objs:
            continue
        text = output.render(ctx, kind, objs, fmt=args.output,
                             with_namespace=args.all_namespaces and kind.namespaced,
                             no_headers=args.no_headers, show_labels=args.show_labels,
                             single=bool(names) and len(names) == 1 and not multi)
        if multi and args.output in ("", "wide"):
            text = _prefix_names(text, kind, args.all_namespaces and kind.namespaced)
        if printed_any and args.output in ("", "wide"):
            ctx.print()
        ctx.out.write(text)
        printed_any = True
    if not printed_any and not failed and not any(n for _, n in groups):
        if args.all_namespaces or not any(k.namespaced for k, _ in groups):
            ctx.warn("No resources found")
        else:
            ctx.warn(f"No resources found in {ctx.namespace} namespace.")
    return 1 if failed else 0


def _prefix_names(text: str, kind: Any, with_ns: bool) -> str:
    """With several types, kubectl prints NAME as `pod/web-1`."""
    lines = text.splitlines()
    if not lines:
        return text
    col = 1 if with_ns else 0
    prefix = f"{kind.singular}{'.' + kind.group if kind.group else ''}/"
    header_cells = lines[0].split()
    out = []
    for i, line in enumerate(lines):
        cells = line.split("   ")
        if i > 0 and len(cells) > col:
            start = sum(len(c) + 3 for c in cells[:col])
            line = line[:start] + prefix + line[start:]
        out.append(line)
    del header_cells
    return "\n".join(out) + "\n"


def _watch(ctx: Context, args: argparse.Namespace, kind: Any, names: list[str], ns: str) -> int:
    name = names[0] if names else ""
    rv = ""
    headers = not args.no_headers
    if not args.watch_only:
        if name:
            objs = [ctx.client.get(kind.resource, name, ns if kind.namespaced else "")]
            rv = objs[0].metadata.resourceVersion
        else:
            objs, rv = ctx.client.list(kind.resource, ns if kind.namespaced else "",
                                       label_selector=args.selector,
                                       field_selector=args.field_selector)
        if objs:
            ctx.out.write(output.render(ctx, kind, objs, fmt=args.output,
                                        with_namespace=args.all_namespaces,
                                        no_headers=not headers, show_labels=args.show_labels))
            headers = False
        ctx.out.flush()
    failures = 0  # UNAVAILABLE in a row: with several masters, resume on the next one
    while True:
        try:
            for _typ, obj, ev_rv in ctx.client.watch(
                    kind.resource, ns if kind.namespaced else "", name=name,
                    label_selector=args.selector, field_selector=args.field_selector,
                    resource_version=rv or "0" if args.watch_only else rv,
                    allow_bookmarks=True):
                rv, failures = ev_rv, 0
                if obj is None:
                    continue
                ctx.out.write(output.render(ctx, kind, [obj], fmt=args.output,
                                            with_namespace=args.all_namespaces,
                                            no_headers=not headers,
                                            show_labels=args.show_labels))
                headers = False
                ctx.out.flush()
            return 0
        except APIStatusError as e:
            if e.reason == "Expired":  # fell behind compaction: relist, like kubectl
                rv = ""
                continue
            failures += 1
            if e.code == grpc.StatusCode.UNAVAILABLE and rv and \
                    failures < 2 * len(ctx.client.servers) and len(ctx.client.servers) > 1:
                time.sleep(0.5)
                continue
            raise
