"""Scheduling constraints: tolerations, taints, node and pod affinity, spread.

These are what the scheduler's filter plugins read, so they are checked up
front with Kubernetes' messages: an operator the scheduler would not
understand is rejected at the API, not discovered as a pod stuck Pending.
"""

from __future__ import annotations

from typing import Any

from kubelite.objects import names
from kubelite.objects.errors import duplicate, forbidden, invalid, required, unsupported
from kubelite.objects.validation_common import (
    NOT_POSITIVE_MSG,
    Errs,
    Shown,
    go_quote,
    label_errors,
    qualified_name_errors,
    subdomain_errors,
    validate_label_selector,
    with_errors,
)

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
WHEN_UNSATISFIABLE = ["DoNotSchedule", "ScheduleAnyway"]
INCLUSION_POLICIES = ["Honor", "Ignore"]


def taint_effect(effect: str, path: str, *, allow_empty: bool) -> Errs:
    if not effect:
        return [] if allow_empty else [required(path)]
    return [] if effect in TAINT_EFFECTS else [unsupported(path, effect, TAINT_EFFECTS)]


def _toleration_shown(t: Any) -> Shown:
    seconds = (f"(*int64)({t.tolerationSeconds})" if t.HasField("tolerationSeconds")
               else "(*int64)(nil)")
    return Shown(f"core.Toleration{{Key:{go_quote(t.key)}, Operator:{go_quote(t.operator)}, "
                 f"Value:{go_quote(t.value)}, Effect:{go_quote(t.effect)}, "
                 f"TolerationSeconds:{seconds}}}")


def validate_tolerations(tolerations: Any, path: str) -> Errs:
    errs: Errs = []
    for i, t in enumerate(tolerations):
        p = f"{path}[{i}]"
        if t.key:
            errs += qualified_name_errors(t.key, f"{p}.key")
        if not t.key and t.operator != "Exists":
            errs.append(invalid(f"{p}.operator", t.operator,
                                "operator must be Exists when `key` is empty, which means "
                                "\"match all values and all keys\""))
        if t.HasField("tolerationSeconds") and t.effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", t.effect,
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if t.operator in ("Equal", ""):
            msgs = names.label_value(t.value)
            if msgs:
                errs.append(invalid(f"{p}.operator", t.value, ";".join(msgs)))
        elif t.operator == "Exists":
            if t.value:
                errs.append(invalid(f"{p}.operator", _toleration_shown(t),
                                    "value must be empty when `operator` is 'Exists'"))
        else:
            errs.append(unsupported(f"{p}.operator", t.operator, ["Equal", "Exists"]))
        errs += taint_effect(t.effect, f"{p}.effect", allow_empty=True)
    return errs


# ---- node affinity -----------------------------------------------------------

def node_selector(sel: Any, path: str) -> Errs:
    """A NodeSelector (required node affinity, PV node affinity): ORed terms."""
    if not sel.nodeSelectorTerms:
        return [required(f"{path}.nodeSelectorTerms",
                         "must have at least one node selector term")]
    errs: Errs = []
    for i, term in enumerate(sel.nodeSelectorTerms):
        errs += _node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]")
    return errs


def _node_selector_term(term: Any, path: str) -> Errs:
    errs: Errs = []
    for j, req in enumerate(term.matchExpressions):
        errs += _node_requirement(req, f"{path}.matchExpressions[{j}]")
    for j, req in enumerate(term.matchFields):
        p = f"{path}.matchFields[{j}]"
        if req.operator in ("In", "NotIn"):
            if len(req.values) != 1:
                errs.append(required(f"{p}.values", "must be only one value when `operator` is "
                                                    "'In' or 'NotIn' for node field selector"))
        else:
            errs.append(invalid(f"{p}.operator", req.operator, "not a valid selector operator"))
        if req.key != "metadata.name":
            errs.append(invalid(f"{p}.key", req.key, "not a valid field selector key"))
        else:
            for k, v in enumerate(req.values):
                errs += subdomain_errors(v, f"{p}.values[{k}]")
    return errs


