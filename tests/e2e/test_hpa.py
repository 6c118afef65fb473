"""The Horizontal Pod Autoscaler on a real cluster (etcd, a master with its
controllers, a node agent running pods in Docker and reporting cgroup usage):
real cpu load scales a Deployment up and its end scales it back down; a target
whose pods have no cpu requests gets a condition saying so.

The master runs a 2 s sync period and a 10 s scale-down window, the agent
reports usage every second. Load is small: one container busy at its 200m cpu
limit (requests 100m: 200% of the request against a 50% target), switched on
and off by creating /tmp/load in it with `kubelite exec`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert, quantity
from tests.cluster import Master, run_etcd, run_master
from tests.e2e.conftest import Kl
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"
FLAGS = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
         "--leader-elect-retry-period", "0.3", "--horizontal-pod-autoscaler-sync-period", "2",
         "--horizontal-pod-autoscaler-downscale-stabilization", "10")
# Busy while /tmp/load exists, idle otherwise.
LOOP = "while :; do if [ -e /tmp/load ]; then :; else sleep 1; fi; done"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Master, NodeAgent]]:
    ensure_docker()
    with run_etcd() as etcd, run_master(etcd.endpoint, *FLAGS) as m, \
            run_node(m.address, "--metrics-interval", "1") as node:
        with Client(server=m.address) as c:
            wait_for(lambda: c.get("nodes", node.name), 30, "node registration")
        yield m, node


@pytest.fixture()
def api(cluster: tuple[Master, NodeAgent]) -> Iterator[Client]:
    with Client(server=cluster[0].address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "hpa-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    try:
        api.delete("namespaces", name)
    except APIStatusError:
        pass


@pytest.fixture()
def kl(cluster: tuple[Master, NodeAgent], ns: str) -> Kl:
    return Kl(cluster[0], ns)


def deployment(api: Client, ns: str, name: str, resources: dict[str, Any]) -> None:
    api.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                                  "name": "app", "image": IMAGE, "command": ["sh", "-c", LOOP],
                                  "resources": resources}]}}}}, apps_pb2.Deployment))


def running_pods(api: Client, ns: str, app: str) -> list[Any]:
    items, _ = api.list("pods", ns, label_selector=f"app={app}")
    return [p for p in items if p.status.phase == "Running" and not p.metadata.deletionTimestamp]


def replicas(api: Client, ns: str, name: str) -> int:
    return int(api.get("deployments", name, ns).spec.replicas)


def condition(api: Client, ns: str, name: str, ctype: str) -> tuple[str, str, str] | None:
    for c in api.get("hpa", name, ns).status.conditions:
        if c.type == ctype:
            return c.status, c.reason, c.message
    return None


def rescales(api: Client, ns: str, name: str) -> list[str]:
    items, _ = api.list("events", ns)
    return [e.message for e in items
            if e.involvedObject.name == name and e.reason == "SuccessfulRescale"]


def load(kl: Kl, ns: str, pod: Any, verb: str) -> None:
    """Switch the pod's busy loop on (touch) or off (rm)."""
    kl.ok("-n", ns, "exec", pod.metadata.name, "--", verb, "/tmp/load", ns=False)


def cpu_targets(kl: Kl, name: str) -> tuple[int, int] | None:
    """(current %, target %) from the TARGETS column of `kubelite get hpa`."""
    m = re.search(r"cpu: (\d+)%/(\d+)%", kl.ok("get", "hpa", name))
    return (int(m.group(1)), int(m.group(2))) if m else None


def test_cpu_load_scales_a_deployment_up_and_its_end_scales_it_down(
        api: Client, kl: Kl, ns: str, cluster: tuple[Master, NodeAgent]) -> None:
    master, agent = cluster
    try:
        deployment(api, ns, "load", {"requests": {"cpu": "100m"}, "limits": {"cpu": "200m"}})
        assert kl.ok("autoscale", "deploy/load", "--min=1", "--max=3", "--cpu-percent=50") == \
            "horizontalpodautoscaler.autoscaling/load autoscaled\n"
        (pod,) = wait_for(lambda: running_pods(api, ns, "load"), 60, "the first pod")
        idle = wait_for(lambda: cpu_targets(kl, "load"), 30, "an idle measurement")
        assert idle[1] == 50 and idle[0] < 30, idle
        assert condition(api, ns, "load", "ScalingActive")[:2] == ("True", "ValidMetricFound")

        started = time.monotonic()
        load(kl, ns, pod, "touch")
        wait_for(lambda: replicas(api, ns, "load") > 1, 30, "a scale-up")
        up_after = time.monotonic() - started
        # 200m of a 100m request is 200% against 50%: ceil(4.0) = 4, held at the maximum 3
        wait_for(lambda: replicas(api, ns, "load") == 3, 20, "three replicas")

        # A container busy at its 200m limit reads about 200m (less while this 2-core
        # machine is crowded: it then really gets less), through the API and `top`.
        def busy() -> int:
            usage = api.get("podmetrics", pod.metadata.name, ns)
            milli = quantity.milli(usage.containers[0].usage["cpu"].string)
            top = kl.ok("top", "pods", pod.metadata.name).splitlines()[1].split()
            return milli >= 150 and int(top[1].rstrip("m")) >= 150 and milli

        reading = wait_for(busy, 20, "a busy reading", interval=0.5)
        assert reading <= 260, f"a container busy at its 200m limit reads {reading}m"
        assert any(m.startswith("New size: 3; reason: cpu resource utilization")
                   for m in rescales(api, ns, "load"))
        loaded = cpu_targets(kl, "load")
        assert loaded is not None and loaded[0] > 50, loaded

        load(kl, ns, pod, "rm")
        stopped = time.monotonic()
        wait_for(lambda: replicas(api, ns, "load") == 1, 45, "the scale-down")
        down_after = time.monotonic() - stopped
        assert down_after >= 9, f"scaled down {down_after:.1f}s after, inside the 10s window"
        assert "New size: 1; reason: All metrics below target" in rescales(api, ns, "load")
        assert api.get("hpa", "load", ns).status.desiredReplicas == 1
        describe = kl.ok("describe", "hpa", "load")
        assert "SuccessfulRescale" in describe and "Deployment pods:" in describe
        print(f"scale-up {up_after:.1f}s after the load started, scale-down "
              f"{down_after:.1f}s after it stopped")
    except AssertionError as e:
        raise AssertionError(f"{e}\nmaster log:\n{master.log.read_text()[-3000:]}") from None


def test_a_target_without_cpu_requests_gets_a_condition(api: Client, kl: Kl, ns: str) -> None:
    deployment(api, ns, "noreq", {})
    kl.ok("autoscale", "deploy/noreq", "--max=3", "--cpu-percent=50")
    wait_for(lambda: running_pods(api, ns, "noreq"), 60, "the pod")

    def failed() -> tuple[str, str, str] | None:
        c = condition(api, ns, "noreq", "ScalingActive")
        return c if c and c[1] == "FailedGetResourceMetric" else None

    status, _, message = wait_for(failed, 30, "the FailedGetResourceMetric condition")
    assert status == "False"
    assert re.fullmatch(r"the HPA was unable to compute the replica count: failed to get cpu "
                        r"utilization: missing request for cpu in container app of Pod "
                        r"noreq-\S+", message), message
    assert replicas(api, ns, "noreq") == 1
    assert "cpu: <unknown>/50%" in kl.ok("get", "hpa", "noreq")
    assert "FailedGetResourceMetric" in kl.ok("describe", "hpa", "noreq")
