"""kubelite delete: by name, by -f, by -l or --all; cascade and grace period.

Like kubectl, it waits for the object to be gone (--wait, default true): an
object held by finalizers or a pod terminating on its node stays visible
with a deletionTimestamp until then.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from kubelite.cli import manifests
from kubelite.cli.context import CLIError, Context, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import kinds

_CASCADE = {"background": "Background", "true": "Background", "foreground": "Foreground",
            "orphan": "Orphan", "false": "Orphan"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("delete", help="Delete resources by file names, stdin, names or selector")
    p.add_argument("words", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-f", "--filename", action="append", default=[])
    p.add_argument("-R", "--recursive", action="store_true")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--field-selector", default="")
    p.add_argument("--all", action="store_true", help="delete all of the type in the namespace")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("--cascade", default="background",
                   help="background|foreground|orphan (default background)")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds for graceful termination; 0 with --force deletes at once")
    p.add_argument("--now", action="store_true", help="same as --grace-period=1")
    p.add_argument("--force", action="store_true",
                   help="delete from the API at once, without waiting for the node agent")
    p.add_argument("--ignore-not-found", action="store_true")
    p.add_argument("--wait", default="true", choices=("true", "false"), nargs="?", const="true")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for deletion")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   nargs="?", const="client")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    policy = _CASCADE.get(args.cascade.lower())
    if policy is None:
        raise CLIError(f'invalid cascade value ({args.cascade}). Must be "background", '
                       '"foreground", or "orphan".')
    grace: int | None = None if args.grace_period < 0 else args.grace_period
    if args.now:
        grace = 1
    if args.force:
        if grace is None:
            grace = 0
        ctx.warn("Warning: Immediate deletion does not wait for confirmation that the running "
                 "resource has been terminated. The resource may continue to run on the "
                 "cluster indefinitely.")
    elif grace == 0:
        grace = 1  # kubectl: --grace-period=0 without --force means "as soon as possible"
    targets = _targets(ctx, args)
    failed = False
    pending: list[tuple[kinds.Kind, str, str, str]] = []
    for kind, ns, name in targets:
        if args.dry_run == "client":
            ctx.print(f'{kind.singular}{"." + kind.group if kind.group else ""} "{name}" '
                      "deleted (dry run)")
            continue
        try:
            obj = ctx.client.delete(kind.resource, name, ns, propagation_policy=policy,
                                    grace_period_seconds=grace,
                                    dry_run=args.dry_run == "server")
        except APIStatusError as e:
            if e.not_found and args.ignore_not_found:
                continue
            ctx.warn(f"Error from server ({e.reason}): {e.message}")
            failed = True
            continue
        label = f'{kind.singular}{"." + kind.group if kind.group else ""} "{name}"'
        ctx.print(f"{label} {'force ' if args.force else ''}deleted"
                  + (" (server dry run)" if args.dry_run == "server" else ""))
        if obj.metadata.deletionTimestamp:
            pending.append((kind, ns, name, obj.metadata.uid))
    if args.wait == "true" and pending and args.dry_run == "none":
        failed |= not _wait_gone(ctx, pending, args.timeout)
    return 1 if failed else 0


def _targets(ctx: Context, args: argparse.Namespace) -> list[tuple[kinds.Kind, str, str]]:
    out: list[tuple[kinds.Kind, str, str]] = []
    if args.filename:
        if args.words:
            raise CLIError("cannot specify both resource names and -f")
        try:
            items = manifests.load(args.filename, recursive=args.recursive)
        except (manifests.ManifestError, OSError) as e:
            raise CLIError(str(e)) from None
        for m in items:
            ns = (m.obj.metadata.namespace or ctx.namespace) if m.kind.namespaced else ""
            out.append((m.kind, ns, m.obj.metadata.name))
        return out
    if not args.words:
        raise CLIError("You must provide one or more resources by argument or filename.")
    for kind, names in type_name_args(args.words):
        ns = ctx.namespace if kind.namespaced else ""
        if names:
            if args.all or args.selector:
                raise CLIError("name cannot be provided when a selector or --all is specified")
            out.extend((kind, ns, n) for n in names)
            continue
        if not (args.all or args.selector or args.field_selector):
            raise CLIError("resource(s) were provided, but no name was specified")
        list_ns = "" if args.all_namespaces else ns
        objs, _ = ctx.client.list(kind.resource, list_ns, label_selector=args.selector,
                                  field_selector=args.field_selector)
        out.extend((kind, o.metadata.namespace, o.metadata.name) for o in objs)
    if not out and not args.ignore_not_found:
        ctx.warn("No resources found")
    return out


def _wait_gone(ctx: Context, pending: list[tuple[kinds.Kind, str, str, str]],
               timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    left = list(pending)
    while left:
        still = []
        for kind, ns, name, uid in left:
            try:
                obj = ctx.client.get(kind.resource, name, ns)
                if obj.metadata.uid == uid:
                    still.append((kind, ns, name, uid))
            except APIStatusError as e:
                if not e.not_found:
                    raise
        left = still
        if not left:
            return True
        if time.monotonic() > deadline:
            for kind, _, name, _ in left:
                ctx.warn(f'error: timed out waiting for the condition on {kind.resource}/{name}')
            return False
        time.sleep(0.2)
    return True
