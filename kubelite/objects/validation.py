"""Validation of API objects: every problem at once, worded like Kubernetes.

`validate(obj)` runs after defaults.apply and after the server filled
server-side fields (a generated name, uid); `validate(obj, old)` on an update
adds the immutability rules. The result is a list of FieldError; empty means
valid. The API server wraps a non-empty list in errors.Invalid, which prints
what kubectl would:

    Deployment.apps "web" is invalid: [spec.selector: Required value,
    spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}:
    `selector` does not match template `labels`]

Kind-specific rules live in validation_<area>.py; this module checks the
metadata every kind shares and dispatches on the message type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from kubelite.objects import names
from kubelite.objects.errors import FieldError, invalid, required
from kubelite.objects.validation_apps import (
    validate_controller_revision,
    validate_daemon_set,
    validate_deployment,
    validate_replica_set,
    validate_replication_controller,
    validate_stateful_set,
)
from kubelite.objects.validation_autoscaling import validate_hpa
from kubelite.objects.validation_batch import validate_cron_job, validate_job
from kubelite.objects.validation_common import (
    Errs,
    dns1035_label,
    go_strings,
    mask_trailing_dash,
    nonnegative,
    qualified_name_errors,
    validate_annotations,
    validate_labels,
    with_errors,
)
from kubelite.objects.validation_core import (
    validate_config_map,
    validate_endpoints,
    validate_event,
    validate_lease,
    validate_namespace,
    validate_node,
    validate_persistent_volume,
    validate_persistent_volume_claim,
    validate_secret,
    validate_service,
)
from kubelite.objects.validation_pod import validate_pod_spec, validate_pod_update

__all__ = ["validate", "validate_object_meta"]

NameFn = Callable[[str], list[str]]
KindFn = Callable[[Any, Any], Errs]
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def _validate_pod(pod: Any, old: Any | None) -> Errs:
    errs = validate_pod_spec(pod.spec, "spec", is_pod=True)
    if old is not None:  # ephemeral containers are added later through their own subresource
        errs = [e for e in errs if e.path != "spec.ephemeralContainers"]
        errs += validate_pod_update(pod, old)
    return errs


# Kind -> (how its name is checked, kind-specific rules).
_KINDS: dict[str, tuple[NameFn, KindFn]] = {
    "Pod": (names.dns1123_subdomain, _validate_pod),
    "Namespace": (names.dns1123_label, validate_namespace),
    "Node": (names.dns1123_subdomain, validate_node),
    "Service": (dns1035_label, validate_service),
    "Endpoints": (names.dns1123_subdomain, validate_endpoints),
    "ConfigMap": (names.dns1123_subdomain, validate_config_map),
    "Secret": (names.dns1123_subdomain, validate_secret),
    "Event": (names.dns1123_subdomain, validate_event),
    "PersistentVolume": (names.dns1123_subdomain, validate_persistent_volume),
    "PersistentVolumeClaim": (names.dns1123_subdomain, validate_persistent_volume_claim),
    "ReplicationController": (names.dns1123_subdomain, validate_replication_controller),
    "Deployment": (names.dns1123_subdomain, validate_deployment),
    "ReplicaSet": (names.dns1123_subdomain, validate_replica_set),
    "StatefulSet": (names.dns1123_subdomain, validate_stateful_set),
    "DaemonSet": (names.dns1123_subdomain, validate_daemon_set),
    "ControllerRevision": (names.dns1123_subdomain, validate_controller_revision),
    "Job": (names.dns1123_subdomain, validate_job),
    "CronJob": (names.dns1123_subdomain, validate_cron_job),
    "HorizontalPodAutoscaler": (names.dns1123_subdomain, validate_hpa),
    "Lease": (names.dns1123_subdomain, validate_lease),
    "NodeMetrics": (names.dns1123_subdomain, lambda obj, old: []),
    "PodMetrics": (names.dns1123_subdomain, lambda obj, old: []),
}


def validate(obj: Message, old: Message | None = None) -> list[FieldError]:
    """All field errors of `obj` (an update of `old` when given); [] when valid."""
    entry = _KINDS.get(obj.DESCRIPTOR.name)
    if entry is None:
        return []
    name_fn, kind_fn = entry
    errs: Errs = []
    if obj.DESCRIPTOR.fields_by_name.get("metadata") is not None:
        errs += validate_object_meta(obj.metadata, name_fn)  # type: ignore[attr-defined]
    errs += kind_fn(obj, old)
    return errs


def validate_object_meta(meta: Any, name_fn: NameFn = names.dns1123_subdomain,
                         path: str = "metadata") -> Errs:
    """Name (or generateName), labels, annotations, owner references, finalizers."""
    errs: Errs = []
    if meta.generateName:
        errs += with_errors(f"{path}.generateName", meta.generateName,
                            name_fn(mask_trailing_dash(meta.generateName)))
    if not meta.name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs += with_errors(f"{path}.name", meta.name, name_fn(meta.name))
    errs += nonnegative(meta.generation, f"{path}.generation")
    errs += validate_labels(meta.labels, f"{path}.labels")
    errs += validate_annotations(meta.annotations, f"{path}.annotations")
    errs += _owner_references(meta.ownerReferences, f"{path}.ownerReferences")
    errs += _finalizers(meta.finalizers, f"{path}.finalizers")
    return errs


def _owner_references(refs: Any, path: str) -> Errs:
    errs: Errs = []
    controller = ""
    for ref in refs:
        parts = ref.apiVersion.split("/")
        version = parts[-1] if len(parts) <= 2 else ""
        if not version:
            errs.append(invalid(f"{path}.apiVersion", ref.apiVersion, "version must not be empty"))
        if not ref.kind:
            errs.append(invalid(f"{path}.kind", ref.kind, "kind must not be empty"))
        if not ref.name:
            errs.append(invalid(f"{path}.name", ref.name, "name must not be empty"))
        if not ref.uid:
            errs.append(invalid(f"{path}.uid", ref.uid, "uid must not be empty"))
        if ref.HasField("controller") and ref.controller:
            current = f"{ref.kind}/{ref.name}"
            if controller:
                errs.append(FieldError(path, (
                    "Invalid value: []v1.OwnerReference{...}: Only one reference can have "
                    f'Controller set to true. Found "true" in references for {controller} and '
                    f"{current}")))
            else:
                controller = current
    return errs


def _finalizers(finalizers: Any, path: str) -> Errs:
    errs: Errs = []
    for i, f in enumerate(finalizers):
        errs += qualified_name_errors(f, path)
        if "/" not in f and f not in STANDARD_FINALIZERS:
            errs.append(invalid(f"{path}[{i}]", f, "name is neither a standard finalizer name "
                                                   "nor is it fully qualified"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(path, go_strings(finalizers),
                            "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs
