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
        per_node: Counter[str] = Counter()
        if uid:
            for n in snapshot.nodes:
                if n.owners.get(uid):
                    per_node[n.name] = n.owners[uid]
        zones = {n.name: n.labels.get(ZONE_LABEL, "") for n in snapshot.nodes} if uid else {}
        state[self.name] = (bool(uid), per_node, zones)
        return SUCCESS

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        return not state[self.name][0]

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        has_owner, per_node, _ = state[self.name]
        return per_node.get(node.name, 0) if has_owner else 0

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        has_owner, per_node, zones = state[self.name]
        if not has_owner:
            for k in scores:
                scores[k] = 0
            return
        max_node = max(scores.values(), default=0)
        per_zone: Counter[str] = Counter()
        for name, count in per_node.items():
            if zones.get(name):
                per_zone[zones[name]] += count
        max_zone = max(per_zone.values(), default=0)
        have_zones = any(zones.get(k) for k in scores)
        for name, count in scores.items():
            f = MAX_SCORE * (max_node - count) / max_node if max_node else MAX_SCORE
            zone = zones.get(name, "")
            if have_zones and zone:
                zf = (MAX_SCORE * (max_zone - per_zone[zone]) / max_zone
                      if max_zone else MAX_SCORE)
                f = f * (1 - ZONE_WEIGHTING) + zf * ZONE_WEIGHTING
            scores[name] = int(f)
