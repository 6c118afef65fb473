"""describe for pods, and the container / volume / pod template sections that
the workload describers reuse.

Layout follows kubectl/pkg/describe: containers at two-space indent with
their fields at four, a pod template one level deeper with the container
name at three spaces ("   nginx:") because kubectl adds a one-blank
"nameIndent" there.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal

from kubelite.cli.age import age, rfc1123z
from kubelite.cli.describe_writer import (
    Writer,
    annotations_multiline,
    conditions_table,
    events_section,
    labels_multiline,
    tolerations_multiline,
)
from kubelite.cli.printers_format import NONE, Obj, controller_ref, get, meta
from kubelite.objects import quantity

_PROBE_DEFAULTS = {"initialDelaySeconds": 0, "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3}


def describe_probe(probe: Obj) -> str:
    """"http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"."""
    v = {k: probe.get(k, d) for k, d in _PROBE_DEFAULTS.items()}
    attrs = (f"delay={v['initialDelaySeconds']}s timeout={v['timeoutSeconds']}s "
             f"period={v['periodSeconds']}s #success={v['successThreshold']} "
             f"#failure={v['failureThreshold']}")
    if "exec" in probe:
        return f"exec [{' '.join(get(probe, 'exec', 'command', default=[]))}] {attrs}"
    if "httpGet" in probe:
        h = probe["httpGet"]
        scheme = str(h.get("scheme") or "HTTP").lower()
        host, port = str(h.get("host", "")), h.get("port")
        netloc = host
        if port is not None and str(port):
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        path = str(h.get("path", ""))
        if path and not path.startswith("/"):
            path = "/" + path
        return f"http-get {scheme}://{netloc}{path} {attrs}"
    if "tcpSocket" in probe:
        t = probe["tcpSocket"]
        return f"tcp-socket {t.get('host', '')}:{t.get('port', '')} {attrs}"
    if "grpc" in probe:
        g = probe["grpc"]
        return f"grpc <pod>:{g.get('port', 0)} {g.get('service', '')} {attrs}"
    return f"unknown {attrs}"


def _status_lines(w: Writer, title: str, state: Obj) -> None:
    if "running" in state:
        w.write(2, f"{title}:\tRunning\n")
        w.write(3, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif "waiting" in state:
        w.write(2, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(3, f"Reason:\t{state['waiting']['reason']}\n")
    elif "terminated" in state:
        t = state["terminated"]
        w.write(2, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(3, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(3, f"Message:\t{t['message']}\n")
        w.write(3, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal", 0) > 0:
            w.write(3, f"Signal:\t{t['signal']}\n")
        w.write(3, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(3, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(2, f"{title}:\tWaiting\n")


def _resources(w: Writer, res: Obj | None, level: int) -> None:
    for title in ("limits", "requests"):
        values = (res or {}).get(title) or {}
        if values:
            w.write(level, f"{title.capitalize()}:\n")
        for name in sorted(values):
            w.write(level + 1, f"{name}:\t{values[name]}\n")


def _field_value(pod: Obj | None, path: str) -> str:
    """The value an env var's fieldRef points at (metadata.name, status.podIP, ...)."""
    if pod is None:
        return ""
    for prefix in ("metadata.labels['", "metadata.annotations['"):
        if path.startswith(prefix) and path.endswith("']"):
            where = "labels" if "labels" in prefix else "annotations"
            return str((meta(pod).get(where) or {}).get(path[len(prefix):-2], ""))
    return str(get(pod, *path.split("."), default=""))


def _resource_value(ref: Obj, container: Obj) -> str:
    """ExtractContainerResourceValue: limits.cpu in units of the divisor, rounded up."""
    resource = str(ref.get("resource", ""))
    where, _, name = resource.partition(".")
    text = get(container, "resources", where, name)
    divisor = str(ref.get("divisor") or "1")
    try:
        amount = quantity.parse(str(text)) if text is not None else Decimal(0)
        return str(math.ceil(amount / quantity.parse(divisor)))
    except (ValueError, ArithmeticError):
        return ""


