"""One HPA metric -> a replica proposal and its status, from the pods a target
selects and the PodMetrics the node agents write (node/metrics.py).

This is the HPA's "metrics client" (Kubernetes' metricsclient plus
computeStatusForResourceMetric): it turns API objects into the calculator's
plain values (hpa_replicas.PodState / PodMetric) and picks the calculation
the target asks for:

- Resource / ContainerResource with a Utilization target: percent of the
  pods' requests; with an AverageValue target: usage per pod.
- Pods, Object and External metrics need a custom or external metrics API,
  which kubelite does not serve: they fail with a condition saying so.

A pod's usage is the sum over its containers (or the named container);
PodMetrics without that resource, or older than METRICS_MAX_AGE (a node that
stopped reporting), count as missing, as metrics-server leaves them out.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelite.api import autoscaling_pb2
from kubelite.objects import quantity, selectors
from master.controllers.hpa_replicas import (
    MetricError,
    PodMetric,
    PodState,
    Proposal,
    Readiness,
    Tolerance,
    pod_requests,
    raw_resource_replicas,
    resource_replicas,
)

METRICS_MAX_AGE = 180.0  # seconds; older PodMetrics are a node that stopped reporting
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_FAILED_REASON = {"Resource": "FailedGetResourceMetric",
                  "ContainerResource": "FailedGetContainerResourceMetric",
                  "Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
                  "External": "FailedGetExternalMetric"}


def timestamp(text: str) -> float | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def duration(text: str) -> float:
    """A Go duration ("10s", "1m30s", "1.5s", "500ms") in seconds; 0 when unreadable."""
    total, pos = 0.0, 0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return 0.0
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else 0.0


# ---- API objects -> calculator values ---------------------------------------------------

def _milli(q: Any) -> int | None:
    try:
        return quantity.milli(q.string)
    except ValueError:
        return None


def pod_state(pod: Any) -> PodState:
    ready: bool | None = None
    changed = 0.0
    for c in pod.status.conditions:
        if c.type == "Ready":
            ready = c.status != "False"  # Unknown is not "not ready", as in Kubernetes
            changed = timestamp(c.lastTransitionTime) or 0.0
    containers = list(pod.spec.containers) + [
        c for c in pod.spec.initContainers
        if c.HasField("restartPolicy") and c.restartPolicy == "Always"]  # sidecars
    requests = []
    for c in containers:
        values = {res: v for res, q in c.resources.requests.items()
                  if (v := _milli(q)) is not None}
        requests.append((c.name, values))
    return PodState(pod.metadata.name, phase=pod.status.phase or "Pending", ready=ready,
                    ready_changed=changed,
                    started=timestamp(pod.status.startTime) if pod.status.startTime else None,
                    deleting=bool(pod.metadata.deletionTimestamp),
                    containers=tuple(requests))


def pod_metric(pm: Any, resource: str, container: str, now: float) -> PodMetric | None:
    """The pod's usage of `resource` (its containers summed, or the one named); None
    when not measured, not measured for that resource, or stale."""
    at = timestamp(pm.timestamp)
    if at is None or now - at > METRICS_MAX_AGE or not pm.containers:
        return None
    total, found = 0, False
    for c in pm.containers:
        if container and c.name != container:
            continue
        if resource not in c.usage:
            return None
        value = _milli(c.usage[resource])
        if value is None:
            return None
        total, found = total + value, True
    return PodMetric(total, at, duration(pm.window)) if found else None


# ---- one metric spec ---------------------------------------------------------------------

class MetricFailure(Exception):
    """This metric gave no proposal: `reason` is the condition/event reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class MetricResult:
    replicas: int
    name: str  # "cpu resource utilization (percentage of request)", for messages
    status: autoscaling_pb2.MetricStatus


@dataclass(frozen=True)
class Settings:
    tolerance: Tolerance = Tolerance()
    readiness: Readiness = Readiness()


