"""NodeResourcesFit (filter) and the LeastAllocated / BalancedAllocation scores."""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import MAX_SCORE, SUCCESS, Plugin, Snapshot, Status
from master.scheduler.nodeinfo import CPU, MEMORY, PODS, NodeInfo, pod_requests

SCORED = (CPU, MEMORY)


class NodeResourcesFit(Plugin):
    """The pod's requests fit in allocatable minus what the node's pods request."""

    name = "NodeResourcesFit"

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        state[self.name] = pod_requests(pod)
        return SUCCESS

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        reasons = []
        allowed_pods = node.allocatable.get(PODS)
        if allowed_pods is not None and len(node.pods) + 1 > allowed_pods:
            reasons.append("Too many pods")
        for name, want in sorted(state[self.name].items()):
            if want <= 0 or name == PODS:
                continue
            free = node.allocatable.get(name, 0) - node.requested.get(name, 0)
            if want > free:
                reasons.append(f"Insufficient {name}")
        return Status.unschedulable(self.name, *reasons) if reasons else SUCCESS


_NON_ZERO = "pod-requests/non-zero"


class _Scorer(Plugin):
    """Scores on the pod's non-zero requests plus what the node's pods request."""

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        if _NON_ZERO not in state:
            state[_NON_ZERO] = pod_requests(pod, non_zero=True)
        return SUCCESS


def _usage(state: dict[str, Any], node: NodeInfo) -> list[tuple[int, int]]:
    """(requested with the pod, allocatable) per scored resource; once per node and pod."""
    cache = state.setdefault("pod-requests/usage", {})
    got = cache.get(node.name)
    if got is None:
        want = state[_NON_ZERO]
        got = cache[node.name] = [
            (node.non_zero_requested.get(r, 0) + want.get(r, 0), node.allocatable.get(r, 0))
            for r in SCORED]
    return got


class LeastAllocated(_Scorer):
    """Prefer the node with the most cpu and memory left after placing the pod."""

    name = "NodeResourcesLeastAllocated"

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        total = 0
        for requested, allocatable in _usage(state, node):
            if allocatable > 0 and requested <= allocatable:
                total += (allocatable - requested) * MAX_SCORE // allocatable
        return total // len(SCORED)


class BalancedAllocation(_Scorer):
    """Prefer the node whose cpu and memory would be used in equal fractions.

    With two resources the standard deviation of the fractions is half their
    difference; the score is (1 - std) * 100.
    """

    name = "NodeResourcesBalancedAllocation"

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        (cpu_req, cpu_alloc), (mem_req, mem_alloc) = _usage(state, node)
        f_cpu = min(1.0, cpu_req / cpu_alloc) if cpu_alloc > 0 else 1.0
        f_mem = min(1.0, mem_req / mem_alloc) if mem_alloc > 0 else 1.0
        return int((1 - abs(f_cpu - f_mem) / 2) * MAX_SCORE)
