"""kubelite set image: change container images of pods and pod templates, as
`kubectl set image`.

    kubelite set image deploy/web app=nginx:1.25 [sidecar=busybox:1.36] ['*=img']
        [-l SELECTOR | --all] [--record]

Containers, init containers and ephemeral containers are matched by name
("*": all of them). The change is a read-modify-write guarded by the
resourceVersion, retried on a conflict. An object whose images already are
the wanted ones is left alone and not printed (kubectl's empty patch); a name
no container has is an error (`unable to find container named "x"`), the
other updates still apply.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import kinds, rollout

_CAS_RETRIES = 10


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("set", help="Set specific features on objects")
    p.set_defaults(func=_usage)
    verbs = p.add_subparsers(dest="set_command", metavar="COMMAND")
    img = verbs.add_parser("image", help="Update the image of a pod template")
    img.add_argument("words", nargs="+", metavar="(TYPE NAME | TYPE/NAME) CONTAINER=IMAGE")
    img.add_argument("-l", "--selector", default="")
    img.add_argument("--all", action="store_true", help="every resource of the given type")
    img.add_argument("--record", action="store_true",
                     help="record the command in the kubernetes.io/change-cause annotation")
    img.set_defaults(func=run_image)


def _usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError("You must specify the type of resource to set. Available: image")


def pod_spec_of(obj: Any) -> Any:
    """The PodSpec inside any workload object (or a Pod's own)."""
    kind = kinds.of(obj).kind
    if kind == "Pod":
        return obj.spec
    if kind == "CronJob":
        return obj.spec.jobTemplate.spec.template.spec
    if kind in ("Deployment", "ReplicaSet", "ReplicationController", "StatefulSet",
                "DaemonSet", "Job"):
        return obj.spec.template.spec
    raise CLIError(f"{kinds.of(obj).resource}/{obj.metadata.name} has no pod template")


def set_images(spec: Any, images: dict[str, str]) -> list[str]:
    """Apply name -> image to the containers of `spec`; the names no container has."""
    missing = []
    for name, image in images.items():
        found = False
        for group in (spec.initContainers, spec.containers, spec.ephemeralContainers):
            for c in group:
                if name in ("*", c.name):
                    c.image = image
                    found = True
        if not found:
            missing.append(name)
    return missing


def _split(words: list[str]) -> tuple[list[str], dict[str, str]]:
    targets: list[str] = []
    images: dict[str, str] = {}
    for w in words:
        if "=" in w:
            name, _, image = w.partition("=")
            if not name or not image:
                raise CLIError(f"invalid image update: {w}")
            images[name] = image
        elif images:
            raise CLIError(f"all resources must be specified before image changes: {w}")
        else:
            targets.append(w)
    if not images:
        raise CLIError("at least one image update is required")
    return targets, images


def run_image(ctx: Context, args: argparse.Namespace) -> int:
    targets, images = _split(args.words)
    errors: list[str] = []
    for kind, names in type_name_args(targets):
        ns = ctx.namespace if kind.namespaced else ""
        if not names:
            if not (args.all or args.selector):
                raise CLIError("resource(s) were provided, but no name was specified")
            objs, _ = ctx.client.list(kind.resource, ns, label_selector=args.selector)
            names = sorted(o.metadata.name for o in objs)
        for name in names:
            try:
                changed, missing = _update(ctx, kind, name, ns, images, args.record)
            except APIStatusError as e:
                errors.append(f"Error from server ({e.reason}): {e.message}")
                continue
            errors.extend(f'error: unable to find container named "{m}"' for m in missing)
            if changed:
                ctx.print(f"{ref(kind, name)} image updated")
    for e in errors:
        ctx.warn(e)
    return 1 if errors else 0


def _update(ctx: Context, kind: kinds.Kind, name: str, ns: str, images: dict[str, str],
            record: bool) -> tuple[bool, list[str]]:
    for _ in range(_CAS_RETRIES):
        obj = ctx.client.get(kind.resource, name, ns)
        before = obj.SerializeToString(deterministic=True)
        missing = set_images(pod_spec_of(obj), images)
        if record:
            obj.metadata.annotations[rollout.CHANGE_CAUSE] = \
                "kubelite " + " ".join(sys.argv[1:])
        if obj.SerializeToString(deterministic=True) == before:
            return False, missing
        try:
            ctx.client.update(obj)  # carries the read resourceVersion: a CAS
            return True, missing
        except APIStatusError as e:
            if not e.conflict:
                raise
    raise CLIError(f"{ref(kind, name)} kept changing; giving up after {_CAS_RETRIES} attempts")
