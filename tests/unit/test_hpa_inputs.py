"""What the HPA controller reads from API objects: spec.behavior as rules, per-direction
tolerances, the scale target's resource, pods and PodMetrics as calculator values."""

from __future__ import annotations

from typing import Any

from kubelite.api import autoscaling_pb2, metrics_pb2, pod_pb2
from kubelite.objects import convert, defaults, versions
from master.controllers import hpa_behavior as hb
from master.controllers.hpa import _resource_of, behavior_of, tolerance_of
from master.controllers.hpa_metrics import duration, pod_metric, pod_state, timestamp


def hpa(spec: dict[str, Any]) -> Any:
    obj = convert.from_dict(versions.to_internal({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "web"}, "maxReplicas": 5, **spec}}),
        autoscaling_pb2.HorizontalPodAutoscaler)
    defaults.apply(obj)
    return obj


def test_behavior_defaults_and_the_controllers_scale_down_window() -> None:
    assert behavior_of(hpa({}).spec, 300) is None  # Kubernetes' rules without behavior
    b = behavior_of(hpa({"behavior": {"scaleUp": {"selectPolicy": "Min"}}}).spec, 42)
    assert b == hb.Behavior(
        up=hb.Rules(0, "Min", (hb.Policy("Pods", 4, 15), hb.Policy("Percent", 100, 15))),
        down=hb.Rules(42, "Max", (hb.Policy("Percent", 100, 15),)))
    b = behavior_of(hpa({"behavior": {"scaleDown": {
        "stabilizationWindowSeconds": 60, "selectPolicy": "Disabled",
        "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}]}}}).spec, 42)
    assert b is not None and b.down == hb.Rules(60, "Disabled", (hb.Policy("Pods", 1, 30),))


def test_tolerances_per_direction() -> None:
    t = tolerance_of(hpa({"behavior": {"scaleDown": {"tolerance": "0.05"}}}).spec, 0.1)
    assert (t.down, t.up) == (0.05, 0.1)
    assert tolerance_of(hpa({}).spec, 0.2).up == 0.2


def test_scale_target_resource() -> None:
    ref = autoscaling_pb2.CrossVersionObjectReference
    assert _resource_of(ref(kind="Deployment", apiVersion="apps/v1", name="w")) == \
        ("deployments", "")
    assert _resource_of(ref(kind="Deployment", apiVersion="apps/v1beta2", name="w"))[0] == \
        "deployments"  # only the group matters
    assert _resource_of(ref(kind="ReplicationController", apiVersion="v1", name="w"))[0] == \
        "replicationcontrollers"
    assert _resource_of(ref(kind="Deployment", apiVersion="v1", name="w")) == (
        "", 'unable to determine resource for scale target reference: no matches for kind '
            '"Deployment" in group ""')
    assert _resource_of(ref(kind="Pod", apiVersion="v1", name="w")) == (
        "", "pods have no scale subresource: a Pod cannot be autoscaled")


def test_durations_and_timestamps() -> None:
    assert [duration(s) for s in ("10s", "1m30s", "1.5s", "990ms", "1.002s", "", "x")] == \
        [10, 90, 1.5, 0.99, 1.002, 0, 0]
    assert timestamp("1970-01-01T00:01:00Z") == 60 and timestamp("soon") is None


def test_pod_state_and_metrics() -> None:
    pod = convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"initContainers": [
                    {"name": "init", "image": "i", "resources": {"requests": {"cpu": "1"}}},
                    {"name": "side", "image": "i", "restartPolicy": "Always",
                     "resources": {"requests": {"cpu": "50m"}}}],
                 "containers": [{"name": "app", "image": "i",
                                 "resources": {"requests": {"cpu": "0.1",
                                                            "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "startTime": "1970-01-01T00:00:10Z",
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastTransitionTime": "1970-01-01T00:00:20Z"}]}},
        pod_pb2.Pod)
    s = pod_state(pod)
    assert (s.phase, s.ready, s.started, s.ready_changed, s.deleting) == \
        ("Running", True, 10, 20, False)
    # app and the sidecar count; a plain init container does not
    assert s.containers == (("app", {"cpu": 100, "memory": 64 * 1024 * 1024 * 1000}),
                            ("side", {"cpu": 50}))

    pm = convert.from_dict({
        "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
        "metadata": {"name": "p"}, "timestamp": "1970-01-01T00:01:00Z", "window": "10s",
        "containers": [{"name": "app", "usage": {"cpu": "120m", "memory": "1Ki"}},
                       {"name": "side", "usage": {"cpu": "30m"}}]}, metrics_pb2.PodMetrics)
    m = pod_metric(pm, "cpu", "", 70)
    assert m is not None and (m.value, m.timestamp, m.window) == (150, 60, 10)
    assert pod_metric(pm, "cpu", "side", 70).value == 30  # type: ignore[union-attr]
    assert pod_metric(pm, "memory", "", 70) is None  # the sidecar has no memory figure
    assert pod_metric(pm, "cpu", "", 60 + 181) is None  # stale: its node stopped reporting
