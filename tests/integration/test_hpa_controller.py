"""The HPA controller's syncs against the session's real master (no controllers
there, so nothing else moves): Deployments, Pods with set statuses and
PodMetrics are written here, then one sync at a time is run and its effects
read back through the API: the target's scale, the HPA's status and
conditions, the events. The clock is the controller's only fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.api import apps_pb2, autoscaling_pb2, core_pb2, metrics_pb2, pod_pb2
from kubelite.client import AsyncClient, Client
from kubelite.objects import convert, versions
from master.controllers.hpa import HorizontalPodAutoscalerController, Options
from tests.cluster import Master

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOUR_AGO = datetime.fromtimestamp(time.time() - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture()
async def aclient(master: Master) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(server=master.address, timeout=15)
    yield c
    await c.close()


@pytest.fixture()
async def ctl(aclient: AsyncClient) -> AsyncIterator[tuple[HorizontalPodAutoscalerController,
                                                            Clock]]:
    """A controller whose caches are live; syncs are run by the tests."""
    clock = Clock()
    c = HorizontalPodAutoscalerController(aclient, Options(downscale_stabilization=20),
                                          clock=clock)
    tasks = [asyncio.create_task(i.run()) for i in c.informers]
    await asyncio.gather(*(i.synced.wait() for i in c.informers))
    yield c, clock
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await c.recorder.flush()


def deployment(client: Client, ns: str, name: str, replicas: int) -> None:
    client.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": "busybox"}]}}}},
        apps_pb2.Deployment))


def running_pod(client: Client, ns: str, name: str, app: str,
                requests: dict[str, str] | None, usage: dict[str, str] | None) -> None:
    """A Running, Ready pod (started an hour ago) and, unless None, its PodMetrics."""
    resources = {"requests": requests} if requests else {}
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "busybox",
                                 "resources": resources}]}}, pod_pb2.Pod))
    pod = client.get("pods", name, ns)
    pod.status.phase = "Running"
    pod.status.startTime = HOUR_AGO
    pod.status.conditions.add(type="Ready", status="True", lastTransitionTime=HOUR_AGO)
    client.update_status(pod)
    if usage is None:
        return
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.create(convert.from_dict({
        "apiVersion": "metrics.k8s.io/v1beta1", "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": ns}, "timestamp": now, "window": "10s",
        "containers": [{"name": "app", "usage": usage}]}, metrics_pb2.PodMetrics))


def hpa(client: Client, ns: str, manifest: dict[str, Any]) -> Any:
    manifest = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                **manifest}
    manifest["metadata"] = {"namespace": ns, **manifest.get("metadata", {})}
    return client.create(convert.from_dict(versions.to_internal(manifest),
                                           autoscaling_pb2.HorizontalPodAutoscaler))


def cpu_hpa(target: str, percent: int = 50, lo: int = 1, hi: int = 10,
            kind: str = "Deployment", api: str = "apps/v1") -> dict[str, Any]:
    return {"metadata": {"name": target},
            "spec": {"scaleTargetRef": {"apiVersion": api, "kind": kind, "name": target},
                     "minReplicas": lo, "maxReplicas": hi,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": percent}}}]}}


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def sync(ctl: HorizontalPodAutoscalerController, client: Client, ns: str, name: str,
               pods: int = 0) -> Any:
    """One sync of HPA ns/name once the caches hold it and `pods` PodMetrics; the HPA after."""
    await until(lambda: ctl.hpas.get(f"{ns}/{name}"), "the HPA in the cache")
    await until(lambda: sum(1 for m in ctl.pod_metrics.items()
                            if m.metadata.namespace == ns) >= pods, "metrics in the cache")
    await ctl.sync(ctl.hpas.get(f"{ns}/{name}"))
    await ctl.recorder.flush()
    out = client.get("hpa", name, ns)
    await until(lambda: (h := ctl.hpas.get(f"{ns}/{name}")) is not None
                and h.metadata.resourceVersion == out.metadata.resourceVersion,
                "the HPA status in the cache")
    return out


def conditions(h: Any) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in h.status.conditions}


def events(client: Client, ns: str, name: str) -> list[tuple[str, str, str]]:
    items, _ = client.list("events", ns)
    return [(e.type, e.reason, e.message) for e in items if e.involvedObject.name == name]


async def test_cpu_load_scales_up_with_status_conditions_and_event(
        ctl: Any, client: Client, namespace: str) -> None:
    c, _ = ctl
    deployment(client, namespace, "web", 2)
    running_pod(client, namespace, "web-a", "web", {"cpu": "100m"}, {"cpu": "90m"})
    running_pod(client, namespace, "web-b", "web", {"cpu": "100m"}, {"cpu": "80m"})
    running_pod(client, namespace, "other", "db", {"cpu": "100m"}, {"cpu": "900m"})
    hpa(client, namespace, cpu_hpa("web"))
    h = await sync(c, client, namespace, "web", pods=3)
    # 170m of 200m = 85% against 50%: ratio 1.7 -> ceil(3.4) = 4
    assert client.get("deployments", "web", namespace).spec.replicas == 4
    st = h.status
    assert (st.currentReplicas, st.desiredReplicas) == (2, 4)
    assert st.lastScaleTime and st.observedGeneration == h.metadata.generation
    (m,) = st.currentMetrics
    assert (m.type, m.resource.name, m.resource.current.averageUtilization,
            m.resource.current.averageValue.string) == ("Resource", "cpu", 85, "85m")
    assert conditions(h) == {
        "AbleToScale": ("True", "SucceededRescale",
                        "the HPA controller was able to update the target scale to 4"),
        "ScalingActive": ("True", "ValidMetricFound",
                          "the HPA was able to successfully calculate a replica count from "
                          "cpu resource utilization (percentage of request)"),
        "ScalingLimited": ("False", "DesiredWithinRange",
                           "the desired count is within the acceptable range")}
    assert ("Normal", "SuccessfulRescale", "New size: 4; reason: cpu resource utilization "
            "(percentage of request) above target") in events(client, namespace, "web")
    from kubelite.cli.printers import hpa_targets
    assert hpa_targets(convert.to_dict(h)) == "cpu: 85%/50%"


async def test_pods_without_requests_get_a_condition_not_a_crash(
        ctl: Any, client: Client, namespace: str) -> None:
    c, _ = ctl
    deployment(client, namespace, "web", 1)
    running_pod(client, namespace, "web-a", "web", None, {"cpu": "90m"})
    hpa(client, namespace, cpu_hpa("web"))
    h = await sync(c, client, namespace, "web", pods=1)
    message = "failed to get cpu utilization: missing request for cpu in container app " \
              "of Pod web-a"
    assert conditions(h)["ScalingActive"] == (
        "False", "FailedGetResourceMetric",
        f"the HPA was unable to compute the replica count: {message}")
    assert conditions(h)["AbleToScale"][:2] == ("True", "SucceededGetScale")
    assert h.status.currentReplicas == 1 and len(h.status.currentMetrics) == 1
    assert client.get("deployments", "web", namespace).spec.replicas == 1
    assert ("Warning", "FailedGetResourceMetric", message) in events(client, namespace, "web")
    from kubelite.cli.printers import hpa_targets
    assert hpa_targets(convert.to_dict(h)) == "cpu: <unknown>/50%"


async def test_a_target_that_cannot_be_scaled(ctl: Any, client: Client, namespace: str) -> None:
    c, _ = ctl
    hpa(client, namespace, cpu_hpa("nope"))
    h = await sync(c, client, namespace, "nope")
    assert conditions(h)["AbleToScale"] == (
        "False", "FailedGetScale", "the HPA controller was unable to get the target's "
                                   'current scale: deployments.apps "nope" not found')
    hpa(client, namespace, {**cpu_hpa("cm", kind="ConfigMap", api="v1")})
    h = await sync(c, client, namespace, "cm")
    assert "configmaps have no scale subresource" in conditions(h)["AbleToScale"][2]
    hpa(client, namespace, {**cpu_hpa("x", kind="Widget", api="example.com/v1")})
    h = await sync(c, client, namespace, "x")
    assert 'no matches for kind "Widget" in group "example.com"' in \
        conditions(h)["AbleToScale"][2]


async def test_largest_metric_wins_and_v1_objects_work(ctl: Any, client: Client,
                                                       namespace: str) -> None:
    c, _ = ctl
    deployment(client, namespace, "web", 2)
    for name in ("web-a", "web-b"):
        running_pod(client, namespace, name, "web", {"cpu": "100m", "memory": "100Mi"},
                    {"cpu": "50m", "memory": "150Mi"})
    manifest = cpu_hpa("web")
    manifest["spec"]["metrics"].append({"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}})
    hpa(client, namespace, manifest)
    h = await sync(c, client, namespace, "web", pods=2)
    # cpu: 50% on target: keep 2; memory: 150Mi / 100Mi -> ceil(1.5 x 2) = 3
    assert client.get("deployments", "web", namespace).spec.replicas == 3
    cpu, mem = h.status.currentMetrics
    assert cpu.resource.current.averageUtilization == 50
    assert mem.resource.current.averageValue.string == str(150 * 1024 * 1024)
    assert any(r == "SuccessfulRescale" and m.endswith("reason: memory resource above target")
               for _, r, m in events(client, namespace, "web"))

    deployment(client, namespace, "api", 1)
    running_pod(client, namespace, "api-a", "api", {"cpu": "200m"}, {"cpu": "400m"})
    hpa(client, namespace, {"apiVersion": "autoscaling/v1", "metadata": {"name": "api"},
                            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1",
                                                        "kind": "Deployment", "name": "api"},
                                     "maxReplicas": 3, "targetCPUUtilizationPercentage": 60}})
    h = await sync(c, client, namespace, "api", pods=3)
    # 200% against 60%: ceil(3.33) = 4, over the maximum of 3
    assert client.get("deployments", "api", namespace).spec.replicas == 3
    assert conditions(h)["ScalingLimited"][:2] == ("True", "TooManyReplicas")
    assert versions.hpa_v2_to_v1(convert.to_dict(h))["status"][
        "currentCPUUtilizationPercentage"] == 200


async def test_scale_down_waits_for_the_window(ctl: Any, client: Client,
                                               namespace: str) -> None:
    c, clock = ctl
    deployment(client, namespace, "web", 3)
    for name in ("web-a", "web-b", "web-c"):
        running_pod(client, namespace, name, "web", {"cpu": "100m"}, {"cpu": "5m"})
    hpa(client, namespace, cpu_hpa("web", lo=1))
    h = await sync(c, client, namespace, "web", pods=3)
    # 5% against 50%: 1 replica, but 3 was recommended (current) within the window
    assert client.get("deployments", "web", namespace).spec.replicas == 3
    assert conditions(h)["AbleToScale"][:2] == ("True", "ScaleDownStabilized")
    assert (h.status.currentReplicas, h.status.desiredReplicas) == (3, 3)
    clock.offset = 21  # past the 20 s window of this controller
    h = await sync(c, client, namespace, "web")
    assert client.get("deployments", "web", namespace).spec.replicas == 1
    assert (h.status.currentReplicas, h.status.desiredReplicas) == (3, 1)
    assert ("Normal", "SuccessfulRescale", "New size: 1; reason: All metrics below target") \
        in events(client, namespace, "web")


async def test_zero_replicas_disables_scaling(ctl: Any, client: Client, namespace: str) -> None:
    c, _ = ctl
    deployment(client, namespace, "web", 0)
    hpa(client, namespace, cpu_hpa("web"))
    h = await sync(c, client, namespace, "web")
    assert conditions(h)["ScalingActive"][:2] == ("False", "ScalingDisabled")
    assert client.get("deployments", "web", namespace).spec.replicas == 0


async def test_replication_controllers_replicasets_and_statefulsets(
        ctl: Any, client: Client, namespace: str) -> None:
    c, _ = ctl
    targets = (("rc", "ReplicationController", "v1", core_pb2.ReplicationController,
                {"selector": {"app": "rc"}}),
               ("rs", "ReplicaSet", "apps/v1", apps_pb2.ReplicaSet,
                {"selector": {"matchLabels": {"app": "rs"}}}),
               ("sts", "StatefulSet", "apps/v1", apps_pb2.StatefulSet,
                {"serviceName": "sts", "selector": {"matchLabels": {"app": "sts"}}}))
    for app, kind, api, message, spec in targets:
        tmpl = {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
        client.create(convert.from_dict({
            "apiVersion": api, "kind": kind, "metadata": {"name": app, "namespace": namespace},
            "spec": {"replicas": 1, "template": tmpl, **spec}}, message))
        running_pod(client, namespace, f"{app}-0", app, {"cpu": "100m"}, {"cpu": "100m"})
        hpa(client, namespace, cpu_hpa(app, kind=kind, api=api))
    for i, (app, *_) in enumerate(targets):
        await sync(c, client, namespace, app, pods=i + 1)
    # 100% against 50%: 2 replicas each
    assert client.get("replicationcontrollers", "rc", namespace).spec.replicas == 2
    assert client.get("replicasets", "rs", namespace).spec.replicas == 2
    assert client.get("statefulsets", "sts", namespace).spec.replicas == 2
