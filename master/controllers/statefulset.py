"""The StatefulSet controller: pods with stable identities, in order.

- Pods are `<set>-<ordinal>` (ordinals.start .. start+replicas-1) with the
  hostname `<set>-<ordinal>` and subdomain spec.serviceName (their DNS name
  under the headless Service), labels `statefulset.kubernetes.io/pod-name`,
  `apps.kubernetes.io/pod-index` and `controller-revision-hash`.
- Each volumeClaimTemplate gives every ordinal its own claim
  `<template>-<set>-<ordinal>`, created before the pod and kept when the pod
  goes (persistentVolumeClaimRetentionPolicy Retain, the default), so a
  recreated pod finds its data again. whenDeleted/whenScaled Delete give the
  claims an ownerReference (to the set / to the pod) so the garbage
  collector removes them.
- OrderedReady: ordinal n is created only when 0..n-1 are Running and
  Ready; scaling down removes the highest ordinal first, one at a time.
  Parallel: all at once. A pod name is unique in the API, so there is never
  more than one pod per ordinal, even while one is terminating.
- Revisions are ControllerRevisions (`<set>-<hash>`, data = the pod
  template). RollingUpdate replaces pods whose revision is stale, highest
  ordinal first, one at a time, only ordinals >= partition; ordinals below
  the partition are (re)created from the current revision. OnDelete replaces
  only pods that were deleted.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert
from master.controllers.base import Controller, controller_ref, owner_reference
from master.controllers.replicaset import pod_ready
from master.informers import key_of

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def template_hash(template: Any) -> str:
    data = template.SerializeToString(deterministic=True)
    return hashlib.sha256(data).hexdigest()[:10]


def ordinal_of(pod: Any, set_name: str) -> int | None:
    prefix = set_name + "-"
    name = pod.metadata.name
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


def running_and_ready(pod: Any) -> bool:
    return (pod.status.phase == "Running" and pod_ready(pod)
            and not pod.metadata.deletionTimestamp)


class StatefulSetController(Controller):
    name = "statefulset"

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.sets = self.informer("statefulsets", on_change=self.enqueue)
        self.pods = self.informer("pods", on_change=self._pod_changed)
        self.revisions = self.informer("controllerrevisions", on_change=self._owned_changed)
        self.claims = self.informer("persistentvolumeclaims")

    def _pod_changed(self, pod: Any) -> None:
        self._owned_changed(pod)

    def _owned_changed(self, obj: Any) -> None:
        ref = controller_ref(obj)
        if ref is not None and ref.kind == "StatefulSet":
            self.queue.add(f"{obj.metadata.namespace}/{ref.name}")

    # ---- revisions ------------------------------------------------------------

    async def _revisions(self, sts: Any) -> tuple[Any, Any, list[Any]]:
        """(current revision, update revision, all revisions), creating the update one."""
        ns, uid = sts.metadata.namespace, sts.metadata.uid
        revs = sorted((r for r in self.revisions.items() if r.metadata.namespace == ns
                       and (ref := controller_ref(r)) is not None and ref.uid == uid),
                      key=lambda r: r.revision)
        name = f"{sts.metadata.name}-{template_hash(sts.spec.template)}"
        update = next((r for r in revs if r.metadata.name == name), None)
        top = revs[-1].revision if revs else 0
        if update is None or update.revision != top:
            rev = apps_pb2.ControllerRevision(apiVersion="apps/v1", kind="ControllerRevision",
                                              data=sts.spec.template.SerializeToString(
                                                  deterministic=True), revision=top + 1)
            rev.metadata.name, rev.metadata.namespace = name, ns
            rev.metadata.labels.update(sts.spec.template.metadata.labels)
            ref = rev.metadata.ownerReferences.add()
            ref.CopyFrom(convert.from_dict(owner_reference(sts, "apps/v1", "StatefulSet"),
                                           type(ref)))
            if update is None:
                try:
                    update = await self.client.create(rev)
                except APIStatusError as e:
                    if not e.already_exists:
                        raise
                    update = await self.client.get("controllerrevisions", name, ns)
            else:  # rolled back to an older template: it becomes the newest revision
                update.revision = top + 1
                update = await self.client.update(update)
            revs = [r for r in revs if r.metadata.name != name] + [update]
        current = next((r for r in revs if r.metadata.name == sts.status.currentRevision),
                       update)
        return current, update, revs

    @staticmethod
    def _template(rev: Any) -> Any:
        t = pod_pb2.PodTemplateSpec()
        t.ParseFromString(rev.data)
        return t

    # ---- reconcile --------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or sts.metadata.deletionTimestamp:
            return
        spec = sts.spec
        ns, name = sts.metadata.namespace, sts.metadata.name
        current, update, revs = await self._revisions(sts)
        start = spec.ordinals.start if spec.HasField("ordinals") else 0
        replicas = spec.replicas if spec.HasField("replicas") else 1
        wanted = range(start, start + replicas)
        pods = {o: p for p in self.pods.items()
                if p.metadata.namespace == ns and (ref := controller_ref(p)) is not None
                and ref.uid == sts.metadata.uid and (o := ordinal_of(p, name)) is not None}
        parallel = spec.podManagementPolicy == "Parallel"
        partition = (spec.updateStrategy.rollingUpdate.partition
                     if spec.updateStrategy.rollingUpdate.HasField("partition") else 0)
        rolling = spec.updateStrategy.type != "OnDelete"

        # Failed pods are replaced.
        for o, p in list(pods.items()):
            if p.status.phase in ("Failed", "Succeeded") and not p.metadata.deletionTimestamp:
                await self._delete_pod(sts, p)
                pods.pop(o)

        # Create missing pods (in order unless Parallel).
        blocked = False
        for o in wanted:
            p = pods.get(o)
            if p is None:
                rev = update if (o >= partition or not rolling) else current
                await self._create_pod(sts, o, rev)
                if not parallel:
                    blocked = True
                    break
            elif not parallel and not running_and_ready(p):
                blocked = True
                break

        # Scale down: highest ordinal first (one at a time unless Parallel).
        extra = sorted((o for o in pods if o not in wanted), reverse=True)
        if extra and not blocked:
            for o in extra:
                p = pods[o]
                if not p.metadata.deletionTimestamp:
                    await self._delete_pod(sts, p)
                if not parallel:
                    break
        elif rolling and not blocked and not extra:
            # Rolling update: highest stale ordinal >= partition, one at a time.
            for o in sorted(wanted, reverse=True):
                p = pods.get(o)
                if p is None or o < partition:
                    continue
                if p.metadata.deletionTimestamp or not running_and_ready(p):
                    break  # wait for it
                if p.metadata.labels.get(REVISION_LABEL) != update.metadata.name:
                    await self._delete_pod(sts, p)
                    break

        await self._prune_revisions(sts, revs, current, update, pods)
        await self._write_status(sts, pods, wanted, current, update, partition)

    def _claim_name(self, tmpl: Any, sts: Any, ordinal: int) -> str:
        return f"{tmpl.metadata.name}-{sts.metadata.name}-{ordinal}"

    async def _create_pod(self, sts: Any, ordinal: int, rev: Any) -> None:
        ns, name = sts.metadata.namespace, sts.metadata.name
        pod_name = f"{name}-{ordinal}"
        t = self._template(rev)
        for tmpl in sts.spec.volumeClaimTemplates:
            await self._ensure_claim(sts, tmpl, ordinal)
        pod = pod_pb2.Pod(apiVersion="v1", kind="Pod")
        md = pod.metadata
        md.name, md.namespace = pod_name, ns
        md.labels.update(t.metadata.labels)
        md.labels[REVISION_LABEL] = rev.metadata.name
        md.labels[POD_NAME_LABEL] = pod_name
        md.labels[POD_INDEX_LABEL] = str(ordinal)
        md.annotations.update(t.metadata.annotations)
        ref = md.ownerReferences.add()
        ref.CopyFrom(convert.from_dict(owner_reference(sts, "apps/v1", "StatefulSet"),
                                       type(ref)))
        pod.spec.CopyFrom(t.spec)
        pod.spec.hostname = pod_name
        if sts.spec.serviceName:
            pod.spec.subdomain = sts.spec.serviceName
        for tmpl in sts.spec.volumeClaimTemplates:
            vol = next((v for v in pod.spec.volumes if v.name == tmpl.metadata.name), None)
            if vol is None:
                vol = pod.spec.volumes.add(name=tmpl.metadata.name)
            vol.ClearField("emptyDir")
            vol.persistentVolumeClaim.claimName = self._claim_name(tmpl, sts, ordinal)
        try:
            await self.client.create(pod)
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Pod {pod_name} in StatefulSet {name} successful")
        except APIStatusError as e:
            if not e.already_exists:  # a terminating pod of this ordinal is still there
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Pod {pod_name} in StatefulSet {name} failed "
                                    f"error: {e.message}")
                raise

    async def _ensure_claim(self, sts: Any, tmpl: Any, ordinal: int) -> None:
        ns = sts.metadata.namespace
        claim = self._claim_name(tmpl, sts, ordinal)
        if self.claims.get(f"{ns}/{claim}") is not None:
            return
        pvc = core_pb2.PersistentVolumeClaim(apiVersion="v1", kind="PersistentVolumeClaim")
        pvc.metadata.CopyFrom(tmpl.metadata)
        pvc.metadata.name, pvc.metadata.namespace = claim, ns
        pvc.metadata.labels.update(sts.spec.selector.matchLabels)
        pvc.spec.CopyFrom(tmpl.spec)
        if sts.spec.persistentVolumeClaimRetentionPolicy.whenDeleted == "Delete":
            ref = pvc.metadata.ownerReferences.add()
            ref.CopyFrom(convert.from_dict(owner_reference(sts, "apps/v1", "StatefulSet"),
                                           type(ref)))
            ref.controller = False
        try:
            await self.client.create(pvc)
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {claim} Pod {sts.metadata.name}-{ordinal} in "
                                f"StatefulSet {sts.metadata.name} success")
        except APIStatusError as e:
            if not e.already_exists:
                raise

    async def _delete_pod(self, sts: Any, pod: Any) -> None:
        try:
            await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                     precondition_uid=pod.metadata.uid)
            self.recorder.event(sts, "Normal", "SuccessfulDelete",
                                f"delete Pod {pod.metadata.name} in StatefulSet "
                                f"{sts.metadata.name} successful")
        except APIStatusError as e:
            if not e.not_found:
                raise

    async def _prune_revisions(self, sts: Any, revs: list[Any], current: Any, update: Any,
                               pods: dict[int, Any]) -> None:
        limit = sts.spec.revisionHistoryLimit if sts.spec.HasField("revisionHistoryLimit") \
            else 10
        live = {p.metadata.labels.get(REVISION_LABEL) for p in pods.values()}
        keep = {current.metadata.name, update.metadata.name} | live
        old = [r for r in revs if r.metadata.name not in keep]
        for r in old[:max(0, len(old) - limit)]:
            try:
                await self.client.delete("controllerrevisions", r.metadata.name,
                                         r.metadata.namespace)
            except APIStatusError as e:
                if not e.not_found:
                    raise

    async def _write_status(self, sts: Any, pods: dict[int, Any], wanted: range, current: Any,
                            update: Any, partition: int) -> None:
        live = [p for p in pods.values() if not p.metadata.deletionTimestamp]
        status = apps_pb2.StatefulSetStatus()
        status.CopyFrom(sts.status)
        status.observedGeneration = sts.metadata.generation
        status.replicas = len(live)
        status.readyReplicas = sum(1 for p in live if pod_ready(p))
        status.availableReplicas = status.readyReplicas
        status.updatedReplicas = sum(1 for p in live
                                     if p.metadata.labels.get(REVISION_LABEL)
                                     == update.metadata.name)
        status.updateRevision = update.metadata.name
        all_updated = (status.updatedReplicas == len(wanted) == len(live)
                       and status.readyReplicas == len(wanted))
        status.currentRevision = update.metadata.name if all_updated else \
            (sts.status.currentRevision or update.metadata.name)
        status.currentReplicas = sum(1 for p in live if p.metadata.labels.get(REVISION_LABEL)
                                     == status.currentRevision)
        if status == sts.status:
            return
        upd = apps_pb2.StatefulSet()
        upd.CopyFrom(sts)
        upd.status.CopyFrom(status)
        upd.metadata.resourceVersion = sts.metadata.resourceVersion
        try:
            await self.client.update_status(upd)
        except APIStatusError as e:
            if not e.not_found:
                raise
        if not all_updated:
            self.queue.add_after(key_of(sts), 1.0)
