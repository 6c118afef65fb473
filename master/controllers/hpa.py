"""The HorizontalPodAutoscaler controller (autoscaling/v2; v1 objects are stored
as v2): every sync period, for each HPA,

1. read the target's Scale (`<resource>/scale`: replicas and pod selector);
2. ask each metric for a replica count (hpa_metrics.compute over the pods the
   selector picks and their PodMetrics) and take the largest;
3. stabilize and rate-limit it (hpa_behavior.normalize), clamp it to
   [minReplicas, maxReplicas];
4. write the new replica count through the Scale when it differs, with a
   SuccessfulRescale event; write status (currentReplicas, desiredReplicas,
   currentMetrics, lastScaleTime) and the conditions AbleToScale,
   ScalingActive and ScalingLimited, as Kubernetes' horizontal.go does.

Failures are conditions and Warning events, not crashes: a target that does
not exist (AbleToScale=False, FailedGetScale), pods without requests or
metrics (ScalingActive=False, FailedGetResourceMetric with the reason in the
message). A sync that fails is retried at the next period, not sooner, as in
Kubernetes. The recommendation and rescale history the windows and rate
policies need lives in this process (a new leader starts afresh, as a
restarted kube-controller-manager does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubelite.api import autoscaling_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import kinds, selectors
from master.apiserver.strategy import now_rfc3339
from master.controllers import hpa_behavior as hb
from master.controllers.base import Controller
from master.controllers.hpa_metrics import (
    MetricFailure,
    MetricResult,
    Settings,
    compute,
    pods_selected,
)
from master.controllers.hpa_replicas import (
    CPU_INITIALIZATION_PERIOD,
    INITIAL_READINESS_DELAY,
    TOLERANCE,
    Readiness,
    Tolerance,
)
from master.informers import key_of

log = logging.getLogger(__name__)

SCALABLE = ("deployments", "replicasets", "replicationcontrollers", "statefulsets")


@dataclass(frozen=True)
class Options:
    """The master's --horizontal-pod-autoscaler-* flags."""

    sync_period: float = 15.0
    downscale_stabilization: float = hb.DOWNSCALE_STABILIZATION
    tolerance: float = TOLERANCE
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = INITIAL_READINESS_DELAY


@dataclass
class _Sync:
    """One sync's working state: the status being built and what to tell."""

    hpa: Any
    status: Any
    now: float
    stamp: str
    statuses: list[Any] = field(default_factory=list)

    def condition(self, ctype: str, status: str, reason: str, message: str) -> None:
        set_condition(self.status, ctype, status, reason, message, self.stamp)


def set_condition(status: Any, ctype: str, value: str, reason: str, message: str,
                  stamp: str) -> None:
    """Set one condition; its lastTransitionTime moves only when its status does."""
    for c in status.conditions:
        if c.type == ctype:
            if c.status != value:
                c.lastTransitionTime = stamp
            c.status, c.reason, c.message = value, reason, message
            return
    status.conditions.add(type=ctype, status=value, reason=reason, message=message,
                          lastTransitionTime=stamp)


def behavior_of(spec: Any, default_down_window: float) -> hb.Behavior | None:
    """spec.behavior as plain rules (its defaults are applied by the API server, except
    the scale-down window, which is the controller's)."""
    if not spec.HasField("behavior"):
        return None

    def rules(r: Any, window: float, default: hb.Rules) -> hb.Rules:
        return hb.Rules(
            float(r.stabilizationWindowSeconds) if r.HasField("stabilizationWindowSeconds")
            else window,
            r.selectPolicy if r.HasField("selectPolicy") else default.select,
            tuple(hb.Policy(p.type, p.value, p.periodSeconds) for p in r.policies)
            or default.policies)

    b = spec.behavior
    return hb.Behavior(rules(b.scaleUp, 0.0, hb.DEFAULT_UP),
                       rules(b.scaleDown, default_down_window, hb.DEFAULT_DOWN))


