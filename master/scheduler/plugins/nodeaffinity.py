"""NodeAffinity: nodeSelector and required node affinity filter; preferred scores."""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SUCCESS, Plugin, Status, scale_to_max
from master.scheduler.nodeinfo import NodeInfo


def requirement_matches(req: Any, values: dict[str, str]) -> bool:
    op, key = req.operator, req.key
    if op == "In":
        return key in values and values[key] in req.values
    if op == "NotIn":
        return key not in values or values[key] not in req.values
    if op == "Exists":
        return key in values
    if op == "DoesNotExist":
        return key not in values
    if op in ("Gt", "Lt"):
        try:
            have, want = int(values[key]), int(req.values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: Any, node: NodeInfo) -> bool:
    """All requirements of a term (an empty term matches nothing, as in Kubernetes)."""
    if not term.matchExpressions and not term.matchFields:
        return False
    fields = {"metadata.name": node.name}
    return (all(requirement_matches(r, node.labels) for r in term.matchExpressions)
            and all(requirement_matches(r, fields) for r in term.matchFields))


def required_matches(pod: Any, node: NodeInfo) -> bool:
    for k, v in pod.spec.nodeSelector.items():
        if node.labels.get(k) != v:
            return False
    aff = pod.spec.affinity.nodeAffinity
    if aff.HasField("requiredDuringSchedulingIgnoredDuringExecution"):
        terms = aff.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms
        return any(term_matches(t, node) for t in terms)  # terms are ORed
    return True


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    weight = 2

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        return not pod.spec.nodeSelector and not pod.spec.affinity.nodeAffinity.HasField(
            "requiredDuringSchedulingIgnoredDuringExecution")

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        return not pod.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        if required_matches(pod, node):
            return SUCCESS
        return Status.unresolvable(self.name, "node(s) didn't match Pod's node affinity/selector")

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        prefs = pod.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution
        return sum(p.weight for p in prefs if term_matches(p.preference, node))

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        scale_to_max(scores)
