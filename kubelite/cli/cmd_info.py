"""api-resources, explain, version, cluster-info."""

from __future__ import annotations

import argparse
import importlib.resources
import platform
import sys
from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pb2

import kubelite
from kubelite.cli import printers_tabwriter
from kubelite.cli.context import CLIError, Context, resolve_kind
from kubelite.objects import kinds


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("api-resources", help="Print the supported API resources")
    p.add_argument("--namespaced", choices=("true", "false"), default=None)
    p.add_argument("-o", "--output", default="", choices=("", "wide", "name"))
    p.add_argument("--no-headers", action="store_true")
    p.set_defaults(func=api_resources)

    p = sub.add_parser("explain", help="Documentation of resources and their fields")
    p.add_argument("path", metavar="TYPE[.FIELD...]")
    p.add_argument("--recursive", action="store_true")
    p.set_defaults(func=explain)

    p = sub.add_parser("version", help="Print the client and server version")
    p.add_argument("--client", action="store_true")
    p.add_argument("-o", "--output", default="", choices=("", "yaml", "json"))
    p.set_defaults(func=version)

    p = sub.add_parser("cluster-info", help="Display cluster information")
    p.set_defaults(func=cluster_info)


def api_resources(ctx: Context, args: argparse.Namespace) -> int:
    try:
        resources = list(ctx.client.discovery().resources)
    except Exception:  # noqa: BLE001 - fall back to the client's own table
        resources = []
    rows = []
    if resources:
        for r in resources:
            api_version = f"{r.group}/{r.version}" if r.group else r.version
            rows.append((r.name, ",".join(r.short_names), api_version, r.namespaced, r.kind,
                         ",".join(r.verbs)))
    else:
        rows = [(k.resource, ",".join(k.short_names), k.api_version, k.namespaced, k.kind,
                 "create,delete,get,list,patch,update,watch") for k in kinds.KINDS]
    if args.namespaced is not None:
        rows = [r for r in rows if r[3] == (args.namespaced == "true")]
    rows.sort(key=lambda r: (r[2].count("/"), r[2].split("/")[0] if "/" in r[2] else "", r[0]))
    if args.output == "name":
        for r in rows:
            group = r[2].split("/")[0] if "/" in r[2] else ""
            ctx.print(r[0] + ("." + group if group else ""))
        return 0
    headers = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    if args.output == "wide":
        headers.append("VERBS")
    cells = [[r[0], r[1], r[2], "true" if r[3] else "false", r[4]]
             + ([f"[{r[5].replace(',', ' ')}]"] if args.output == "wide" else []) for r in rows]
    ctx.out.write(printers_tabwriter.table(cells if args.no_headers else [headers, *cells]))
    return 0


@lru_cache(maxsize=1)
def _descriptors() -> dict[str, tuple[descriptor_pb2.DescriptorProto, str, dict[str, str]]]:
    """message full name -> (descriptor, its comment, {field: comment})."""
    data = importlib.resources.files("kubelite.api").joinpath("descriptors.binpb").read_bytes()
    fds = descriptor_pb2.FileDescriptorSet.FromString(data)
    out: dict[str, tuple[descriptor_pb2.DescriptorProto, str, dict[str, str]]] = {}
    for f in fds.file:
        comments = {tuple(loc.path): loc.leading_comments.strip()
                    for loc in f.source_code_info.location if loc.leading_comments}

        def walk(msgs: Any, path: tuple[int, ...], prefix: str,
                 comments: dict[tuple[int, ...], str] = comments) -> None:
            for i, m in enumerate(msgs):
                mpath = path + (i,)
                full = f"{prefix}.{m.name}"
                fields = {fd.name: comments.get(mpath + (2, j), "")
                          for j, fd in enumerate(m.field)}
                out[full] = (m, comments.get(mpath, ""), fields)
                walk(m.nested_type, mpath + (3,), full, comments)

        walk(f.message_type, (4,), f.package)
    return out