def compute(spec: Any, current: int, pods: list[Any], pod_metrics: Mapping[str, Any],
            now: float, settings: Settings = Settings()) -> MetricResult:
    """One MetricSpec's proposal; MetricFailure when it has none."""
    kind = spec.type
    if kind == "Resource":
        src, container = spec.resource, ""
    elif kind == "ContainerResource":
        src, container = spec.containerResource, spec.containerResource.container
    else:
        raise MetricFailure(_FAILED_REASON.get(kind, "InvalidMetricSourceType"),
                            f"unable to get {kind} metric: kubelite serves no custom or "
                            "external metrics API (only Resource and ContainerResource "
                            "metrics are supported)")
    resource, target = src.name, src.target
    states = [pod_state(p) for p in pods]
    usage: dict[str, PodMetric] = {}
    for p in pods:
        pm = pod_metrics.get(p.metadata.name)
        m = pod_metric(pm, resource, container, now) if pm is not None else None
        if m is not None:
            usage[p.metadata.name] = m
    try:
        proposal, name = _propose(kind, resource, target, container, current, states, usage,
                                  now, settings)
    except MetricError as e:
        raise MetricFailure(_FAILED_REASON[kind], str(e)) from None
    status = autoscaling_pb2.MetricStatus(type=kind)
    block = status.resource if kind == "Resource" else status.containerResource
    block.name = resource
    if kind == "ContainerResource":
        status.containerResource.container = container
    if proposal.utilization is not None:
        block.current.averageUtilization = proposal.utilization
    block.current.averageValue.string = _quantity(proposal.average, resource)
    return MetricResult(proposal.replicas, name, status)


def _propose(kind: str, resource: str, target: Any, container: str, current: int,
             states: list[PodState], usage: Mapping[str, PodMetric], now: float,
             settings: Settings) -> tuple[Proposal, str]:
    what = "container resource" if kind == "ContainerResource" else "resource"
    if target.HasField("averageValue"):
        goal = _milli(target.averageValue)
        if not goal:
            raise MetricError(f"invalid averageValue target {target.averageValue.string!r}")
        try:
            _check_measured(resource, states, usage)
            p = raw_resource_replicas(current, goal, resource, states, usage, now,
                                      tolerance=settings.tolerance,
                                      readiness=settings.readiness)
        except MetricError as e:
            raise MetricError(f"failed to get {resource} usage: {e}") from None
        return p, f"{resource} {what}"
    if not target.HasField("averageUtilization"):
        raise MetricError("invalid resource metric source: neither an average utilization "
                          "target nor an average value (usage) target was set")
    try:
        # Requests first (Kubernetes looks at metrics first): a pod template without
        # requests is the user's to fix, and says so before any pod is measured.
        pod_requests(states, resource, container)
        _check_measured(resource, states, usage)
        p = resource_replicas(current, target.averageUtilization, resource, states, usage, now,
                              container=container, tolerance=settings.tolerance,
                              readiness=settings.readiness)
    except MetricError as e:
        raise MetricError(f"failed to get {resource} utilization: {e}") from None
    return p, f"{resource} {what} utilization (percentage of request)"


def _check_measured(resource: str, states: list[PodState],
                    usage: Mapping[str, PodMetric]) -> None:
    if states and not usage:
        raise MetricError(f"unable to get metrics for resource {resource}: no metrics "
                          "returned from resource metrics API")


def _quantity(milli: int, resource: str) -> str:
    """An average as Kubernetes prints it: cpu "250m", memory in whole bytes "104857600"
    (or milli-bytes "1500m" when fractional, as NewMilliQuantity does)."""
    if resource == "cpu" or milli % 1000:
        return quantity.format_milli(milli)
    return str(milli // 1000)


def pods_selected(pods: Iterable[Any], namespace: str, selector: Any) -> list[Any]:
    return [p for p in pods if p.metadata.namespace == namespace
            and selectors.matches(selector, p.metadata.labels)]
