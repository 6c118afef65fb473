"""kubectl get's tables: the columns kubectl 1.28+ prints for each kind.

`table` turns object dicts (convert.to_dict output) into the exact text
`kubectl get` shows: upper-case headers, cells left-aligned in columns three
blanks apart (Go's tabwriter, see printers_tabwriter), NAMESPACE first with
-A, LABELS last with --show-labels, the extra -o wide columns. Every cell is
computed the way Kubernetes' server-side printers compute it
(pkg/printers/internalversion/printers.go); pods and workloads are in
printers_workloads, the rest here. Kinds without a printer get NAME AGE.

`now` is a parameter so the AGE column is a pure function of the input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kubelite.cli import printers_tabwriter
from kubelite.cli.age import age
from kubelite.cli.printers_format import (
    NONE,
    Obj,
    access_modes,
    controller_ref,
    format_labels,
    get,
    join_host_port,
    meta,
    name_of,
    storage_class,
)
from kubelite.cli.printers_workloads import WORKLOAD_COLUMNS
from kubelite.objects import kinds

Row = Callable[[Obj, bool, datetime], list[str]]


@dataclass(frozen=True)
class Columns:
    headers: list[str]
    wide: list[str]  # the whole header row of -o wide
    row: Row


def _created(obj: Obj, now: datetime) -> str:
    return age(meta(obj).get("creationTimestamp"), now)


# ---- Service and Endpoints ---------------------------------------------------

_LB_WIDTH = 16


def _load_balancer(svc: Obj, wide: bool) -> str:
    found = set()
    for ing in get(svc, "status", "loadBalancer", "ingress", default=[]):
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    text = ",".join(sorted(found))
    if not wide and len(text) > _LB_WIDTH:
        text = text[:_LB_WIDTH - 3] + "..."
    return text


def service_external_ip(svc: Obj, wide: bool) -> str:
    spec = svc.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if kind == "LoadBalancer":
        lb = _load_balancer(svc, wide)
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def service_ports(ports: list[Obj] | None) -> str:
    """"80/TCP", "80:30080/TCP" per port, comma-joined."""
    pieces = []
    for p in ports or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            pieces.append(f"{p.get('port', 0)}:{p['nodePort']}/{proto}")
        else:
            pieces.append(f"{p.get('port', 0)}/{proto}")
    return ",".join(pieces)


def service_row(svc: Obj, wide: bool, now: datetime) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    row = [name_of(svc), spec.get("type") or "ClusterIP", ips[0] if ips else NONE,
           service_external_ip(svc, wide), service_ports(spec.get("ports")) or NONE,
           _created(svc, now)]
    if wide:
        row.append(format_labels(spec.get("selector")))
    return row


def format_endpoints(ep: Obj, port_names: set[str] | None = None) -> str:
    """First three ip:port pairs, then " + N more..."; "<none>" without subsets."""
    subsets = ep.get("subsets") or []
    if not subsets:
        return NONE
    shown: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addrs = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            # A headless service may have no ports: addresses alone.
            count += len(addrs)
            for a in addrs:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(str(a.get("ip", "")))
            continue
        for port in ports:
            if port_names is not None and port.get("name", "") not in port_names:
                continue
            count += len(addrs)
            for a in addrs:
                if len(shown) == limit:
                    more = True
                    break
                shown.append(join_host_port(str(a.get("ip", "")), port.get("port", 0)))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if more else text


def endpoints_row(ep: Obj, wide: bool, now: datetime) -> list[str]:
    return [name_of(ep), format_endpoints(ep), _created(ep, now)]


# ---- Nodes and namespaces ----------------------------------------------------

_ROLE_PREFIX = "node-role.kubernetes.io/"


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for k, v in (meta(node).get("labels") or {}).items():
        if k.startswith(_ROLE_PREFIX) and k[len(_ROLE_PREFIX):]:
            roles.add(k[len(_ROLE_PREFIX):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    return sorted(roles)


def node_status(node: Obj) -> str:
    """Ready / NotReady / Unknown from the Ready condition, plus SchedulingDisabled."""
    status = []
    for c in get(node, "status", "conditions", default=[]):
        if c.get("type") == "Ready":
            status = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if get(node, "spec", "unschedulable"):
        status.append("SchedulingDisabled")
    return ",".join(status)


def _node_address(node: Obj, kind: str) -> str:
    for a in get(node, "status", "addresses", default=[]):
        if a.get("type") == kind:
            return str(a.get("address", ""))
    return NONE


def node_row(node: Obj, wide: bool, now: datetime) -> list[str]:
    info = get(node, "status", "nodeInfo", default={})
    row = [name_of(node), node_status(node), ",".join(node_roles(node)) or NONE,
           _created(node, now), str(info.get("kubeletVersion", ""))]
    if wide:
        row += [_node_address(node, "InternalIP"), _node_address(node, "ExternalIP")]
        row += [info.get(k) or "<unknown>"
                for k in ("osImage", "kernelVersion", "containerRuntimeVersion")]
    return row


def namespace_row(ns: Obj, wide: bool, now: datetime) -> list[str]:
    return [name_of(ns), str(get(ns, "status", "phase", default="")), _created(ns, now)]


# ---- Config, storage, events, leases -----------------------------------------

def configmap_row(cm: Obj, wide: bool, now: datetime) -> list[str]:
    n = len(cm.get("data") or {}) + len(cm.get("binaryData") or {})
    return [name_of(cm), str(n), _created(cm, now)]


def secret_row(s: Obj, wide: bool, now: datetime) -> list[str]:
    return [name_of(s), str(s.get("type", "")), str(len(s.get("data") or {})), _created(s, now)]


def _phase(obj: Obj) -> str:
    if meta(obj).get("deletionTimestamp"):
        return "Terminating"
    return str(get(obj, "status", "phase", default=""))


def pv_row(pv: Obj, wide: bool, now: datetime) -> list[str]:
    spec = pv.get("spec") or {}
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    row = [name_of(pv), str(get(spec, "capacity", "storage", default="0")),
           access_modes(spec.get("accessModes")),
           str(spec.get("persistentVolumeReclaimPolicy", "")), _phase(pv), claim,
           storage_class(pv), spec.get("volumeAttributesClassName") or "<unset>",
           str(get(pv, "status", "reason", default="")), _created(pv, now)]
    if wide:
        row.append(spec.get("volumeMode") or "<unset>")
    return row


def pvc_row(pvc: Obj, wide: bool, now: datetime) -> list[str]:
    spec = pvc.get("spec") or {}
    volume = str(spec.get("volumeName", ""))
    capacity = modes = ""
    if volume:
        modes = access_modes(get(pvc, "status", "accessModes"))
        capacity = str(get(pvc, "status", "capacity", "storage", default="0"))
    row = [name_of(pvc), _phase(pvc), volume, capacity, modes, storage_class(pvc),
           spec.get("volumeAttributesClassName") or "<unset>", _created(pvc, now)]
    if wide:
        row.append(spec.get("volumeMode") or "<unset>")
    return row


def event_source(ev: Obj) -> str:
    component = get(ev, "source", "component") or ev.get("reportingComponent") or ""
    host = get(ev, "source", "host") or ev.get("reportingInstance") or ""
    return f"{component}, {host}" if host else str(component)


def event_times(ev: Obj, now: datetime) -> tuple[str, str, int]:
    """(last seen, first seen, count) with the fallbacks between the old and new event APIs."""
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = age(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if series is not None:
        last = age(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1  # singleton events carry no count in the new API
    return last, first, count


def event_row(ev: Obj, wide: bool, now: datetime) -> list[str]:
    last, first, count = event_times(ev, now)
    inv = ev.get("involvedObject") or {}
    kind = str(inv.get("kind", "")).lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    message = str(ev.get("message", "")).strip()
    if not wide:
        return [last, str(ev.get("type", "")), str(ev.get("reason", "")), target, message]
    return [last, str(ev.get("type", "")), str(ev.get("reason", "")), target,
            str(inv.get("fieldPath", "")), event_source(ev), message, first, str(count),
            name_of(ev)]


def lease_row(lease: Obj, wide: bool, now: datetime) -> list[str]:
    return [name_of(lease), str(get(lease, "spec", "holderIdentity", default="")),
            _created(lease, now)]


def controllerrevision_row(cr: Obj, wide: bool, now: datetime) -> list[str]:
    ref = controller_ref(cr)
    controller = NONE
    if ref is not None:
        api_version = str(ref.get("apiVersion", ""))
        group = api_version.split("/")[0] if "/" in api_version else ""
        kind = str(ref.get("kind", ""))
        gk = f"{kind}.{group}" if group else kind
        controller = f"{gk.lower()}/{ref.get('name', '')}" if gk else str(ref.get("name", ""))
    return [name_of(cr), controller, str(cr.get("revision", 0)), _created(cr, now)]


# ---- HorizontalPodAutoscaler -------------------------------------------------

def _metric_target(kind: str, spec: Obj, status: Obj | None) -> str:
    """One metric of the TARGETS cell: "cpu: 85%/50%", "100Mi/200Mi (avg)", ..."""
    key = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}[kind]
    src, cur = spec.get(key) or {}, (status or {}).get(key)
    target = src.get("target") or {}
    current = (cur or {}).get("current") or {}
    unknown = "<unknown>"
    if kind == "Pods":
        return f"{current.get('averageValue', unknown) if cur else unknown}/" \
               f"{target.get('averageValue', '')}"
    if kind in ("Object", "External"):
        if target.get("averageValue") is not None:
            now_value = current.get("averageValue", unknown) if cur else unknown
            return f"{now_value}/{target['averageValue']} (avg)"
        return f"{current.get('value', unknown) if cur else unknown}/{target.get('value', '')}"
    name = src.get("name", "")
    if target.get("averageValue") is not None:
        return f"{name}: {current.get('averageValue', unknown) if cur else unknown}/" \
               f"{target['averageValue']}"
    util = current.get("averageUtilization")
    now_pct = f"{util}%" if cur and util is not None else unknown
    want = target.get("averageUtilization")
    return f"{name}: {now_pct}/{'<auto>' if want is None else f'{want}%'}"


def hpa_targets(hpa: Obj) -> str:
    """formatHPAMetrics: the first two metrics joined by ", ", then "+ N more..."."""
    specs = get(hpa, "spec", "metrics", default=[])
    if not specs:
        return NONE
    statuses = get(hpa, "status", "currentMetrics", default=[])
    shown = []
    for i, spec in enumerate(specs):
        kind = str(spec.get("type", ""))
        if kind not in ("Resource", "ContainerResource", "Pods", "Object", "External"):
            shown.append("<unknown type>")
            continue
        shown.append(_metric_target(kind, spec, statuses[i] if i < len(statuses) else None))
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def hpa_row(hpa: Obj, wide: bool, now: datetime) -> list[str]:
    spec = hpa.get("spec") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [name_of(hpa), f"{ref.get('kind', '')}/{ref.get('name', '')}", hpa_targets(hpa),
            "<unset>" if min_pods is None else str(min_pods), str(spec.get("maxReplicas", 0)),
            str(get(hpa, "status", "currentReplicas", default=0)), _created(hpa, now)]


def generic_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    return [name_of(obj), _created(obj, now)]


_PV = ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
       "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
_PVC = ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
        "VOLUMEATTRIBUTESCLASS", "AGE"]
_EVENT = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]

COLUMNS: dict[str, Columns] = {
    "Service": Columns(["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                       ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                        "SELECTOR"], service_row),
    "Endpoints": Columns(["NAME", "ENDPOINTS", "AGE"], ["NAME", "ENDPOINTS", "AGE"],
                         endpoints_row),
    "Node": Columns(["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                    ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                     "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"], node_row),
    "Namespace": Columns(["NAME", "STATUS", "AGE"], ["NAME", "STATUS", "AGE"], namespace_row),
    "ConfigMap": Columns(["NAME", "DATA", "AGE"], ["NAME", "DATA", "AGE"], configmap_row),
    "Secret": Columns(["NAME", "TYPE", "DATA", "AGE"], ["NAME", "TYPE", "DATA", "AGE"],
                      secret_row),
    "Event": Columns(_EVENT, ["LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                              "MESSAGE", "FIRST SEEN", "COUNT", "NAME"], event_row),
    "PersistentVolume": Columns(_PV, [*_PV, "VOLUMEMODE"], pv_row),
    "PersistentVolumeClaim": Columns(_PVC, [*_PVC, "VOLUMEMODE"], pvc_row),
    "Lease": Columns(["NAME", "HOLDER", "AGE"], ["NAME", "HOLDER", "AGE"], lease_row),
    "ControllerRevision": Columns(["NAME", "CONTROLLER", "REVISION", "AGE"],
                                  ["NAME", "CONTROLLER", "REVISION", "AGE"],
                                  controllerrevision_row),
    "HorizontalPodAutoscaler": Columns(
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"],
        ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"], hpa_row),
}
for _kind, (_cols, _extra, _row) in WORKLOAD_COLUMNS.items():
    COLUMNS[_kind] = Columns(_cols, _cols + _extra, _row)

GENERIC = Columns(["NAME", "AGE"], ["NAME", "AGE"], generic_row)


def columns_for(kind_name: str) -> Columns:
    """The printer of a kind, by Kind name ("Pod") or anything `kubelite get` accepts ("po")."""
    if kind_name in COLUMNS:
        return COLUMNS[kind_name]
    try:
        return COLUMNS.get(kinds.by_resource(kind_name).kind, GENERIC)
    except kinds.UnknownKind:
        return GENERIC


def table(kind_name: str, objs: list[Obj], *, wide: bool = False, with_namespace: bool = False,
          show_labels: bool = False, no_headers: bool = False, now: datetime) -> str:
    """The text of `kubectl get` for objects of one kind; "" for an empty list.

    Every line, the header included, ends with a newline.
    """
    if not objs:
        return ""
    cols = columns_for(kind_name)
    headers = list(cols.wide if wide else cols.headers)
    if with_namespace:
        headers.insert(0, "NAMESPACE")
    if show_labels:
        headers.append("LABELS")
    rows = [] if no_headers else [headers]
    for obj in objs:
        cells = cols.row(obj, wide, now)
        if with_namespace:
            cells.insert(0, str(meta(obj).get("namespace", "")))
        if show_labels:
            cells.append(format_labels(meta(obj).get("labels")))
        rows.append(cells)
    return printers_tabwriter.table(rows)


def kind_group(kind: kinds.Kind) -> str:
    """What -o name prefixes a name with: "pod", "deployment.apps"."""
    return f"{kind.singular}.{kind.group}" if kind.group else kind.singular


def name_line(kind_resource_group: str | kinds.Kind, obj: Obj) -> str:
    """One line of -o name, "deployment.apps/web" (no newline).

    Pass the Kind, or its lower-case "kind.group" string ("pod", "deployment.apps").
    """
    prefix = (kind_group(kind_resource_group) if isinstance(kind_resource_group, kinds.Kind)
              else kind_resource_group.lower())
    return f"{prefix}/{name_of(obj)}"
