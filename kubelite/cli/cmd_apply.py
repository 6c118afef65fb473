"""kubelite apply / create / replace -f: the declarative and imperative writes.

apply is a client-side three-way merge, as kubectl's: the manifest last
applied is kept in the kubectl.kubernetes.io/last-applied-configuration
annotation; fields that vanished from the manifest since then are removed,
fields in the manifest are set, and fields others added (defaults,
controllers) are left alone. Running it twice reports `unchanged`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kubelite.cli import manifests
from kubelite.cli.context import CLIError, Context, ref
from kubelite.client import APIStatusError
from kubelite.objects import convert

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def add_parsers(sub: Any) -> None:
    for verb, help_ in (("apply", "Apply a configuration to a resource by file name or stdin"),
                        ("create", "Create a resource from a file or from stdin"),
                        ("replace", "Replace a resource by file name or stdin")):
        p = sub.add_parser(verb, help=help_)
        p.add_argument("-f", "--filename", action="append", default=[],
                       help="file, directory or - for stdin (repeatable)")
        p.add_argument("-R", "--recursive", action="store_true")
        p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                       nargs="?", const="client")
        p.add_argument("-o", "--output", default="", help="name|yaml|json")
        if verb == "create":
            p.add_argument("words", nargs="*", metavar="namespace NAME",
                           help="`create namespace NAME` or `create job NAME "
                                "--from=cronjob/CJ` without -f")
            p.add_argument("--from", dest="from_", default="",
                           help="create job NAME --from=cronjob/CJ: a Job from a CronJob")
        p.set_defaults(func=run, verb=verb)


def _namespaced(ctx: Context, m: manifests.Manifest) -> None:
    """Fill the namespace from -n/the config, refuse a conflicting one (as kubectl)."""
    md = m.obj.metadata
    if not m.kind.namespaced:
        md.namespace = ""
        return
    if ctx.args.namespace and md.namespace and md.namespace != ctx.args.namespace:
        raise CLIError(f"the namespace from the provided object \"{md.namespace}\" does not "
                       f"match the namespace \"{ctx.args.namespace}\". You must pass "
                       "'--namespace=" + md.namespace + "' to perform this operation.")
    if not md.namespace:
        md.namespace = ctx.namespace
        m.raw.setdefault("metadata", {})["namespace"] = md.namespace


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.verb == "create" and not args.filename:
        return _create_simple(ctx, args)
    try:
        items = manifests.load(args.filename, recursive=args.recursive)
    except (manifests.ManifestError, OSError) as e:
        raise CLIError(str(e)) from None
    failed = False
    for m in items:
        _namespaced(ctx, m)
        try:
            verb = {"apply": _apply, "create": _create, "replace": _replace}[args.verb]
            result, what = verb(ctx, m, args.dry_run == "server")
        except APIStatusError as e:
            ctx.warn(_server_error(e, args.verb, m.source))
            failed = True
            continue
        suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
        if args.output == "name":
            ctx.print(ref(m.kind, result.metadata.name))
        elif args.output in ("yaml", "json"):
            from kubelite.cli.output import to_yaml

            d = convert.to_dict(result)
            ctx.out.write(to_yaml(d) if args.output == "yaml" else json.dumps(d, indent=4) + "\n")
        else:
            ctx.print(f"{ref(m.kind, result.metadata.name)} {what}{suffix}")
    return 1 if failed else 0


def _server_error(e: APIStatusError, verb: str, source: str) -> str:
    action = {"apply": "applying patch", "create": "creating", "replace": "replacing"}[verb]
    if e.reason == "Invalid":
        return f"The {_short_kind(e.message)}"
    return f'Error from server ({e.reason}): error when {action} "{source}": {e.message}'


def _short_kind(message: str) -> str:
    """`Deployment.apps "x" is invalid` -> `Deployment "x" is invalid`, as kubectl prints."""
    head, sep, rest = message.partition(" ")
    return head.split(".")[0] + sep + rest


def _create(ctx: Context, m: manifests.Manifest, dry_run: bool) -> tuple[Any, str]:
    if ctx.args.dry_run == "client":
        return m.obj, "created"
    return ctx.client.create(m.obj, dry_run=dry_run), "created"


def _replace(ctx: Context, m: manifests.Manifest, dry_run: bool) -> tuple[Any, str]:
    if ctx.args.dry_run == "client":
        return m.obj, "replaced"
    return ctx.client.update(m.obj, dry_run=dry_run), "replaced"


def _apply(ctx: Context, m: manifests.Manifest, dry_run: bool) -> tuple[Any, str]:
    md = m.obj.metadata
    if not md.name:
        raise CLIError(f'error when retrieving current configuration of "{m.source}": '
                       "resource name may not be empty")
    manifest = _strip_last_applied(m.raw)
    annotation = json.dumps(manifest, separators=(",", ":"), sort_keys=True)
    try:
        live = ctx.client.get(m.kind.resource, md.name, md.namespace)
    except APIStatusError as e:
        if not e.not_found:
            raise
        md.annotations[LAST_APPLIED] = annotation
        if ctx.args.dry_run == "client":
            return m.obj, "created"
        return ctx.client.create(m.obj, dry_run=dry_run), "created"
    live_d = convert.to_dict(live)
    last: dict[str, Any] = {}
    text = live.metadata.annotations.get(LAST_APPLIED, "")
    if text:
        try:
            last = json.loads(text)
        except json.JSONDecodeError:
            last = {}
    desired = json.loads(json.dumps(manifest))
    desired.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = annotation
    patch = three_way_patch(last, desired, live_d)
    if not patch:
        return live, "unchanged"
    if ctx.args.dry_run == "client":
        return live, "configured"
    result = ctx.client.patch(m.kind.resource, md.name, patch, md.namespace)
    if result.metadata.resourceVersion == live.metadata.resourceVersion:
        return result, "unchanged"
    return result, "configured"


def _strip_last_applied(raw: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(raw))
    ann = data.get("metadata", {}).get("annotations")
    if isinstance(ann, dict):
        ann.pop(LAST_APPLIED, None)
        if not ann:
            data["metadata"].pop("annotations")
    return data


def three_way_patch(last: Any, desired: Any, live: Any) -> dict[str, Any]:
    """A JSON merge patch taking `live` to `desired`, deleting what `last` had and
    `desired` dropped, and keeping fields neither manifest mentions."""
    patch: dict[str, Any] = {}
    last = last if isinstance(last, dict) else {}
    live = live if isinstance(live, dict) else {}
    for key, want in desired.items():
        have = live.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            sub = three_way_patch(last.get(key), want, have)
            if sub:
                patch[key] = sub
        elif want != have:
            patch[key] = want
    for key in last:
        if key not in desired and key in live:
            patch[key] = None
    return patch


def _create_simple(ctx: Context, args: argparse.Namespace) -> int:
    """`kubelite create namespace NAME` (kubectl's generator for the common case)."""
    words = args.words
    if len(words) == 2 and words[0] in ("namespace", "ns"):
        m = manifests.decode({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": words[1]}}, "command line")
        try:
            obj = ctx.client.create(m.obj, dry_run=args.dry_run == "server")
        except APIStatusError as e:
            ctx.warn(f"Error from server ({e.reason}): {e.message}")
            return 1
        ctx.print(f"namespace/{obj.metadata.name} created")
        return 0
    if len(words) == 2 and words[0] in ("job", "jobs"):
        return _job_from_cronjob(ctx, args, words[1])
    raise CLIError("must specify one of -f and -k (or `create namespace NAME`)")


def _job_from_cronjob(ctx: Context, args: argparse.Namespace, name: str) -> int:
    """`create job NAME --from=cronjob/CJ`: run a CronJob's job template now, as kubectl does."""
    kind, _, source = args.from_.partition("/")
    if not args.from_:
        raise CLIError("a Job needs an image or --from=cronjob/NAME; only --from is supported")
    if kind not in ("cronjob", "cronjobs", "cj", "cronjob.batch") or not source:
        raise CLIError(f"from must be an existing cronjob: {args.from_}")
    from kubelite.api import batch_pb2

    try:
        cj = ctx.client.get("cronjobs", source, ctx.namespace)
    except APIStatusError as e:
        ctx.warn(f"Error from server ({e.reason}): {e.message}")
        return 1
    job = batch_pb2.Job(apiVersion="batch/v1", kind="Job")
    md = job.metadata
    md.name, md.namespace = name, cj.metadata.namespace
    md.labels.update(cj.spec.jobTemplate.metadata.labels)
    md.annotations.update(cj.spec.jobTemplate.metadata.annotations)
    md.annotations["cronjob.kubernetes.io/instantiate"] = "manual"
    ref = md.ownerReferences.add()
    ref.CopyFrom(convert.from_dict({"apiVersion": "batch/v1", "kind": "CronJob",
                                    "name": cj.metadata.name, "uid": cj.metadata.uid,
                                    "controller": True}, type(ref)))
    job.spec.CopyFrom(cj.spec.jobTemplate.spec)
    try:
        obj = ctx.client.create(job, dry_run=args.dry_run == "server")
    except APIStatusError as e:
        ctx.warn(f"Error from server ({e.reason}): {e.message}")
        return 1
    ctx.print(f"job.batch/{obj.metadata.name} created")
    return 0