def _type_label(fd: descriptor_pb2.FieldDescriptorProto,
                msgs: dict[str, Any]) -> tuple[str, str | None]:
    """kubectl's field type label (`<string>`, `<[]Container>`, `<map[string]string>`)."""
    scalar = {1: "number", 2: "number", 3: "integer", 4: "integer", 5: "integer",
              8: "boolean", 9: "string", 12: "string", 13: "integer", 17: "integer",
              18: "integer"}
    if fd.type == 11:  # message
        name = fd.type_name.lstrip(".")
        m = msgs.get(name)
        if m and m[0].options.map_entry:
            vf = m[0].field[1]
            vlabel, _ = _type_label(vf, msgs)
            return f"map[string]{vlabel}", None
        short = name.rsplit(".", 1)[-1]
        if short == "IntOrString":
            return "IntOrString", None
        if short == "Quantity":
            return "Quantity", None
        label = f"[]{short}" if fd.label == 3 else short
        return label, name
    base = scalar.get(fd.type, "string")
    return (f"[]{base}" if fd.label == 3 else base), None


def explain(ctx: Context, args: argparse.Namespace) -> int:
    head, *fields = args.path.split(".")
    kind = resolve_kind(head)
    msgs = _descriptors()
    current = kind.message.DESCRIPTOR.full_name
    label = kind.kind
    doc = msgs[current][1]
    for part in fields:
        m, _, fcomments = msgs[current]
        fd = next((f for f in m.field if f.name == part), None)
        if fd is None:
            raise CLIError(f'field "{part}" does not exist')
        label, target = _type_label(fd, msgs)
        doc = fcomments.get(part, "")
        if target is None:
            current = ""
            break
        current = target
    ctx.print(f"KIND:       {kind.kind}")
    ctx.print(f"VERSION:    {kind.api_version}")
    ctx.print()
    if fields:
        ctx.print(f"FIELD: {fields[-1]} <{label}>")
        ctx.print()
    ctx.print("DESCRIPTION:")
    for line in (doc or "<empty>").splitlines():
        ctx.print(f"    {line.strip()}")
    if current:
        ctx.print()
        ctx.print("FIELDS:")
        _print_fields(ctx, msgs, current, 1, args.recursive, set())
    return 0


def _print_fields(ctx: Context, msgs: dict[str, Any], name: str, depth: int,
                  recursive: bool, seen: set[str]) -> None:
    m, _, fcomments = msgs[name]
    for fd in sorted(m.field, key=lambda f: f.name):
        label, target = _type_label(fd, msgs)
        ctx.print(f"{'  ' * depth}{fd.name}\t<{label}>")
        if recursive:
            if target and target not in seen:
                _print_fields(ctx, msgs, target, depth + 1, True, seen | {target})
            continue
        for line in (fcomments.get(fd.name) or "").splitlines():
            ctx.print(f"{'  ' * (depth + 1)}{line.strip()}")
        ctx.print()


def version(ctx: Context, args: argparse.Namespace) -> int:
    client = f"v{kubelite.__version__}"
    server = ""
    err = None
    if not args.client:
        try:
            server = ctx.client.discovery().server_version
        except Exception as e:  # noqa: BLE001
            err = e
    if args.output:
        import json

        data: dict[str, Any] = {"clientVersion": {
            "gitVersion": client, "pythonVersion": platform.python_version(),
            "platform": f"{sys.platform}/{platform.machine()}"}}
        if server:
            data["serverVersion"] = {"gitVersion": server}
        from kubelite.cli.output import to_yaml

        ctx.out.write(json.dumps(data, indent=2) + "\n" if args.output == "json"
                      else to_yaml(data))
    else:
        ctx.print(f"Client Version: {client}")
        if server:
            ctx.print(f"Server Version: {server}")
    if err is not None:
        raise err
    return 0


def cluster_info(ctx: Context, args: argparse.Namespace) -> int:
    ctx.client.discovery()
    ctx.print(f"kubelite control plane is running at {ctx.client.server}")
    ctx.print()
    ctx.print("To further debug and diagnose cluster problems, use "
              "'kubelite get events -A' and 'kubelite get nodes'.")
    return 0
