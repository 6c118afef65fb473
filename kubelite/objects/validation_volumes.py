"""Pod volumes, volume mounts and downward API selectors (Kubernetes' wording).

A volume names exactly one source; containers mount volumes by name. The
rules here are the ones the node agent relies on: every mount refers to a
volume of the pod, mount paths are unique per container, projected file
paths stay inside the volume (no absolute paths, no `..`).
"""

from __future__ import annotations

import posixpath
from typing import Any

from kubelite.objects.errors import duplicate, forbidden, invalid, required, unsupported
from kubelite.objects.validation_common import (
    Errs,
    label_errors,
    not_found,
    parse_quantity,
    qualified_name_errors,
)

FILE_MODE_MSG = "must be a number between 0 and 0777 (octal), both inclusive"
# Volume sources in the order Kubernetes checks them.
SOURCES = ("hostPath", "emptyDir", "secret", "nfs", "persistentVolumeClaim", "downwardAPI",
           "configMap", "projected")
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket"]
MOUNT_PROPAGATIONS = ["Bidirectional", "HostToContainer", "None"]
ENV_FIELD_PATHS = ["metadata.annotations", "metadata.labels", "metadata.name",
                   "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs"]
VOLUME_FIELD_PATHS = ["metadata.annotations", "metadata.labels", "metadata.name",
                      "metadata.namespace", "metadata.uid"]
RESOURCE_FIELD_PATHS = ["limits.cpu", "limits.ephemeral-storage", "limits.memory",
                        "requests.cpu", "requests.ephemeral-storage", "requests.memory"]


def validate_volumes(volumes: Any, path: str) -> tuple[Errs, dict[str, Any]]:
    """Errors, and the volumes by name for the mount checks."""
    errs: Errs = []
    by_name: dict[str, Any] = {}
    for i, vol in enumerate(volumes):
        p = f"{path}[{i}]"
        errs += _volume_source(vol, p)
        if not vol.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += label_errors(vol.name, f"{p}.name")
        if vol.name in by_name:
            errs.append(duplicate(f"{p}.name", vol.name))
        else:
            by_name[vol.name] = vol
    return errs, by_name


def _volume_source(vol: Any, path: str) -> Errs:
    errs: Errs = []
    count = 0
    for src in SOURCES:
        if not vol.HasField(src):
            continue
        if count:
            errs.append(forbidden(f"{path}.{src}", "may not specify more than 1 volume type"))
            continue
        count += 1
        errs += _SOURCE_CHECKS[src](getattr(vol, src), f"{path}.{src}")
    if count == 0:
        errs.append(required(path, "must specify a volume type"))
    return errs


def _host_path(src: Any, path: str) -> Errs:
    errs: Errs = []
    if not src.path:
        errs.append(required(f"{path}.path"))
    errs += _no_backsteps(src.path, f"{path}.path")
    if src.HasField("type") and src.type not in HOST_PATH_TYPES:
        errs.append(unsupported(f"{path}.type", src.type, HOST_PATH_TYPES))
    return errs


def _empty_dir(src: Any, path: str) -> Errs:
    errs: Errs = []
    if src.HasField("sizeLimit"):
        v = parse_quantity(src.sizeLimit.string, f"{path}.sizeLimit", errs)
        if v is not None and v < 0:
            errs.append(forbidden(f"{path}.sizeLimit",
                                  "SizeLimit field must be a valid resource quantity"))
    return errs


def _key_to_paths(items: Any, path: str) -> Errs:
    errs: Errs = []
    for i, kp in enumerate(items):
        p = f"{path}[{i}]"
        if not kp.key:
            errs.append(required(f"{p}.key"))
        if not kp.path:
            errs.append(required(f"{p}.path"))
        errs += _local_non_reserved_path(kp.path, f"{p}.path")
        errs += _mode(kp, "mode", p)
    return errs


def _mode(msg: Any, field: str, path: str) -> Errs:
    if msg.HasField(field) and not 0 <= getattr(msg, field) <= 0o777:
        return [invalid(f"{path}.{field}", getattr(msg, field), FILE_MODE_MSG)]
    return []


