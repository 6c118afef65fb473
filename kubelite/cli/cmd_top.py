"""kubelite top nodes|pods: kubectl top over the NodeMetrics and PodMetrics that
node agents write (node/metrics.py), as kubectl reads metrics-server's.

Output is kubectl's (k8s.io/kubectl/pkg/metricsutil/metrics_printer.go):
cpu always in millicores ("250m"), memory in whole Mi ("1024Mi"), node
percentages of the Node's allocatable (capacity with --show-capacity)
truncated to an integer, every cell tab-terminated (so padded) as kubectl
writes them. Like metrics-server, only metrics of objects that exist (and
match -l) are shown. Where kubectl would print a misaligned row (a Node
without allocatable cpu or memory) the percentage reads "<unknown>".

Errors are kubectl's: no metrics at all -> `error: metrics not available
yet`; pods old enough to have been measured but without metrics -> `error:
Metrics not available for pod NS/NAME, age: ...`; no pods -> `No resources
found in NS namespace.` (exit 0).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from kubelite.cli import printers_tabwriter
from kubelite.cli.age import go_duration, parse_time, seconds_between
from kubelite.cli.context import CLIError, Context
from kubelite.objects import quantity

RESOURCES = ("cpu", "memory")
NODE_COLUMNS = ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
POD_COLUMNS = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
UNKNOWN = "<unknown>"
# kubectl's metricsCreationDelay: a pod younger than this may just not be measured yet.
METRICS_CREATION_DELAY = 120.0
_MI = 1024 * 1024


def add_parser(sub: Any) -> None:
    p = sub.add_parser("top", help="Display resource (CPU/memory) usage")
    p.set_defaults(func=lambda ctx, args: _help(p, ctx))
    types = p.add_subparsers(dest="top_type", metavar="TYPE")

    n = types.add_parser("node", aliases=["nodes", "no"],
                         help="Display resource (CPU/memory) usage of nodes")
    n.add_argument("name", nargs="?", metavar="NAME")
    n.add_argument("-l", "--selector", default="", help="label selector, e.g. zone=a")
    n.add_argument("--no-headers", action="store_true")
    n.add_argument("--sort-by", default="", help="cpu or memory: sort by that usage")
    n.add_argument("--show-capacity", action="store_true",
                   help="percentages of capacity instead of allocatable")
    n.set_defaults(func=run_nodes)

    po = types.add_parser("pod", aliases=["pods", "po"],
                          help="Display resource (CPU/memory) usage of pods")
    po.add_argument("name", nargs="?", metavar="NAME")
    po.add_argument("-A", "--all-namespaces", action="store_true")
    po.add_argument("-l", "--selector", default="", help="label selector, e.g. app=web")
    po.add_argument("--containers", action="store_true", help="usage of each container")
    po.add_argument("--no-headers", action="store_true")
    po.add_argument("--sort-by", default="", help="cpu or memory: sort by that usage")
    po.add_argument("--sum", action="store_true", help="print the sum of the usage")
    po.set_defaults(func=run_pods)


def _help(p: argparse.ArgumentParser, ctx: Context) -> int:
    ctx.out.write(p.format_help())
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    if args.name and args.selector:
        raise CLIError("only one of NAME or --selector can be provided")
    if args.sort_by and args.sort_by not in RESOURCES:
        raise CLIError("--sort-by accepts only cpu or memory")


# ---- quantities and cells ------------------------------------------------------

Usage = dict[str, Decimal]  # resource -> value in base units (cores, bytes)


def usage_of(quantities: Any) -> Usage:
    """A proto map<string, Quantity> (or a str dict) as base-unit values."""
    out: Usage = {}
    for res, q in dict(quantities).items():
        text = q if isinstance(q, str) else q.string
        try:
            out[res] = quantity.parse(text) if text else Decimal(0)
        except ValueError:
            continue
    return out


def _milli(v: Decimal) -> int:
    """Quantity.MilliValue: rounded up."""
    return int((v * 1000).to_integral_value(rounding="ROUND_CEILING"))


def _whole(v: Decimal) -> int:
    """Quantity.Value: rounded up."""
    return int(v.to_integral_value(rounding="ROUND_CEILING"))


def usage_cells(usage: Usage, available: Usage | None = None) -> list[str]:
    """CPU(cores) [CPU%] MEMORY(bytes) [MEMORY%] cells (percentages with `available`)."""
    cells = []
    for res in RESOURCES:
        used = usage.get(res, Decimal(0))
        cells.append(f"{_milli(used)}m" if res == "cpu" else f"{_whole(used) // _MI}Mi")
        if available is not None:
            total = _milli(available.get(res, Decimal(0)))
            cells.append(f"{int(_milli(used) / total * 100)}%" if total > 0 else UNKNOWN)
    return cells


def _sort_value(usage: Usage, sort_by: str) -> int:
    v = usage.get(sort_by, Decimal(0))
    return _milli(v) if sort_by == "cpu" else _whole(v)


def _layout(rows: Iterable[list[str]]) -> str:
    """kubectl's tabwriter (minwidth 6, padding 3), every cell tab-terminated."""
    text = "".join("".join(f"{c}\t" for c in row) + "\n" for row in rows)
    return printers_tabwriter.align(text, minwidth=printers_tabwriter.GET_MINWIDTH,
                                    padding=printers_tabwriter.GET_PADDING) if text else ""


