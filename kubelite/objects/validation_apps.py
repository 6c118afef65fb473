"""Workload validation: Deployment, ReplicaSet, StatefulSet, DaemonSet,
ReplicationController and ControllerRevision (apps/v1 and core/v1 rules).

Every replicated workload needs a selector that matches its own template's
labels, otherwise its controller would create pods it then fails to count
and keep creating more: `spec.template.metadata.labels: Invalid value:
map[string]string{"app":"web"}: `selector` does not match template
`labels``. Their pods must restart Always, since a controller replaces
pods rather than letting them finish.
"""

from __future__ import annotations

from typing import Any

from kubelite.api import apps_pb2, pod_pb2
from kubelite.objects.errors import forbidden, invalid, required, unsupported
from kubelite.objects.validation_common import (
    IMMUTABLE_MSG,
    Errs,
    go_selector,
    int_or_percent,
    int_or_percent_value,
    ios_shown,
    nonnegative,
    not_more_than_100_percent,
    parse_quantity,
    selector_is_empty,
    selector_matches,
    subdomain_errors,
    template_mismatch,
    validate_label_selector,
    validate_labels,
)
from kubelite.objects.validation_pod import validate_pod_template

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
RETENTION = ["Retain", "Delete"]
STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _selector(spec: Any, what: str) -> Errs:
    """apps/v1 selector rules; `what` names the kind in "empty selector is invalid for ..."."""
    labels = spec.template.metadata.labels
    if not spec.HasField("selector"):
        # Kubernetes treats the missing selector as one that selects nothing.
        return [required("spec.selector"),
                template_mismatch("spec.template.metadata.labels", labels)]
    sel = spec.selector
    errs = validate_label_selector(sel, "spec.selector")
    if selector_is_empty(sel):
        errs.append(invalid("spec.selector", go_selector(sel),
                            f"empty selector is invalid for {what}"))
    match = selector_matches(sel, labels)
    if match is None:
        errs.append(invalid("spec.selector", go_selector(sel), "invalid label selector"))
    elif not selector_is_empty(sel) and not match:
        errs.append(template_mismatch("spec.template.metadata.labels", labels))
    return errs


def _replica_template(template: Any, owner: str, extra_volumes: list[Any] | None = None) -> Errs:
    path = "spec.template"
    errs = validate_pod_template(template, path, extra_volumes=extra_volumes)
    if template.spec.restartPolicy != "Always":
        errs.append(unsupported(f"{path}.spec.restartPolicy", template.spec.restartPolicy,
                                ["Always"]))
    if template.spec.HasField("activeDeadlineSeconds"):
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {owner} is not Supported"))
    return errs


def _optional_nonnegative(spec: Any, field: str) -> Errs:
    return nonnegative(getattr(spec, field), f"spec.{field}") if spec.HasField(field) else []


def _selector_immutable(new: Any, old: Any) -> Errs:
    ns, os_ = new.spec, old.spec
    if ns.HasField("selector") != os_.HasField("selector") or ns.selector != os_.selector:
        return [invalid("spec.selector", go_selector(ns.selector if ns.HasField("selector")
                                                     else None), IMMUTABLE_MSG)]
    return []


# ---- Deployment --------------------------------------------------------------

def validate_deployment(d: Any, old: Any | None) -> Errs:
    s = d.spec
    errs = _optional_nonnegative(s, "replicas")
    errs += _selector(s, "deployment")
    errs += _replica_template(s.template, "ReplicaSet")
    errs += _deployment_strategy(s.strategy, "spec.strategy")
    errs += nonnegative(s.minReadySeconds, "spec.minReadySeconds")
    errs += _optional_nonnegative(s, "revisionHistoryLimit")
    if s.HasField("progressDeadlineSeconds"):
        errs += nonnegative(s.progressDeadlineSeconds, "spec.progressDeadlineSeconds")
        if s.progressDeadlineSeconds <= s.minReadySeconds:
            errs.append(invalid("spec.progressDeadlineSeconds", s.progressDeadlineSeconds,
                                "must be greater than minReadySeconds"))
    if old is not None:
        errs += _selector_immutable(d, old)
    return errs


