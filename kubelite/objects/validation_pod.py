"""Pod spec validation, shared by Pods and every pod template.

The same PodSpec rules apply at `spec` (a Pod) and at
`spec.template.spec` (Deployment, Job, ...) or
`spec.jobTemplate.spec.template.spec` (CronJob): callers pass the prefix.
Messages and paths are Kubernetes' (pkg/apis/core/validation), e.g.
`spec.containers[0].image: Required value` or
`spec.restartPolicy: Unsupported value: "Sometimes": supported values:
"Always", "OnFailure", "Never"`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubelite.objects import names
from kubelite.objects.errors import duplicate, forbidden, invalid, required, unsupported
from kubelite.objects.validation_common import (
    Errs,
    config_key_errors,
    go_strings,
    ip_errors,
    label_errors,
    mask_trailing_dash,
    nonnegative,
    one_of,
    parse_quantity,
    port_name_errors,
    port_num_errors,
    port_num_or_name,
    protocol_errors,
    qualified_name_errors,
    subdomain_errors,
    validate_annotations,
    validate_labels,
    with_errors,
)
from kubelite.objects.validation_scheduling import (
    validate_affinity,
    validate_tolerations,
    validate_topology_spread,
)
from kubelite.objects.validation_volumes import (
    ENV_FIELD_PATHS,
    object_field_selector,
    resource_field_selector,
    validate_volume_devices,
    validate_volume_mounts,
    validate_volumes,
)

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
HTTP_SCHEMES = ["HTTP", "HTTPS"]
ID_RANGE_MSG = "must be between 0 and 2147483647, inclusive"
NOT_SIDECAR_MSG = "may not be set for init containers without restartPolicy=Always"
_STANDARD_CONTAINER_RESOURCES = {"cpu", "memory", "ephemeral-storage"}
_STANDARD_RESOURCES = _STANDARD_CONTAINER_RESOURCES | {
    "pods", "storage", "services", "replicationcontrollers", "resourcequotas", "secrets",
    "configmaps", "persistentvolumeclaims", "services.nodeports", "services.loadbalancers",
    "requests.cpu", "requests.memory", "requests.ephemeral-storage", "requests.storage",
    "limits.cpu", "limits.memory", "limits.ephemeral-storage",
}


@dataclass
class _Pod:
    """What container checks need to know about the pod around them."""

    is_pod: bool
    volumes: dict[str, Any]
    grace: int


def validate_pod_update(pod: Any, old: Any) -> Errs:
    """What an update of a Pod may not change.

    Kubernetes freezes nearly all of a pod's spec after creation; kubelite
    enforces the rule that matters for placement: no update or patch may
    set, change or clear spec.nodeName. A pod is assigned to a node once,
    through the pods/binding subresource (or at creation), and never moved.
    """
    if pod.spec.nodeName == old.spec.nodeName:
        return []
    if old.spec.nodeName:
        bound_to = old.spec.nodeName
        return [forbidden("spec.nodeName", "pod updates may not change spec.nodeName once it "
                                           f'is set (the pod is bound to node "{bound_to}")')]
    return [forbidden("spec.nodeName", "pod updates may not set spec.nodeName "
                                       "(bind the pod through the pods/binding subresource)")]


def validate_pod_template(template: Any, path: str, *,
                          extra_volumes: list[Any] | None = None) -> Errs:
    """A PodTemplateSpec: template labels/annotations and its pod spec.

    `extra_volumes` are volumes the controller adds to each pod (a
    StatefulSet's claim templates), which containers may mount.
    """
    meta = template.metadata
    errs = validate_labels(meta.labels, f"{path}.metadata.labels")
    errs += validate_annotations(meta.annotations, f"{path}.metadata.annotations")
    errs += validate_pod_spec(template.spec, f"{path}.spec", is_pod=False,
                              extra_volumes=extra_volumes)
    if template.spec.ephemeralContainers:
        errs.append(forbidden(f"{path}.spec.ephemeralContainers",
                              "ephemeral containers not allowed in pod template"))
    return errs


def validate_pod_spec(spec: Any, path: str, *, is_pod: bool,
                      extra_volumes: list[Any] | None = None) -> Errs:
    errs, volumes = validate_volumes(spec.volumes, f"{path}.volumes")
    for vol in extra_volumes or ():
        volumes.setdefault(vol.name, vol)
    grace = spec.terminationGracePeriodSeconds if spec.HasField(
        "terminationGracePeriodSeconds") else 30
    pod = _Pod(is_pod, volumes, grace)
    errs += _containers(spec, path, pod)
    errs += one_of(spec.restartPolicy, f"{path}.restartPolicy", RESTART_POLICIES)
    errs += one_of(spec.dnsPolicy, f"{path}.dnsPolicy", DNS_POLICIES)
    errs += validate_labels(spec.nodeSelector, f"{path}.nodeSelector")
    errs += _pod_security_context(spec.securityContext, f"{path}.securityContext")
    errs += _dns_config(spec, f"{path}.dnsConfig")
    errs += validate_tolerations(spec.tolerations, f"{path}.tolerations")
    errs += validate_affinity(spec.affinity, f"{path}.affinity")
    errs += validate_topology_spread(spec.topologySpreadConstraints,
                                     f"{path}.topologySpreadConstraints")
    if spec.HasField("terminationGracePeriodSeconds"):
        errs += nonnegative(spec.terminationGracePeriodSeconds,
                            f"{path}.terminationGracePeriodSeconds")
    if spec.HasField("activeDeadlineSeconds") and not (
            1 <= spec.activeDeadlineSeconds <= 2**31 - 1):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", spec.activeDeadlineSeconds,
                            "must be between 1 and 2147483647, inclusive"))
    for field in ("serviceAccountName", "nodeName", "schedulerName", "priorityClassName"):
        if getattr(spec, field):
            errs += subdomain_errors(getattr(spec, field), f"{path}.{field}")
    for field in ("hostname", "subdomain"):
        if getattr(spec, field):
            errs += label_errors(getattr(spec, field), f"{path}.{field}")
    errs += _host_network(spec, path)
    errs += _host_port_conflicts(spec, path)
    for i, alias in enumerate(spec.hostAliases):
        errs += ip_errors(alias.ip, f"{path}.hostAliases[{i}].ip")
        for j, h in enumerate(alias.hostnames):
            errs += subdomain_errors(h, f"{path}.hostAliases[{i}].hostnames[{j}]")
    for i, gate in enumerate(spec.readinessGates):
        errs += qualified_name_errors(gate.conditionType,
                                      f"{path}.readinessGates[{i}].conditionType")
    gates: set[str] = set()
    for i, g in enumerate(spec.schedulingGates):
        errs += qualified_name_errors(g.name, f"{path}.schedulingGates[{i}].name")
        if g.name in gates:
            errs.append(duplicate(f"{path}.schedulingGates[{i}].name", g.name))
        gates.add(g.name)
    if spec.HasField("os"):
        errs += one_of(spec.os.name, f"{path}.os.name", ["linux", "windows"])
    for i, s in enumerate(spec.imagePullSecrets):
        if not s.name:
            errs.append(required(f"{path}.imagePullSecrets[{i}].name"))
    return errs


# ---- containers --------------------------------------------------------------

def _containers(spec: Any, path: str, pod: _Pod) -> Errs:
    errs: Errs = []
    if not spec.containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for i, c in enumerate(spec.containers):
        p = f"{path}.containers[{i}]"
        errs += _container(c, p, pod)
        errs += _probes(c, p, pod, sidecar=True)
        if c.HasField("restartPolicy"):
            errs.append(forbidden(f"{p}.restartPolicy", "may not be set for non-init containers"))
        if c.name in seen:
            errs.append(duplicate(f"{p}.name", c.name))
        elif c.name:
            seen.add(c.name)
    for i, c in enumerate(spec.initContainers):
        p = f"{path}.initContainers[{i}]"
        errs += _container(c, p, pod)
        sidecar = c.HasField("restartPolicy") and c.restartPolicy == "Always"
        if c.HasField("restartPolicy") and not sidecar:
            errs.append(unsupported(f"{p}.restartPolicy", c.restartPolicy, ["Always"]))
        if sidecar:
            errs += _probes(c, p, pod, sidecar=True)
        else:
            for field in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.HasField(field):
                    errs.append(forbidden(f"{p}.{field}", NOT_SIDECAR_MSG))
        if c.name in seen:
            errs.append(duplicate(f"{p}.name", c.name))
        elif c.name:
            seen.add(c.name)
    if pod.is_pod and spec.ephemeralContainers:
        errs.append(forbidden(f"{path}.ephemeralContainers", "cannot be set on create"))
    return errs


def _container(c: Any, path: str, pod: _Pod) -> Errs:
    errs: Errs = []
    if not c.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += label_errors(c.name, f"{path}.name")
    if not c.image:
        errs.append(required(f"{path}.image"))
    elif pod.is_pod and c.image.strip() != c.image:
        errs.append(invalid(f"{path}.image", c.image,
                            "must not have leading or trailing whitespace"))
    errs += one_of(c.imagePullPolicy, f"{path}.imagePullPolicy", PULL_POLICIES)
    errs += one_of(c.terminationMessagePolicy, f"{path}.terminationMessagePolicy",
                   TERMINATION_MESSAGE_POLICIES)
    errs += _ports(c.ports, f"{path}.ports")
    errs += _env(c.env, f"{path}.env")
    errs += _env_from(c.envFrom, f"{path}.envFrom")
    errs += validate_resources(c.resources, f"{path}.resources")
    errs += validate_volume_mounts(c, pod.volumes, f"{path}.volumeMounts")
    errs += validate_volume_devices(c, pod.volumes, f"{path}.volumeDevices")
    errs += _security_context(c.securityContext, f"{path}.securityContext")
    return errs


def _ports(ports: Any, path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, port in enumerate(ports):
        p = f"{path}[{i}]"
        if port.name:
            msgs = port_name_errors(port.name)
            if msgs:
                errs += with_errors(f"{p}.name", port.name, msgs)
            elif port.name in seen:
                errs.append(duplicate(f"{p}.name", port.name))
            else:
                seen.add(port.name)
        if port.containerPort == 0:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += with_errors(f"{p}.containerPort", port.containerPort,
                                port_num_errors(port.containerPort))
        if port.hostPort != 0:
            errs += with_errors(f"{p}.hostPort", port.hostPort, port_num_errors(port.hostPort))
        errs += protocol_errors(port.protocol, f"{p}.protocol")
        if port.hostIP:
            errs += ip_errors(port.hostIP, f"{p}.hostIP")
    return errs


def _env_name(name: str, path: str) -> Errs:
    if not name:
        return [required(path)]
    if any(ord(ch) > 126 or ord(ch) < 32 or ch == "=" for ch in name):
        return [invalid(path, name, "a valid environment variable name must consist only of "
                                    "printable ASCII characters other than '='")]
    return []


def _env(env: Any, path: str) -> Errs:
    errs: Errs = []
    for i, ev in enumerate(env):
        p = f"{path}[{i}]"
        errs += _env_name(ev.name, f"{p}.name")
        if not ev.HasField("valueFrom"):
            continue
        vf, vp = ev.valueFrom, f"{p}.valueFrom"
        sources = [f for f in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                   if vf.HasField(f)]
        if vf.HasField("fieldRef"):
            errs += object_field_selector(vf.fieldRef, f"{vp}.fieldRef", ENV_FIELD_PATHS)
        if vf.HasField("resourceFieldRef"):
            errs += resource_field_selector(vf.resourceFieldRef, f"{vp}.resourceFieldRef",
                                            volume=False)
        for f in ("configMapKeyRef", "secretKeyRef"):
            if vf.HasField(f):
                errs += _key_selector(getattr(vf, f), f"{vp}.{f}")
        if not sources:
            errs.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                        "`configMapKeyRef` or `secretKeyRef`"))
        elif ev.value:
            errs.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif len(sources) > 1:
            errs.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return errs


def _key_selector(sel: Any, path: str) -> Errs:
    errs = subdomain_errors(sel.name, f"{path}.name")
    if not sel.key:
        errs.append(required(f"{path}.key"))
    else:
        errs += with_errors(f"{path}.key", sel.key, config_key_errors(sel.key))
    return errs


def _env_from(env_from: Any, path: str) -> Errs:
    errs: Errs = []
    for i, ef in enumerate(env_from):
        p = f"{path}[{i}]"
        if ef.prefix:
            errs += _env_name(ef.prefix, f"{p}.prefix")
        refs = [f for f in ("configMapRef", "secretRef") if ef.HasField(f)]
        for f in refs:
            ref = getattr(ef, f)
            if not ref.name:
                errs.append(required(f"{p}.{f}.name"))
            else:
                errs += with_errors(f"{p}.{f}.name", ref.name,
                                    names.dns1123_subdomain(mask_trailing_dash(ref.name)))
        if not refs:
            errs.append(invalid(path, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif len(refs) > 1:
            errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


# ---- resources ---------------------------------------------------------------

def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not _is_hugepages(name)


def _resource_name_errors(name: str, path: str) -> Errs:
    errs = qualified_name_errors(name, path)
    if errs:
        return errs
    if "/" not in name:
        if name not in _STANDARD_RESOURCES and not _is_hugepages(name):
            errs.append(invalid(path, name, "must be a standard resource type or fully qualified"))
        if name not in _STANDARD_CONTAINER_RESOURCES and not _is_hugepages(name):
            errs.append(invalid(path, name, "must be a standard resource for containers"))
    elif not _is_native(name) and (
            name.startswith("requests.") or names.qualified_name("requests." + name)):
        errs.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return errs


def _quantity(name: str, text: str, path: str, errs: Errs) -> Decimal | None:
    errs += _resource_name_errors(name, path)
    value = parse_quantity(text, path, errs)
    if value is None:
        return None
    if value < 0:
        errs.append(invalid(path, text, "must be greater than or equal to 0"))
    if not _is_native(name) and value != value.to_integral_value():
        errs.append(invalid(path, text, "must be an integer"))
    return value


def validate_resources(res: Any, path: str) -> Errs:
    """Container resources: known names, values >= 0 and requests <= limits."""
    errs: Errs = []
    lim_path, req_path = f"{path}.limits", f"{path}.requests"
    limits = {n: _quantity(n, q.string, f"{lim_path}[{n}]", errs)
              for n, q in sorted(res.limits.items())}
    for n, q in sorted(res.requests.items()):
        value = _quantity(n, q.string, f"{req_path}[{n}]", errs)
        if n in res.limits:
            limit = limits[n]
            if value is None or limit is None:
                continue
            shown = res.limits[n].string
            if value != limit and not _overcommit_allowed(n):
                errs.append(invalid(req_path, q.string, f"must be equal to {n} limit of {shown}"))
            elif value > limit:
                errs.append(invalid(req_path, q.string,
                                    f"must be less than or equal to {n} limit of {shown}"))
        elif not _overcommit_allowed(n):
            errs.append(required(lim_path, "Limit must be set for non overcommitable resources"))
    return errs


# ---- probes and lifecycle hooks ----------------------------------------------

def _probes(c: Any, path: str, pod: _Pod, *, sidecar: bool) -> Errs:
    errs: Errs = []
    if c.HasField("lifecycle"):
        for hook in ("postStart", "preStop"):
            if c.lifecycle.HasField(hook):
                errs += _handler(getattr(c.lifecycle, hook), f"{path}.lifecycle.{hook}",
                                 ("exec", "httpGet", "tcpSocket", "sleep"), pod.grace)
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        if not c.HasField(name):
            continue
        probe, p = getattr(c, name), f"{path}.{name}"
        errs += _probe(probe, p, pod.grace)
        if name != "readinessProbe" and probe.successThreshold != 1:
            errs.append(invalid(f"{p}.successThreshold", probe.successThreshold, "must be 1"))
        if name == "readinessProbe" and probe.HasField("terminationGracePeriodSeconds"):
            errs.append(invalid(f"{p}.terminationGracePeriodSeconds",
                                probe.terminationGracePeriodSeconds,
                                "must not be set for readinessProbes"))
    return errs


def _probe(probe: Any, path: str, grace: int) -> Errs:
    errs = _handler(probe, path, ("exec", "httpGet", "tcpSocket", "grpc"), grace)
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        errs += nonnegative(getattr(probe, field), f"{path}.{field}")
    if probe.HasField("terminationGracePeriodSeconds") and probe.terminationGracePeriodSeconds <= 0:
        errs.append(invalid(f"{path}.terminationGracePeriodSeconds",
                            probe.terminationGracePeriodSeconds, "must be greater than 0"))
    return errs


def _handler(msg: Any, path: str, kinds: tuple[str, ...], grace: int) -> Errs:
    errs: Errs = []
    count = 0
    for kind in kinds:
        if not msg.HasField(kind):
            continue
        p = f"{path}.{kind}"
        if count:
            errs.append(forbidden(p, "may not specify more than 1 handler type"))
            continue
        count += 1
        action = getattr(msg, kind)
        if kind == "exec" and not action.command:
            errs.append(required(f"{p}.command"))
        elif kind == "httpGet":
            errs += _http_get(action, p)
        elif kind == "tcpSocket":
            errs += port_num_or_name(action.port, f"{p}.port")
        elif kind == "grpc":
            errs += with_errors(f"{p}.port", action.port, port_num_errors(action.port))
        elif kind == "sleep" and not 0 < action.seconds <= grace:
            errs.append(invalid(f"{p}.seconds", action.seconds,
                                "must be greater than 0 and less than "
                                f"terminationGracePeriodSeconds ({grace})"))
    if count == 0:
        errs.append(required(path, "must specify a handler type"))
    return errs


def _http_get(action: Any, path: str) -> Errs:
    errs: Errs = []
    if not action.path:
        errs.append(required(f"{path}.path"))
    errs += port_num_or_name(action.port, f"{path}.port")
    if action.scheme not in HTTP_SCHEMES:
        errs.append(unsupported(f"{path}.scheme", action.scheme, HTTP_SCHEMES))
    for h in action.httpHeaders:
        if not re.fullmatch(r"[-A-Za-z0-9]+", h.name):
            errs.append(invalid(f"{path}.httpHeaders", h.name,
                                "a valid HTTP header must consist of alphanumeric characters or "
                                "'-' (e.g. 'X-Header-Name', regex used for validation is "
                                "'[-A-Za-z0-9]+')"))
    return errs


# ---- pod-wide settings -------------------------------------------------------

def _id_errors(msg: Any, fields: tuple[str, ...], path: str) -> Errs:
    errs: Errs = []
    for f in fields:
        if msg.HasField(f) and not 0 <= getattr(msg, f) <= 2**31 - 1:
            errs.append(invalid(f"{path}.{f}", getattr(msg, f), ID_RANGE_MSG))
    return errs


def _pod_security_context(sc: Any, path: str) -> Errs:
    errs = _id_errors(sc, ("runAsUser", "runAsGroup", "fsGroup"), path)
    for i, g in enumerate(sc.supplementalGroups):
        if not 0 <= g <= 2**31 - 1:
            errs.append(invalid(f"{path}.supplementalGroups[{i}]", g, ID_RANGE_MSG))
    return errs


def _security_context(sc: Any, path: str) -> Errs:
    return _id_errors(sc, ("runAsUser", "runAsGroup"), path)


def _dns_config(spec: Any, path: str) -> Errs:
    errs: Errs = []
    cfg = spec.dnsConfig
    if spec.dnsPolicy == "None":
        if not spec.HasField("dnsConfig"):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not cfg.nameservers:
            return [required(f"{path}.nameservers",
                             "must provide at least one DNS nameserver when `dnsPolicy` is None")]
    if len(cfg.nameservers) > 3:
        errs.append(invalid(f"{path}.nameservers", go_strings(cfg.nameservers),
                            "must not have more than 3 nameservers"))
    for i, ns in enumerate(cfg.nameservers):
        errs += ip_errors(ns, f"{path}.nameservers[{i}]")
    if len(cfg.searches) > 32:
        errs.append(invalid(f"{path}.searches", go_strings(cfg.searches),
                            "must not have more than 32 search paths"))
    if len(" ".join(cfg.searches)) > 2048:
        errs.append(invalid(f"{path}.searches", go_strings(cfg.searches),
                            "must not have more than 2048 characters (including spaces) "
                            "in the search list"))
    for i, s in enumerate(cfg.searches):
        if s != ".":
            errs += subdomain_errors(s.removesuffix("."), f"{path}.searches[{i}]")
    for i, opt in enumerate(cfg.options):
        if not opt.name:
            errs.append(required(f"{path}.options[{i}]", "must not be empty"))
    return errs


def _host_network(spec: Any, path: str) -> Errs:
    if not spec.hostNetwork:
        return []
    errs: Errs = []
    for field in ("containers", "initContainers"):
        for i, c in enumerate(getattr(spec, field)):
            for j, port in enumerate(c.ports):
                if port.hostPort != port.containerPort:
                    errs.append(invalid(f"{path}.{field}[{i}].ports[{j}].containerPort",
                                        port.containerPort,
                                        "must match `hostPort` when `hostNetwork` is true"))
    return errs


def _host_port_conflicts(spec: Any, path: str) -> Errs:
    errs: Errs = []
    for field in ("containers", "initContainers"):
        seen: set[str] = set()
        for i, c in enumerate(getattr(spec, field)):
            for j, port in enumerate(c.ports):
                if port.hostPort == 0:
                    continue
                key = f"{port.protocol}/{port.hostIP}/{port.hostPort}"
                if key in seen:
                    errs.append(duplicate(f"{path}.{field}[{i}].ports[{j}].hostPort", key))
                seen.add(key)
    return errs
