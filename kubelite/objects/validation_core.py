"""Validation of the core/v1 kinds other than Pod and ReplicationController:
Service, Endpoints, ConfigMap, Secret, Namespace, Node, PersistentVolume,
PersistentVolumeClaim, Event, and coordination's Lease.

These are what the proxy, DNS, volume and node code read: a Service port the
proxy could not program, or an Endpoints address that is not an IP, is
rejected here with Kubernetes' message rather than failing later on a node.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import core_pb2
from kubelite.objects import names
from kubelite.objects.errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
    unsupported,
)
from kubelite.objects.validation_common import (
    CIDR_MSG,
    IMMUTABLE_MSG,
    IP_MSG,
    NOT_POSITIVE_MSG,
    PROTOCOLS,
    Errs,
    Shown,
    config_key_errors,
    go_quote,
    go_strings,
    is_cidr,
    is_ip,
    label_errors,
    one_of,
    parse_quantity,
    port_num_errors,
    port_num_or_name,
    protocol_errors,
    qualified_name_errors,
    subdomain_errors,
    too_long,
    validate_label_selector,
    validate_labels,
    with_errors,
)
from kubelite.objects.validation_scheduling import node_selector, taint_effect

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
IP_FAMILIES = ["IPv4", "IPv6"]
IP_FAMILY_POLICIES = ["PreferDualStack", "RequireDualStack", "SingleStack"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
VOLUME_MODES = ["Block", "Filesystem"]
MAX_CONFIG_SIZE = 1024 * 1024
MAX_AFFINITY_SECONDS = 86400
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"


# ---- Service -----------------------------------------------------------------

def validate_service(svc: Any, old: Any | None) -> Errs:
    s = svc.spec
    errs: Errs = []
    headless = s.clusterIP == "None"
    if not s.ports and not headless and s.type != "ExternalName":
        errs.append(required("spec.ports"))
    if s.type == "LoadBalancer" and headless:
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            "may not be set to 'None' for LoadBalancer services"))
    elif s.type == "NodePort" and headless:
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            "may not be set to 'None' for NodePort services"))
    elif s.type == "ExternalName":
        if s.clusterIP:
            errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        cname = s.externalName.removesuffix(".")
        if cname:
            errs += subdomain_errors(cname, "spec.externalName")
        else:
            errs.append(required("spec.externalName"))
    errs += _service_ports(s)
    errs += validate_labels(s.selector, "spec.selector")
    errs += one_of(s.sessionAffinity, "spec.sessionAffinity", SESSION_AFFINITIES)
    if s.sessionAffinity == "ClientIP":
        errs += _client_ip_config(s)
    elif s.sessionAffinity == "None" and s.HasField("sessionAffinityConfig"):
        errs.append(forbidden("spec.sessionAffinityConfig",
                              "must not be set when session affinity is None"))
    if s.clusterIP and s.clusterIP != "None" and not is_ip(s.clusterIP):
        errs.append(invalid("spec.clusterIP", s.clusterIP, IP_MSG))
    for i, ip in enumerate(s.clusterIPs):
        if ip != "None" and not is_ip(ip):
            errs.append(invalid(f"spec.clusterIPs[{i}]", ip, IP_MSG))
    for i, ip in enumerate(s.externalIPs):
        if not is_ip(ip):
            errs.append(invalid(f"spec.externalIPs[{i}]", ip, IP_MSG))
    errs += one_of(s.type, "spec.type", SERVICE_TYPES)
    errs += _traffic_policies(s)
    errs += _cluster_ips(svc, old)
    return errs


def _service_ports(s: Any) -> Errs:
    errs: Errs = []
    names: set[str] = set()
    node_ports: set[tuple[str, int]] = set()
    ports: set[tuple[str, int]] = set()
    many = len(s.ports) > 1
    for i, sp in enumerate(s.ports):
        p = f"spec.ports[{i}]"
        if many and not sp.name:
            errs.append(required(f"{p}.name"))
        elif sp.name:
            errs += label_errors(sp.name, f"{p}.name")
            if sp.name in names:
                errs.append(duplicate(f"{p}.name", sp.name))
            names.add(sp.name)
        errs += with_errors(f"{p}.port", sp.port, port_num_errors(sp.port))
        errs += protocol_errors(sp.protocol, f"{p}.protocol")
        errs += port_num_or_name(sp.targetPort, f"{p}.targetPort")
        if sp.HasField("appProtocol"):
            errs += qualified_name_errors(sp.appProtocol, f"{p}.appProtocol")
        if sp.nodePort:
            if s.type in ("ClusterIP", "ExternalName"):
                errs.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is "
                                                       f"'{s.type}'"))
            errs += with_errors(f"{p}.nodePort", sp.nodePort, port_num_errors(sp.nodePort))
            if (sp.protocol, sp.nodePort) in node_ports:
                errs.append(duplicate(f"{p}.nodePort", sp.nodePort))
            node_ports.add((sp.protocol, sp.nodePort))
        if s.type == "LoadBalancer" and sp.port == 10250:
            errs.append(invalid(p, sp.port, "may not expose port 10250 externally since it is "
                                            "used by kubelet"))
        if (sp.protocol, sp.port) in ports:
            errs.append(duplicate(p, Shown(f"core.ServicePort{{Protocol:{go_quote(sp.protocol)}, "
                                           f"Port:{sp.port}}}")))
        ports.add((sp.protocol, sp.port))
    return errs


def _client_ip_config(s: Any) -> Errs:
    why = "when session affinity type is ClientIP"
    cfg = s.sessionAffinityConfig
    if not s.HasField("sessionAffinityConfig"):
        return [required("spec.sessionAffinityConfig", why)]
    if not cfg.HasField("clientIP"):
        return [required("spec.sessionAffinityConfig.clientIP", why)]
    path = "spec.sessionAffinityConfig.clientIP.timeoutSeconds"
    if not cfg.clientIP.HasField("timeoutSeconds"):
        return [required(path, why)]
    t = cfg.clientIP.timeoutSeconds
    if not 0 < t <= MAX_AFFINITY_SECONDS:
        return [invalid(path, t, f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}")]
    return []


def _traffic_policies(s: Any) -> Errs:
    errs: Errs = []
    external = s.type in ("LoadBalancer", "NodePort") or (
        s.type == "ClusterIP" and bool(s.externalIPs))
    if s.externalTrafficPolicy:
        if not external:
            errs.append(invalid("spec.externalTrafficPolicy", s.externalTrafficPolicy,
                                "may only be set for externally-accessible services"))
        elif s.externalTrafficPolicy not in TRAFFIC_POLICIES:
            errs.append(unsupported("spec.externalTrafficPolicy", s.externalTrafficPolicy,
                                    TRAFFIC_POLICIES))
    if s.HasField("internalTrafficPolicy") and s.internalTrafficPolicy not in TRAFFIC_POLICIES:
        errs.append(unsupported("spec.internalTrafficPolicy", s.internalTrafficPolicy,
                                TRAFFIC_POLICIES))
    return errs


# Kubernetes' server first fills in what a client left out (the clusterIP an
# `apply` omits) and keeps clusterIP and clusterIPs in step
# (master/apiserver/services.py); these are the rules after that.
def _cluster_ips(svc: Any, old: Any | None) -> Errs:
    """clusterIP/clusterIPs/ipFamilies rules of ValidateService(Update), Kubernetes' wording."""
    s = svc.spec
    errs: Errs = []
    ips = list(s.clusterIPs)
    if s.type == "ExternalName":
        if ips:
            errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
        if s.ipFamilies:
            errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
        if s.HasField("ipFamilyPolicy"):
            errs.append(forbidden("spec.ipFamilyPolicy",
                                  "may not be set for ExternalName services"))
        return errs
    if s.clusterIP:  # clusterIPs left empty is filled in from it before this runs
        if ips and ips[0] != s.clusterIP:
            errs.append(invalid("spec.clusterIPs", go_strings(ips),
                                "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid("spec.clusterIPs", go_strings(ips),
                            "must be empty when `clusterIP` is not specified"))
    if "None" in ips and (len(ips) > 1 or ips[0] != "None"):
        errs.append(invalid("spec.clusterIPs", go_strings(ips),
                            "'None' must be the first and only value"))
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", go_strings(ips), "may only hold up to 2 values"))
    seen: set[str] = set()
    for i, fam in enumerate(s.ipFamilies):
        if fam not in IP_FAMILIES:
            errs.append(unsupported(f"spec.ipFamilies[{i}]", fam, IP_FAMILIES))
        elif fam in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", fam))
        seen.add(fam)
    if s.HasField("ipFamilyPolicy") and s.ipFamilyPolicy not in IP_FAMILY_POLICIES:
        errs.append(unsupported("spec.ipFamilyPolicy", s.ipFamilyPolicy, IP_FAMILY_POLICIES))
    if old is not None and old.spec.type != "ExternalName":
        errs += _ips_unchanged(svc, old)
    return errs


