"""The node agent's half of metrics-server: usage written to the API.

Every `interval` seconds the reporter samples the node (node.stats) and
writes

- NodeMetrics named after the node, and
- one PodMetrics per pod running here (name and namespace the pod's), its
  containers' usage inside; PodMetrics this node wrote for pods that no
  longer run here are deleted.

Like metrics-server, a pod is reported only once every container in it has a
cpu rate, i.e. was seen in two samples: a new pod shows up one interval after
its containers start (its earlier PodMetrics, if any, is left alone meanwhile).
Quantities are Kubernetes': cpu in millicores ("250m", "0", "2"), memory
working set in Ki ("123456Ki").

PodMetrics carry the label `metrics.kubelite.io/node` naming the node that
wrote them, which is how a node finds its own leftovers after a restart.
Writes are create-or-update, tolerant of races with other writers (create
finds it exists: update; update finds it gone: create). Nothing here ever
ends the loop: a failed round is logged and the next one tries again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import grpc

from kubelite.api import metrics_pb2
from kubelite.cli.age import go_duration
from kubelite.client import APIStatusError
from kubelite.objects import names, quantity
from node.stats import PodUsage, Sample

log = logging.getLogger(__name__)

API_VERSION = "metrics.k8s.io/v1beta1"
NODE_LABEL = "metrics.kubelite.io/node"
_ATTEMPTS = 3
# The API is not answering: give up on the round instead of timing out per object.
_ROUND_FATAL = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def cpu_quantity(millicores: int) -> str:
    """Kubernetes' canonical millicores: 250 -> "250m", 0 -> "0", 2000 -> "2"."""
    return quantity.format_milli(max(0, int(millicores)))


