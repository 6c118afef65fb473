"""The loop around the pure scheduler: keep a snapshot, pick, assume, bind.

  informers (nodes, pods) --> cache of NodeInfo  --snapshot-->  framework.schedule
        |                                                             |
        +--> unbound pods --> SchedulingQueue --pop--> schedule_one --+--> assume + bind
                                   ^                                  |
                                   +------- failed: PodScheduled=False, FailedScheduling

Binding goes through the API's pods/binding subresource in the background
while the next pod is scheduled against a cache that already counts the
bound ("assumed") pod, as in Kubernetes. A failed bind forgets the
assumption and retries the pod after a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from kubelite.api import pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from master.apiserver.strategy import now_rfc3339
from master.events import EventRecorder
from master.informers import Informer, key_of
from master.scheduler.framework import Profile, Result, Snapshot, schedule
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.plugins import default_profile
from master.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER = "default-scheduler"


def _scheduling_view(node: Any) -> tuple[Any, ...]:
    """What of a Node the plugins read; heartbeats change none of it."""
    s = node.status
    return (dict(node.metadata.labels), node.spec.unschedulable,
            [(t.key, t.value, t.effect) for t in node.spec.taints],
            {k: v.string for k, v in (s.allocatable or s.capacity).items()},
            [tuple(i.names) for i in s.images])


class Scheduler:
    def __init__(self, client: AsyncClient, *, name: str = DEFAULT_SCHEDULER,
                 profile: Profile | None = None, queue: SchedulingQueue | None = None,
                 rng: random.Random | None = None, bind_concurrency: int = 16,
                 events: bool = True) -> None:
        self.client = client
        self.name = name
        self.profile = profile or default_profile()
        self.queue = queue or SchedulingQueue()
        self.rng = rng or random.Random()
        self.recorder = EventRecorder(client, name) if events else None
        self.nodes: dict[str, NodeInfo] = {}
        self._snapshot: Snapshot | None = None
        self._placed: dict[str, str] = {}  # pod key -> node it counts on (bound or assumed)
        self._orphans: dict[str, Any] = {}  # bound to a node we have not seen yet
        self._assumed: set[str] = set()
        self._start = 0
        self._binds = asyncio.Semaphore(bind_concurrency)
        self._tasks: set[asyncio.Task[Any]] = set()
        self.pods = Informer(client, "pods", on_add=self._pod_added,
                             on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.node_informer = Informer(client, "nodes", on_add=self._node_added,
                                      on_update=self._node_updated, on_delete=self._node_deleted)
        # Claims and volumes: where a pod's storage lets it go (VolumeBinding).
        moved = lambda *_: self.queue.move_all()  # noqa: E731
        self.claims = Informer(client, "persistentvolumeclaims", on_add=moved,
                               on_update=moved, on_delete=moved)
        self.volumes = Informer(client, "persistentvolumes", on_add=moved, on_update=moved,
                                on_delete=moved)
        self.scheduled = 0
        self.attempts = 0

    # ---- the loop -----------------------------------------------------------

    async def run(self) -> None:
        informers = [asyncio.create_task(self.node_informer.run(), name="sched-nodes"),
                     asyncio.create_task(self.pods.run(), name="sched-pods"),
                     asyncio.create_task(self.claims.run(), name="sched-claims"),
                     asyncio.create_task(self.volumes.run(), name="sched-volumes")]
        try:
            await self.node_informer.synced.wait()
            await self.pods.synced.wait()
            log.info("scheduler %s: %d nodes, %d pods pending", self.name, len(self.nodes),
                     len(self.queue))
            while True:
                key = await self.queue.pop()
                try:
                    self.schedule_one(key)
                except Exception:  # noqa: BLE001 - one pod must not stop the loop
                    log.exception("scheduling %s failed", key)
                    self.queue.requeue(key)
                await asyncio.sleep(0)  # let informers and binds run between decisions
        finally:
            for t in [*informers, *self._tasks]:
                t.cancel()
            await asyncio.gather(*informers, *self._tasks, return_exceptions=True)

    def _responsible(self, pod: Any) -> bool:
        return (not pod.spec.nodeName and not pod.metadata.deletionTimestamp
                and (pod.spec.schedulerName or DEFAULT_SCHEDULER) == self.name
                and pod.status.phase not in ("Succeeded", "Failed"))

    def snapshot(self) -> Snapshot:
        """The nodes in name order; NodeInfos are updated in place, the list on node churn."""
        if self._snapshot is None:
            self._snapshot = Snapshot(sorted(self.nodes.values(), key=lambda n: n.name))
            self._snapshot.volume_lookup = self._volume_lookup  # type: ignore[attr-defined]
        return self._snapshot

    def _volume_lookup(self, namespace: str, claim: str) -> tuple[Any, Any] | None:
        pvc = self.claims.get(f"{namespace}/{claim}")
        if pvc is None:
            return None
        pv = self.volumes.get(pvc.spec.volumeName) if pvc.spec.volumeName else None
        return pvc, pv

    def schedule_one(self, key: str) -> Result | None:
        pod = self.pods.get(key)
        if pod is None or not self._responsible(pod) or key in self._assumed:
            return None
        self.attempts += 1
        result = schedule(pod, self.snapshot(), self.profile, start=self._start, rng=self.rng)
        self._start = result.next_start
        if not result.node:
            self.queue.failed(key)
            self._spawn(self._record_failure(pod, result.message()))
            return result
        assumed = pod_pb2.Pod()
        assumed.CopyFrom(pod)
        assumed.spec.nodeName = result.node
        self._assumed.add(key)
        self._place(assumed)
        self._spawn(self._bind(assumed, result.node))
        return result

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind(self, pod: Any, node: str) -> None:
        key = key_of(pod)
        md = pod.metadata
        async with self._binds:
            try:
                await self.client.bind(md.namespace, md.name, node, uid=md.uid)
            except APIStatusError as e:
                self._assumed.discard(key)
                current = self.pods.get(key)
                self._unplace(key)
                if current is not None and current.spec.nodeName:
                    self._place(current)  # someone else bound it: count it where it is
                if e.not_found or (current is not None and not self._responsible(current)):
                    self.queue.delete(key)
                    return
                log.info("binding %s to %s failed: %s", key, node, e.message)
                self.queue.requeue(key)
                return
        self._assumed.discard(key)
        self.queue.done(key)
        self.scheduled += 1
        if self.recorder:
            self.recorder.event(pod, "Normal", "Scheduled",
                                f"Successfully assigned {key} to {node}")

    async def _record_failure(self, pod: Any, message: str) -> None:
        log.info("%s/%s unschedulable: %s", pod.metadata.namespace, pod.metadata.name, message)
        if self.recorder:
            self.recorder.event(pod, "Warning", "FailedScheduling", message)
        current = [c for c in pod.status.conditions if c.type == "PodScheduled"]
        if current and current[0].status == "False" and current[0].message == message:
            return  # already says so: no write
        cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": None,
                "lastTransitionTime": (current[0].lastTransitionTime
                                       if current and current[0].status == "False"
                                       else now_rfc3339())}
        others = [{"type": c.type, "status": c.status, "reason": c.reason,
                   "message": c.message, "lastTransitionTime": c.lastTransitionTime}
                  for c in pod.status.conditions if c.type != "PodScheduled"]
        try:
            await self.client.patch("pods", pod.metadata.name,
                                    {"status": {"conditions": [*others, cond]}},
                                    pod.metadata.namespace, subresource="status")
        except APIStatusError as e:
            log.info("status of %s/%s not updated: %s", pod.metadata.namespace,
                     pod.metadata.name, e.message)

    # ---- cache --------------------------------------------------------------

    def _place(self, pod: Any) -> None:
        key = key_of(pod)
        self._unplace(key)
        info = self.nodes.get(pod.spec.nodeName)
        if info is None:
            self._orphans[key] = pod
            return
        info.add_pod(pod)
        self._placed[key] = info.name

    def _unplace(self, key: str) -> None:
        self._orphans.pop(key, None)
        name = self._placed.pop(key, None)
        if name is not None and name in self.nodes:
            ns, _, pod_name = key.partition("/")
            ref = pod_pb2.Pod()
            ref.metadata.namespace, ref.metadata.name = ns, pod_name
            self.nodes[name].remove_pod(ref)

    def _pod_added(self, pod: Any) -> None:
        key = key_of(pod)
        if pod.spec.nodeName:
            self._assumed.discard(key)
            self._place(pod)
            self.queue.move_all()  # affinity to this pod may now be satisfiable
        elif self._responsible(pod):
            self.queue.push(key)

    def _pod_updated(self, old: Any, new: Any) -> None:
        key = key_of(new)
        if new.spec.nodeName:
            self._assumed.discard(key)
            self.queue.delete(key)
            self._place(new)
            if old.spec.nodeName != new.spec.nodeName or \
                    old.metadata.labels != new.metadata.labels:
                self.queue.move_all()
        elif key in self._assumed:
            return  # our bind is in flight; the informer has not seen it yet
        elif self._responsible(new):
            if old.spec != new.spec or old.metadata.labels != new.metadata.labels:
                self.queue.push(key)  # the pod changed: worth another try now
        else:
            self.queue.delete(key)

    def _pod_deleted(self, pod: Any) -> None:
        key = key_of(pod)
        self._assumed.discard(key)
        self.queue.delete(key)
        if key in self._placed or key in self._orphans:
            self._unplace(key)
            self.queue.move_all()  # resources and ports freed

    def _node_added(self, node: Any) -> None:
        info = NodeInfo(node)
        self.nodes[info.name] = info
        self._snapshot = None
        for pod in list(self._orphans.values()):
            if pod.spec.nodeName == info.name:
                self._place(pod)
        self.queue.move_all()

    def _node_updated(self, old: Any, new: Any) -> None:
        info = self.nodes.get(new.metadata.name)
        if info is None:
            self._node_added(new)
            return
        info.set_node(new)
        if _scheduling_view(old) != _scheduling_view(new):
            self._snapshot = None  # per-snapshot indexes (images) are stale
            self.queue.move_all()

    def _node_deleted(self, node: Any) -> None:
        info = self.nodes.pop(node.metadata.name, None)
        self._snapshot = None
        if info is None:
            return
        for key, pinfo in list(info.pods.items()):
            self._placed.pop(key, None)
            self._orphans[key] = pinfo.pod
