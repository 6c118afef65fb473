"""kubelite label / annotate: set (k=v), remove (k-), --overwrite, -l, --all."""

from __future__ import annotations

import argparse
from typing import Any

from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import names


def add_parsers(sub: Any) -> None:
    for verb in ("label", "annotate"):
        p = sub.add_parser(verb, help=f"Update the {verb}s on a resource")
        p.add_argument("words", nargs="+", metavar="TYPE NAME KEY=VAL ... KEY-")
        p.add_argument("--overwrite", action="store_true")
        p.add_argument("-l", "--selector", default="")
        p.add_argument("--all", action="store_true")
        p.add_argument("--resource-version", default="")
        p.set_defaults(func=run, verb=verb)


def _split(words: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    targets, sets, removes = [], {}, []
    for w in words:
        if "=" in w:
            k, _, v = w.partition("=")
            sets[k] = v
        elif w.endswith("-") and len(w) > 1 and targets:
            removes.append(w[:-1])
        else:
            if sets or removes:
                raise CLIError(f"all resources must be specified before changes: {w}")
            targets.append(w)
    return targets, sets, removes


def run(ctx: Context, args: argparse.Namespace) -> int:
    field = "labels" if args.verb == "label" else "annotations"
    targets, sets, removes = _split(args.words)
    if not sets and not removes:
        raise CLIError(f"at least one {args.verb[:5] if args.verb == 'label' else 'annotation'} "
                       "update is required")
    for k, v in sets.items():
        errs = names.qualified_name(k)
        if args.verb == "label":
            errs += names.label_value(v)
        if errs:
            raise CLIError(f'invalid {args.verb} spec: {k}={v}: ' + "; ".join(errs))
    failed = False
    for kind, objnames in type_name_args(targets):
        ns = ctx.namespace if kind.namespaced else ""
        if not objnames:
            if not (args.all or args.selector):
                raise CLIError("resource(s) were provided, but no name was specified")
            objs, _ = ctx.client.list(kind.resource, ns, label_selector=args.selector)
            objnames = [o.metadata.name for o in objs]
        for n in objnames:
            try:
                obj = ctx.client.get(kind.resource, n, ns)
                current = dict(getattr(obj.metadata, field))
                if not args.overwrite:
                    for k, v in sets.items():
                        if k in current and current[k] != v:
                            raise CLIError(f"'{k}' already has a value ({current[k]}), and "
                                           "--overwrite is false")
                patch: dict[str, Any] = {k: v for k, v in sets.items()}
                patch.update({k: None for k in removes})
                md: dict[str, Any] = {field: patch}
                if args.resource_version:
                    md["resourceVersion"] = args.resource_version
                new = ctx.client.patch(kind.resource, n, {"metadata": md}, ns)
                changed = new.metadata.resourceVersion != obj.metadata.resourceVersion
                verb = "labeled" if args.verb == "label" else "annotated"
                ctx.print(f"{ref(kind, n)} {verb if changed else 'not ' + verb}")
            except APIStatusError as e:
                ctx.warn(f"Error from server ({e.reason}): {e.message}")
                failed = True
    return 1 if failed else 0
