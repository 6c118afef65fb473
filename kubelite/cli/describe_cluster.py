"""describe for Nodes and HorizontalPodAutoscalers.

Node describe can add kubectl's "Non-terminated Pods" and "Allocated
resources" tables when it is given the pods; the sums follow
PodRequestsAndLimits: per pod, the larger of the app containers' sum and
the biggest init container, for each resource. For example a pod with two
containers requesting 100m and 250m cpu and an init container requesting
500m reserves 500m, because the init container runs alone first.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from kubelite.cli.age import age, rfc1123z
from kubelite.cli.describe_writer import (
    Writer,
    annotations_multiline,
    events_section,
    labels_multiline,
    taints_multiline,
)
from kubelite.cli.printers import node_roles
from kubelite.cli.printers_format import Obj, get, meta
from kubelite.objects import quantity


def _pod_totals(pod: Obj) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    spec = pod.get("spec") or {}
    reqs: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for where, acc in (("requests", reqs), ("limits", limits)):
            for k, v in (get(c, "resources", where, default={})).items():
                acc[k] = acc.get(k, Decimal(0)) + quantity.parse(str(v))
    for c in spec.get("initContainers") or []:
        for where, acc in (("requests", reqs), ("limits", limits)):
            for k, v in (get(c, "resources", where, default={})).items():
                acc[k] = max(acc.get(k, Decimal(0)), quantity.parse(str(v)))
    for k, v in (spec.get("overhead") or {}).items():
        for acc in (reqs, limits):
            if k in acc:
                acc[k] += quantity.parse(str(v))
    return reqs, limits


def _fmt(resource: str, value: Decimal) -> str:
    if resource == "cpu":
        millis = (value * 1000).to_integral_value(rounding="ROUND_CEILING")
        return quantity.format_milli(int(millis))
    n = int(value.to_integral_value(rounding="ROUND_CEILING"))
    return quantity.format_bytes(n) if n else "0"


def _pct(value: Decimal, total: Decimal) -> int:
    return int(value / total * 100) if total else 0


def _node_pods(w: Writer, node: Obj, pods: list[Obj], now: datetime) -> None:
    name = meta(node).get("name")
    running = [p for p in pods if get(p, "spec", "nodeName") == name
               and get(p, "status", "phase") not in ("Succeeded", "Failed")]
    alloc_src = get(node, "status", "allocatable") or get(node, "status", "capacity", default={})
    alloc = {k: quantity.parse(str(v)) for k, v in alloc_src.items()}
    w.write(0, f"Non-terminated Pods:\t({len(running)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    total_req: dict[str, Decimal] = {}
    total_lim: dict[str, Decimal] = {}
    for p in running:
        req, lim = _pod_totals(p)
        for k, v in req.items():
            total_req[k] = total_req.get(k, Decimal(0)) + v
        for k, v in lim.items():
            total_lim[k] = total_lim.get(k, Decimal(0)) + v
        cells = []
        for src, res in ((req, "cpu"), (lim, "cpu"), (req, "memory"), (lim, "memory")):
            v = src.get(res, Decimal(0))
            cells.append(f"{_fmt(res, v)} ({_pct(v, alloc.get(res, Decimal(0)))}%)")
        w.write(1, f"{meta(p).get('namespace', '')}\t{meta(p).get('name', '')}\t\t"
                   + "\t".join(cells) + f"\t{age(meta(p).get('creationTimestamp'), now)}\n")
    w.write(0, "Allocated resources:\n"
               "  (Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    for res in ("cpu", "memory", "ephemeral-storage"):
        r, lt = total_req.get(res, Decimal(0)), total_lim.get(res, Decimal(0))
        a = alloc.get(res, Decimal(0))
        w.write(1, f"{res}\t{_fmt(res, r)} ({_pct(r, a)}%)\t{_fmt(res, lt)} ({_pct(lt, a)}%)\n")


def _lease(w: Writer, lease: Obj) -> None:
    spec = lease.get("spec") or {}
    w.write(0, "Lease:\n")
    w.write(1, f"HolderIdentity:\t{spec.get('holderIdentity') or '<unset>'}\n")
    for label, key in (("AcquireTime", "acquireTime"), ("RenewTime", "renewTime")):
        w.write(1, f"{label}:\t{rfc1123z(spec[key]) if spec.get(key) else '<unset>'}\n")


def describe_node(node: Obj, events: list[Obj], now: datetime, pods: list[Obj] | None = None,
                  lease: Obj | None = None) -> str:
    w = Writer()
    m, spec, st = meta(node), node.get("spec") or {}, node.get("status") or {}
    w.write(0, f"Name:\t{m.get('name', '')}\n")
    w.write(0, f"Roles:\t{','.join(node_roles(node)) or '<none>'}\n")
    labels_multiline(w, "Labels", m.get("labels"))
    annotations_multiline(w, "Annotations", m.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(m.get('creationTimestamp'))}\n")
    taints_multiline(w, "Taints", spec.get("taints"))
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    if lease is not None:
        _lease(w, lease)
    conds = st.get("conditions") or []
    if conds:
        w.write(0, "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\t"
                   "Reason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conds:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \t"
                       f"{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t"
                       f"{c.get('message', '')}\n")
    w.write(0, "Addresses:\n")
    for a in st.get("addresses") or []:
        w.write(1, f"{a.get('type', '')}:\t{a.get('address', '')}\n")
    for title, key in (("Capacity", "capacity"), ("Allocatable", "allocatable")):
        values = st.get(key) or {}
        if values:
            w.write(0, f"{title}:\n")
            for res in sorted(values):
                w.write(0, f"  {res}:\t{values[res]}\n")
    info = st.get("nodeInfo") or {}
    w.write(0, "System Info:\n")
    for label, key in (("Machine ID", "machineID"), ("System UUID", "systemUUID"),
                       ("Boot ID", "bootID"), ("Kernel Version", "kernelVersion"),
                       ("OS Image", "osImage"), ("Operating System", "operatingSystem"),
                       ("Architecture", "architecture"),
                       ("Container Runtime Version", "containerRuntimeVersion"),
                       ("Kubelet Version", "kubeletVersion"),
                       ("Kube-Proxy Version", "kubeProxyVersion")):
        w.write(0, f"  {label}:\t{info.get(key, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
    if spec.get("podCIDRs"):
        w.write(0, f"PodCIDRs:\t{','.join(spec['podCIDRs'])}\n")
    if spec.get("providerID"):
        w.write(0, f"ProviderID:\t{spec['providerID']}\n")
    if pods is not None:
        _node_pods(w, node, pods, now)
    events_section(w, events, now)
    return w.text()


def _current(status: Obj | None, key: str) -> Obj | None:
    if status is None or status.get(key) is None:
        return None
    current: Obj = status[key].get("current") or {}
    return current


def _metric_line(w: Writer, metric: Obj, status: Obj | None) -> None:
    kind = metric.get("type", "")
    unknown = "<unknown>"
    if kind == "External":
        src = metric.get("external") or {}
        target, cur = src.get("target") or {}, _current(status, "external")
        name = get(src, "metric", "name", default="")
        if target.get("averageValue") is not None:
            now_v = cur.get("averageValue", unknown) if cur is not None else unknown
            w.write(1, f'"{name}" (target average value):\t{now_v} / {target["averageValue"]}\n')
        else:
            now_v = cur.get("value", unknown) if cur is not None else unknown
            w.write(1, f'"{name}" (target value):\t{now_v} / {target.get("value", "")}\n')
    elif kind == "Pods":
        src = metric.get("pods") or {}
        cur = _current(status, "pods")
        now_v = cur.get("averageValue", unknown) if cur is not None else unknown
        w.write(1, f'"{get(src, "metric", "name", default="")}" on pods:\t{now_v} / '
                   f'{get(src, "target", "averageValue", default="")}\n')
    elif kind == "Object":
        src = metric.get("object") or {}
        obj = src.get("describedObject") or {}
        w.write(1, f'"{get(src, "metric", "name", default="")}" on '
                   f'{obj.get("kind", "")}/{obj.get("name", "")} ')
        target, cur = src.get("target") or {}, _current(status, "object")
        field = "averageValue" if target.get("type") == "AverageValue" else "value"
        now_v = cur.get(field, unknown) if cur is not None else unknown
        label = "target average value" if field == "averageValue" else "target value"
        w.write(0, f"({label}):\t{now_v} / {target.get(field, '')}\n")
    elif kind in ("Resource", "ContainerResource"):
        key = "resource" if kind == "Resource" else "containerResource"
        src = metric.get(key) or {}
        if kind == "Resource":
            w.write(1, f"resource {src.get('name', '')} on pods")
        else:
            w.write(1, f'resource {src.get("name", "")} of container "{src.get("container", "")}" '
                       "on pods")
        target, cur = src.get("target") or {}, _current(status, key)
        if target.get("averageValue") is not None:
            now_v = cur.get("averageValue", unknown) if cur is not None else unknown
            w.write(0, f":\t{now_v} / {target['averageValue']}\n")
        else:
            now_v = unknown
            if cur is not None and cur.get("averageUtilization") is not None:
                now_v = f"{cur['averageUtilization']}% ({cur.get('averageValue', '<nil>')})"
            want = target.get("averageUtilization")
            w.write(1, f"(as a percentage of request):\t{now_v} / "
                       f"{'<auto>' if want is None else f'{want}%'}\n")
    else:
        w.write(1, f'<unknown metric type "{kind}">\n')


def _behavior(w: Writer, direction: str, rules: Obj | None) -> None:
    if rules is None:
        return
    w.write(1, f"{direction}:\n")
    if rules.get("stabilizationWindowSeconds") is not None:
        w.write(2, f"Stabilization Window: {rules['stabilizationWindowSeconds']} seconds\n")
    policies = rules.get("policies") or []
    if policies:
        w.write(2, f"Select Policy: {rules.get('selectPolicy') or 'Max'}\n")
        w.write(2, "Policies:\n")
        for p in policies:
            w.write(3, f"- Type: {p.get('type', '')}\tValue: {p.get('value', 0)}\t"
                       f"Period: {p.get('periodSeconds', 0)} seconds\n")


def describe_hpa(hpa: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    m, spec, st = meta(hpa), hpa.get("spec") or {}, hpa.get("status") or {}
    w.write(0, f"Name:\t{m.get('name', '')}\n")
    w.write(0, f"Namespace:\t{m.get('namespace', '')}\n")
    labels_multiline(w, "Labels", m.get("labels"))
    annotations_multiline(w, "Annotations", m.get("annotations"))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(m.get('creationTimestamp'))}\n")
    ref = spec.get("scaleTargetRef") or {}
    w.write(0, f"Reference:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")
    w.write(0, "Metrics:\t( current / target )\n")
    statuses = st.get("currentMetrics") or []
    for i, metric in enumerate(spec.get("metrics") or []):
        _metric_line(w, metric, statuses[i] if i < len(statuses) else None)
    min_r = spec.get("minReplicas")
    w.write(0, f"Min replicas:\t{'<unset>' if min_r is None else min_r}\n")
    w.write(0, f"Max replicas:\t{spec.get('maxReplicas', 0)}\n")
    behavior = spec.get("behavior")
    if behavior is not None:
        w.write(0, "Behavior:\n")
        _behavior(w, "Scale Up", behavior.get("scaleUp"))
        _behavior(w, "Scale Down", behavior.get("scaleDown"))
    w.write(0, f"{ref.get('kind', '')} pods:\t")
    w.write(0, f"{st.get('currentReplicas', 0)} current / {st.get('desiredReplicas', 0)} desired\n")
    conds = st.get("conditions") or []
    if conds:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tReason\tMessage\n")
        w.write(1, "----\t------\t------\t-------\n")
        for c in conds:
            w.write(1, f"{c.get('type', '')}\t{c.get('status', '')}\t{c.get('reason', '')}\t"
                       f"{c.get('message', '')}\n")
    events_section(w, events, now)
    return w.text()
