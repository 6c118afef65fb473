"""kubelite expose: a Service in front of a Deployment, ReplicaSet,
ReplicationController, Pod or Service, as `kubectl expose`.

    kubelite expose deploy/web --port=80 --target-port=8080 --type=NodePort
    kubelite expose pod db --port=5432 --name=db-svc

The selector is the target's (a Deployment's or ReplicaSet's matchLabels; one
with matchExpressions cannot be exposed), the labels are the target's own,
and without --port the ports come from the target's container ports (named
port-1, port-2, ... when there are several). --target-port defaults to the
port; a non-numeric one names a container port.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kubelite.api import core_pb2
from kubelite.cli.context import CLIError, Context, as_dict, ref, type_name_args
from kubelite.objects import convert, kinds
from kubelite.objects.errors import Invalid

EXPOSABLE = ("deployments", "replicasets", "replicationcontrollers", "pods", "services")
TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("expose", help="Take a replication controller, service, deployment or "
                                      "pod and expose it as a new Kubernetes service")
    p.add_argument("words", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--port", default="", help="the port the service serves on (default: the "
                                              "target's container ports)")
    p.add_argument("--target-port", default="",
                   help="number or name of the port on the pods (default: --port)")
    p.add_argument("--protocol", default="", help="TCP (default), UDP or SCTP")
    p.add_argument("--type", default="", help="ClusterIP (default), NodePort, LoadBalancer "
                                              "or ExternalName")
    p.add_argument("--name", default="", help="name of the service (default: the target's)")
    p.add_argument("--selector", default="",
                   help="key=value,... selector (default: the target's)")
    p.add_argument("-l", "--labels", default="", help="key=value,... labels of the service")
    p.add_argument("--cluster-ip", default="", help="the ClusterIP to ask for; 'None' makes a "
                                                    "headless service")
    p.add_argument("--external-ip", default="", help="an external IP the service accepts")
    p.add_argument("--session-affinity", default="", help="None or ClientIP")
    p.add_argument("--dry-run", choices=("none", "client", "server"), default="none",
                   help="only print the object that would be sent")
    p.add_argument("-o", "--output", default="", help="name|yaml|json")
    p.set_defaults(func=run)


def _pairs(text: str, flag: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise CLIError(f"invalid {flag} {text!r}: want key=value[,key=value]")
        out[k] = v
    return out


def target_selector(kind: kinds.Kind, obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    if kind.resource == "pods":
        return dict((obj.get("metadata") or {}).get("labels") or {})
    if kind.resource in ("replicationcontrollers", "services"):
        return dict(spec.get("selector") or {})
    sel = spec.get("selector") or {}
    if sel.get("matchExpressions"):
        raise CLIError("couldn't convert expressions - \"" + json.dumps(
            sel["matchExpressions"]) + "\" to map-based selector format")
    return dict(sel.get("matchLabels") or {})


def target_ports(kind: kinds.Kind, obj: dict[str, Any]) -> list[dict[str, Any]]:
    """(port, protocol) pairs found on the target, as kubectl's introspection does."""
    spec = obj.get("spec") or {}
    if kind.resource == "services":
        return [{"port": p.get("port"), "protocol": p.get("protocol") or "TCP"}
                for p in spec.get("ports") or []]
    pod_spec = spec if kind.resource == "pods" else (spec.get("template") or {}).get("spec") or {}
    return [{"port": cp.get("containerPort"), "protocol": cp.get("protocol") or "TCP"}
            for c in pod_spec.get("containers") or [] for cp in c.get("ports") or []]


def manifest(args: argparse.Namespace, kind: kinds.Kind, target: dict[str, Any],
             namespace: str) -> dict[str, Any]:
    """The Service `kubectl expose` would create for this target."""
    md = target.get("metadata") or {}
    selector = _pairs(args.selector, "--selector") if args.selector else \
        target_selector(kind, target)
    if not selector:
        raise CLIError(f"couldn't retrieve selectors via --selector flag or introspection: "
                       f"the {kind.singular} {md.get('name')} has none")
    if args.port:
        if not args.port.isdigit():
            raise CLIError(f"invalid --port {args.port!r}: want a number")
        found = [{"port": int(args.port), "protocol": args.protocol or "TCP"}]
    else:
        found = target_ports(kind, target)
        if not found:
            raise CLIError("couldn't find port via --port flag or introspection")
    ports = []
    for i, p in enumerate(found):
        port: dict[str, Any] = {"port": p["port"], "protocol": args.protocol or p["protocol"]}
        if len(found) > 1:
            port["name"] = f"port-{i + 1}"
        if args.target_port:
            tp = args.target_port
            port["targetPort"] = int(tp) if tp.isdigit() else tp
        else:
            port["targetPort"] = p["port"]
        ports.append(port)
    spec: dict[str, Any] = {"selector": selector, "ports": ports}
    if args.type:
        if args.type not in TYPES:
            raise CLIError(f"invalid --type {args.type!r}: one of {', '.join(TYPES)}")
        spec["type"] = args.type
    if args.cluster_ip:
        spec["clusterIP"] = args.cluster_ip
    if args.external_ip:
        spec["externalIPs"] = [args.external_ip]
    if args.session_affinity:
        spec["sessionAffinity"] = args.session_affinity
    labels = _pairs(args.labels, "--labels") if args.labels else dict(md.get("labels") or {})
    meta: dict[str, Any] = {"name": args.name or md.get("name"), "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def run(ctx: Context, args: argparse.Namespace) -> int:
    targets = [(k, n) for k, names in type_name_args(args.words) for n in names]
    if not targets:
        raise CLIError("resource(s) were provided, but no name was specified")
    if args.name and len(targets) > 1:
        raise CLIError("--name can only be used with a single resource")
    svc_kind = kinds.by_resource("services")
    for kind, name in targets:
        if kind.resource not in EXPOSABLE:
            raise CLIError(f"cannot expose a {kind.kind}")
        target = as_dict(ctx.client.get(kind.resource, name, ctx.namespace))
        raw = manifest(args, kind, target, ctx.namespace)
        try:
            obj = convert.from_dict(raw, core_pb2.Service)
        except Invalid as e:
            raise CLIError(str(e)) from None
        if args.dry_run != "client":
            obj = ctx.client.create(obj, dry_run=args.dry_run == "server")
        _print(ctx, args, svc_kind, obj)
    return 0


def _print(ctx: Context, args: argparse.Namespace, kind: kinds.Kind, obj: Any) -> None:
    if args.output == "name":
        ctx.print(ref(kind, obj.metadata.name))
        return
    if args.output in ("yaml", "json"):
        from kubelite.cli.output import to_yaml

        d = convert.to_dict(obj)
        ctx.out.write(to_yaml(d) if args.output == "yaml" else json.dumps(d, indent=4) + "\n")
        return
    if args.output:
        raise CLIError(f'unable to match a printer suitable for the output format '
                       f'"{args.output}", allowed formats are: json,name,yaml')
    suffix = {"client": " (dry run)", "server": " (server dry run)"}.get(args.dry_run, "")
    ctx.print(f"{ref(kind, obj.metadata.name)} exposed{suffix}")
