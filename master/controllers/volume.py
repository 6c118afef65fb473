"""PersistentVolumes and claims: binding, local-path provisioning, reclaiming.

- A pending claim binds to the smallest Available volume that fits: same
  storageClassName, its access modes, at least the requested storage, the
  claim's selector. Volume and claim both record the binding (claimRef /
  volumeName) and turn Bound.
- A claim of storageClassName `local-path` is provisioned when a pod using
  it has been placed on a node (Kubernetes' WaitForFirstConsumer): a
  hostPath volume `<root>/<namespace>_<claim>` with a required node affinity
  for that node, so a pod using the claim later is scheduled there again.
  The node agent creates the directory when it mounts it.
- A volume whose claim is gone becomes Released; reclaimPolicy Delete then
  deletes the volume object, Retain keeps it Released for an administrator.
  A local-path volume's directory is removed first, on its node, by a helper
  pod (kube-system/helper-pod-delete-<volume>, as Rancher's local-path
  provisioner does it): the volume object goes once the helper Succeeded; if
  it fails, the volume turns Failed with the reason (VolumeFailedDelete) and
  stays for an administrator.
"""

from __future__ import annotations

import posixpath
from typing import Any

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import quantity, selectors
from master.apiserver.strategy import now_rfc3339
from master.controllers.base import Controller
from master.informers import key_of

LOCAL_PATH = "local-path"
LOCAL_PATH_ROOT = "/var/lib/kubelite/local-path"
PROVISIONER = "kubelite.io/local-path"
HELPER_NAMESPACE = "kube-system"
HELPER_VOLUME = "kubelite.io/helper-for-volume"
HELPER_IMAGE = "kubelite/busybox:latest"


def _request(pvc: Any) -> int:
    q = pvc.spec.resources.requests.get("storage")
    return quantity.value(q.string) if q is not None else 0


def _capacity(pv: Any) -> int:
    q = pv.spec.capacity.get("storage")
    return quantity.value(q.string) if q is not None else 0


def fits(pv: Any, pvc: Any) -> bool:
    if pv.spec.storageClassName != pvc.spec.storageClassName:
        return False
    if not set(pvc.spec.accessModes) <= set(pv.spec.accessModes):
        return False
    if _capacity(pv) < _request(pvc):
        return False
    if pvc.spec.HasField("selector"):
        try:
            sel = selectors.from_message(pvc.spec.selector)
        except selectors.SelectorError:
            return False
        if not selectors.matches(sel, pv.metadata.labels):
            return False
    return True


