"""VolumeBinding: a pod's claims must exist, and a bound volume's node
affinity (a local volume lives on one node) decides where the pod can go.

The snapshot's `volume_lookup(namespace, claim)` gives (claim, volume) or
None; without it (pure tests with no volumes) the plugin passes every node.
A claim still unbound is fine when its class provisions per node after the
pod is placed (`local-path`, Kubernetes' WaitForFirstConsumer).
"""

from __future__ import annotations

from typing import Any

from master.scheduler.framework import SUCCESS, Plugin, Snapshot, Status
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.plugins.nodeaffinity import term_matches

WAIT_FOR_FIRST_CONSUMER = ("local-path",)


class VolumeBinding(Plugin):
    name = "VolumeBinding"

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        lookup = getattr(snapshot, "volume_lookup", None)
        selectors: list[Any] = []
        state[self.name] = selectors
        if lookup is None:
            return SUCCESS
        for v in pod.spec.volumes:
            if not v.HasField("persistentVolumeClaim"):
                continue
            claim = v.persistentVolumeClaim.claimName
            found = lookup(pod.metadata.namespace, claim)
            if found is None:
                return Status.unresolvable(self.name,
                                           f'persistentvolumeclaim "{claim}" not found')
            pvc, pv = found
            if pv is None:
                if pvc.spec.storageClassName in WAIT_FOR_FIRST_CONSUMER:
                    continue
                return Status.unschedulable(
                    self.name, "pod has unbound immediate PersistentVolumeClaims")
            if pv.spec.nodeAffinity.HasField("required"):
                selectors.append(pv.spec.nodeAffinity.required)
        return SUCCESS

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        return not state[self.name]

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        for sel in state[self.name]:
            if not any(term_matches(t, node) for t in sel.nodeSelectorTerms):
                return Status.unresolvable(self.name,
                                           "node(s) had volume node affinity conflict")
        return SUCCESS