def _node_requirement(req: Any, path: str) -> Errs:
    errs: Errs = []
    op = req.operator
    if op in ("In", "NotIn"):
        if not req.values:
            errs.append(required(f"{path}.values",
                                 "must be specified when `operator` is 'In' or 'NotIn'"))
    elif op in ("Exists", "DoesNotExist"):
        if req.values:
            errs.append(forbidden(
                f"{path}.values",
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    elif op in ("Gt", "Lt"):
        if len(req.values) != 1:
            errs.append(required(f"{path}.values",
                                 "must be specified single value when `operator` is 'Lt' or 'Gt'"))
    else:
        errs.append(invalid(f"{path}.operator", op, "not a valid selector operator"))
    errs += qualified_name_errors(req.key, f"{path}.key")
    for k, v in enumerate(req.values):
        errs += with_errors(f"{path}.values[{k}]", v, names.label_value(v))
    return errs


def _weight(weight: int, path: str) -> Errs:
    return [] if 1 <= weight <= 100 else [invalid(path, weight, "must be in the range 1-100")]


# ---- pod (anti-)affinity -----------------------------------------------------

def _pod_affinity_term(term: Any, path: str) -> Errs:
    errs: Errs = []
    if term.HasField("labelSelector"):
        errs += validate_label_selector(term.labelSelector, f"{path}.labelSelector")
    if term.HasField("namespaceSelector"):
        errs += validate_label_selector(term.namespaceSelector, f"{path}.namespaceSelector")
    for ns in term.namespaces:
        errs += label_errors(ns, f"{path}.namespace")
    for field in ("matchLabelKeys", "mismatchLabelKeys"):
        for k, key in enumerate(getattr(term, field)):
            errs += qualified_name_errors(key, f"{path}.{field}[{k}]")
    if not term.topologyKey:
        errs.append(required(f"{path}.topologyKey", "can not be empty"))
    else:
        errs += qualified_name_errors(term.topologyKey, f"{path}.topologyKey")
    return errs


def _pod_affinity(aff: Any, path: str) -> Errs:
    errs: Errs = []
    req = "requiredDuringSchedulingIgnoredDuringExecution"
    pref = "preferredDuringSchedulingIgnoredDuringExecution"
    for i, term in enumerate(getattr(aff, req)):
        errs += _pod_affinity_term(term, f"{path}.{req}[{i}]")
    for i, wterm in enumerate(getattr(aff, pref)):
        errs += _weight(wterm.weight, f"{path}.{pref}[{i}].weight")
        errs += _pod_affinity_term(wterm.podAffinityTerm, f"{path}.{pref}[{i}].podAffinityTerm")
    return errs


def validate_affinity(aff: Any, path: str) -> Errs:
    errs: Errs = []
    if aff.HasField("nodeAffinity"):
        na, p = aff.nodeAffinity, f"{path}.nodeAffinity"
        req = "requiredDuringSchedulingIgnoredDuringExecution"
        pref = "preferredDuringSchedulingIgnoredDuringExecution"
        if na.HasField(req):
            errs += node_selector(getattr(na, req), f"{p}.{req}")
        for i, term in enumerate(getattr(na, pref)):
            errs += _weight(term.weight, f"{p}.{pref}[{i}].weight")
            errs += _node_selector_term(term.preference, f"{p}.{pref}[{i}].preference")
    if aff.HasField("podAffinity"):
        errs += _pod_affinity(aff.podAffinity, f"{path}.podAffinity")
    if aff.HasField("podAntiAffinity"):
        errs += _pod_affinity(aff.podAntiAffinity, f"{path}.podAntiAffinity")
    return errs


# ---- topology spread ---------------------------------------------------------

def validate_topology_spread(constraints: Any, path: str) -> Errs:
    errs: Errs = []
    for i, c in enumerate(constraints):
        p = f"{path}[{i}]"
        if c.maxSkew <= 0:
            errs.append(invalid(f"{p}.maxSkew", c.maxSkew, NOT_POSITIVE_MSG))
        if not c.topologyKey:
            errs.append(required(f"{p}.topologyKey", "can not be empty"))
        if c.whenUnsatisfiable not in WHEN_UNSATISFIABLE:
            errs.append(unsupported(f"{p}.whenUnsatisfiable", c.whenUnsatisfiable,
                                    WHEN_UNSATISFIABLE))
        for later in list(constraints)[i + 1:]:
            if (later.topologyKey, later.whenUnsatisfiable) == (c.topologyKey,
                                                                c.whenUnsatisfiable):
                errs.append(duplicate(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                      f"{{{c.topologyKey}, {c.whenUnsatisfiable}}}"))
                break
        if c.HasField("minDomains"):
            if c.minDomains <= 0:
                errs.append(invalid(f"{p}.minDomains", c.minDomains, NOT_POSITIVE_MSG))
            if c.whenUnsatisfiable != "DoNotSchedule":
                errs.append(invalid(f"{p}.minDomains", c.minDomains,
                                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
                                    f"not {c.whenUnsatisfiable}"))
        for field in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            if c.HasField(field) and getattr(c, field) not in INCLUSION_POLICIES:
                errs.append(unsupported(f"{p}.{field}", getattr(c, field), INCLUSION_POLICIES))
        for k, key in enumerate(c.matchLabelKeys):
            errs += qualified_name_errors(key, f"{p}.matchLabelKeys[{k}]")
        if c.HasField("labelSelector"):
            errs += validate_label_selector(c.labelSelector, f"{p}.labelSelector")
    return errs
