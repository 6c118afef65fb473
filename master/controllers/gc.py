"""The garbage collector: ownerReferences, cascading and orphaning deletes.

It watches every kind that can own or be owned and keeps an index from
owner uid to dependents. Three kinds of work, all level-triggered:

- a dependent whose owners are all gone is deleted (background cascade: the
  owner was deleted outright). Before deleting, the owner's absence is
  confirmed with a live read by uid, so an owner created a moment ago and not
  yet in the cache never loses its dependents. References to some (not all)
  vanished owners are removed instead.
- an owner being deleted with the `orphan` finalizer: its reference is
  removed from every dependent, then the finalizer (the API server then
  finishes the deletion). Dependents live on.
- an owner being deleted with the `foregroundDeletion` finalizer: its
  dependents are deleted (in foreground themselves when they own things);
  once none is left the finalizer is removed and the owner goes.

Owners of kinds it does not watch are never assumed gone.
"""

from __future__ import annotations

import logging
from typing import Any

from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert, kinds
from master.controllers.base import Controller
from master.informers import Informer, key_of

log = logging.getLogger(__name__)

WATCHED = ("pods", "replicasets", "replicationcontrollers", "deployments", "statefulsets",
           "daemonsets", "jobs", "cronjobs", "controllerrevisions", "persistentvolumeclaims",
           "services", "endpoints", "configmaps", "secrets", "horizontalpodautoscalers")
ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 4

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.by_resource: dict[str, Informer] = {}
        self.by_uid: dict[str, tuple[str, Any]] = {}  # uid -> (resource, object)
        self.dependents: dict[str, set[tuple[str, str]]] = {}  # owner uid -> {(res, key)}
        for resource in WATCHED:
            self.by_resource[resource] = self.informer(
                resource, on_change=lambda o, r=resource: self._changed(r, o),
                on_delete=lambda o, r=resource: self._deleted(r, o))

    # ---- index ----------------------------------------------------------------

    @staticmethod
    def _key(obj: Any) -> str:
        return key_of(obj)

    def _changed(self, resource: str, obj: Any) -> None:
        uid = obj.metadata.uid
        old = self.by_uid.get(uid)
        if old is not None:
            self._unindex(old[0], old[1])
        self.by_uid[uid] = (resource, obj)
        for ref in obj.metadata.ownerReferences:
            self.dependents.setdefault(ref.uid, set()).add((resource, self._key(obj)))
        if obj.metadata.ownerReferences:
            self.queue.add(f"dep|{resource}|{self._key(obj)}")
        if obj.metadata.deletionTimestamp and (
                ORPHAN in obj.metadata.finalizers or FOREGROUND in obj.metadata.finalizers):
            self.queue.add(f"owner|{resource}|{self._key(obj)}")
        self._wake_owners(obj)

    def _unindex(self, resource: str, obj: Any) -> None:
        for ref in obj.metadata.ownerReferences:
            deps = self.dependents.get(ref.uid)
            if deps is not None:
                deps.discard((resource, self._key(obj)))
                if not deps:
                    del self.dependents[ref.uid]

    def _deleted(self, resource: str, obj: Any) -> None:
        uid = obj.metadata.uid
        self.by_uid.pop(uid, None)
        self._unindex(resource, obj)
        for dep_resource, key in self.dependents.get(uid, set()):
            self.queue.add(f"dep|{dep_resource}|{key}")
        self._wake_owners(obj)

    def _wake_owners(self, obj: Any) -> None:
        """A dependent changed or went: an owner waiting in foreground may be done."""
        for ref in obj.metadata.ownerReferences:
            owner = self.by_uid.get(ref.uid)
            if owner is not None and owner[1].metadata.deletionTimestamp:
                self.queue.add(f"owner|{owner[0]}|{self._key(owner[1])}")

    def _dependents_of(self, uid: str) -> list[tuple[str, Any]]:
        out = []
        for resource, key in self.dependents.get(uid, set()):
            obj = self.by_resource[resource].get(key)
            if obj is not None:
                out.append((resource, obj))
        return out

    # ---- reconcile --------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        what, resource, obj_key = key.split("|", 2)
        obj = self.by_resource[resource].get(obj_key)
        if obj is None:
            return
        if what == "dep":
            await self._check_owners(resource, obj)
        else:
            await self._finish_owner(resource, obj)

    async def _owner_exists(self, ref: Any, namespace: str) -> bool | None:
        """True/False when known; None for a kind we cannot look up."""
        try:
            kind = kinds.by_kind(ref.apiVersion, ref.kind)
        except kinds.UnknownKind:
            return None
        if ref.uid in self.by_uid:
            return True
        try:
            live = await self.client.get(kind.resource, ref.name,
                                         namespace if kind.namespaced else "")
        except APIStatusError as e:
            if e.not_found:
                return False
            raise
        return bool(live.metadata.uid == ref.uid)

    async def _check_owners(self, resource: str, obj: Any) -> None:
        if obj.metadata.deletionTimestamp or not obj.metadata.ownerReferences:
            return
        md = obj.metadata
        gone, unknown = [], False
        for ref in md.ownerReferences:
            exists = await self._owner_exists(ref, md.namespace)
            if exists is None:
                unknown = True
            elif not exists:
                gone.append(ref.uid)
        if not gone:
            return
        if len(gone) == len(md.ownerReferences) and not unknown:
            log.info("deleting %s %s/%s: its owners are gone", resource, md.namespace, md.name)
            try:
                await self.client.delete(resource, md.name, md.namespace,
                                         propagation_policy="Background",
                                         precondition_uid=md.uid)
            except APIStatusError as e:
                if not e.not_found:
                    raise
            return
        keep = [convert.to_dict(r) for r in md.ownerReferences if r.uid not in gone]
        await self._patch_refs(resource, obj, keep)

    async def _patch_refs(self, resource: str, obj: Any, refs: list[dict[str, Any]]) -> None:
        md = obj.metadata
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": md.resourceVersion}}
        try:
            await self.client.patch(resource, md.name, patch, md.namespace)
        except APIStatusError as e:
            if not e.not_found:
                raise  # a conflict retries with the fresh object from the cache

    async def _finish_owner(self, resource: str, owner: Any) -> None:
        md = owner.metadata
        if not md.deletionTimestamp:
            return
        deps = self._dependents_of(md.uid)
        if ORPHAN in md.finalizers:
            for dep_resource, dep in deps:
                keep = [convert.to_dict(r) for r in dep.metadata.ownerReferences
                        if r.uid != md.uid]
                await self._patch_refs(dep_resource, dep, keep)
            await self._remove_finalizer(resource, owner, ORPHAN)
            return
        if FOREGROUND in md.finalizers:
            waiting = False
            for dep_resource, dep in deps:
                waiting = True
                if dep.metadata.deletionTimestamp:
                    continue
                policy = "Foreground" if self.dependents.get(dep.metadata.uid) else "Background"
                try:
                    await self.client.delete(dep_resource, dep.metadata.name,
                                             dep.metadata.namespace,
                                             propagation_policy=policy,
                                             precondition_uid=dep.metadata.uid)
                except APIStatusError as e:
                    if not e.not_found:
                        raise
            if not waiting:
                await self._remove_finalizer(resource, owner, FOREGROUND)

    async def _remove_finalizer(self, resource: str, obj: Any, finalizer: str) -> None:
        md = obj.metadata
        rest = [f for f in md.finalizers if f != finalizer]
        patch = {"metadata": {"finalizers": rest or None, "resourceVersion": md.resourceVersion}}
        try:
            await self.client.patch(resource, md.name, patch, md.namespace)
        except APIStatusError as e:
            if not e.not_found:
                raise