def _env(w: Writer, container: Obj, pod: Obj | None) -> None:
    env = container.get("env") or []
    w.write(2, "Environment:" + ("" if env else "\t<none>") + "\n")
    for e in env:
        name, vf = e.get("name", ""), e.get("valueFrom")
        if vf is None:
            for i, s in enumerate(str(e.get("value", "")).split("\n")):
                w.write(3, f"{name}:\t{s}\n" if i == 0 else f"\t{s}\n")
        elif "fieldRef" in vf:
            f = vf["fieldRef"]
            value = _field_value(pod, str(f.get("fieldPath", "")))
            w.write(3, f"{name}:\t{value} ({f.get('apiVersion', 'v1')}:{f.get('fieldPath', '')})\n")
        elif "resourceFieldRef" in vf:
            r = vf["resourceFieldRef"]
            value = _resource_value(r, container)
            if value == "0" and r.get("resource") in ("limits.cpu", "limits.memory"):
                value = "node allocatable"
            w.write(3, f"{name}:\t{value} ({r.get('resource', '')})\n")
        elif "secretKeyRef" in vf or "configMapKeyRef" in vf:
            secret = "secretKeyRef" in vf
            ref = vf["secretKeyRef" if secret else "configMapKeyRef"]
            where = f"in secret '{ref.get('name', '')}'" if secret else \
                f"of config map '{ref.get('name', '')}'"
            w.write(3, f"{name}:\t<set to the key '{ref.get('key', '')}' {where}>\t"
                       f"Optional: {'true' if ref.get('optional') else 'false'}\n")


def _env_from(w: Writer, container: Obj) -> None:
    w.write(2, "Environment Variables from:\n")
    for e in container.get("envFrom") or []:
        kind, ref = ("ConfigMap", e["configMapRef"]) if "configMapRef" in e else \
            ("Secret", e.get("secretRef") or {})
        optional = "true" if ref.get("optional") else "false"
        source = f"{kind} with prefix '{e['prefix']}'" if e.get("prefix") else kind
        w.write(3, f"{ref.get('name', '')}\t{source}\tOptional: {optional}\n")