# ---- nodes -------------------------------------------------------------------

def node_table(metrics: list[Any], available: dict[str, Usage], *, no_headers: bool = False,
               sort_by: str = "") -> str:
    """Rows for NodeMetrics, then `<unknown>` rows for listed nodes without metrics."""
    if not metrics:
        return ""
    items = sorted(metrics, key=lambda m: m.metadata.name)
    if sort_by:
        items.sort(key=lambda m: _sort_value(usage_of(m.usage), sort_by), reverse=True)
    rows = [] if no_headers else [list(NODE_COLUMNS)]
    left = dict(available)
    for m in items:
        name = m.metadata.name
        rows.append([name, *usage_cells(usage_of(m.usage), left.pop(name, {}))])
    for name in sorted(left):
        rows.append([name] + [UNKNOWN] * 4)
    return _layout(rows)


def run_nodes(ctx: Context, args: argparse.Namespace) -> int:
    _check_flags(args)
    c = ctx.client
    if args.name:
        metrics = [c.get("nodemetrics", args.name)]
        nodes = [c.get("nodes", args.name)]
    else:
        nodes, _ = c.list("nodes", label_selector=args.selector)
        names = {n.metadata.name for n in nodes}
        found, _ = c.list("nodemetrics")
        metrics = [m for m in found if m.metadata.name in names]
    if not metrics:
        raise CLIError("metrics not available yet")
    field = "capacity" if args.show_capacity else "allocatable"
    available = {n.metadata.name: usage_of(getattr(n.status, field)) for n in nodes}
    ctx.out.write(node_table(metrics, available, no_headers=args.no_headers,
                             sort_by=args.sort_by))
    return 0


# ---- pods --------------------------------------------------------------------

def pod_usage(m: Any) -> Usage:
    """The pod's usage: its containers' summed (kubectl's getPodMetrics)."""
    total: Usage = {res: Decimal(0) for res in RESOURCES}
    for c in m.containers:
        u = usage_of(c.usage)
        for res in RESOURCES:
            total[res] += u.get(res, Decimal(0))
    return total


def pod_table(metrics: list[Any], *, containers: bool = False, with_namespace: bool = False,
              no_headers: bool = False, sort_by: str = "", show_sum: bool = False) -> str:
    if not metrics:
        return ""
    width = len(POD_COLUMNS) + int(with_namespace) + int(containers)
    rows: list[list[str]] = []
    if not no_headers:
        rows.append((["NAMESPACE"] if with_namespace else []) + (["POD"] if containers else [])
                    + POD_COLUMNS)
    items = sorted(metrics, key=lambda m: ((m.metadata.namespace if with_namespace else ""),
                                           m.metadata.name))
    if sort_by:
        items.sort(key=lambda m: _sort_value(pod_usage(m), sort_by), reverse=True)
    total: Usage = {res: Decimal(0) for res in RESOURCES}
    for m in items:
        prefix = [m.metadata.namespace] if with_namespace else []
        pu = pod_usage(m)
        for res in RESOURCES:
            total[res] += pu[res]
        if not containers:
            rows.append([*prefix, m.metadata.name, *usage_cells(pu)])
            continue
        cs = sorted(m.containers, key=lambda c: c.name)
        if sort_by:
            cs.sort(key=lambda c: _sort_value(usage_of(c.usage), sort_by), reverse=True)
        for c in cs:
            rows.append([*prefix, m.metadata.name, c.name, *usage_cells(usage_of(c.usage))])
    if show_sum:
        rows.append([""] * (width - 2) + ["________", "________"])
        rows.append([""] * (width - 3) + ["", *usage_cells(total)])
    return _layout(rows)


def _check_pod_ages(pods: list[Any], now: datetime) -> None:
    """kubectl's verifyEmptyMetrics: pods old enough to have metrics but without any."""
    for pod in pods:
        created = parse_time(pod.metadata.creationTimestamp)
        if created is None:
            continue
        age = seconds_between(created, now)
        if age > METRICS_CREATION_DELAY:
            raise CLIError(f"Metrics not available for pod {pod.metadata.namespace}/"
                           f"{pod.metadata.name}, age: {go_duration(age)}")


def run_pods(ctx: Context, args: argparse.Namespace) -> int:
    _check_flags(args)
    c = ctx.client
    all_ns = args.all_namespaces and not args.name
    ns = "" if all_ns else ctx.namespace
    if args.name:
        metrics = [c.get("podmetrics", args.name, ns)]
        pods = [c.get("pods", args.name, ns)]
    else:
        pods, _ = c.list("pods", ns, label_selector=args.selector)
        present = {(p.metadata.namespace, p.metadata.name) for p in pods}
        found, _ = c.list("podmetrics", ns)
        metrics = [m for m in found if (m.metadata.namespace, m.metadata.name) in present]
    if not metrics:
        if pods:
            _check_pod_ages(pods, datetime.now(UTC))
            raise CLIError("metrics not available yet")
        ctx.warn("No resources found" if all_ns else f"No resources found in {ns} namespace.")
        return 0
    ctx.out.write(pod_table(metrics, containers=args.containers, with_namespace=all_ns,
                            no_headers=args.no_headers, sort_by=args.sort_by,
                            show_sum=args.sum))
    return 0