def memory_quantity(n: int) -> str:
    """Bytes in Ki as metrics-server reports them (rounded up): 1048576 -> "1024Ki"."""
    ki = -(-max(0, int(n)) // 1024)
    return f"{ki}Ki" if ki else "0"


def owner_value(node_name: str) -> str:
    """The node's name as a label value (a digest when too long or odd for one)."""
    if not names.label_value(node_name):
        return node_name
    return "sha256-" + hashlib.sha256(node_name.encode()).hexdigest()[:40]


def _rfc3339(sample: Sample) -> str:
    return sample.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _window(sample: Sample) -> str:
    return go_duration(max(0.0, sample.window))


def node_metrics(node_name: str, sample: Sample) -> metrics_pb2.NodeMetrics | None:
    """The node's NodeMetrics, or None while there is no cpu rate yet."""
    if sample.node.cpu_millicores is None:
        return None
    m = metrics_pb2.NodeMetrics(apiVersion=API_VERSION, kind="NodeMetrics",
                                timestamp=_rfc3339(sample), window=_window(sample))
    m.metadata.name = node_name
    m.usage["cpu"].string = cpu_quantity(sample.node.cpu_millicores)
    m.usage["memory"].string = memory_quantity(sample.node.memory_bytes)
    return m


def pod_metrics(node_name: str, pod: PodUsage, sample: Sample) -> metrics_pb2.PodMetrics:
    m = metrics_pb2.PodMetrics(apiVersion=API_VERSION, kind="PodMetrics",
                               timestamp=_rfc3339(sample), window=_window(sample))
    m.metadata.name, m.metadata.namespace = pod.name, pod.namespace
    m.metadata.labels[NODE_LABEL] = owner_value(node_name)
    for c in pod.containers:
        cm = m.containers.add(name=c.name)
        cm.usage["cpu"].string = cpu_quantity(c.cpu_millicores or 0)
        cm.usage["memory"].string = memory_quantity(c.memory_bytes)
    return m


class MetricsReporter:
    """Writes this node's NodeMetrics and PodMetrics every `interval` seconds.

    `collector` is a node.stats.StatsCollector (anything with a blocking
    `sample() -> Sample`); `client` an AsyncClient.
    """

    def __init__(self, client: Any, node_name: str, collector: Any,
                 interval: float = 10.0) -> None:
        if interval <= 0:
            raise ValueError("the metrics interval must be positive")
        self.client = client
        self.node_name = node_name
        self.collector = collector
        self.interval = float(interval)
        self.owner = owner_value(node_name)
        # (resource, namespace, name) this reporter knows to exist: update those, create others.
        self._exists: set[tuple[str, str, str]] = set()
        self.rounds = 0  # completed rounds (tests, debugging)
        self._failing = False

    async def run(self) -> None:
        """Report until cancelled, one round per interval; never raises otherwise."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.report_once()
                if self._failing:
                    log.info("metrics reporting works again")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as e:  # retried next round
                self._log_failure(e)
            next_at += self.interval
            now = loop.time()
            if next_at < now:  # a slow round: skip the missed ticks rather than burst
                next_at = now
            await asyncio.sleep(next_at - now)

    def _log_failure(self, e: Exception) -> None:
        text = e.message if isinstance(e, APIStatusError) else repr(e)
        if self._failing:
            log.debug("metrics round failed: %s", text)
        else:
            log.warning("metrics round failed (retrying every %gs): %s", self.interval, text)
            if not isinstance(e, APIStatusError):
                log.debug("metrics round failure", exc_info=e)
        self._failing = True

    async def report_once(self) -> Sample:
        """One round: sample, write NodeMetrics and PodMetrics, prune gone pods'."""
        sample: Sample = await asyncio.to_thread(self.collector.sample)
        errors: list[str] = []
        nm = node_metrics(self.node_name, sample)
        if nm is not None:
            await self._try(self._put("nodemetrics", nm), errors)
        for pod in sample.pods:
            if pod.complete:
                await self._try(self._put("podmetrics", pod_metrics(self.node_name, pod,
                                                                    sample)), errors)
        running = {(p.namespace, p.name) for p in sample.pods}
        await self._try(self._prune(running, errors), errors)
        if errors:
            log.warning("metrics: %d write(s) failed, retrying next round; first: %s",
                        len(errors), errors[0])
        self.rounds += 1
        return sample

    async def _try(self, coro: Any, errors: list[str]) -> None:
        """Run one write; its API error is noted, unless the API is down (ends the round)."""
        try:
            await coro
        except APIStatusError as e:
            if e.code in _ROUND_FATAL:
                raise
            errors.append(f"{e.reason}: {e.message}")

    async def _put(self, resource: str, obj: Any) -> None:
        """Create, or replace when it exists; whichever the other writers left us."""
        key = (resource, obj.metadata.namespace, obj.metadata.name)
        for _ in range(_ATTEMPTS):
            if key in self._exists:
                try:
                    await self.client.update(obj)
                    return
                except APIStatusError as e:
                    if not e.not_found:
                        raise
                    self._exists.discard(key)  # deleted meanwhile: create it
            else:
                try:
                    await self.client.create(obj)
                    self._exists.add(key)
                    return
                except APIStatusError as e:
                    if not e.already_exists:
                        raise
                    self._exists.add(key)  # written before (by us or another node)
        raise APIStatusError(grpc.StatusCode.ABORTED, "Conflict",
                             f"{resource} {key[1]}/{key[2]} kept appearing and vanishing")

    async def _prune(self, running: set[tuple[str, str]], errors: list[str]) -> None:
        """Delete the PodMetrics this node wrote for pods that no longer run here."""
        items, _ = await self.client.list("podmetrics",
                                          label_selector=f"{NODE_LABEL}={self.owner}")
        for pm in items:
            ns, name = pm.metadata.namespace, pm.metadata.name
            if (ns, name) in running:
                continue
            self._exists.discard(("podmetrics", ns, name))
            try:
                # the uid guards against deleting a successor written since the list
                await self.client.delete("podmetrics", name, ns,
                                         precondition_uid=pm.metadata.uid)
            except APIStatusError as e:
                if e.code in _ROUND_FATAL:
                    raise
                if not (e.not_found or e.conflict):
                    errors.append(f"{e.reason}: {e.message}")
        live = {("podmetrics", ns, name) for ns, name in running}
        self._exists = {k for k in self._exists if k[0] != "podmetrics" or k in live}