def tolerance_of(spec: Any, default: float) -> Tolerance:
    """behavior.scaleUp/scaleDown.tolerance where given, else the master's."""
    out = {"up": default, "down": default}
    if spec.HasField("behavior"):
        for attr, key in (("scaleUp", "up"), ("scaleDown", "down")):
            rules = getattr(spec.behavior, attr)
            if rules.HasField("tolerance"):
                try:
                    out[key] = float(rules.tolerance.string)
                except ValueError:
                    pass
    return Tolerance(down=out["down"], up=out["up"])


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"
    workers = 2

    def __init__(self, client: AsyncClient, options: Options = Options(), *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client)
        self.options = options
        self.clock = clock
        self.hpas = self.informer("horizontalpodautoscalers", on_change=self.enqueue,
                                  on_update=self._hpa_updated)
        self.pods = self.informer("pods")
        self.pod_metrics = self.informer("podmetrics")
        self.history: dict[str, hb.History] = {}

    def _hpa_updated(self, old: Any, new: Any) -> None:
        # Our own status writes must not cause a sync; a spec change may (and should).
        if old.metadata.generation != new.metadata.generation or \
                new.metadata.deletionTimestamp:
            self.enqueue(new)

    async def reconcile(self, key: str) -> None:
        hpa = self.hpas.get(key)
        if hpa is None or hpa.metadata.deletionTimestamp:
            self.history.pop(key, None)
            return
        try:
            await self.sync(hpa)
        finally:
            self.queue.add_after(key, self.options.sync_period)

    # ---- one sync -----------------------------------------------------------------------

    async def sync(self, hpa: Any) -> None:
        s = _Sync(hpa, autoscaling_pb2.HorizontalPodAutoscalerStatus(), self.clock(),
                  now_rfc3339())
        s.status.CopyFrom(hpa.status)
        s.status.observedGeneration = hpa.metadata.generation
        ref = hpa.spec.scaleTargetRef
        ns = hpa.metadata.namespace
        reference = f"{ref.kind}/{ns}/{ref.name}"
        resource, problem = _resource_of(ref)
        scale = None
        if resource:
            try:
                scale = await self.client.get_scale(resource, ref.name, ns)
            except APIStatusError as e:
                problem = e.message
        if scale is None:
            self.recorder.event(hpa, "Warning", "FailedGetScale", problem)
            s.condition("AbleToScale", "False", "FailedGetScale",
                        f"the HPA controller was unable to get the target's current scale: "
                        f"{problem}")
            await self._write_status(s)
            log.info("hpa %s: failed to query scale subresource for %s: %s", key_of(hpa),
                     reference, problem)
            return
        s.condition("AbleToScale", "True", "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale")
        await self._decide(s, resource, scale)

    async def _decide(self, s: _Sync, resource: str, scale: Any) -> None:
        hpa, spec = s.hpa, s.hpa.spec
        key = key_of(hpa)
        current = scale.spec.replicas
        min_replicas = spec.minReplicas if spec.HasField("minReplicas") else 1
        desired, reason = 0, ""
        if current == 0 and min_replicas != 0:
            s.condition("ScalingActive", "False", "ScalingDisabled",
                        "scaling is disabled since the replica count of the target is zero")
        elif current > spec.maxReplicas:
            desired, reason = spec.maxReplicas, "Current number of replicas above " \
                                                "Spec.MaxReplicas"
        elif current < min_replicas:
            desired, reason = min_replicas, "Current number of replicas below Spec.MinReplicas"
        else:
            history = self.history.setdefault(key, hb.History())
            if not history.recommendations:  # a new HPA (or leader) holds what is there
                history.recommendations.append(hb.Recommendation(current, s.now))
            proposed, metric = self._metrics(s, scale)
            if proposed is None:
                self._set_status(s, current, s.status.desiredReplicas, rescaled=False)
                await self._write_status(s)
                return
            desired = proposed
            if desired > current:
                reason = f"{metric} above target"
            elif desired < current:
                reason = "All metrics below target"
            behavior = behavior_of(spec, self.options.downscale_stabilization)
            d = hb.normalize(history, current=current,
                             desired=desired, min_replicas=min_replicas,
                             max_replicas=spec.maxReplicas, behavior=behavior, now=s.now,
                             down_window=self.options.downscale_stabilization)
            s.condition("AbleToScale", "True", d.able_reason, d.able_message)
            s.condition("ScalingLimited", "True" if d.limited else "False", d.limited_reason,
                        d.limited_message)
            desired = d.replicas
        rescale = desired != current and not (current == 0 and min_replicas != 0)
        if rescale and not await self._rescale(s, resource, scale, desired, reason):
            return
        self._set_status(s, current, desired if rescale else current, rescaled=rescale)
        await self._write_status(s)

    def _metrics(self, s: _Sync, scale: Any) -> tuple[int | None, str]:
        """The largest proposal of the metrics (None when there is none to act on); sets
        ScalingActive and s.statuses as Kubernetes' computeReplicasForMetrics."""
        hpa = s.hpa
        if not scale.status.selector:
            self.recorder.event(hpa, "Warning", "SelectorRequired", "selector is required")
            s.condition("ScalingActive", "False", "InvalidSelector",
                        "the HPA target's scale is missing a selector")
            return None, ""
        try:
            sel = selectors.parse(scale.status.selector)
        except selectors.SelectorError as e:
            msg = f"couldn't convert selector into a corresponding internal selector " \
                  f"object: {e}"
            self.recorder.event(hpa, "Warning", "InvalidSelector", msg)
            s.condition("ScalingActive", "False", "InvalidSelector", msg)
            return None, ""
        pods = pods_selected(self.pods.items(), hpa.metadata.namespace, sel)
        ns = hpa.metadata.namespace
        names = {p.metadata.name for p in pods}
        usage = {pm.metadata.name: pm for pm in self.pod_metrics.items()
                 if pm.metadata.namespace == ns and pm.metadata.name in names}
        settings = Settings(tolerance_of(hpa.spec, self.options.tolerance),
                            Readiness(self.options.cpu_initialization_period,
                                      self.options.initial_readiness_delay))
        best: MetricResult | None = None
        failures: list[MetricFailure] = []
        s.statuses = []
        for spec in hpa.spec.metrics:
            try:
                result = compute(spec, scale.spec.replicas, pods, usage, s.now, settings)
            except MetricFailure as f:
                self.recorder.event(hpa, "Warning", f.reason, f.message)
                failures.append(f)
                s.statuses.append(autoscaling_pb2.MetricStatus())
                continue
            s.statuses.append(result.status)
            if best is None or result.replicas > best.replicas:
                best = result
        total = len(hpa.spec.metrics)
        # All failed, or some failed and the rest would scale down: do nothing (a failed
        # metric might have asked for more).
        if best is None or (failures and best.replicas < scale.spec.replicas):
            first = failures[0] if failures else MetricFailure(
                "InvalidMetricSourceType", "the HPA has no metrics to compute a replica count")
            s.condition("ScalingActive", "False", first.reason,
                        f"the HPA was unable to compute the replica count: {first.message}")
            self.recorder.event(hpa, "Warning", "FailedComputeMetricsReplicas",
                                f"invalid metrics ({len(failures)} invalid out of {total}), "
                                f"first error is: {first.message}")
            return None, ""
        s.condition("ScalingActive", "True", "ValidMetricFound",
                    f"the HPA was able to successfully calculate a replica count from "
                    f"{best.name}")
        return best.replicas, best.name

    async def _rescale(self, s: _Sync, resource: str, scale: Any, desired: int,
                       reason: str) -> bool:
        hpa = s.hpa
        current = scale.spec.replicas
        update = autoscaling_pb2.Scale()
        update.CopyFrom(scale)
        update.spec.replicas = desired
        try:
            await self.client.update_scale(resource, update)
        except APIStatusError as e:
            self.recorder.event(hpa, "Warning", "FailedRescale",
                                f"New size: {desired}; reason: {reason}; error: {e.message}")
            s.condition("AbleToScale", "False", "FailedUpdateScale",
                        f"the HPA controller was unable to update the target scale: "
                        f"{e.message}")
            self._set_status(s, current, s.status.desiredReplicas, rescaled=False)
            await self._write_status(s)
            return False
        s.condition("AbleToScale", "True", "SucceededRescale",
                    f"the HPA controller was able to update the target scale to {desired}")
        self.recorder.event(hpa, "Normal", "SuccessfulRescale",
                            f"New size: {desired}; reason: {reason}")
        hb.record_scale(self.history.setdefault(key_of(hpa), hb.History()),
                        behavior_of(hpa.spec, self.options.downscale_stabilization),
                        current, desired, s.now)
        log.info("hpa %s: rescaled %s from %d to %d: %s", key_of(hpa),
                 hpa.spec.scaleTargetRef.name, current, desired, reason)
        return True

    @staticmethod
    def _set_status(s: _Sync, current: int, desired: int, *, rescaled: bool) -> None:
        st = s.status
        st.currentReplicas, st.desiredReplicas = current, desired
        del st.currentMetrics[:]
        st.currentMetrics.extend(s.statuses)
        if rescaled:
            st.lastScaleTime = s.stamp

    async def _write_status(self, s: _Sync) -> None:
        hpa = s.hpa
        if s.status == hpa.status:
            return
        update = autoscaling_pb2.HorizontalPodAutoscaler()
        update.CopyFrom(hpa)
        update.status.CopyFrom(s.status)
        update.metadata.resourceVersion = ""  # only this controller writes HPA status
        try:
            await self.client.update_status(update)
        except APIStatusError as e:
            if not e.not_found:
                raise


def _resource_of(ref: Any) -> tuple[str, str]:
    """(resource, "") of a scaleTargetRef, or ("", why not). Only the group of its
    apiVersion matters (apps/v1beta2 finds Deployments too), as in Kubernetes."""
    group = ref.apiVersion.rpartition("/")[0] if "/" in ref.apiVersion else ""
    try:
        kind = kinds.by_resource(ref.kind) if ref.kind else None
    except kinds.UnknownKind:
        kind = None
    if kind is None or kind.kind != ref.kind or kind.group != group:
        return "", (f"unable to determine resource for scale target reference: no matches "
                    f'for kind "{ref.kind}" in group "{group}"')
    if kind.resource not in SCALABLE:
        return "", (f"{kind.resource_group} have no scale subresource: "
                    f"a {ref.kind} cannot be autoscaled")
    return kind.resource, ""
