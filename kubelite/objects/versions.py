"""Older apiVersions a manifest may use, converted to the one we store.

The server stores one version of each kind (kinds.Kind.api_version). A
manifest written against an older version is converted here, on its dict
form, before it is decoded, so the strict decoder still names unknown fields:

- autoscaling/v1 HorizontalPodAutoscaler: `targetCPUUtilizationPercentage`
  becomes a Resource metric on cpu with an averageUtilization target (what
  Kubernetes' own v1<->v2 conversion does); status likewise.
- autoscaling/v2beta2 HorizontalPodAutoscaler and batch/v1beta1 CronJob have
  the stored shape already: only apiVersion changes.

`hpa_v2_to_v1` goes the other way for a client that asks for the v1 shape.
"""

from __future__ import annotations

import copy
from typing import Any

from kubelite.objects import kinds
from kubelite.objects.errors import FieldError, Invalid, invalid

_CPU_TARGET = "targetCPUUtilizationPercentage"
_CPU_CURRENT = "currentCPUUtilizationPercentage"


def to_internal(raw: dict[str, Any]) -> dict[str, Any]:
    """`raw` in the stored apiVersion; a copy when anything changed.

    Unknown kinds and versions are returned as they are: the caller's
    kinds.by_kind lookup is what reports them.
    """
    api_version, kind_name = raw.get("apiVersion"), raw.get("kind")
    if not isinstance(kind_name, str) or not isinstance(api_version, str):
        return raw
    try:
        kind = kinds.by_kind(api_version, kind_name)
    except kinds.UnknownKind:
        return raw
    if api_version == kind.api_version:
        return raw
    out = copy.deepcopy(raw)
    out["apiVersion"] = kind.api_version
    if kind_name == "HorizontalPodAutoscaler" and api_version == "autoscaling/v1":
        _hpa_v1_to_v2(out)
    return out


def _hpa_v1_to_v2(obj: dict[str, Any]) -> None:
    errs: list[FieldError] = []
    spec = obj.get("spec")
    if isinstance(spec, dict) and _CPU_TARGET in spec:
        target = spec.pop(_CPU_TARGET)
        if target is not None:
            if not _is_int(target):
                errs.append(invalid(f"spec.{_CPU_TARGET}", target, "must be an integer"))
            elif target < 1:  # named as the v1 field, not the v2 one it becomes
                errs.append(invalid(f"spec.{_CPU_TARGET}", target, "must be greater than 0"))
            else:
                spec["metrics"] = [_cpu_metric("target", {"type": "Utilization",
                                                          "averageUtilization": target})]
    status = obj.get("status")
    if isinstance(status, dict) and _CPU_CURRENT in status:
        current = status.pop(_CPU_CURRENT)
        if current is not None:
            if not _is_int(current):
                errs.append(invalid(f"status.{_CPU_CURRENT}", current, "must be an integer"))
            else:
                status["currentMetrics"] = [_cpu_metric("current",
                                                        {"averageUtilization": current})]
    if errs:
        md = obj.get("metadata")
        name = md.get("name", "") if isinstance(md, dict) else ""
        raise Invalid(errs, kind="HorizontalPodAutoscaler.autoscaling", name=str(name))


def _cpu_metric(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": "cpu", key: value}}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def hpa_v2_to_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 shape of a stored HPA dict (cpu utilization only).

    Metrics other than a cpu Utilization target have no v1 field and are
    dropped, as they are from Kubernetes' v1 view.
    """
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.get("spec") or {}
    for m in spec.pop("metrics", None) or []:
        res = m.get("resource") or {}
        target = res.get("target") or {}
        if (m.get("type") == "Resource" and res.get("name") == "cpu"
                and target.get("type") == "Utilization"
                and target.get("averageUtilization") is not None):
            spec[_CPU_TARGET] = target["averageUtilization"]
    spec.pop("behavior", None)
    status = out.get("status")
    if isinstance(status, dict):
        for m in status.pop("currentMetrics", None) or []:
            res = m.get("resource") or {}
            cur = res.get("current") or {}
            if (m.get("type") == "Resource" and res.get("name") == "cpu"
                    and cur.get("averageUtilization") is not None):
                status[_CPU_CURRENT] = cur["averageUtilization"]
        status.pop("conditions", None)
    return out
