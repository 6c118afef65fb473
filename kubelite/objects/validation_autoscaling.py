"""HorizontalPodAutoscaler (autoscaling/v2) validation, Kubernetes' wording.

Each metric names its source type and fills exactly that block; each target
names its type (Utilization, Value, AverageValue) and sets the matching
field, so the autoscaler never has to guess which number to compare with.
"""

from __future__ import annotations

from typing import Any

from kubelite.objects.errors import forbidden, invalid, required, unsupported
from kubelite.objects.validation_common import (
    Errs,
    label_errors,
    parse_quantity,
    validate_label_selector,
)

METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
_BLOCKS = {"Object": "object", "Pods": "pods", "Resource": "resource",
           "External": "external", "ContainerResource": "containerResource"}
_TARGET_FIELDS = {"Utilization": "averageUtilization", "Value": "value",
                  "AverageValue": "averageValue"}
SELECT_POLICIES = ["Disabled", "Max", "Min"]
POLICY_TYPES = ["Percent", "Pods"]
MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_SECONDS = 3600
_POPULATE = "must populate information for the given metric source"


def validate_hpa(hpa: Any, old: Any | None) -> Errs:
    s = hpa.spec
    errs: Errs = []
    if s.HasField("minReplicas") and s.minReplicas < 1:
        errs.append(invalid("spec.minReplicas", s.minReplicas,
                            "must be greater than or equal to 1"))
    if s.maxReplicas < 1:
        errs.append(invalid("spec.maxReplicas", s.maxReplicas, "must be greater than 0"))
    if s.HasField("minReplicas") and s.maxReplicas < s.minReplicas:
        errs.append(invalid("spec.maxReplicas", s.maxReplicas,
                            "must be greater than or equal to `minReplicas`"))
    ref_errs = _object_ref(s.scaleTargetRef, "spec.scaleTargetRef")
    if ref_errs:
        return errs + ref_errs
    for i, metric in enumerate(s.metrics):
        errs += _metric(metric, f"spec.metrics[{i}]")
    if s.HasField("behavior"):
        for direction in ("scaleUp", "scaleDown"):
            if s.behavior.HasField(direction):
                errs += _rules(getattr(s.behavior, direction), f"spec.behavior.{direction}")
    return errs


def _path_segment(value: str, path: str) -> Errs:
    if value in (".", ".."):
        return [invalid(path, value, f"may not be '{value}'")]
    for bad in ("/", "%"):
        if bad in value:
            return [invalid(path, value, f"may not contain '{bad}'")]
    return []


def _object_ref(ref: Any, path: str) -> Errs:
    errs: Errs = []
    for field in ("kind", "name"):
        value = getattr(ref, field)
        if not value:
            errs.append(required(f"{path}.{field}"))
        else:
            errs += _path_segment(value, f"{path}.{field}")
    return errs


def _metric(m: Any, path: str) -> Errs:
    errs: Errs = []
    if not m.type:
        errs.append(required(f"{path}.type", "must specify a metric source type"))
    elif m.type not in METRIC_TYPES:
        errs.append(unsupported(f"{path}.type", m.type, METRIC_TYPES))
    present = [b for b in ("object", "external", "pods", "resource", "containerResource")
               if m.HasField(b)]
    if present:
        block = present[0]
        errs += _SOURCES[block](getattr(m, block), f"{path}.{block}")
    expected = _BLOCKS.get(m.type)
    if expected and not m.HasField(expected):
        errs.append(required(f"{path}.{expected}", _POPULATE))
    if len(present) != 1:
        for block in present:
            if block != expected:
                errs.append(forbidden(f"{path}.{block}",
                                      "must populate the given metric source only"))
    return errs


def _target(t: Any, path: str) -> Errs:
    errs: Errs = []
    if not t.type:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if t.type not in _TARGET_FIELDS:
        errs.append(invalid(f"{path}.type", t.type,
                            "must be either Utilization, Value, or AverageValue"))
    for field in ("value", "averageValue"):
        if t.HasField(field):
            q = getattr(t, field).string
            v = parse_quantity(q, f"{path}.{field}", errs)
            if v is not None and v <= 0:
                errs.append(invalid(f"{path}.{field}", q, "must be positive"))
    if t.HasField("averageUtilization") and t.averageUtilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", t.averageUtilization,
                            "must be greater than 0"))
    return errs


def _matching_field(t: Any, path: str, errs: Errs) -> Errs:
    """kubelite's rule: the field named by the target type is set (unless already reported)."""
    field = _TARGET_FIELDS.get(t.type)
    if field is None or t.HasField(field) or any(e.path.startswith(path) for e in errs):
        return []
    return [required(f"{path}.{field}", f"must be set when `type` is '{t.type}'")]