def _deployment_strategy(strategy: Any, path: str) -> Errs:
    if strategy.type == "Recreate":
        if strategy.HasField("rollingUpdate"):
            return [forbidden(f"{path}.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if strategy.type != "RollingUpdate":
        if not strategy.type:
            return [required(f"{path}.type")]
        return [unsupported(f"{path}.type", strategy.type, ["Recreate", "RollingUpdate"])]
    if not strategy.HasField("rollingUpdate"):
        return [required(f"{path}.rollingUpdate", "this should be defaulted and never be nil")]
    ru, p = strategy.rollingUpdate, f"{path}.rollingUpdate"
    errs = int_or_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
    errs += int_or_percent(ru.maxSurge, f"{p}.maxSurge")
    if int_or_percent_value(ru.maxUnavailable) == 0 and int_or_percent_value(ru.maxSurge) == 0:
        errs.append(invalid(f"{p}.maxUnavailable", ios_shown(ru.maxUnavailable),
                            "may not be 0 when `maxSurge` is 0"))
    errs += not_more_than_100_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
    return errs


# ---- ReplicaSet and ReplicationController ------------------------------------

def validate_replica_set(rs: Any, old: Any | None) -> Errs:
    s = rs.spec
    errs = _optional_nonnegative(s, "replicas")
    errs += nonnegative(s.minReadySeconds, "spec.minReadySeconds")
    errs += _selector(s, "deployment")  # sic: Kubernetes says "deployment" here too
    errs += _replica_template(s.template, "ReplicaSet")
    if old is not None:
        errs += _selector_immutable(rs, old)
    return errs


def validate_replication_controller(rc: Any, old: Any | None) -> Errs:
    s = rc.spec
    errs = nonnegative(s.minReadySeconds, "spec.minReadySeconds")
    if not s.selector:
        errs.append(required("spec.selector"))
    errs += validate_labels(s.selector, "spec.selector")
    errs += _optional_nonnegative(s, "replicas")
    if not s.HasField("template"):
        errs.append(required("spec.template"))
        return errs
    labels = s.template.metadata.labels
    if s.selector and any(labels.get(k) != v for k, v in s.selector.items()):
        errs.append(template_mismatch("spec.template.metadata.labels", labels))
    errs += _replica_template(s.template, "ReplicationController")
    return errs


# ---- StatefulSet -------------------------------------------------------------

def validate_stateful_set(sts: Any, old: Any | None) -> Errs:
    s = sts.spec
    errs: Errs = []
    if not s.podManagementPolicy:
        errs.append(required("spec.podManagementPolicy"))
    elif s.podManagementPolicy not in ("OrderedReady", "Parallel"):
        errs.append(invalid("spec.podManagementPolicy", s.podManagementPolicy,
                            "must be 'OrderedReady' or 'Parallel'"))
    errs += _sts_update_strategy(s.updateStrategy, "spec.updateStrategy")
    errs += _optional_nonnegative(s, "revisionHistoryLimit")
    errs += _optional_nonnegative(s, "replicas")
    errs += nonnegative(s.minReadySeconds, "spec.minReadySeconds")
    if s.HasField("ordinals"):
        errs += nonnegative(s.ordinals.start, "spec.ordinals.start")
    errs += _selector(s, "statefulset")
    claims = _claim_templates(s.volumeClaimTemplates, "spec.volumeClaimTemplates")
    errs += claims[0]
    errs += _replica_template(s.template, "StatefulSet", claims[1])
    if s.HasField("persistentVolumeClaimRetentionPolicy"):
        policy = s.persistentVolumeClaimRetentionPolicy
        p = "spec.persistentVolumeClaimRetentionPolicy"
        for field in ("whenDeleted", "whenScaled"):
            value = getattr(policy, field)
            if value not in RETENTION:
                errs.append(unsupported(f"{p}.{field}", value, RETENTION))
    if old is not None:
        errs += _sts_update(sts, old)
    return errs


def _sts_update_strategy(strategy: Any, path: str) -> Errs:
    if not strategy.type:
        return [required(path)]
    if strategy.type == "OnDelete":
        if strategy.HasField("rollingUpdate"):
            return [invalid(f"{path}.rollingUpdate", "",
                            "only allowed for updateStrategy 'RollingUpdate'")]
        return []
    if strategy.type != "RollingUpdate":
        return [invalid(path, strategy.type, "must be 'RollingUpdate' or 'OnDelete'")]
    errs: Errs = []
    ru, p = strategy.rollingUpdate, f"{path}.rollingUpdate"
    if ru.HasField("partition"):
        errs += nonnegative(ru.partition, f"{p}.partition")
    if ru.HasField("maxUnavailable"):
        errs += int_or_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
        if int_or_percent_value(ru.maxUnavailable) == 0:
            errs.append(invalid(f"{p}.maxUnavailable", ios_shown(ru.maxUnavailable),
                                "cannot be 0"))
        errs += not_more_than_100_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
    return errs


def _claim_templates(claims: Any, path: str) -> tuple[Errs, list[Any]]:
    """Errors, and stand-in PVC volumes so the pod template may mount the claims."""
    errs: Errs = []
    volumes: list[Any] = []
    seen: set[str] = set()
    for i, pvc in enumerate(claims):
        p = f"{path}[{i}]"
        name = pvc.metadata.name
        if not name:
            errs.append(required(f"{p}.metadata.name", "name or generateName is required"))
        else:
            errs += subdomain_errors(name, f"{p}.metadata.name")
        if name in seen:
            errs.append(invalid(f"{p}.metadata.name", name, "must be unique"))
        seen.add(name)
        errs += validate_labels(pvc.metadata.labels, f"{p}.metadata.labels")
        for mode in pvc.spec.accessModes:
            if mode not in ACCESS_MODES:
                errs.append(unsupported(f"{p}.spec.accessModes", mode, ACCESS_MODES))
        storage = pvc.spec.resources.requests.get("storage")
        if storage is not None:
            spath = f"{p}.spec.resources[storage]"
            value = parse_quantity(storage.string, spath, errs)
            if value is not None and value < 0:
                errs.append(invalid(spath, storage.string, "must be greater than or equal to 0"))
        volumes.append(pod_pb2.Volume(
            name=name, persistentVolumeClaim=pod_pb2.PodPersistentVolumeClaimVolumeSource(
                claimName=name)))
    return errs, volumes


def _sts_update(new: Any, old: Any) -> Errs:
    a, b = apps_pb2.StatefulSetSpec(), apps_pb2.StatefulSetSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for field in STS_MUTABLE:
        a.ClearField(field)
        b.ClearField(field)
    if a != b:
        listed = ", ".join(f"'{f}'" for f in STS_MUTABLE[:-1])
        return [forbidden("spec", f"updates to statefulset spec for fields other than {listed} "
                                  f"and '{STS_MUTABLE[-1]}' are forbidden")]
    return []


# ---- DaemonSet ---------------------------------------------------------------

def validate_daemon_set(ds: Any, old: Any | None) -> Errs:
    s = ds.spec
    labels = s.template.metadata.labels
    errs: Errs = []
    if not s.HasField("selector"):
        errs += [required("spec.selector"), template_mismatch("spec.template.metadata.labels",
                                                              labels)]
    else:
        errs += validate_label_selector(s.selector, "spec.selector")
        if selector_matches(s.selector, labels) is False:
            errs.append(template_mismatch("spec.template.metadata.labels", labels))
        if selector_is_empty(s.selector):
            errs.append(invalid("spec.selector", go_selector(s.selector),
                                "empty selector is invalid for daemonset"))
    errs += validate_pod_template(s.template, "spec.template")
    if s.template.spec.restartPolicy != "Always":
        errs.append(unsupported("spec.template.spec.restartPolicy", s.template.spec.restartPolicy,
                                ["Always"]))
    if s.template.spec.HasField("activeDeadlineSeconds"):
        errs.append(invalid("spec.template.spec.activeDeadlineSeconds",
                            s.template.spec.activeDeadlineSeconds,
                            "activeDeadlineSeconds must be nil for DaemonSets"))
    errs += nonnegative(s.minReadySeconds, "spec.minReadySeconds")
    errs += _ds_update_strategy(s.updateStrategy, "spec.updateStrategy")
    errs += _optional_nonnegative(s, "revisionHistoryLimit")
    if old is not None:
        errs += _selector_immutable(ds, old)
    return errs


def _ds_update_strategy(strategy: Any, path: str) -> Errs:
    if strategy.type == "OnDelete":
        return []
    if strategy.type != "RollingUpdate":
        return one_of_strategy(strategy.type, path)
    if not strategy.HasField("rollingUpdate"):
        return [required(f"{path}.rollingUpdate")]
    ru, p = strategy.rollingUpdate, f"{path}.rollingUpdate"
    errs = int_or_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
    errs += int_or_percent(ru.maxSurge, f"{p}.maxSurge")
    errs += not_more_than_100_percent(ru.maxUnavailable, f"{p}.maxUnavailable")
    errs += not_more_than_100_percent(ru.maxSurge, f"{p}.maxSurge")
    has_unavailable = int_or_percent_value(ru.maxUnavailable) != 0
    has_surge = int_or_percent_value(ru.maxSurge) != 0
    if has_unavailable and has_surge:
        errs.append(invalid(f"{p}.maxSurge", ios_shown(ru.maxSurge),
                            "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        errs.append(required(f"{p}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return errs


def one_of_strategy(value: str, path: str) -> Errs:
    if not value:
        return [required(f"{path}.type")]
    return [unsupported(f"{path}.type", value, ["RollingUpdate", "OnDelete"])]


# ---- ControllerRevision ------------------------------------------------------

def validate_controller_revision(cr: Any, old: Any | None) -> Errs:
    errs = [] if cr.data else [required("data", "data is mandatory")]
    errs += nonnegative(cr.revision, "revision")
    if old is not None and cr.data != old.data:
        errs.append(invalid("data", "", IMMUTABLE_MSG))
    return errs

