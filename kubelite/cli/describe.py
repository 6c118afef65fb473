"""kubectl describe: one object (a dict, as convert.to_dict returns it) as text.

`describe(kind, obj, events, now=...)` picks the kind's describer; each
writes kubectl's sections in kubectl's order (kubectl/pkg/describe) through
the tab-aligning Writer, and ends with the events table. Kinds without a
describer of their own get kubectl's generic one: Name, Namespace, Labels,
Annotations, then every other field as "Smart Label:\\tvalue" lines, nested
by indentation.

Some kubectl sections come from other objects; pass them when you have them:
`pods` (Pods Status counts of a controller, a node's pod table, a claim's
Used By), `endpoints` (a Service's Endpoints lines), `replica_sets` (a
Deployment's Old/NewReplicaSet), `lease` (a Node's Lease). Without them
those lines are estimated or left out, as each describer says.

Like kubectl, Secret and Namespace print no events and Secret never prints
a value, only its size.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from kubelite.cli import describe_cluster, describe_pods, describe_workloads
from kubelite.cli.age import age, rfc1123z
from kubelite.cli.describe_writer import (
    Writer,
    annotations_multiline,
    events_section,
    labels_multiline,
)
from kubelite.cli.printers import format_endpoints
from kubelite.cli.printers_format import (
    NONE,
    Obj,
    access_modes,
    format_labels,
    get,
    meta,
    storage_class,
)
from kubelite.objects import kinds


def _name_ns(w: Writer, obj: Obj) -> None:
    w.write(0, f"Name:\t{meta(obj).get('name', '')}\n")
    w.write(0, f"Namespace:\t{meta(obj).get('namespace', '')}\n")


def _labels_annotations(w: Writer, obj: Obj) -> None:
    labels_multiline(w, "Labels", meta(obj).get("labels"))
    annotations_multiline(w, "Annotations", meta(obj).get("annotations"))


# ---- Service and Endpoints ---------------------------------------------------

def describe_service(svc: Obj, events: list[Obj], now: datetime,
                     endpoints: Obj | None = None) -> str:
    w = Writer()
    spec = svc.get("spec") or {}
    _name_ns(w, svc)
    _labels_annotations(w, svc)
    w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    w.write(0, f"Type:\t{spec.get('type') or 'ClusterIP'}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    w.write(0, f"IP Families:\t{','.join(spec.get('ipFamilies') or []) or NONE}\n")
    w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
    w.write(0, f"IPs:\t{','.join(spec.get('clusterIPs') or []) or NONE}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    if spec.get("loadBalancerIP"):
        w.write(0, f"Desired LoadBalancer IP:\t{spec['loadBalancerIP']}\n")
    if spec.get("externalName"):
        w.write(0, f"External Name:\t{spec['externalName']}\n")
    ingress = get(svc, "status", "loadBalancer", "ingress", default=[])
    if ingress:
        shown = [(f"{i['ip']} ({i['ipMode']})" if i.get("ipMode") else i["ip"]) if i.get("ip")
                 else str(i.get("hostname", "")) for i in ingress]
        w.write(0, f"LoadBalancer Ingress:\t{', '.join(shown)}\n")
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        proto = p.get("protocol") or "TCP"
        w.write(0, f"Port:\t{name}\t{p.get('port', 0)}/{proto}\n")
        w.write(0, f"TargetPort:\t{p.get('targetPort', p.get('port', 0))}/{proto}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}\t{p['nodePort']}/{proto}\n")
        eps = NONE if endpoints is None else format_endpoints(endpoints, {p.get("name", "")})
        w.write(0, f"Endpoints:\t{eps}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("healthCheckNodePort"):
        w.write(0, f"HealthCheck NodePort:\t{spec['healthCheckNodePort']}\n")
    if spec.get("loadBalancerSourceRanges"):
        w.write(0, f"LoadBalancer Source Ranges:\t{','.join(spec['loadBalancerSourceRanges'])}\n")
    events_section(w, events, now)
    return w.text()


def describe_endpoints(ep: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    _name_ns(w, ep)
    _labels_annotations(w, ep)
    w.write(0, "Subsets:\n")
    for ss in ep.get("subsets") or []:
        for title, key in (("Addresses", "addresses"), ("NotReadyAddresses", "notReadyAddresses")):
            ips = ",".join(str(a.get("ip", "")) for a in ss.get(key) or [])
            w.write(1, f"{title}:\t{ips or NONE}\n")
        ports = ss.get("ports") or []
        if ports:
            w.write(1, "Ports:\n")
            w.write(2, "Name\tPort\tProtocol\n")
            w.write(2, "----\t----\t--------\n")
            for p in ports:
                w.write(2, f"{p.get('name') or '<unset>'}\t{p.get('port', 0)}\t"
                           f"{p.get('protocol') or 'TCP'}\n")
        w.write(0, "\n")
    events_section(w, events, now)
    return w.text()


# ---- Namespace, ConfigMap, Secret --------------------------------------------

def describe_namespace(ns: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    w.write(0, f"Name:\t{meta(ns).get('name', '')}\n")
    _labels_annotations(w, ns)
    w.write(0, f"Status:\t{get(ns, 'status', 'phase', default='')}\n")
    conds = get(ns, "status", "conditions", default=[])
    if conds:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t------------------\t------\t-------\n")
        for c in conds:
            w.write(1, f"{c.get('type', '')}\t{c.get('status', '')}\t"
                       f"{rfc1123z(c.get('lastTransitionTime'))}\t{c.get('reason', '')}\t"
                       f"{c.get('message', '')}\n")
    # kubelite serves no ResourceQuota or LimitRange objects.
    w.write(0, "\nNo resource quota.\n")
    w.write(0, "\nNo LimitRange resource.\n")
    return w.text()


def _decoded_size(value: Any) -> int:
    """Bytes of a data value, which to_dict renders as base64 text."""
    if isinstance(value, bytes):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value).encode())


def describe_config_map(cm: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    _name_ns(w, cm)
    _labels_annotations(w, cm)
    w.write(0, "\nData\n====\n")
    data = cm.get("data") or {}
    for key in sorted(data):
        w.write(0, f"{key}:\n----\n")
        w.write(0, f"{data[key]}\n")
        w.write(0, "\n")
    w.write(0, "\nBinaryData\n====\n")
    binary = cm.get("binaryData") or {}
    for key in sorted(binary):
        w.write(0, f"{key}: {_decoded_size(binary[key])} bytes\n")
    w.write(0, "\n")
    events_section(w, events, now)
    return w.text()


def describe_secret(secret: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    _name_ns(w, secret)
    _labels_annotations(w, secret)
    w.write(0, f"\nType:\t{secret.get('type', '')}\n")
    w.write(0, "\nData\n====\n")
    data = secret.get("data") or {}
    for key in sorted(data):
        w.write(0, f"{key}:\t{_decoded_size(data[key])} bytes\n")
    return w.text()


# ---- Storage -----------------------------------------------------------------

def _finalizers(obj: Obj) -> str:
    return "[" + " ".join(meta(obj).get("finalizers") or []) + "]"


def _status_or_terminating(obj: Obj, now: datetime) -> str:
    deleted = meta(obj).get("deletionTimestamp")
    if deleted:
        return f"Terminating (lasts {age(deleted, now)})"
    return str(get(obj, "status", "phase", default=""))


def _pv_source(w: Writer, spec: Obj) -> None:
    if "hostPath" in spec:
        h = spec["hostPath"]
        w.write(2, f"Type:\tHostPath (bare host directory volume)\n    Path:\t{h.get('path', '')}\n"
                   f"    HostPathType:\t{h.get('type') or NONE}\n")
    elif "local" in spec:
        w.write(2, "Type:\tLocalVolume (a persistent volume backed by local storage on a node)\n"
                   f"    Path:\t{spec['local'].get('path', '')}\n")
    elif "nfs" in spec:
        n = spec["nfs"]
        w.write(2, "Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n"
                   f"    Server:\t{n.get('server', '')}\n    Path:\t{n.get('path', '')}\n"
                   f"    ReadOnly:\t{'true' if n.get('readOnly') else 'false'}\n")


def _node_affinity(w: Writer, affinity: Obj | None) -> None:
    w.write(0, "Node Affinity:\t")
    terms = get(affinity, "required", "nodeSelectorTerms")
    if affinity is None or affinity.get("required") is None:
        w.line(NONE)
        return
    w.line("")
    w.write(1, "Required Terms:\t")
    if not terms:
        w.line(NONE)
        return
    w.line("")
    for i, term in enumerate(terms):
        w.write(2, f"Term {i}:\t")
        exprs = term.get("matchExpressions") or []
        if not exprs:
            w.line(NONE)
        for j, e in enumerate(exprs):
            if j:
                w.write(2, "\t")
            text = f"{e.get('key', '')} {str(e.get('operator', '')).lower()}"
            if e.get("values"):
                text += f" [{', '.join(e['values'])}]"
            w.write(0, text + "\n")


def describe_pv(pv: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    spec = pv.get("spec") or {}
    w.write(0, f"Name:\t{meta(pv).get('name', '')}\n")
    _labels_annotations(w, pv)
    w.write(0, f"Finalizers:\t{_finalizers(pv)}\n")
    w.write(0, f"StorageClass:\t{storage_class(pv)}\n")
    w.write(0, f"Status:\t{_status_or_terminating(pv, now)}\n")
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
    w.write(0, f"Claim:\t{claim}\n")
    w.write(0, f"Reclaim Policy:\t{spec.get('persistentVolumeReclaimPolicy', '')}\n")
    w.write(0, f"Access Modes:\t{access_modes(spec.get('accessModes'))}\n")
    if spec.get("volumeMode"):
        w.write(0, f"VolumeMode:\t{spec['volumeMode']}\n")
    w.write(0, f"Capacity:\t{get(spec, 'capacity', 'storage', default='0')}\n")
    _node_affinity(w, spec.get("nodeAffinity"))
    w.write(0, f"Message:\t{get(pv, 'status', 'message', default='')}\n")
    w.write(0, "Source:\n")
    _pv_source(w, spec)
    events_section(w, events, now)
    return w.text()


def _uses_claim(pod: Obj, claim: str) -> bool:
    return any(get(v, "persistentVolumeClaim", "claimName") == claim
               for v in get(pod, "spec", "volumes", default=[]))


def describe_pvc(pvc: Obj, events: list[Obj], now: datetime,
                 pods: list[Obj] | None = None) -> str:
    w = Writer()
    spec = pvc.get("spec") or {}
    _name_ns(w, pvc)
    w.write(0, f"StorageClass:\t{storage_class(pvc)}\n")
    w.write(0, f"Status:\t{_status_or_terminating(pvc, now)}\n")
    w.write(0, f"Volume:\t{spec.get('volumeName', '')}\n")
    _labels_annotations(w, pvc)
    w.write(0, f"Finalizers:\t{_finalizers(pvc)}\n")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes(get(pvc, "status", "accessModes"))
        capacity = str(get(pvc, "status", "capacity", "storage", default="0"))
    w.write(0, f"Capacity:\t{capacity}\n")
    w.write(0, f"Access Modes:\t{modes}\n")
    if spec.get("volumeMode"):
        w.write(0, f"VolumeMode:\t{spec['volumeMode']}\n")
    users = sorted(meta(p).get("name", "") for p in pods or []
                   if meta(p).get("namespace") == meta(pvc).get("namespace")
                   and _uses_claim(p, meta(pvc).get("name", "")))
    _used_by(w, users)
    events_section(w, events, now)
    return w.text()


def _used_by(w: Writer, names: list[str]) -> None:
    w.write(0, "Used By:\t")
    if not names:
        w.line(NONE)
    for i, n in enumerate(names):
        w.write(0, ("\t" if i else "") + n + "\n")


# ---- Generic -----------------------------------------------------------------

_ACRONYMS = {"API", "URL", "UID", "OSB", "GUID"}


def _camel_split(field: str) -> list[str]:
    """fatih/camelcase.Split: runs of one character class, "PDFLoader" -> PDF, Loader."""
    def cls(ch: str) -> int:
        return 1 if ch.islower() else 2 if ch.isupper() else 3 if ch.isdigit() else 4

    runs: list[list[str]] = []
    for ch in field:
        if runs and cls(runs[-1][0]) == cls(ch):
            runs[-1].append(ch)
        else:
            runs.append([ch])
    for i in range(len(runs) - 1):
        if runs[i] and runs[i + 1] and cls(runs[i][0]) == 2 and cls(runs[i + 1][0]) == 1:
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(r) for r in runs if r]


def smart_label(field: str) -> str:
    """"creationTimestamp" -> "Creation Timestamp", "apiVersion" -> "API Version"."""
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    parts = []
    for part in _camel_split(field):
        if part == "_":
            continue
        parts.append(part.upper() if part.upper() in _ACRONYMS else part[:1].upper() + part[1:])
    return " ".join(parts)


_GENERIC_SKIP = {".metadata.managedFields", ".metadata.name", ".metadata.namespace",
                 ".metadata.labels", ".metadata.annotations"}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unstructured(w: Writer, level: int, content: Obj, prefix: str) -> None:
    for field in sorted(content):
        value, path = content[field], f"{prefix}.{field}"
        if path in _GENERIC_SKIP:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(field)}:\n")
            _unstructured(w, level + 1, value, path)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(field)}:\n")
            for child in value:
                if isinstance(child, dict):
                    _unstructured(w, level + 1, child, path)
                else:
                    w.write(level + 1, f"{_scalar(child)}\n")
        else:
            w.write(level, f"{smart_label(field)}:\t{_scalar(value)}\n")


def describe_generic(obj: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    _name_ns(w, obj)
    _labels_annotations(w, obj)
    _unstructured(w, 0, obj, "")
    events_section(w, events, now)
    return w.text()


def describe(kind_name: str, obj: Obj, events: list[Obj], *, now: datetime,
             pods: list[Obj] | None = None, endpoints: Obj | None = None,
             replica_sets: list[Obj] | None = None, lease: Obj | None = None) -> str:
    """The text of `kubectl describe` for one object (kind by Kind name or any alias)."""
    kind = kind_name
    if kind not in _SIMPLE and kind not in _RELATED:
        try:
            kind = kinds.by_resource(kind_name).kind
        except kinds.UnknownKind:
            kind = kind_name
    if kind == "Service":
        return describe_service(obj, events, now, endpoints)
    if kind == "Deployment":
        return describe_workloads.describe_deployment(obj, events, now, replica_sets)
    if kind in ("ReplicaSet", "ReplicationController"):
        return describe_workloads.describe_replica_set(
            obj, events, now, pods, rc=kind == "ReplicationController")
    if kind == "StatefulSet":
        return describe_workloads.describe_stateful_set(obj, events, now, pods)
    if kind == "DaemonSet":
        return describe_workloads.describe_daemon_set(obj, events, now, pods)
    if kind == "Node":
        return describe_cluster.describe_node(obj, events, now, pods, lease)
    if kind == "PersistentVolumeClaim":
        return describe_pvc(obj, events, now, pods)
    return _SIMPLE.get(kind, describe_generic)(obj, events, now)


_SIMPLE = {
    "Pod": describe_pods.describe_pod,
    "Job": describe_workloads.describe_job,
    "CronJob": describe_workloads.describe_cron_job,
    "HorizontalPodAutoscaler": describe_cluster.describe_hpa,
    "Endpoints": describe_endpoints,
    "Namespace": describe_namespace,
    "ConfigMap": describe_config_map,
    "Secret": describe_secret,
    "PersistentVolume": describe_pv,
}
_RELATED = {"Service", "Deployment", "ReplicaSet", "ReplicationController", "StatefulSet",
            "DaemonSet", "Node", "PersistentVolumeClaim"}
