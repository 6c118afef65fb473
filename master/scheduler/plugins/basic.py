"""Small plugins: NodeUnschedulable, NodeName, NodePorts, ImageLocality."""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import MAX_SCORE, SUCCESS, Plugin, Snapshot, Status
from master.scheduler.nodeinfo import NodeInfo, host_ports, normalize_image
from master.scheduler.plugins.taints import tolerates

UNSCHEDULABLE_TAINT_KEY = "node.kubernetes.io/unschedulable"


class NodeUnschedulable(Plugin):
    """A cordoned node (spec.unschedulable) takes only pods tolerating it."""

    name = "NodeUnschedulable"

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        if not node.node.spec.unschedulable:
            return SUCCESS
        if tolerates(pod.spec.tolerations, UNSCHEDULABLE_TAINT_KEY, "", "NoSchedule"):
            return SUCCESS
        return Status.unresolvable(self.name, "node(s) were unschedulable")


class NodeName(Plugin):
    name = "NodeName"

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        return not pod.spec.nodeName

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        if pod.spec.nodeName and pod.spec.nodeName != node.name:
            return Status.unresolvable(self.name, "node(s) didn't match the requested node name")
        return SUCCESS


class NodePorts(Plugin):
    """Two pods asking for the same hostPort (protocol, overlapping address) never share."""

    name = "NodePorts"

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        state[self.name] = host_ports(pod)
        return SUCCESS

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        return not state[self.name]

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        for ip, proto, port in state[self.name]:
            if node.port_in_use(ip, proto, port):
                return Status.unschedulable(
                    self.name, "node(s) didn't have free ports for the requested pod ports")
        return SUCCESS


MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


class ImageLocality(Plugin):
    """Prefer nodes that already have the pod's images, weighted by how rare they are."""

    name = "ImageLocality"

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        images = [normalize_image(c.image) for c in pod.spec.containers if c.image]
        counts = snapshot.image_counts()
        total = len(snapshot.nodes) or 1
        spread = {img: counts.get(img, 0) / total for img in set(images)}
        state[self.name] = (images, spread)
        return SUCCESS

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        return not any(state[self.name][1].values())  # no node has any of the images

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        images, spread = state[self.name]
        if not images:
            return 0
        total = sum(int(node.images[i] * spread[i]) for i in images if i in node.images)
        high = MAX_CONTAINER_THRESHOLD * len(images)
        total = max(MIN_THRESHOLD, min(high, total))
        return MAX_SCORE * (total - MIN_THRESHOLD) // (high - MIN_THRESHOLD)
