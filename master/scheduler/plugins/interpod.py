"""InterPodAffinity: required pod affinity / anti-affinity filter by topologyKey,
preferred terms score (both the incoming pod's and, symmetrically, those of
the pods already placed).

A term selects pods by label selector in its namespaces (the owning pod's own
namespace when none are listed; an empty namespaceSelector means all of
them). Its topologyKey names a node label: pods on nodes with the same value
of that label are "together" (kubernetes.io/hostname: the same node).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from kubelite.objects import selectors
from master.scheduler.framework import MAX_SCORE, SUCCESS, Plugin, Snapshot, Status
from master.scheduler.nodeinfo import NodeInfo

Topo = tuple[str, str]  # (topologyKey, value)


def term_selects(term: Any, owner_ns: str, pod: Any) -> bool:
    if not term.HasField("labelSelector"):
        return False  # a nil selector selects nothing
    if term.HasField("namespaceSelector") and not (
            term.namespaceSelector.matchLabels or term.namespaceSelector.matchExpressions):
        pass  # every namespace
    elif pod.metadata.namespace not in (list(term.namespaces) or [owner_ns]):
        return False
    try:
        sel = selectors.from_message(term.labelSelector)
    except selectors.SelectorError:
        return False
    return selectors.matches(sel, pod.metadata.labels)


def _placed(snapshot: Snapshot, everyone: bool) -> Iterator[tuple[NodeInfo, Any]]:
    """Placed pods: all of them, or only those with affinity terms of their own."""
    for n in snapshot.nodes:
        if everyone or n.with_affinity:
            for info in n.pods.values():
                if everyone or info.affinity:
                    yield n, info.pod


def _required(aff: Any) -> list[Any]:
    return list(aff.requiredDuringSchedulingIgnoredDuringExecution)


def _preferred(aff: Any) -> list[Any]:
    return list(aff.preferredDuringSchedulingIgnoredDuringExecution)


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    weight = 2

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        ns = pod.metadata.namespace
        aff = pod.spec.affinity
        affinity = _required(aff.podAffinity)
        anti = _required(aff.podAntiAffinity)
        forbidden_by_existing: Counter[Topo] = Counter()
        anti_counts: Counter[tuple[int, str]] = Counter()
        aff_counts: Counter[tuple[int, str]] = Counter()
        scores: Counter[Topo] = Counter()
        prefer = [(w.weight, w.podAffinityTerm) for w in _preferred(aff.podAffinity)]
        prefer += [(-w.weight, w.podAffinityTerm) for w in _preferred(aff.podAntiAffinity)]
        mine = bool(affinity or anti or prefer)
        for node, other in _placed(snapshot, everyone=mine):
            if other.metadata.deletionTimestamp:
                continue
            oaff = other.spec.affinity if other.spec.HasField("affinity") else None
            if oaff is not None:
                for t in _required(oaff.podAntiAffinity):
                    v = node.labels.get(t.topologyKey)
                    if v is not None and term_selects(t, other.metadata.namespace, pod):
                        forbidden_by_existing[(t.topologyKey, v)] += 1
                for w in _preferred(oaff.podAffinity):
                    t = w.podAffinityTerm
                    v = node.labels.get(t.topologyKey)
                    if v is not None and term_selects(t, other.metadata.namespace, pod):
                        scores[(t.topologyKey, v)] += w.weight
                for w in _preferred(oaff.podAntiAffinity):
                    t = w.podAffinityTerm
                    v = node.labels.get(t.topologyKey)
                    if v is not None and term_selects(t, other.metadata.namespace, pod):
                        scores[(t.topologyKey, v)] -= w.weight
            for i, t in enumerate(anti):
                v = node.labels.get(t.topologyKey)
                if v is not None and term_selects(t, ns, other):
                    anti_counts[(i, v)] += 1
            for i, t in enumerate(affinity):
                v = node.labels.get(t.topologyKey)
                if v is not None and term_selects(t, ns, other):
                    aff_counts[(i, v)] += 1
            for weight, t in prefer:
                v = node.labels.get(t.topologyKey)
                if v is not None and term_selects(t, ns, other):
                    scores[(t.topologyKey, v)] += weight
        # The first pod of a group that wants to be with its own kind may go anywhere.
        self_match = not aff_counts and all(term_selects(t, ns, pod) for t in affinity)
        state[self.name] = (affinity, anti, forbidden_by_existing, anti_counts, aff_counts,
                            self_match, scores)
        return SUCCESS

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        affinity, anti, forbidden = state[self.name][:3]
        return not (affinity or anti or forbidden)

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        return not state[self.name][6]

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        affinity, anti, forbidden, anti_counts, aff_counts, self_match, _ = state[self.name]
        for (key, value), n in forbidden.items():
            if n and node.labels.get(key) == value:
                return Status.unschedulable(
                    self.name, "node(s) didn't satisfy existing pods anti-affinity rules")
        for i, t in enumerate(anti):
            v = node.labels.get(t.topologyKey)
            if v is not None and anti_counts.get((i, v)):
                return Status.unschedulable(self.name,
                                            "node(s) didn't match pod anti-affinity rules")
        for i, t in enumerate(affinity):
            v = node.labels.get(t.topologyKey)
            if v is None:
                return Status.unresolvable(self.name, "node(s) didn't match pod affinity rules")
            if not aff_counts.get((i, v)) and not self_match:
                return Status.unschedulable(self.name, "node(s) didn't match pod affinity rules")
        return SUCCESS

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        scores = state[self.name][6]
        if not scores:
            return 0
        return sum(w for (key, value), w in scores.items() if node.labels.get(key) == value)

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        if not scores:
            return
        lo, hi = min(scores.values()), max(scores.values())
        for k, v in scores.items():
            scores[k] = (v - lo) * MAX_SCORE // (hi - lo) if hi > lo else 0
