"""ReplicaSet and ReplicationController: keep exactly `replicas` matching pods.

One controller class serves both kinds; they differ only in the selector
(a ReplicaSet's LabelSelector with matchExpressions, an RC's equality map).
For each controller it:

- claims pods: adopts orphans (no controller ownerReference) its selector
  matches, releases owned pods whose labels no longer match;
- creates missing pods from the template in slow-start batches (1, 2, 4,
  ... as Kubernetes does, so a broken template fails fast), deletes surplus
  ones, least valuable first (unscheduled, pending, not ready, ready for the
  shortest time, most restarts, newest);
- remembers how many creations/deletions it expects to see, and does not act
  again for that controller until the informer has shown them (client-go's
  "expectations"), so a slow watch never causes double creates;
- writes status: replicas, fullyLabeledReplicas, readyReplicas,
  availableReplicas (ready for minReadySeconds), observedGeneration, and a
  ReplicaFailure condition when pods cannot be created.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import Any

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert, selectors
from master.apiserver.strategy import now_rfc3339
from master.controllers.base import (
    Controller,
    Expectations,
    controller_ref,
    owner_reference,
    split_key,
)
from master.informers import key_of

log = logging.getLogger(__name__)

BURST = 500  # at most this many creations/deletions per sync


@dataclass(frozen=True)
class Flavor:
    resource: str
    kind: str
    api_version: str
    message: type


REPLICASET = Flavor("replicasets", "ReplicaSet", "apps/v1", apps_pb2.ReplicaSet)
REPLICATIONCONTROLLER = Flavor("replicationcontrollers", "ReplicationController", "v1",
                               core_pb2.ReplicationController)


def selector_of(obj: Any) -> selectors.Selector | None:
    """The controller's selector; None when it selects nothing."""
    sel = obj.spec.selector
    if isinstance(obj, core_pb2.ReplicationController):
        return selectors.from_map(sel) if sel else None
    if not obj.spec.HasField("selector"):
        return None
    return selectors.from_message(sel)


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def _timestamp(text: str) -> float:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def ready_since(pod: Any) -> float:
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status == "True" and c.lastTransitionTime:
            return _timestamp(c.lastTransitionTime)
    return 0.0


def available(pod: Any, min_ready: int, now: float) -> bool:
    if not pod_ready(pod):
        return False
    return min_ready <= 0 or ready_since(pod) + min_ready <= now


def active(pod: Any) -> bool:
    return (pod.status.phase not in ("Succeeded", "Failed")
            and not pod.metadata.deletionTimestamp)


