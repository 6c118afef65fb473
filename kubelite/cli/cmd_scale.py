"""kubelite scale: set spec.replicas of Deployments, ReplicaSets, ReplicationControllers
and StatefulSets, as `kubectl scale`.

    kubelite scale deploy/web --replicas=5 [--current-replicas=3] [--resource-version=RV]
    kubelite scale rs a b --replicas=0;  kubelite scale deploy -l app=web --replicas=2

Each object is read, checked against the preconditions and written back with
the resourceVersion it was read at (a compare-and-swap): a concurrent change
makes the write fail and the whole read-check-write is done again, so a
precondition never passes on a stale read.
"""

from __future__ import annotations

import argparse
from typing import Any

from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import kinds

SCALABLE = ("deployments", "replicasets", "replicationcontrollers", "statefulsets")
_CAS_RETRIES = 10


def add_parser(sub: Any) -> None:
    p = sub.add_parser("scale", help="Set a new size for a deployment, replica set, "
                                     "replication controller, or stateful set")
    p.add_argument("words", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--replicas", type=int, default=None, help="the new desired number of replicas")
    p.add_argument("--current-replicas", type=int, default=-1,
                   help="precondition: the current size must be this; -1 for none")
    p.add_argument("--resource-version", default="",
                   help="precondition: the current resource version must be this")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true", help="every resource of the given type")
    p.set_defaults(func=run)


class PreconditionError(CLIError):
    def __init__(self, what: str, expected: object, actual: object) -> None:
        super().__init__(f"Expected {what} to be {expected}, was {actual}")


def current_replicas(obj: Any) -> int:
    return int(obj.spec.replicas) if obj.spec.HasField("replicas") else 1


def scale_object(ctx: Context, kind: kinds.Kind, name: str, ns: str, replicas: int, *,
                 current: int = -1, resource_version: str = "") -> Any:
    """Read, check the preconditions, write with the read resourceVersion; again on a
    conflict (unless the resourceVersion itself was the precondition)."""
    for _ in range(_CAS_RETRIES):
        obj = ctx.client.get(kind.resource, name, ns)
        if current >= 0 and current_replicas(obj) != current:
            raise PreconditionError("replicas", current, current_replicas(obj))
        if resource_version and obj.metadata.resourceVersion != resource_version:
            raise PreconditionError("resource version", resource_version,
                                    obj.metadata.resourceVersion)
        obj.spec.replicas = replicas
        try:
            return ctx.client.update(obj)
        except APIStatusError as e:
            if not e.conflict or resource_version:
                raise
    raise CLIError(f"{ref(kind, name)} kept changing; giving up after {_CAS_RETRIES} "
                   "attempts")


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.replicas is None:
        raise CLIError('required flag(s) "replicas" not set')
    if args.replicas < 0:
        raise CLIError("The --replicas=COUNT flag is required, and COUNT must be greater "
                       "than or equal to 0")
    targets: list[tuple[kinds.Kind, str]] = []
    for kind, names in type_name_args(args.words):
        if kind.resource not in SCALABLE:
            group = kind.group
            raise CLIError(f'no scaler has been implemented for {{"{group}" "{kind.kind}"}}')
        if not names:
            if not (args.all or args.selector):
                raise CLIError("resource(s) were provided, but no name was specified")
            objs, _ = ctx.client.list(kind.resource, ctx.namespace,
                                      label_selector=args.selector)
            names = sorted(o.metadata.name for o in objs)
        targets.extend((kind, n) for n in names)
    if not targets:
        raise CLIError("no objects passed to scale")
    if len(targets) > 1 and args.resource_version:
        raise CLIError("cannot use --resource-version with multiple resources")
    failed = False
    for kind, name in targets:
        try:
            scale_object(ctx, kind, name, ctx.namespace, args.replicas,
                         current=args.current_replicas,
                         resource_version=args.resource_version)
        except APIStatusError as e:
            if len(targets) == 1:
                raise
            ctx.warn(f"Error from server ({e.reason}): {e.message}")
            failed = True
            continue
        except PreconditionError as e:
            if len(targets) == 1:
                raise
            ctx.warn(f"error: {e}")
            failed = True
            continue
        ctx.print(f"{ref(kind, name)} scaled")
    return 1 if failed else 0