def _ips_unchanged(new: Any, old: Any) -> Errs:
    before, after = list(old.spec.clusterIPs), list(new.spec.clusterIPs)
    if before == ["None"] and after == ["None"]:
        return []
    if before and not after:
        return [invalid("spec.clusterIPs[0]", go_strings(after),
                        "primary clusterIP can not be unset")]
    for i, ip in enumerate(before[:len(after)]):
        if ip != after[i]:
            return [invalid(f"spec.clusterIPs[{i}]", go_strings(after),
                            "may not change once set")]
    return []


# ---- Endpoints ---------------------------------------------------------------

def validate_endpoints(ep: Any, old: Any | None) -> Errs:
    errs: Errs = []
    for i, ss in enumerate(ep.subsets):
        p = f"subsets[{i}]"
        if not ss.addresses and not ss.notReadyAddresses:
            errs.append(required(p, "must specify `addresses` or `notReadyAddresses`"))
        for field in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate(getattr(ss, field)):
                ap = f"{p}.{field}[{j}]"
                if not is_ip(addr.ip):
                    errs.append(invalid(f"{ap}.ip", addr.ip, IP_MSG))
                if addr.hostname:
                    errs += label_errors(addr.hostname, f"{ap}.hostname")
                if addr.HasField("nodeName"):
                    errs += subdomain_errors(addr.nodeName, f"{ap}.nodeName")
        for j, port in enumerate(ss.ports):
            pp = f"{p}.ports[{j}]"
            if len(ss.ports) > 1 and not port.name:
                errs.append(required(f"{pp}.name"))
            elif port.name:
                errs += label_errors(port.name, f"{pp}.name")
            errs += with_errors(f"{pp}.port", port.port, port_num_errors(port.port))
            errs += one_of(port.protocol, f"{pp}.protocol", PROTOCOLS)
    return errs