def _identifier(ident: Any, path: str) -> Errs:
    errs: Errs = []
    if not ident.name:
        errs.append(required(f"{path}.name", "must specify a metric name"))
    else:
        errs += _path_segment(ident.name, f"{path}.name")
    if ident.HasField("selector"):
        errs += validate_label_selector(ident.selector, f"{path}.selector")
    return errs


def _resource(src: Any, path: str) -> Errs:
    errs: Errs = []
    if not src.name:
        errs.append(required(f"{path}.name", "must specify a resource name"))
    t, tp = src.target, f"{path}.target"
    errs += _target(t, tp)
    if not t.HasField("averageUtilization") and not t.HasField("averageValue"):
        errs.append(required(f"{tp}.averageUtilization",
                             "must set either a target raw value or a target utilization"))
    if t.HasField("averageUtilization") and t.HasField("averageValue"):
        errs.append(forbidden(f"{tp}.averageValue",
                              "may not set both a target raw value and a target utilization"))
    return errs + _matching_field(t, tp, errs)


def _container_resource(src: Any, path: str) -> Errs:
    errs = _resource(src, path)
    if not src.container:
        errs.append(required(f"{path}.container", "must specify a container"))
    else:
        errs += label_errors(src.container, f"{path}.container")
    return errs


def _object(src: Any, path: str) -> Errs:
    errs = _object_ref(src.describedObject, f"{path}.describedObject")
    errs += _identifier(src.metric, f"{path}.metric")
    t, tp = src.target, f"{path}.target"
    errs += _target(t, tp)
    if not t.HasField("value") and not t.HasField("averageValue"):
        errs.append(required(f"{tp}.averageValue", "must set either a target value or "
                                                   "averageValue"))
    return errs + _matching_field(t, tp, errs)


def _external(src: Any, path: str) -> Errs:
    errs = _identifier(src.metric, f"{path}.metric")
    t, tp = src.target, f"{path}.target"
    errs += _target(t, tp)
    if not t.HasField("value") and not t.HasField("averageValue"):
        errs.append(required(f"{tp}.averageValue",
                             "must set either a target value for metric or a per-pod target"))
    if t.HasField("value") and t.HasField("averageValue"):
        errs.append(forbidden(f"{tp}.value",
                              "may not set both a target value for metric and a per-pod target"))
    return errs + _matching_field(t, tp, errs)


def _pods(src: Any, path: str) -> Errs:
    errs = _identifier(src.metric, f"{path}.metric")
    t, tp = src.target, f"{path}.target"
    errs += _target(t, tp)
    if not t.HasField("averageValue"):
        errs.append(required(f"{tp}.averageValue", "must specify a positive target averageValue"))
    return errs + _matching_field(t, tp, errs)


_SOURCES = {"object": _object, "external": _external, "pods": _pods, "resource": _resource,
            "containerResource": _container_resource}


def _rules(rules: Any, path: str) -> Errs:
    errs: Errs = []
    if rules.HasField("stabilizationWindowSeconds"):
        w = rules.stabilizationWindowSeconds
        if w < 0:
            errs.append(invalid(f"{path}.stabilizationWindowSeconds", w,
                                "must be greater than or equal to zero"))
        if w > MAX_STABILIZATION_SECONDS:
            errs.append(invalid(f"{path}.stabilizationWindowSeconds", w,
                                f"must be less than or equal to {MAX_STABILIZATION_SECONDS}"))
    if rules.HasField("selectPolicy") and rules.selectPolicy not in SELECT_POLICIES:
        errs.append(unsupported(f"{path}.selectPolicy", rules.selectPolicy, SELECT_POLICIES))
    if not rules.policies:
        errs.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, policy in enumerate(rules.policies):
        p = f"{path}.policies[{i}]"
        if policy.type not in POLICY_TYPES:
            errs.append(unsupported(f"{p}.type", policy.type, POLICY_TYPES))
        if policy.value <= 0:
            errs.append(invalid(f"{p}.value", policy.value, "must be greater than zero"))
        if policy.periodSeconds <= 0:
            errs.append(invalid(f"{p}.periodSeconds", policy.periodSeconds,
                                "must be greater than zero"))
        if policy.periodSeconds > MAX_PERIOD_SECONDS:
            errs.append(invalid(f"{p}.periodSeconds", policy.periodSeconds,
                                f"must be less than or equal to {MAX_PERIOD_SECONDS}"))
    return errs