def _secret(src: Any, path: str) -> Errs:
    errs = [required(f"{path}.secretName")] if not src.secretName else []
    return errs + _mode(src, "defaultMode", path) + _key_to_paths(src.items, f"{path}.items")


def _config_map(src: Any, path: str) -> Errs:
    errs = [required(f"{path}.name")] if not src.name else []
    return errs + _mode(src, "defaultMode", path) + _key_to_paths(src.items, f"{path}.items")


def _nfs(src: Any, path: str) -> Errs:
    errs: Errs = []
    if not src.server:
        errs.append(required(f"{path}.server"))
    if not src.path:
        errs.append(required(f"{path}.path"))
    if not src.path.startswith("/"):
        errs.append(invalid(f"{path}.path", src.path, "must be an absolute path"))
    return errs


def _pvc(src: Any, path: str) -> Errs:
    return [required(f"{path}.claimName")] if not src.claimName else []


def _downward_api(src: Any, path: str) -> Errs:
    return _mode(src, "defaultMode", path) + _downward_items(src.items, f"{path}.items")


def _downward_items(items: Any, path: str) -> Errs:
    errs: Errs = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        if not item.path:
            errs.append(required(f"{p}.path"))
        errs += _local_non_reserved_path(item.path, f"{p}.path")
        errs += _mode(item, "mode", p)
        if item.HasField("fieldRef"):
            errs += object_field_selector(item.fieldRef, f"{p}.fieldRef", VOLUME_FIELD_PATHS)
        if item.HasField("resourceFieldRef"):
            errs += resource_field_selector(item.resourceFieldRef, f"{p}.resourceFieldRef",
                                            volume=True)
        if item.HasField("fieldRef") and item.HasField("resourceFieldRef"):
            errs.append(invalid(
                p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
    return errs


def _projected(src: Any, path: str) -> Errs:
    errs = _mode(src, "defaultMode", path)
    for i, s in enumerate(src.sources):
        p = f"{path}.sources[{i}]"
        set_fields = [f for f in ("secret", "downwardAPI", "configMap", "serviceAccountToken")
                      if s.HasField(f)]
        for f in set_fields:
            sub, sp = getattr(s, f), f"{p}.{f}"
            if f in ("secret", "configMap"):
                if not sub.name:
                    errs.append(required(f"{sp}.name"))
                errs += _key_to_paths(sub.items, f"{sp}.items")
            elif f == "downwardAPI":
                errs += _downward_items(sub.items, f"{sp}.items")
            else:
                seconds = sub.expirationSeconds if sub.HasField("expirationSeconds") else 3600
                if seconds < 600:
                    errs.append(invalid(f"{sp}.expirationSeconds", seconds,
                                        "may not specify a duration less than 10 minutes"))
                if seconds > 1 << 32:
                    errs.append(invalid(f"{sp}.expirationSeconds", seconds,
                                        "may not specify a duration larger than 2^32 seconds"))
                if not sub.path:
                    errs.append(required(f"{sp}.path"))
        if len(set_fields) > 1:
            errs.append(forbidden(p, "may not specify more than 1 volume type per source"))
    return errs


_SOURCE_CHECKS = {
    "hostPath": _host_path, "emptyDir": _empty_dir, "secret": _secret, "nfs": _nfs,
    "persistentVolumeClaim": _pvc, "downwardAPI": _downward_api, "configMap": _config_map,
    "projected": _projected,
}


# ---- paths inside a volume ----------------------------------------------------

def _no_backsteps(target: str, path: str) -> Errs:
    if ".." in target.split("/"):
        return [invalid(path, target, "must not contain '..'")]
    return []


def _local_descending_path(target: str, path: str) -> Errs:
    errs: Errs = []
    if posixpath.isabs(target):
        errs.append(invalid(path, target, "must be a relative path"))
    return errs + _no_backsteps(target, path)


def _local_non_reserved_path(target: str, path: str) -> Errs:
    errs = _local_descending_path(target, path)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))
    return errs


# ---- mounts ------------------------------------------------------------------

