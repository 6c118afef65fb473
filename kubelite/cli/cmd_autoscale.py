"""kubelite autoscale: create an autoscaling/v1 HorizontalPodAutoscaler for a
Deployment, ReplicaSet, ReplicationController or StatefulSet, as `kubectl
autoscale`.

    kubelite autoscale deploy/web --min=2 --max=10 --cpu-percent=50
    kubelite autoscale rs web --max=5            # cpu target: the server default, 80%

The HPA is named after the target unless --name is given; the target must
exist. --min and --cpu-percent left out are left to the server's defaults.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kubelite.api import autoscaling_pb2
from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.objects import convert, kinds, versions
from kubelite.objects.errors import Invalid

AUTOSCALABLE = ("deployments", "replicasets", "replicationcontrollers", "statefulsets")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("autoscale", help="Auto-scale a deployment, replica set, stateful set, "
                                         "or replication controller")
    p.add_argument("words", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--min", type=int, default=-1,
                   help="lower limit for the number of pods; unset: the server's default (1)")
    p.add_argument("--max", type=int, default=-1,
                   help="upper limit for the number of pods (required)")
    p.add_argument("--cpu-percent", type=int, default=-1,
                   help="target average CPU utilization over all the pods, in percent of "
                        "their requests; unset: the server's default (80)")
    p.add_argument("--name", default="", help="name of the HPA (default: the target's)")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   help="only print the object that would be sent")
    p.add_argument("-o", "--output", default="", help="name|yaml|json")
    p.set_defaults(func=run)


def manifest(kind: kinds.Kind, target: str, name: str, namespace: str, *, min_pods: int,
             max_pods: int, cpu_percent: int) -> dict[str, Any]:
    """The autoscaling/v1 HPA that `kubectl autoscale` would create."""
    spec: dict[str, Any] = {"scaleTargetRef": {"apiVersion": kind.api_version,
                                               "kind": kind.kind, "name": target},
                            "maxReplicas": max_pods}
    if min_pods >= 0:
        spec["minReplicas"] = min_pods
    if cpu_percent >= 0:
        spec["targetCPUUtilizationPercentage"] = cpu_percent
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _check(args: argparse.Namespace) -> None:
    if args.max < 1:
        raise CLIError(f"--max=MAXPODS is required and must be at least 1, max: {args.max}")
    if args.max < args.min:
        raise CLIError(f"--max=MAXPODS must be larger or equal to --min=MINPODS, "
                       f"max: {args.max}, min: {args.min}")


def run(ctx: Context, args: argparse.Namespace) -> int:
    _check(args)
    targets = [(k, n) for k, names in type_name_args(args.words) for n in names]
    if not targets:
        raise CLIError("resource(s) were provided, but no name was specified")
    if args.name and len(targets) > 1:
        raise CLIError("--name can only be used with a single resource")
    hpa_kind = kinds.by_resource("horizontalpodautoscalers")
    for kind, target in targets:
        if kind.resource not in AUTOSCALABLE:
            raise CLIError(f"cannot autoscale a {kind.kind}: only deployments, replica sets, "
                           "replication controllers and stateful sets can be autoscaled")
        ctx.client.get(kind.resource, target, ctx.namespace)  # NotFound as kubectl says it
        raw = manifest(kind, target, args.name or target, ctx.namespace, min_pods=args.min,
                       max_pods=args.max, cpu_percent=args.cpu_percent)
        try:
            obj = convert.from_dict(versions.to_internal(raw),
                                    autoscaling_pb2.HorizontalPodAutoscaler)
        except Invalid as e:
            raise CLIError(str(e)) from None
        if args.dry_run != "client":
            obj = ctx.client.create(obj, dry_run=args.dry_run == "server")
        _print(ctx, args, hpa_kind, obj)
    return 0


def _print(ctx: Context, args: argparse.Namespace, kind: kinds.Kind, obj: Any) -> None:
    if args.output == "name":
        ctx.print(ref(kind, obj.metadata.name))
        return
    if args.output in ("yaml", "json"):
        from kubelite.cli.output import to_yaml

        d = versions.hpa_v2_to_v1(convert.to_dict(obj))  # what was asked for: v1
        ctx.out.write(to_yaml(d) if args.output == "yaml" else json.dumps(d, indent=4) + "\n")
        return
    if args.output:
        raise CLIError(f'unable to match a printer suitable for the output format '
                       f'"{args.output}", allowed formats are: json,name,yaml')
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    ctx.print(f"{ref(kind, obj.metadata.name)} autoscaled{suffix}")