# ---- ConfigMap and Secret ----------------------------------------------------

def validate_config_map(cm: Any, old: Any | None) -> Errs:
    errs: Errs = []
    total = 0
    for key, value in sorted(cm.data.items()):
        errs += with_errors(f"data[{key}]", key, config_key_errors(key))
        if key in cm.binaryData:
            errs.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        total += len(value.encode())
    for key, raw in sorted(cm.binaryData.items()):
        errs += with_errors(f"binaryData[{key}]", key, config_key_errors(key))
        if key in cm.data:
            errs.append(invalid(f"binaryData[{key}]", key, "duplicate of key present in data"))
        total += len(raw)
    if total > MAX_CONFIG_SIZE:
        errs.append(too_long("", MAX_CONFIG_SIZE))
    if old is not None:
        errs += _immutable_data(cm, old, ("data", "binaryData"))
    return errs


def _immutable_data(new: Any, old: Any, fields: tuple[str, ...]) -> Errs:
    if not (old.HasField("immutable") and old.immutable):
        return []
    errs: Errs = []
    if not (new.HasField("immutable") and new.immutable):
        errs.append(forbidden("immutable", IMMUTABLE_WHEN_SET))
    for field in fields:
        if dict(getattr(new, field)) != dict(getattr(old, field)):
            errs.append(forbidden(field, IMMUTABLE_WHEN_SET))
    return errs


_SECRET_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def validate_secret(secret: Any, old: Any | None) -> Errs:
    errs: Errs = []
    total = 0
    for key, raw in sorted(secret.data.items()):
        errs += with_errors(f"data[{key}]", key, config_key_errors(key))
        total += len(raw)
    if total > MAX_CONFIG_SIZE:
        errs.append(too_long("data", MAX_CONFIG_SIZE))
    kind = secret.type
    if kind == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        if not secret.metadata.annotations.get(key):
            errs.append(required(f"metadata.annotations[{key}]"))
    elif kind == "kubernetes.io/basic-auth":
        if "username" not in secret.data and "password" not in secret.data:
            errs += [required("data[username]"), required("data[password]")]
    elif kind in _SECRET_KEYS:
        for key in _SECRET_KEYS[kind]:
            if key not in secret.data or (kind == "kubernetes.io/ssh-auth"
                                          and not secret.data[key]):
                errs.append(required(f"data[{key}]"))
    if old is not None:
        if secret.type != old.type:
            errs.append(invalid("type", secret.type, IMMUTABLE_MSG))
        errs += _immutable_data(secret, old, ("data",))
    return errs