def _mounts(w: Writer, container: Obj) -> None:
    mounts = container.get("volumeMounts") or []
    w.write(2, "Mounts:" + ("" if mounts else "\t<none>") + "\n")
    for m in sorted(mounts, key=lambda m: str(m.get("mountPath", ""))):
        flags = ["ro" if m.get("readOnly") else "rw"]
        if m.get("subPath"):
            flags.append(f'path="{m["subPath"]}"')
        w.write(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({','.join(flags)})\n")


def _ports(ports: list[Obj], field: str) -> str:
    return ", ".join(f"{p.get(field, 0)}/{p.get('protocol') or 'TCP'}" for p in ports)


def containers_section(w: Writer, title: str, containers: list[Obj], statuses: list[Obj] | None,
                       pod: Obj | None, space: str = "") -> None:
    """The Containers / Init Containers block; statuses are None inside a template."""
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{space}{title}:{'' if containers else ' <none>'}\n")
    for c in containers:
        status = by_name.get(c.get("name")) if statuses is not None else None
        w.write(1, f"{' ' if space else ''}{c.get('name', '')}:\n")
        if status is not None:
            w.write(2, f"Container ID:\t{status.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if status is not None:
            w.write(2, f"Image ID:\t{status.get('imageID', '')}\n")
        ports = c.get("ports") or []
        for label, field in (("Port", "containerPort"), ("Host Port", "hostPort")):
            text = _ports(ports, field)
            if "," in text:
                w.write(2, f"{label}s:\t{text}\n")
            else:
                w.write(2, f"{label}:\t{text or NONE}\n")
        for label, key in (("Command", "command"), ("Args", "args")):
            if c.get(key):
                w.write(2, f"{label}:\n")
                for item in c[key]:
                    for s in str(item).split("\n"):
                        w.write(3, s + "\n")
        if status is not None:
            _status_lines(w, "State", status.get("state") or {})
            if get(status, "lastState", "terminated") is not None:
                _status_lines(w, "Last State", status["lastState"])
            w.write(2, f"Ready:\t{'True' if status.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{status.get('restartCount', 0)}\n")
        _resources(w, c.get("resources"), 2)
        for label, key in (("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"),
                           ("Startup", "startupProbe")):
            if c.get(key) is not None:
                w.write(2, f"{label}:\t{describe_probe(c[key])}\n")
        if c.get("envFrom"):
            _env_from(w, c)
        _env(w, c, pod)
        _mounts(w, c)


def _volume_lines(v: Obj) -> str:
    """The indented "Type: ..." lines of one volume, kubectl's wording."""
    if "hostPath" in v:
        h = v["hostPath"]
        return (f"Type:\tHostPath (bare host directory volume)\n    Path:\t{h.get('path', '')}\n"
                f"    HostPathType:\t{h.get('type') or NONE}\n")
    if "emptyDir" in v:
        e = v["emptyDir"]
        return ("Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n"
                f"    Medium:\t{e.get('medium', '')}\n"
                f"    SizeLimit:\t{e.get('sizeLimit') or '<unset>'}\n")
    if "secret" in v:
        s = v["secret"]
        return ("Type:\tSecret (a volume populated by a Secret)\n"
                f"    SecretName:\t{s.get('secretName', '')}\n"
                f"    Optional:\t{'true' if s.get('optional') else 'false'}\n")
    if "configMap" in v:
        c = v["configMap"]
        return ("Type:\tConfigMap (a volume populated by a ConfigMap)\n"
                f"    Name:\t{c.get('name', '')}\n"
                f"    Optional:\t{'true' if c.get('optional') else 'false'}\n")
    if "persistentVolumeClaim" in v:
        p = v["persistentVolumeClaim"]
        return ("Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same "
                f"namespace)\n    ClaimName:\t{p.get('claimName', '')}\n"
                f"    ReadOnly:\t{'true' if p.get('readOnly') else 'false'}\n")
    if "nfs" in v:
        n = v["nfs"]
        return ("Type:\tNFS (an NFS mount that lasts the lifetime of a pod)\n"
                f"    Server:\t{n.get('server', '')}\n    Path:\t{n.get('path', '')}\n"
                f"    ReadOnly:\t{'true' if n.get('readOnly') else 'false'}\n")
    if "downwardAPI" in v:
        lines = "Type:\tDownwardAPI (a volume populated by information about the pod)\n    Items:\n"
        for item in v["downwardAPI"].get("items") or []:
            ref = item.get("fieldRef") or {}
            res = item.get("resourceFieldRef") or {}
            what = ref.get("fieldPath") or res.get("resource", "")
            lines += f"      {what} -> {item.get('path', '')}\n"
        return lines
    if "projected" in v:
        lines = "Type:\tProjected (a volume that contains injected data from multiple sources)\n"
        for src in v["projected"].get("sources") or []:
            if "secret" in src:
                opt = "true" if src["secret"].get("optional") else "false"
                lines += f"    SecretName:\t{src['secret'].get('name', '')}\n    Optional:\t{opt}\n"
            elif "downwardAPI" in src:
                lines += "    DownwardAPI:\ttrue\n"
            elif "configMap" in src:
                opt = "true" if src["configMap"].get("optional") else "false"
                lines += (f"    ConfigMapName:\t{src['configMap'].get('name', '')}\n"
                          f"    Optional:\t{opt}\n")
            elif "serviceAccountToken" in src:
                secs = src["serviceAccountToken"].get("expirationSeconds", 3600)
                lines += f"    TokenExpirationSeconds:\t{secs}\n"
        return lines
    return "<unknown>\n"


def volumes_section(w: Writer, volumes: list[Obj] | None, space: str = "") -> None:
    if not volumes:
        w.write(0, f"{space}Volumes:\t<none>\n")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in volumes:
        w.write(1, f"{' ' if space else ''}{v.get('name', '')}:\n")
        body = _volume_lines(v)
        w.write(1 if body == "<unknown>\n" else 2, body)


def pod_template_section(w: Writer, template: Obj | None) -> None:
    """DescribePodTemplate: labels, containers and volumes of a controller's template."""
    w.write(0, "Pod Template:\n")
    if template is None:
        w.write(1, "<unset>")
        return
    tmeta, spec = template.get("metadata") or {}, template.get("spec") or {}
    labels_multiline(w, "  Labels", tmeta.get("labels"))
    if tmeta.get("annotations"):
        annotations_multiline(w, "  Annotations", tmeta["annotations"])
    if spec.get("serviceAccountName"):
        w.write(1, f"Service Account:\t{spec['serviceAccountName']}\n")
    if spec.get("initContainers"):
        containers_section(w, "Init Containers", spec["initContainers"], None, None, "  ")
    containers_section(w, "Containers", spec.get("containers") or [], None, None, "  ")
    volumes_section(w, spec.get("volumes"), "  ")
    if spec.get("priorityClassName"):
        w.write(1, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    labels_multiline(w, "  Node-Selectors", spec.get("nodeSelector"))
    tolerations_multiline(w, "  Tolerations", spec.get("tolerations"))


def qos_class(pod: Obj) -> str:
    """status.qosClass, or computed: Guaranteed, Burstable or BestEffort."""
    if get(pod, "status", "qosClass"):
        return str(pod["status"]["qosClass"])
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        res = c.get("resources") or {}
        lim = {k: quantity.parse(str(v)) for k, v in (res.get("limits") or {}).items()
               if k in ("cpu", "memory")}
        # The API server defaults a missing request to its limit.
        req = dict(lim)
        req.update({k: quantity.parse(str(v)) for k, v in (res.get("requests") or {}).items()
                    if k in ("cpu", "memory")})
        for k, q in req.items():
            if q:
                requests[k] = requests.get(k, Decimal(0)) + q
        for k, q in lim.items():
            if q:
                limits[k] = limits.get(k, Decimal(0)) + q
        if not {"cpu", "memory"} <= {k for k, q in lim.items() if q}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(k) == q for k, q in requests.items()) \
            and len(requests) == len(limits):
        return "Guaranteed"
    return "Burstable"


def describe_pod(pod: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    m, spec, st = meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    w.write(0, f"Name:\t{m.get('name', '')}\n")
    w.write(0, f"Namespace:\t{m.get('namespace', '')}\n")
    if spec.get("priority") is not None:
        w.write(0, f"Priority:\t{spec['priority']}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("runtimeClassName"):
        w.write(0, f"Runtime Class Name:\t{spec['runtimeClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.write(0, f"Node:\t{node}/{st.get('hostIP', '')}\n" if node else "Node:\t<none>\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(st['startTime'])}\n")
    labels_multiline(w, "Labels", m.get("labels"))
    annotations_multiline(w, "Annotations", m.get("annotations"))
    if m.get("deletionTimestamp") and st.get("phase") not in ("Failed", "Succeeded"):
        w.write(0, f"Status:\tTerminating (lasts {age(m['deletionTimestamp'], now)})\n")
        w.write(0, f"Termination Grace Period:\t{m.get('deletionGracePeriodSeconds', 30)}s\n")
    else:
        w.write(0, f"Status:\t{st.get('phase', '')}\n")
    if st.get("reason"):
        w.write(0, f"Reason:\t{st['reason']}\n")
    if st.get("message"):
        w.write(0, f"Message:\t{st['message']}\n")
    w.write(0, f"IP:\t{st.get('podIP', '')}\n")
    ips = st.get("podIPs") or []
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    ref = controller_ref(pod)
    if ref is not None:
        w.write(0, f"Controlled By:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")
    if st.get("nominatedNodeName"):
        w.write(0, f"NominatedNodeName:\t{st['nominatedNodeName']}\n")
    if spec.get("initContainers"):
        containers_section(w, "Init Containers", spec["initContainers"],
                           st.get("initContainerStatuses") or [], pod)
    containers_section(w, "Containers", spec.get("containers") or [],
                       st.get("containerStatuses") or [], pod)
    gates = spec.get("readinessGates") or []
    if gates:
        w.write(0, "Readiness Gates:\n  Type\tStatus\n")
        conds = {c.get("type"): c.get("status") for c in st.get("conditions") or []}
        for g in gates:
            gate = g.get("conditionType", "")
            w.write(1, f"{gate} \t{conds.get(gate, NONE)} \n")
    conditions_table(w, st.get("conditions"), reason=False)
    volumes_section(w, spec.get("volumes"))
    w.write(0, f"QoS Class:\t{qos_class(pod)}\n")
    labels_multiline(w, "Node-Selectors", spec.get("nodeSelector"))
    tolerations_multiline(w, "Tolerations", spec.get("tolerations"))
    events_section(w, events, now)
    return w.text()
