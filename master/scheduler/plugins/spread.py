"""SelectorSpread: spread the pods of one controller over nodes and zones.

Pods count as "the same workload" when they have the same controller
ownerReference (the ReplicaSet, StatefulSet, ... that created them). Fewer
such pods on a node scores higher; where nodes carry the zone label, zone
spreading weighs 2/3, as in Kubernetes' SelectorSpread.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from master.scheduler.framework import MAX_SCORE, SUCCESS, Plugin, Snapshot, Status
from master.scheduler.nodeinfo import NodeInfo, controller_uid

ZONE_LABEL = "topology.kubernetes.io/zone"
ZONE_WEIGHTING = 2 / 3


class SelectorSpread(Plugin):
    name = "SelectorSpread"
    weight = 2

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        uid = controller_uid(pod)
        per_node: dict[str, int] = {}
        if uid:
            per_node = {n.name: c for n in snapshot.nodes if (c := n.owners.get(uid))}
        state[self.name] = (bool(uid), per_node, snapshot.by_name)
        return SUCCESS

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        return not state[self.name][0]

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        return int(state[self.name][1].get(node.name, 0))

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        _, per_node, by_name = state[self.name]

        def zone(name: str) -> str:
            info = by_name.get(name)
            return info.labels.get(ZONE_LABEL, "") if info is not None else ""

        max_node = max(scores.values(), default=0)
        per_zone: Counter[str] = Counter()
        for name, count in per_node.items():
            z = zone(name)
            if z:
                per_zone[z] += count
        max_zone = max(per_zone.values(), default=0)
        zones = {name: zone(name) for name in scores}
        have_zones = any(zones.values())
        for name, count in scores.items():
            f = MAX_SCORE * (max_node - count) / max_node if max_node else MAX_SCORE
            z = zones[name]
            if have_zones and z:
                zf = (MAX_SCORE * (max_zone - per_zone[z]) / max_zone
                      if max_zone else MAX_SCORE)
                f = f * (1 - ZONE_WEIGHTING) + zf * ZONE_WEIGHTING
            scores[name] = int(f)