def validate_volume_mounts(container: Any, volumes: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    devices = {d.name: d.devicePath for d in container.volumeDevices}
    privileged = container.securityContext.privileged
    for i, m in enumerate(container.volumeMounts):
        p = f"{path}[{i}]"
        if not m.name:
            errs.append(required(f"{p}.name"))
        if m.name not in volumes:
            errs.append(not_found(f"{p}.name", m.name))
        if not m.mountPath:
            errs.append(required(f"{p}.mountPath"))
        if m.mountPath in seen:
            errs.append(invalid(f"{p}.mountPath", m.mountPath, "must be unique"))
        seen.add(m.mountPath)
        if m.name in devices:
            errs.append(invalid(f"{p}.name", m.name, "must not already exist in volumeDevices"))
        if m.mountPath in devices.values():
            errs.append(invalid(f"{p}.mountPath", m.mountPath,
                                "must not already exist as a path in volumeDevices"))
        if m.subPath:
            errs += _local_descending_path(m.subPath, f"{p}.subPath")
        if m.subPathExpr:
            if m.subPath:
                errs.append(invalid(f"{p}.subPathExpr", m.subPathExpr,
                                    "subPathExpr and subPath are mutually exclusive"))
            errs += _local_descending_path(m.subPathExpr, f"{p}.subPathExpr")
        if m.HasField("mountPropagation"):
            mp = m.mountPropagation
            if mp not in MOUNT_PROPAGATIONS:
                errs.append(unsupported(f"{p}.mountPropagation", mp, MOUNT_PROPAGATIONS))
            elif mp == "Bidirectional" and not privileged:
                errs.append(forbidden(
                    f"{p}.mountPropagation",
                    "Bidirectional mount propagation is available only to privileged containers"))
    return errs


def validate_volume_devices(container: Any, volumes: dict[str, Any], path: str) -> Errs:
    errs: Errs = []
    seen: set[str] = set()
    for i, d in enumerate(container.volumeDevices):
        p = f"{path}[{i}]"
        if not d.name:
            errs.append(required(f"{p}.name"))
        vol = volumes.get(d.name)
        if vol is None:
            errs.append(not_found(f"{p}.name", d.name))
        elif not vol.HasField("persistentVolumeClaim"):
            errs.append(invalid(f"{p}.name", d.name,
                                "can only use volume source type of PersistentVolumeClaim or "
                                "Ephemeral for block mode"))
        if not d.devicePath:
            errs.append(required(f"{p}.devicePath"))
        if d.devicePath in seen:
            errs.append(invalid(f"{p}.devicePath", d.devicePath, "must be unique"))
        seen.add(d.devicePath)
    return errs


# ---- downward API selectors (env and volumes) ---------------------------------

def object_field_selector(fs: Any, path: str, allowed: list[str]) -> Errs:
    if not fs.apiVersion:
        return [required(f"{path}.apiVersion")]
    if not fs.fieldPath:
        return [required(f"{path}.fieldPath")]
    fp = fs.fieldPath
    if "[" in fp and fp.endswith("]"):
        base, _, rest = fp.partition("[")
        subscript = rest[:-1].strip("'\"")
        if base == "metadata.annotations":
            return qualified_name_errors(subscript.lower(), path)
        if base == "metadata.labels":
            return qualified_name_errors(subscript, path)
        return [invalid(path, base, "does not support subscript")]
    if fp not in allowed:
        return [unsupported(f"{path}.fieldPath", fp, allowed)]
    return []


def resource_field_selector(fs: Any, path: str, *, volume: bool) -> Errs:
    errs: Errs = []
    if volume and not fs.containerName:
        errs.append(required(f"{path}.containerName"))
    elif not fs.resource:
        errs.append(required(f"{path}.resource"))
    elif fs.resource not in RESOURCE_FIELD_PATHS and not fs.resource.startswith(
            ("limits.hugepages-", "requests.hugepages-")):
        errs.append(unsupported(f"{path}.resource", fs.resource, RESOURCE_FIELD_PATHS))
    if fs.HasField("divisor"):
        v = parse_quantity(fs.divisor.string, f"{path}.divisor", errs)
        if v is not None and v <= 0:
            errs.append(invalid(f"{path}.divisor", fs.divisor.string, "must be greater than zero"))
    return errs
