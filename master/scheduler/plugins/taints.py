"""TaintToleration: NoSchedule/NoExecute taints must be tolerated; fewer
untolerated PreferNoSchedule taints score higher."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from master.scheduler.framework import SUCCESS, Plugin, Status, scale_to_max
from master.scheduler.nodeinfo import NodeInfo

# The master node, when it registers as a node, carries this taint.
CONTROL_PLANE_TAINT = ("node-role.kubernetes.io/control-plane", "", "NoSchedule")


def toleration_matches(t: Any, key: str, value: str, effect: str) -> bool:
    if t.effect and t.effect != effect:
        return False
    if t.key and t.key != key:
        return False
    op = t.operator or "Equal"
    if op == "Exists":
        return True  # an empty key with Exists tolerates everything
    return op == "Equal" and bool(t.key) and t.value == value


def tolerates(tolerations: Iterable[Any], key: str, value: str, effect: str) -> bool:
    return any(toleration_matches(t, key, value, effect) for t in tolerations)


def untolerated(tolerations: Iterable[Any], taints: Iterable[Any],
                effects: tuple[str, ...]) -> list[Any]:
    tols = list(tolerations)
    return [t for t in taints
            if t.effect in effects and not tolerates(tols, t.key, t.value, t.effect)]


class TaintToleration(Plugin):
    name = "TaintToleration"
    weight = 3

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        if not node.hard_taints:
            return SUCCESS
        bad = untolerated(pod.spec.tolerations, node.hard_taints, ("NoSchedule", "NoExecute"))
        if not bad:
            return SUCCESS
        t = bad[0]
        return Status.unresolvable(self.name,
                                   f"node(s) had untolerated taint {{{t.key}: {t.value}}}")

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        if not node.soft_taints:
            return 0
        prefer = [t for t in pod.spec.tolerations if not t.effect or t.effect == "PreferNoSchedule"]
        return len(untolerated(prefer, node.soft_taints, ("PreferNoSchedule",)))

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        scale_to_max(scores, reverse=True)