# ---- Namespace and Node ------------------------------------------------------

def validate_namespace(ns: Any, old: Any | None) -> Errs:
    errs: Errs = []
    for i, f in enumerate(ns.spec.finalizers):
        p = f"spec.finalizers[{i}]"
        errs += qualified_name_errors(f, p)
        if "/" not in f and f not in ("kubernetes", "orphan", "foregroundDeletion"):
            errs.append(invalid(p, f, "name is neither a standard finalizer name nor is it "
                                      "fully qualified"))
    return errs


def validate_node(node: Any, old: Any | None) -> Errs:
    errs: Errs = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(node.spec.taints):
        p = f"spec.taints[{i}]"
        errs += qualified_name_errors(taint.key, f"{p}.key")
        msgs = names.label_value(taint.value)
        if msgs:
            errs.append(invalid(f"{p}.value", taint.value, ";".join(msgs)))
        errs += taint_effect(taint.effect, f"{p}.effect", allow_empty=False)
        if (taint.key, taint.effect) in seen:
            shown = (f"core.Taint{{Key:{go_quote(taint.key)}, Value:{go_quote(taint.value)}, "
                     f"Effect:{go_quote(taint.effect)}, TimeAdded:<nil>}}")
            errs.append(FieldError(p, f"Duplicate value: {shown}: taints must be unique by key "
                                      "and effect pair"))
        seen.add((taint.key, taint.effect))
    if node.spec.podCIDR and not is_cidr(node.spec.podCIDR):
        errs.append(invalid("spec.podCIDR", node.spec.podCIDR, CIDR_MSG))
    for i, cidr in enumerate(node.spec.podCIDRs):
        if not is_cidr(cidr):
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, CIDR_MSG))
    if node.spec.podCIDRs and node.spec.podCIDR and node.spec.podCIDRs[0] != node.spec.podCIDR:
        errs.append(invalid("spec.podCIDRs[0]", node.spec.podCIDRs[0],
                            "must match spec.podCIDR"))
    if old is not None and old.spec.podCIDR and node.spec.podCIDR != old.spec.podCIDR:
        errs.append(forbidden("spec.podCIDR", "node updates may not change podCIDR except "
                                              "from \"\" to valid"))
    return errs


# ---- PersistentVolume and PersistentVolumeClaim -------------------------------

def _access_modes(modes: Any, path: str, missing: str) -> Errs:
    errs: Errs = []
    if not modes:
        errs.append(required(path, missing))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(unsupported(path, mode, ACCESS_MODES))
    known = [m for m in modes if m in ACCESS_MODES]
    if "ReadWriteOncePod" in known and len(set(known)) > 1:
        errs.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return errs


def validate_persistent_volume(pv: Any, old: Any | None) -> Errs:
    s = pv.spec
    errs = _access_modes(s.accessModes, "spec.accessModes", "")
    if not s.capacity:
        errs.append(required("spec.capacity"))
    if "storage" not in s.capacity or len(s.capacity) > 1:
        shown = ", ".join(f"{go_quote(k)}:{go_quote(v.string)}"
                          for k, v in sorted(s.capacity.items()))
        errs.append(unsupported("spec.capacity", Shown(f"core.ResourceList{{{shown}}}"),
                                ["storage"]))
    for name, q in sorted(s.capacity.items()):
        p = f"spec.capacity[{name}]"
        value = parse_quantity(q.string, p, errs)
        if value is not None and value <= 0:
            errs.append(invalid(p, q.string, NOT_POSITIVE_MSG))
    if s.storageClassName:
        errs += subdomain_errors(s.storageClassName, "spec.storageClassName")
    if s.HasField("volumeMode") and s.volumeMode not in VOLUME_MODES:
        errs.append(unsupported("spec.volumeMode", s.volumeMode, VOLUME_MODES))
    if s.persistentVolumeReclaimPolicy and s.persistentVolumeReclaimPolicy not in RECLAIM_POLICIES:
        errs.append(unsupported("spec.persistentVolumeReclaimPolicy",
                                s.persistentVolumeReclaimPolicy, RECLAIM_POLICIES))
    errs += _pv_source(s)
    if s.HasField("nodeAffinity"):
        if s.nodeAffinity.HasField("required"):
            errs += node_selector(s.nodeAffinity.required, "spec.nodeAffinity.required")
        else:
            errs.append(required("spec.nodeAffinity.required"))
    return errs


