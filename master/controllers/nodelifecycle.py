"""Node lifecycle: stale heartbeats -> Ready Unknown -> taints -> eviction.

    Lease kube-node-lease/<node> ─┐
    Node (status, taints) ────────┼─> "node:<name>": conditions, taints (rate-limited NoExecute)
    monitor tick (every period) ──┘
    Node taints, Pods ────────────> "pod:<ns>/<name>": the NoExecute taint manager

Pods on a node gone Unknown are marked Ready False at once (so Endpoints
drop them), as Kubernetes' MarkPodsNotReady does.

Decisions are in nodehealth.py (pure, with the clock passed in). Eviction
is a normal delete: a pod bound to a node is only marked (graceful), so it stays
Terminating until its agent confirms or someone force-deletes it. The
ReplicaSet controller replaces Terminating pods at once; the StatefulSet
controller does not (the name is still taken), so a second web-1 never runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient
from master.controllers import nodehealth as nh
from master.controllers.base import Controller

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"


@dataclass
class Options:
    grace_period: float = 40.0        # --node-monitor-grace-period
    monitor_period: float = 5.0       # --node-monitor-period
    eviction_rate: float = 0.1        # --node-eviction-rate (nodes/s)
    unhealthy_threshold: float = 0.55  # --unhealthy-zone-threshold


class NodeLifecycleController(Controller):
    name = "node-lifecycle"
    workers = 2

    def __init__(self, client: AsyncClient, options: Options | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client)
        self.options = options or Options()
        self.clock = clock
        self.beats = nh.HeartbeatTracker()
        self.limiter = nh.TokenBucket(self.options.eviction_rate)
        self.ready: dict[str, str] = {}  # our view of each node's Ready status
        self.suspended = False
        self.nodes = self.informer("nodes", on_change=self._node_changed)
        self.leases = self.informer("leases", namespace=LEASE_NAMESPACE,
                                    on_change=lambda ls: self.queue.add(f"node:{ls.metadata.name}"))
        self.pods = self.informer("pods", on_change=self._pod_changed)

    # ---- handlers -----------------------------------------------------------

    def _node_changed(self, node: Any) -> None:
        self.queue.add(f"node:{node.metadata.name}")
        for p in self.pods.items():
            if p.spec.nodeName == node.metadata.name:
                self._pod_changed(p)

    def _pod_changed(self, pod: Any) -> None:
        if pod.spec.nodeName:
            self.queue.add(f"pod:{pod.metadata.namespace}/{pod.metadata.name}")

    async def run(self) -> None:
        ticker = asyncio.create_task(self._monitor(), name="node-lifecycle-monitor")
        try:
            await super().run()
        finally:
            ticker.cancel()

    async def _monitor(self) -> None:
        """Heartbeats going stale is an absence of events: look at every node regularly."""
        await asyncio.gather(*(i.synced.wait() for i in self.informers))
        while True:
            self.survey()
            for n in self.nodes.items():
                self.queue.add(f"node:{n.metadata.name}")
            await asyncio.sleep(self.options.monitor_period)

    def survey(self) -> None:
        """Every node's health first, then the disruption verdict, and only then
        taints: nodes going silent together (the master is cut off) must not
        have the first of them tainted before the others are noticed."""
        now = self.clock()
        for n in self.nodes.items():
            name = n.metadata.name
            lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
            last = self.beats.observe(name, nh.heartbeat_of(n, lease), now)
            self.ready[name] = "Unknown" if now - last > self.options.grace_period \
                else nh.ready_status(n)
        self._update_suspended()

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "node":
            await self.sync_node(rest)
        else:
            await self.sync_pod(rest)

    # ---- nodes --------------------------------------------------------------

    def _update_suspended(self) -> bool:
        for n in self.nodes.items():  # nodes not synced yet count as they report
            self.ready.setdefault(n.metadata.name, nh.ready_status(n))
        was, now = self.suspended, nh.disrupted(self.ready.values(),
                                                self.options.unhealthy_threshold)
        self.suspended = now
        if now and not was:
            bad = sorted(n for n, s in self.ready.items() if s != "True")
            log.warning("%d of %d nodes are not ready (%s): the master may be cut off; "
                        "taint-based evictions are suspended", len(bad), len(self.ready),
                        ", ".join(bad))
            for name in bad:
                node = self.nodes.get(name)
                if node is not None:
                    self.recorder.event(node, "Warning", "EvictionsSuspended",
                                        f"{len(bad)} of {len(self.ready)} nodes are not ready: "
                                        "no pods are evicted until more nodes are healthy")
        elif was and not now:
            log.info("enough nodes are ready again: taint-based evictions resume")
        if was != now:
            for name in self.ready:
                self.queue.add(f"node:{name}")
        return now

    async def sync_node(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None:
            self.beats.forget(name)
            self.ready.pop(name, None)
            self._update_suspended()
            return
        now = self.clock()
        lease = self.leases.get(f"{LEASE_NAMESPACE}/{name}")
        last = self.beats.observe(name, nh.heartbeat_of(node, lease), now)
        new = core_pb2.Node()
        new.CopyFrom(node)
        if now - last > self.options.grace_period and nh.mark_unknown(new, now):
            log.warning("node %s: no heartbeat for %.0f s: Ready Unknown", name, now - last)
            new = await self.client.update_status(new)
            self.recorder.event(new, "Normal", "NodeNotReady",
                                f"Node {name} status is now: NodeNotReady")
        ready = nh.ready_status(new)
        self.ready[name] = ready
        suspended = self._update_suspended()
        wanted = nh.wanted_taints(ready, evict=not suspended)
        have = nh.our_taints(new)
        adding = {t for t in wanted - have if t[1] == nh.NO_EXECUTE}
        if adding and not self.limiter.take(now):
            wanted -= adding
            wait = self.limiter.wait(now)
            if wait < float("inf"):
                self.queue.add_after(f"node:{name}", wait)
        if nh.apply_taints(new, wanted, now):
            try:
                await self.client.update(new)
            except APIStatusError:
                self.queue.add_after(f"node:{name}", 0.5)
                raise
            log.info("node %s (Ready %s): lifecycle taints now %s", name, ready,
                     sorted(f"{k}:{e}" for k, e in wanted) or "none")

    # ---- pods (the NoExecute taint manager) -----------------------------------

    async def _mark_not_ready(self, pod: Any, now: float) -> None:
        """A pod on a silent node is not Ready (Services stop sending it traffic);
        its agent, once back, reports the truth again."""
        if not nh.mark_pod_not_ready(pod, now):
            return
        try:
            await self.client.update_status(pod)
        except APIStatusError as e:
            if not (e.not_found or e.conflict):
                raise
        log.info("pod %s/%s on silent node %s: Ready False", pod.metadata.namespace,
                 pod.metadata.name, pod.spec.nodeName)

    async def sync_pod(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or not pod.spec.nodeName or pod.metadata.deletionTimestamp:
            return
        copy = type(pod)()
        copy.CopyFrom(pod)
        pod = copy
        node = self.nodes.get(pod.spec.nodeName)
        if node is None or self.suspended:
            return
        now = self.clock()
        if nh.ready_status(node) == "Unknown":
            await self._mark_not_ready(pod, now)
        when = nh.eviction_time(pod, node.spec.taints, now)
        if when is None:
            return
        if when > now:
            self.queue.add_after(f"pod:{key}", when - now)
            return
        ns, name = pod.metadata.namespace, pod.metadata.name
        try:
            await self.client.delete("pods", name, ns,
                                     precondition_uid=pod.metadata.uid)
        except APIStatusError as e:
            if e.not_found or e.conflict:
                return
            raise
        log.info("evicting pod %s from node %s (NoExecute taint)", key, pod.spec.nodeName)
        self.recorder.event(pod, "Normal", "TaintManagerEviction",
                            f"Marking for deletion Pod {key}")
