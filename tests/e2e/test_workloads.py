"""ReplicaSet, ReplicationController and the garbage collector on a real
cluster: etcd, a master running its scheduler and controllers, and a node
agent running the pods in Docker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import Master, run_etcd, run_master
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"
FAST = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
        "--leader-elect-retry-period", "0.3")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Master, NodeAgent]]:
    ensure_docker()
    with run_etcd() as etcd, run_master(etcd.endpoint, *FAST) as m, \
            run_node(m.address, "--metrics-interval", "0") as node:
        with Client(server=m.address) as c:
            wait_for(lambda: c.get("nodes", node.name), 30, "node registration")
        yield m, node


@pytest.fixture()
def api(cluster: tuple[Master, NodeAgent]) -> Iterator[Client]:
    with Client(server=cluster[0].address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "w-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


def template(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": labels},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                 "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}


def replicaset(name: str, ns: str, replicas: int, **spec: Any) -> Any:
    labels = {"app": name}
    return convert.from_dict({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": template(labels), **spec}}, apps_pb2.ReplicaSet)


def pods_of(api: Client, ns: str, selector: str, *, live: bool = True) -> list[Any]:
    items, _ = api.list("pods", ns, label_selector=selector)
    return [p for p in items if not (live and p.metadata.deletionTimestamp)]


def rs_status(api: Client, ns: str, name: str, resource: str = "replicasets") -> Any:
    return api.get(resource, name, ns).status


def test_replicaset_creates_scales_and_reports(api: Client, ns: str) -> None:
    api.create(replicaset("web", ns, 3))
    st = wait_for(lambda: (s := rs_status(api, ns, "web")).availableReplicas == 3 and s, 60,
                  "3 available replicas")
    assert st.replicas == 3 and st.readyReplicas == 3 and st.fullyLabeledReplicas == 3
    assert st.observedGeneration == api.get("replicasets", "web", ns).metadata.generation
    pods = pods_of(api, ns, "app=web")
    assert len(pods) == 3
    for p in pods:
        ref = p.metadata.ownerReferences[0]
        assert (ref.kind, ref.name, ref.controller, ref.blockOwnerDeletion) == (
            "ReplicaSet", "web", True, True)
        assert p.metadata.name.startswith("web-") and p.spec.nodeName
    # Scale down: two pods go; then up again.
    api.patch("replicasets", "web", {"spec": {"replicas": 1}}, ns)
    wait_for(lambda: len(pods_of(api, ns, "app=web")) == 1, 30, "scaled to 1")
    wait_for(lambda: rs_status(api, ns, "web").replicas == 1, 30)
    api.patch("replicasets", "web", {"spec": {"replicas": 4}}, ns)
    wait_for(lambda: rs_status(api, ns, "web").availableReplicas == 4, 60, "scaled to 4")
    items, _ = api.list("events", ns, field_selector="involvedObject.name=web")
    reasons = {e.reason for e in items}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


def test_self_healing_after_pod_deleted_and_container_killed(api: Client, ns: str) -> None:
    import subprocess

    api.create(replicaset("heal", ns, 2))
    wait_for(lambda: rs_status(api, ns, "heal").availableReplicas == 2, 60)
    victim = pods_of(api, ns, "app=heal")[0]
    api.delete("pods", victim.metadata.name, ns)
    wait_for(lambda: (names := {p.metadata.name for p in pods_of(api, ns, "app=heal")})
             and victim.metadata.name not in names and len(names) == 2, 30, "a replacement pod")
    wait_for(lambda: rs_status(api, ns, "heal").availableReplicas == 2, 60)
    # Kill a container behind the agent's back: it is restarted in place.
    p = pods_of(api, ns, "app=heal")[0]
    cid = p.status.containerStatuses[0].containerID.removeprefix("docker://")
    subprocess.run(["docker", "kill", cid], capture_output=True, check=True)
    wait_for(lambda: api.get("pods", p.metadata.name, ns).status.containerStatuses[0]
             .restartCount >= 1, 30, "container restarted")
    assert len(pods_of(api, ns, "app=heal")) == 2


def test_adopts_a_matching_pod_and_deletes_the_surplus(api: Client, ns: str) -> None:
    api.create(replicaset("adopt", ns, 2))
    wait_for(lambda: rs_status(api, ns, "adopt").availableReplicas == 2, 60)
    stray = convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": "by-hand", "namespace": ns,
                                            "labels": {"app": "adopt"}},
                               "spec": template({})["spec"]}, pod_pb2.Pod)
    api.create(stray)
    # Adopted (owner set), then one of the three is deleted: the unscheduled/newest first.
    wait_for(lambda: len(pods_of(api, ns, "app=adopt")) == 2, 30, "surplus deleted")
    for p in pods_of(api, ns, "app=adopt"):
        assert p.metadata.ownerReferences[0].name == "adopt"


def test_relabelled_pod_is_released_and_replaced(api: Client, ns: str) -> None:
    api.create(replicaset("rel", ns, 2))
    wait_for(lambda: rs_status(api, ns, "rel").availableReplicas == 2, 60)
    p = pods_of(api, ns, "app=rel")[0]
    api.patch("pods", p.metadata.name, {"metadata": {"labels": {"app": "debug"}}}, ns)
    released = wait_for(lambda: not (q := api.get("pods", p.metadata.name, ns))
                        .metadata.ownerReferences and q, 30, "owner reference removed")
    assert released.metadata.labels["app"] == "debug"
    wait_for(lambda: len(pods_of(api, ns, "app=rel")) == 2, 30, "a replacement")


def test_replication_controller_equality_selector(api: Client, ns: str) -> None:
    rc = convert.from_dict({"apiVersion": "v1", "kind": "ReplicationController",
                            "metadata": {"name": "legacy", "namespace": ns},
                            "spec": {"replicas": 2, "template": template({"app": "legacy"})}},
                           core_pb2.ReplicationController)
    api.create(rc)
    st = wait_for(lambda: (s := rs_status(api, ns, "legacy", "replicationcontrollers"))
                  .readyReplicas == 2 and s, 60)
    assert st.replicas == 2
    assert pods_of(api, ns, "app=legacy")[0].metadata.ownerReferences[0].kind == \
        "ReplicationController"


def test_delete_cascades_in_background(api: Client, ns: str) -> None:
    api.create(replicaset("bg", ns, 2))
    wait_for(lambda: len(pods_of(api, ns, "app=bg")) == 2, 30)
    api.delete("replicasets", "bg", ns)
    wait_for(lambda: not pods_of(api, ns, "app=bg", live=False), 30, "pods collected")


def test_orphan_delete_keeps_the_pods(api: Client, ns: str) -> None:
    api.create(replicaset("orph", ns, 2))
    wait_for(lambda: len(pods_of(api, ns, "app=orph")) == 2, 30)
    api.delete("replicasets", "orph", ns, propagation_policy="Orphan")
    wait_for(lambda: _gone(api, "replicasets", "orph", ns), 30, "the ReplicaSet gone")
    pods = pods_of(api, ns, "app=orph")
    assert len(pods) == 2 and all(not p.metadata.ownerReferences for p in pods)


def test_foreground_delete_waits_for_the_pods(api: Client, ns: str) -> None:
    api.create(replicaset("fg", ns, 2))
    wait_for(lambda: len(pods_of(api, ns, "app=fg")) == 2, 30)
    # What the delete returns: the GC may finish (and the RS go) before a later read.
    rs = api.delete("replicasets", "fg", ns, propagation_policy="Foreground")
    assert rs.metadata.deletionTimestamp and "foregroundDeletion" in rs.metadata.finalizers
    wait_for(lambda: _gone(api, "replicasets", "fg", ns), 30, "owner gone after dependents")
    assert not pods_of(api, ns, "app=fg", live=False)


def _gone(api: Client, resource: str, name: str, ns: str) -> bool:
    try:
        api.get(resource, name, ns)
        return False
    except APIStatusError as e:
        return e.not_found


def test_min_ready_seconds_delays_availability(api: Client, ns: str) -> None:
    import time

    api.create(replicaset("slow", ns, 2, minReadySeconds=4))
    wait_for(lambda: rs_status(api, ns, "slow").readyReplicas == 2, 60, "2 ready")
    ready_at = time.monotonic()
    assert rs_status(api, ns, "slow").availableReplicas < 2
    wait_for(lambda: rs_status(api, ns, "slow").availableReplicas == 2, 30, "2 available")
    assert time.monotonic() - ready_at >= 1.5  # available only minReadySeconds after ready