def _pv_source(s: Any) -> Errs:
    errs: Errs = []
    count = 0
    for src in ("hostPath", "nfs", "local"):
        if not s.HasField(src):
            continue
        p = f"spec.{src}"
        if count:
            errs.append(forbidden(p, "may not specify more than 1 volume type"))
            continue
        count += 1
        vol = getattr(s, src)
        if not vol.path:
            errs.append(required(f"{p}.path"))
        elif ".." in vol.path.split("/"):
            errs.append(invalid(f"{p}.path", vol.path, "must not contain '..'"))
        if src == "nfs":
            if not vol.server:
                errs.append(required(f"{p}.server"))
            if vol.path and not vol.path.startswith("/"):
                errs.append(invalid(f"{p}.path", vol.path, "must be an absolute path"))
        if src == "local" and not s.HasField("nodeAffinity"):
            errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if count == 0:
        errs.append(required("spec", "must specify a volume type"))
    return errs


def validate_persistent_volume_claim(pvc: Any, old: Any | None) -> Errs:
    s = pvc.spec
    errs = _access_modes(s.accessModes, "spec.accessModes", "at least 1 access mode is required")
    if s.HasField("selector"):
        errs += validate_label_selector(s.selector, "spec.selector")
    storage = s.resources.requests.get("storage")
    if storage is None:
        errs.append(required("spec.resources[storage]"))
    else:
        value = parse_quantity(storage.string, "spec.resources[storage]", errs)
        if value is not None and value <= 0:
            errs.append(invalid("spec.resources[storage]", storage.string, NOT_POSITIVE_MSG))
    if s.HasField("storageClassName") and s.storageClassName:
        errs += subdomain_errors(s.storageClassName, "spec.storageClassName")
    if s.HasField("volumeMode") and s.volumeMode not in VOLUME_MODES:
        errs.append(unsupported("spec.volumeMode", s.volumeMode, VOLUME_MODES))
    if old is not None:
        errs += _pvc_update(pvc, old)
    return errs


def _pvc_update(new: Any, old: Any) -> Errs:
    a, b = core_pb2.PersistentVolumeClaimSpec(), core_pb2.PersistentVolumeClaimSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    a.resources.ClearField("requests")
    b.resources.ClearField("requests")
    if not old.spec.volumeName:  # the binder sets volumeName once
        a.volumeName = b.volumeName = ""
    errs: Errs = []
    if a != b:
        errs.append(forbidden("spec", "spec is immutable after creation except "
                                      "resources.requests and volumeAttributesClassName for "
                                      "bound claims"))
    new_size = new.spec.resources.requests.get("storage")
    old_size = old.spec.resources.requests.get("storage")
    if new_size is not None and old_size is not None:
        scratch: Errs = []
        n, o = (parse_quantity(new_size.string, "", scratch),
                parse_quantity(old_size.string, "", scratch))
        if n is not None and o is not None and n < o:
            errs.append(forbidden("spec.resources.requests.storage",
                                  "field can not be less than previous value"))
    return errs


# ---- Event and Lease ---------------------------------------------------------

def validate_event(ev: Any, old: Any | None) -> Errs:
    ns, involved = ev.metadata.namespace, ev.involvedObject.namespace
    if ns and involved and ns != involved:
        return [invalid("involvedObject.namespace", involved, "does not match event.namespace")]
    return []


def validate_lease(lease: Any, old: Any | None) -> Errs:
    s = lease.spec
    errs: Errs = []
    if s.HasField("leaseDurationSeconds") and s.leaseDurationSeconds <= 0:
        errs.append(invalid("spec.leaseDurationSeconds", s.leaseDurationSeconds,
                            "must be greater than 0"))
    if s.HasField("leaseTransitions") and s.leaseTransitions < 0:
        errs.append(invalid("spec.leaseTransitions", s.leaseTransitions,
                            "must be greater than or equal to 0"))
    return errs
