"""How many replicas one resource metric asks for: Kubernetes' replica calculator
(pkg/controller/podautoscaler/replica_calculator.go) as pure functions.

The rule is desired = ceil(current x usage / target), but "current" and
"usage" need care, and the care is the whole of this module:

- Pods being deleted or Failed are ignored. Pending pods count as not ready.
- For cpu, a pod that is not ready yet, or ready for less than one metrics
  window, is not ready: its usage (a starting process burns cpu) would
  mislead. Past the cpu initialization period (5 min) a pod is only not ready
  when it has never become ready (its Ready condition went False within
  the initial readiness delay of its start).
- Pods without metrics are "missing".

Worked example (target 50% of a 100m request, tolerance 0.1): pods a, b, c
use 90m, 70m and ? (c has no metrics yet). The ready pods a, b average 80%:
ratio 80/50 = 1.6, which alone would ask for ceil(1.6 x 2) = 4 replicas.
Because of c the answer is damped: on a scale-up a missing pod is assumed to
use 0%, so (90 + 70 + 0) / 300 = 53% -> ratio 53/50 = 1.06, within the
tolerance: keep 3 replicas until c is measured, at the next sync. On a
scale-down a missing pod is assumed to use 100% of its request (or the
target, when that is above 100%), again towards not scaling. When the
assumption turns the direction around (ratio < 1 became > 1 or the other
way) the answer is also "no change".

Not-ready pods matter only on a scale-up: assumed to use 0%, since they
will take load once ready.

Quantities are integers in milli-units (cpu millicores, memory milli-bytes),
as Kubernetes' MilliValue.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CPU_INITIALIZATION_PERIOD = 300.0  # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = 30.0  # --horizontal-pod-autoscaler-initial-readiness-delay
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance


class MetricError(Exception):
    """No replica count can be computed from this metric; the text says why."""


@dataclass(frozen=True)
class PodState:
    """What the calculator needs of one pod selected by the target."""

    name: str
    phase: str = "Running"
    ready: bool | None = True  # the Ready condition; None: no such condition
    ready_changed: float = 0.0  # its lastTransitionTime, epoch seconds
    started: float | None = 0.0  # status.startTime, epoch seconds; None: unset
    deleting: bool = False
    # container name -> {resource: request in milli-units}; containers in spec order
    containers: tuple[tuple[str, Mapping[str, int]], ...] = ()


@dataclass(frozen=True)
class PodMetric:
    value: int  # milli-units
    timestamp: float = 0.0  # when measured, epoch seconds
    window: float = 0.0  # seconds the value averages over


@dataclass(frozen=True)
class Tolerance:
    """Relative deviation ignored in each direction (the per-direction
    behavior.scaleUp/scaleDown.tolerance, else the cluster's)."""

    down: float = TOLERANCE
    up: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


@dataclass(frozen=True)
class Readiness:
    """The two durations that decide whether a pod's cpu usage is trusted."""

    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY


@dataclass
class Groups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def group_pods(pods: Iterable[PodState], metrics: Mapping[str, PodMetric], resource: str,
               now: float, readiness: Readiness = Readiness()) -> Groups:
    """Kubernetes' groupPods: which pods count, which are unready, missing, ignored."""
    g = Groups()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            g.ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            g.unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            g.missing.add(pod.name)
            continue
        if resource == "cpu" and _cpu_unready(pod, metric, now, readiness):
            g.unready.add(pod.name)
            continue
        g.ready += 1
    return g


def _cpu_unready(pod: PodState, metric: PodMetric, now: float, r: Readiness) -> bool:
    if pod.ready is None or pod.started is None:
        return True
    if pod.started + r.cpu_initialization_period > now:
        # Still initializing: unready, or no whole window measured since it became ready.
        return not pod.ready or metric.timestamp < pod.ready_changed + metric.window
    # Long started: only a pod that has never been ready is unready.
    return not pod.ready and pod.started + r.initial_readiness_delay > pod.ready_changed


def pod_requests(pods: Iterable[PodState], resource: str, container: str = ""
                 ) -> dict[str, int]:
    """Each pod's request of `resource` summed over its containers (or the one named)."""
    out: dict[str, int] = {}
    for pod in pods:
        total = 0
        for name, requests in pod.containers:
            if container and name != container:
                continue
            if resource not in requests:
                raise MetricError(f"missing request for {resource} in container {name} "
                                  f"of Pod {pod.name}")
            total += requests[resource]
        out[pod.name] = total
    return out


def utilization_ratio(metrics: Mapping[str, PodMetric], requests: Mapping[str, int],
                      target: int) -> tuple[float, int, int]:
    """(usage / target, utilization in whole %, average usage) over pods with a request.

    Utilization is truncated to an integer first, as Kubernetes does, so the
    ratio is exactly what `kubelite get hpa` shows (85% / 50% = 1.7).
    """
    used = requested = entries = 0
    for name, m in metrics.items():
        if name not in requests:
            continue  # extraneous metrics (a pod that is no longer selected)
        used += m.value
        requested += requests[name]
        entries += 1
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // entries


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None  # % of requests, for Utilization targets
    average: int  # average usage per pod, milli-units


def _no_pods() -> MetricError:
    return MetricError("no pods returned by selector while calculating replica count")


def _no_metrics() -> MetricError:
    return MetricError("did not receive metrics for targeted pods (pods might be unready)")


def resource_replicas(current: int, target_utilization: int, resource: str,
                      pods: list[PodState], metrics: Mapping[str, PodMetric], now: float, *,
                      container: str = "", tolerance: Tolerance = Tolerance(),
                      readiness: Readiness = Readiness()) -> Proposal:
    """Replicas for a Utilization target (percent of the pods' requests)."""
    if not pods:
        raise _no_pods()
    metrics = dict(metrics)
    g = group_pods(pods, metrics, resource, now, readiness)
    for name in g.ignored | g.unready:
        metrics.pop(name, None)
    if not metrics:
        raise _no_metrics()
    requests = pod_requests(pods, resource, container)
    ratio, utilization, average = utilization_ratio(metrics, requests, target_utilization)

    def proposal(replicas: int) -> Proposal:
        return Proposal(replicas, utilization, average)

    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        if tolerance.within(ratio):
            return proposal(current)
        return proposal(math.ceil(ratio * g.ready))

    if g.missing and ratio != 1.0:
        # scale-down: missing pods use all of their request (or the target, above 100%)
        # scale-up: they use nothing
        fallback = max(100, target_utilization) if ratio < 1.0 else 0
        for name in g.missing:
            metrics[name] = PodMetric(requests[name] * fallback // 100)
    if scale_up_with_unready:
        for name in g.unready:
            metrics[name] = PodMetric(0)
    new_ratio, _, _ = utilization_ratio(metrics, requests, target_utilization)
    return proposal(_settle(current, ratio, new_ratio, len(metrics), tolerance))


def raw_resource_replicas(current: int, target_average: int, resource: str,
                          pods: list[PodState], metrics: Mapping[str, PodMetric], now: float, *,
                          tolerance: Tolerance = Tolerance(),
                          readiness: Readiness = Readiness()) -> Proposal:
    """Replicas for an AverageValue target (usage per pod, milli-units)."""
    if not pods:
        raise _no_pods()
    metrics = dict(metrics)
    g = group_pods(pods, metrics, resource, now, readiness)
    for name in g.ignored | g.unready:
        metrics.pop(name, None)
    if not metrics:
        raise _no_metrics()
    ratio, average = _usage_ratio(metrics, target_average)
    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        if tolerance.within(ratio):
            return Proposal(current, None, average)
        return Proposal(math.ceil(ratio * g.ready), None, average)
    for name in g.missing:  # scale-down: exactly the target; scale-up: nothing
        metrics[name] = PodMetric(target_average if ratio < 1.0 else 0)
    if scale_up_with_unready:
        for name in g.unready:
            metrics[name] = PodMetric(0)
    new_ratio, _ = _usage_ratio(metrics, target_average)
    return Proposal(_settle(current, ratio, new_ratio, len(metrics), tolerance), None, average)


def _usage_ratio(metrics: Mapping[str, PodMetric], target: int) -> tuple[float, int]:
    average = sum(m.value for m in metrics.values()) // len(metrics)
    return average / target, average


def _settle(current: int, ratio: float, new_ratio: float, counted: int,
            tolerance: Tolerance) -> int:
    """The replicas after the conservative assumptions, unless they change nothing
    or would turn the direction around."""
    if tolerance.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * counted)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current  # counting more pods than before would turn the direction around
    return replicas