def deletion_rank(pod: Any) -> tuple[Any, ...]:
    """Smaller = delete first (Kubernetes' ActivePods ordering)."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod.status.phase, 1)
    restarts = max((cs.restartCount for cs in pod.status.containerStatuses), default=0)
    return (bool(pod.spec.nodeName), phase_rank, pod_ready(pod), -ready_since(pod),
            -restarts, -_timestamp(pod.metadata.creationTimestamp))


class ReplicaSetController(Controller):
    workers = 4

    def __init__(self, client: AsyncClient, flavor: Flavor = REPLICASET) -> None:
        self.flavor = flavor
        self.name = "replicaset" if flavor is REPLICASET else "replication"
        super().__init__(client)
        self.owners = self.informer(flavor.resource, on_change=self.enqueue)
        self.pods = self.informer("pods", on_change=self._pod_changed,
                                  on_update=self._pod_updated, on_delete=self._pod_deleted)
        self._expect = Expectations()

    # ---- events -------------------------------------------------------------

    def _owners_of(self, pod: Any) -> list[str]:
        ref = controller_ref(pod)
        ns = pod.metadata.namespace
        if ref is not None:
            if ref.kind != self.flavor.kind:
                return []
            owner = self.owners.get(f"{ns}/{ref.name}")
            return [f"{ns}/{ref.name}"] if owner is not None and \
                owner.metadata.uid == ref.uid else []
        out = []  # an orphan: every controller that might adopt it
        for o in self.owners.items():
            if o.metadata.namespace != ns:
                continue
            sel = selector_of(o)
            if sel and selectors.matches(sel, pod.metadata.labels):
                out.append(key_of(o))
        return out

    def _observe(self, pod: Any, *, added: bool) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.kind != self.flavor.kind:
            return
        self._expect.observe(f"{pod.metadata.namespace}/{ref.name}", added=added)

    def _pod_changed(self, pod: Any) -> None:
        self._observe(pod, added=True)
        for k in self._owners_of(pod):
            self.queue.add(k)

    def _pod_updated(self, old: Any, new: Any) -> None:
        keys = set(self._owners_of(new))
        if old.metadata.labels != new.metadata.labels or controller_ref(old) != \
                controller_ref(new):
            keys |= set(self._owners_of(old))
        if new.metadata.deletionTimestamp and not old.metadata.deletionTimestamp:
            self._observe(new, added=False)  # a graceful delete counts when it starts
        for k in keys:
            self.queue.add(k)

    def _pod_deleted(self, pod: Any) -> None:
        if not pod.metadata.deletionTimestamp:
            self._observe(pod, added=False)
        for k in self._owners_of(pod):
            self.queue.add(k)

    def _satisfied(self, key: str) -> bool:
        return self._expect.satisfied(key)

    # ---- reconcile ------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        owner = self.owners.get(key)
        if owner is None:
            self._expect.forget(key)
            return
        ns, name = split_key(key)
        sel = selector_of(owner)
        pods = [p for p in self.pods.items() if p.metadata.namespace == ns]
        owned = await self._claim(owner, sel, pods)
        live = [p for p in owned if active(p)]
        failure = ""
        if self._satisfied(key) and not owner.metadata.deletionTimestamp:
            want = owner.spec.replicas if owner.spec.HasField("replicas") else 1
            diff = len(live) - want
            try:
                if diff < 0:
                    await self._create(owner, min(-diff, BURST))
                elif diff > 0:
                    await self._delete(owner, sorted(live, key=deletion_rank)[:min(diff, BURST)])
            except APIStatusError as e:
                failure = e.message
        await self._write_status(owner, live, sel, failure)
        if failure:
            raise RuntimeError(f"{self.flavor.kind} {name}: {failure}")

    async def _claim(self, owner: Any, sel: selectors.Selector | None,
                     pods: list[Any]) -> list[Any]:
        owned = []
        uid = owner.metadata.uid
        for p in pods:
            ref = controller_ref(p)
            matches = sel is not None and selectors.matches(sel, p.metadata.labels)
            if ref is not None and ref.uid == uid:
                if matches or not active(p):
                    owned.append(p)
                else:
                    await self._release(p, uid)
            elif ref is None and matches and active(p) and not owner.metadata.deletionTimestamp:
                adopted = await self._adopt(owner, p)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _adopt(self, owner: Any, pod: Any) -> Any | None:
        refs = [convert.to_dict(r) for r in pod.metadata.ownerReferences]
        refs.append(owner_reference(owner, self.flavor.api_version, self.flavor.kind))
        patch = {"metadata": {"ownerReferences": refs, "uid": pod.metadata.uid,
                              "resourceVersion": pod.metadata.resourceVersion}}
        try:
            return await self.client.patch("pods", pod.metadata.name, patch,
                                           pod.metadata.namespace)
        except APIStatusError as e:
            if e.not_found or e.conflict:
                return None  # changed meanwhile: the next sync sees the new state
            raise

    async def _release(self, pod: Any, uid: str) -> None:
        refs = [convert.to_dict(r) for r in pod.metadata.ownerReferences if r.uid != uid]
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": pod.metadata.resourceVersion}}
        try:
            await self.client.patch("pods", pod.metadata.name, patch, pod.metadata.namespace)
        except APIStatusError as e:
            if not (e.not_found or e.conflict):
                raise

    def _pod_from_template(self, owner: Any) -> Any:
        t = owner.spec.template
        pod = pod_pb2.Pod(apiVersion="v1", kind="Pod")
        pod.metadata.generateName = f"{owner.metadata.name}-"
        pod.metadata.namespace = owner.metadata.namespace
        pod.metadata.labels.update(t.metadata.labels)
        pod.metadata.annotations.update(t.metadata.annotations)
        pod.metadata.finalizers.extend(t.metadata.finalizers)
        ref = pod.metadata.ownerReferences.add()
        ref.CopyFrom(convert.from_dict(owner_reference(owner, self.flavor.api_version,
                                                       self.flavor.kind),
                                       type(ref)))
        pod.spec.CopyFrom(t.spec)
        return pod

    async def _create(self, owner: Any, count: int) -> None:
        key = key_of(owner)
        self._expect.expect(key, adds=count)
        batch, left, created = 1, count, 0
        try:
            while left > 0:
                n = min(batch, left)
                results = await asyncio.gather(
                    *(self.client.create(self._pod_from_template(owner)) for _ in range(n)),
                    return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                created += n - len(errors)
                left -= n
                if errors:
                    err = errors[0]
                    self.recorder.event(owner, "Warning", "FailedCreate",
                                        f"Error creating: {getattr(err, 'message', err)}")
                    raise err
                batch *= 2
        finally:
            self._expect.lower(key, adds=count - created)  # never coming
        if created:
            self.recorder.event(owner, "Normal", "SuccessfulCreate",
                                f"Created {created} pod(s)")

    async def _delete(self, owner: Any, victims: list[Any]) -> None:
        key = key_of(owner)
        self._expect.expect(key, dels=len(victims))
        results = await asyncio.gather(
            *(self.client.delete("pods", p.metadata.name, p.metadata.namespace,
                                 precondition_uid=p.metadata.uid) for p in victims),
            return_exceptions=True)
        gone = 0
        for p, r in zip(victims, results, strict=True):
            if isinstance(r, APIStatusError) and r.not_found:
                gone += 1
            elif isinstance(r, BaseException):
                raise r
            else:
                self.recorder.event(owner, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {p.metadata.name}")
        if gone:
            self._expect.lower(key, dels=gone)

    async def _write_status(self, owner: Any, live: list[Any], sel: Any, failure: str) -> None:
        now = time.time()
        min_ready = owner.spec.minReadySeconds
        template_labels = dict(owner.spec.template.metadata.labels)
        status = type(owner.status)()
        status.CopyFrom(owner.status)
        status.replicas = len(live)
        status.fullyLabeledReplicas = sum(
            1 for p in live if all(p.metadata.labels.get(k) == v
                                   for k, v in template_labels.items()))
        status.readyReplicas = sum(1 for p in live if pod_ready(p))
        status.availableReplicas = sum(1 for p in live if available(p, min_ready, now))
        status.observedGeneration = owner.metadata.generation
        conds = [c for c in status.conditions if c.type != "ReplicaFailure"]
        del status.conditions[:]
        status.conditions.extend(conds)
        if failure:
            c = status.conditions.add(type="ReplicaFailure", status="True",
                                      reason="FailedCreate", message=failure)
            c.lastTransitionTime = now_rfc3339()
        if min_ready > 0:
            waiting = [ready_since(p) + min_ready - now for p in live
                       if pod_ready(p) and not available(p, min_ready, now)]
            if waiting:
                self.queue.add_after(key_of(owner), max(0.1, min(waiting)))
        if status == owner.status:
            return
        update = type(owner)()
        update.CopyFrom(owner)
        update.status.CopyFrom(status)
        update.metadata.resourceVersion = ""
        try:
            await self.client.update_status(update)
        except APIStatusError as e:
            if not e.not_found:
                raise