class PersistentVolumeController(Controller):
    name = "persistentvolume"

    def __init__(self, client: AsyncClient, *, local_path_root: str = LOCAL_PATH_ROOT,
                 helper_image: str = HELPER_IMAGE) -> None:
        super().__init__(client)
        self.root = local_path_root
        self.helper_image = helper_image
        self._reclaimed: set[str] = set()  # uids of volumes whose directory is gone
        self.claims = self.informer("persistentvolumeclaims", on_change=self._claim_changed)
        self.volumes = self.informer("persistentvolumes", on_change=self._volume_changed)
        self.pods = self.informer("pods", on_change=self._pod_changed)

    def _claim_changed(self, pvc: Any) -> None:
        self.queue.add("pvc|" + key_of(pvc))
        if pvc.spec.volumeName:  # its volume may be released now
            self.queue.add("pv|" + pvc.spec.volumeName)

    def _volume_changed(self, pv: Any) -> None:
        self.queue.add("pv|" + pv.metadata.name)
        ref = pv.spec.claimRef
        if ref.name:
            self.queue.add(f"pvc|{ref.namespace}/{ref.name}")

    def _pod_changed(self, pod: Any) -> None:
        helped = pod.metadata.annotations.get(HELPER_VOLUME)
        if helped:
            self.queue.add("pv|" + helped)
        if not pod.spec.nodeName:
            return
        for v in pod.spec.volumes:
            if v.HasField("persistentVolumeClaim"):
                self.queue.add(f"pvc|{pod.metadata.namespace}/"
                               f"{v.persistentVolumeClaim.claimName}")

    async def reconcile(self, key: str) -> None:
        what, _, name = key.partition("|")
        if what == "pvc":
            pvc = self.claims.get(name)
            if pvc is not None and not pvc.metadata.deletionTimestamp:
                await self._sync_claim(pvc)
        else:
            pv = self.volumes.get(name)
            if pv is not None and not pv.metadata.deletionTimestamp:
                await self._sync_volume(pv)
            elif pv is None:
                await self._delete_helper(name)  # its volume is gone: the helper too

    # ---- claims ---------------------------------------------------------------

    async def _sync_claim(self, pvc: Any) -> None:
        if pvc.spec.volumeName:
            pv = self.volumes.get(pvc.spec.volumeName)
            if pv is not None:
                await self._bind(pv, pvc)
            return
        candidates = [pv for pv in self.volumes.items()
                      if not pv.metadata.deletionTimestamp and fits(pv, pvc)
                      and (not pv.spec.claimRef.name or pv.spec.claimRef.uid == pvc.metadata.uid)
                      and pv.status.phase in ("", "Available", "Pending")]
        if candidates:
            pv = min(candidates, key=lambda v: (_capacity(v), v.metadata.name))
            await self._bind(pv, pvc)
            return
        if pvc.spec.storageClassName == LOCAL_PATH:
            node = self._consumer_node(pvc)
            if node:
                pv = await self._provision(pvc, node)
                await self._bind(pv, pvc)
                return
        if pvc.status.phase != "Pending":
            await self._claim_status(pvc, "Pending", None)

    def _consumer_node(self, pvc: Any) -> str:
        ns, name = pvc.metadata.namespace, pvc.metadata.name
        for p in self.pods.items():
            if p.metadata.namespace == ns and p.spec.nodeName and any(
                    v.HasField("persistentVolumeClaim") and
                    v.persistentVolumeClaim.claimName == name for v in p.spec.volumes):
                return str(p.spec.nodeName)
        return ""

    async def _provision(self, pvc: Any, node: str) -> Any:
        md = pvc.metadata
        pv = core_pb2.PersistentVolume(apiVersion="v1", kind="PersistentVolume")
        pv.metadata.name = f"pvc-{md.uid}"
        pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] = PROVISIONER
        pv.spec.capacity["storage"].string = pvc.spec.resources.requests["storage"].string \
            if "storage" in pvc.spec.resources.requests else "1Gi"
        pv.spec.accessModes.extend(pvc.spec.accessModes or ["ReadWriteOnce"])
        pv.spec.persistentVolumeReclaimPolicy = "Delete"
        pv.spec.storageClassName = LOCAL_PATH
        pv.spec.hostPath.path = f"{self.root}/{md.namespace}_{md.name}"
        term = pv.spec.nodeAffinity.required.nodeSelectorTerms.add()
        term.matchExpressions.add(key="kubernetes.io/hostname", operator="In", values=[node])
        ref = pv.spec.claimRef
        ref.kind, ref.apiVersion = "PersistentVolumeClaim", "v1"
        ref.namespace, ref.name, ref.uid = md.namespace, md.name, md.uid
        try:
            created = await self.client.create(pv)
        except APIStatusError as e:
            if not e.already_exists:
                raise
            created = await self.client.get("persistentvolumes", pv.metadata.name)
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {pv.metadata.name} on {node}")
        return created

    async def _bind(self, pv: Any, pvc: Any) -> None:
        ref = pv.spec.claimRef
        if ref.uid != pvc.metadata.uid or ref.name != pvc.metadata.name:
            ref = pv.spec.claimRef
            ref.Clear()
            ref.kind, ref.apiVersion = "PersistentVolumeClaim", "v1"
            ref.namespace, ref.name, ref.uid = (pvc.metadata.namespace, pvc.metadata.name,
                                                pvc.metadata.uid)
            pv = await self.client.update(pv)  # CAS: a volume is claimed once
        if pv.status.phase != "Bound":
            pv.status.phase = "Bound"
            pv.status.lastPhaseTransitionTime = now_rfc3339()
            pv = await self.client.update_status(pv)
        if pvc.spec.volumeName != pv.metadata.name:
            pvc.spec.volumeName = pv.metadata.name
            pvc = await self.client.update(pvc)
        if pvc.status.phase != "Bound":
            await self._claim_status(pvc, "Bound", pv)

    async def _claim_status(self, pvc: Any, phase: str, pv: Any | None) -> None:
        upd = core_pb2.PersistentVolumeClaim()
        upd.CopyFrom(pvc)
        upd.status.phase = phase
        if pv is not None:
            del upd.status.accessModes[:]
            upd.status.accessModes.extend(pv.spec.accessModes)
            upd.status.capacity.clear()
            for k, v in pv.spec.capacity.items():
                upd.status.capacity[k].CopyFrom(v)
        try:
            await self.client.update_status(upd)
        except APIStatusError as e:
            if not e.not_found:
                raise

    # ---- volumes --------------------------------------------------------------

    async def _sync_volume(self, pv: Any) -> None:
        ref = pv.spec.claimRef
        if not ref.name:
            if pv.status.phase != "Available":
                pv.status.phase = "Available"
                await self.client.update_status(pv)
            return
        claim = self.claims.get(f"{ref.namespace}/{ref.name}")
        if claim is not None and (not ref.uid or claim.metadata.uid == ref.uid):
            return
        if claim is None:
            try:  # the cache may lag: make sure the claim is really gone
                live = await self.client.get("persistentvolumeclaims", ref.name, ref.namespace)
                if not ref.uid or live.metadata.uid == ref.uid:
                    return
            except APIStatusError as e:
                if not e.not_found:
                    raise
        if pv.spec.persistentVolumeReclaimPolicy == "Delete":
            if pv.metadata.annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER \
                    and pv.spec.HasField("hostPath") and not await self._remove_directory(pv):
                return  # the helper has not finished (or failed: the volume says why)
            try:
                await self.client.delete("persistentvolumes", pv.metadata.name,
                                         precondition_uid=pv.metadata.uid)
            except APIStatusError as e:
                if not e.not_found:
                    raise
            self._reclaimed.add(pv.metadata.uid)
            await self._delete_helper(pv.metadata.name)
            return
        if pv.status.phase != "Released":
            pv.status.phase = "Released"
            pv.status.lastPhaseTransitionTime = now_rfc3339()
            await self.client.update_status(pv)

    # ---- local-path directories ------------------------------------------------

    def _node_of(self, pv: Any) -> str:
        for term in pv.spec.nodeAffinity.required.nodeSelectorTerms:
            for e in term.matchExpressions:
                if e.key == "kubernetes.io/hostname" and e.operator == "In" and e.values:
                    return str(e.values[0])
        return ""

    @staticmethod
    def _helper_name(volume: str) -> str:
        return f"helper-pod-delete-{volume}"[:63].rstrip("-")

    async def _delete_helper(self, volume: str) -> None:
        name = self._helper_name(volume)
        helper = self.pods.get(f"{HELPER_NAMESPACE}/{name}")
        if helper is None or helper.metadata.deletionTimestamp or \
                helper.status.phase not in ("Succeeded", "Failed"):
            return
        try:
            await self.client.delete("pods", name, HELPER_NAMESPACE,
                                     precondition_uid=helper.metadata.uid)
        except APIStatusError as e:
            if not e.not_found:
                raise

    async def _remove_directory(self, pv: Any) -> bool:
        """True once the volume's directory is gone from its node (a helper pod, deleted
        after the volume: a helper that went first could be made again by a reconcile
        still seeing the volume)."""
        name = self._helper_name(pv.metadata.name)
        helper = self.pods.get(f"{HELPER_NAMESPACE}/{name}")
        node = self._node_of(pv)
        if pv.metadata.uid in self._reclaimed:
            return True  # done once already; the cache has not caught up
        if helper is None:
            if not node:
                return True  # not tied to a node: nothing kubelite made to clean up
            parent, base = posixpath.split(pv.spec.hostPath.path.rstrip("/"))
            await self._create_helper(pv, name, node, parent, base)
            return False
        phase = helper.status.phase
        if phase == "Succeeded":
            return True
        if phase == "Failed" and pv.status.phase != "Failed":
            why = next((cs.state.terminated.message or cs.state.terminated.reason
                        for cs in helper.status.containerStatuses
                        if cs.state.HasField("terminated")), "") or helper.status.message
            message = (f"failed to delete {pv.spec.hostPath.path} on {node}: "
                       f"{why or 'the helper pod failed'} (see pod {HELPER_NAMESPACE}/{name})")
            self.recorder.event(pv, "Warning", "VolumeFailedDelete", message)
            pv.status.phase, pv.status.message = "Failed", message
            pv.status.reason = "VolumeFailedDelete"
            pv.status.lastPhaseTransitionTime = now_rfc3339()
            await self.client.update_status(pv)
        return False

    async def _create_helper(self, pv: Any, name: str, node: str, parent: str,
                             base: str) -> None:
        pod = pod_pb2.Pod(apiVersion="v1", kind="Pod")
        pod.metadata.name, pod.metadata.namespace = name, HELPER_NAMESPACE
        pod.metadata.labels["app"] = "local-path-helper"
        pod.metadata.annotations[HELPER_VOLUME] = pv.metadata.name
        spec = pod.spec
        spec.nodeName = node
        spec.restartPolicy = "Never"
        spec.terminationGracePeriodSeconds = 0
        spec.tolerations.add(operator="Exists")
        c = spec.containers.add(name="helper", image=self.helper_image,
                                imagePullPolicy="IfNotPresent")
        c.command.extend(["rm", "-rf", f"/data/{base}"])
        c.volumeMounts.add(name="data", mountPath="/data")
        v = spec.volumes.add(name="data")
        v.hostPath.path = parent
        v.hostPath.type = "DirectoryOrCreate"
        try:
            await self.client.create(pod)
        except APIStatusError as e:
            if not e.already_exists:
                raise
