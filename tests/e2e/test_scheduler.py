"""The scheduler in a real master: binding, hostPort spreading, taints, retries,
and the leader lease between two masters.

These masters run on an etcd of their own (the session's master runs no
scheduler), with nodes that are API objects only: no agent behind them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import Master, run_etcd, run_master

FAST_LEASE = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
              "--leader-elect-retry-period", "0.3")


@pytest.fixture(scope="module")
def sched_master() -> Iterator[Master]:
    # No controllers: the garbage collector would (rightly) delete the pods below,
    # whose owner ReplicaSet does not exist, before the scheduler binds them.
    with run_etcd() as etcd, run_master(etcd.endpoint, "--no-controllers", *FAST_LEASE) as m:
        yield m


@pytest.fixture()
def api(sched_master: Master) -> Iterator[Client]:
    with Client(server=sched_master.address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "s-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


@pytest.fixture()
def nodes(api: Client) -> Iterator[Callable[..., list[str]]]:
    made: list[str] = []

    def make(count: int, *, cpu: str = "2", taints: list[dict[str, str]] | None = None
             ) -> list[str]:
        names = []
        for _ in range(count):
            name = "node-" + uuid.uuid4().hex[:6]
            alloc = {"cpu": cpu, "memory": "4Gi", "pods": "110"}
            api.create(convert.from_dict({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                "spec": {"taints": taints or []},
                "status": {"capacity": alloc, "allocatable": alloc,
                           "conditions": [{"type": "Ready", "status": "True"}]},
            }, core_pb2.Node))
            made.append(name)
            names.append(name)
        return names

    yield make
    for name in made:
        try:
            api.delete("nodes", name)
        except APIStatusError:
            pass


def make_pod(name: str, ns: str, *, cpu: str = "100m", host_port: int = 0,
             tolerations: list[dict[str, str]] | None = None, owner: str = "") -> Any:
    c: dict[str, Any] = {"name": "c", "image": "busybox:1.36",
                         "resources": {"requests": {"cpu": cpu}}}
    if host_port:
        c["ports"] = [{"containerPort": 80, "hostPort": host_port}]
    md: dict[str, Any] = {"name": name, "namespace": ns}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                  "uid": owner, "controller": True}]
    return convert.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": md,
                              "spec": {"containers": [c], "tolerations": tolerations or []}},
                             pod_pb2.Pod)


def wait_for(fn: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or fn}: last {last!r}")


def bound(api: Client, ns: str, name: str) -> str:
    return str(api.get("pods", name, ns).spec.nodeName)


def condition(pod: Any, type_: str) -> Any:
    return next((c for c in pod.status.conditions if c.type == type_), None)


def events(api: Client, ns: str, name: str, reason: str) -> list[Any]:
    items, _ = api.list("events", ns, field_selector=f"involvedObject.name={name},reason={reason}")
    return items


def test_binds_pods_to_registered_nodes(api: Client, ns: str, nodes: Any) -> None:
    names = set(nodes(3))
    for i in range(6):
        api.create(make_pod(f"web-{i}", ns, owner="rs-web"))
    placed = [wait_for(lambda i=i: bound(api, ns, f"web-{i}"), what=f"web-{i} bound")
              for i in range(6)]
    assert set(placed) <= names
    # Replicas of one controller spread: every node gets two.
    assert sorted(placed.count(n) for n in names) == [2, 2, 2]
    pod = api.get("pods", "web-0", ns)
    cond = condition(pod, "PodScheduled")
    assert cond is not None and cond.status == "True"
    ev = wait_for(lambda: events(api, ns, "web-0", "Scheduled"), what="Scheduled event")
    assert ev[0].message == f"Successfully assigned {ns}/web-0 to {placed[0]}"
    assert ev[0].source.component == "default-scheduler"


def test_host_port_conflict_spreads_then_waits(api: Client, ns: str, nodes: Any) -> None:
    names = nodes(3)
    for i in range(3):
        api.create(make_pod(f"hp-{i}", ns, host_port=8080))
    placed = {wait_for(lambda i=i: bound(api, ns, f"hp-{i}")) for i in range(3)}
    assert placed == set(names)  # never two on one node
    api.create(make_pod("hp-3", ns, host_port=8080))

    def unschedulable() -> Any:
        c = condition(api.get("pods", "hp-3", ns), "PodScheduled")
        return c if c is not None and c.status == "False" else None

    cond = wait_for(unschedulable, what="PodScheduled=False")
    assert cond.reason == "Unschedulable"
    # Other nodes of this shared master may exist from other tests; count ours.
    assert "node(s) didn't have free ports for the requested pod ports" in cond.message
    ev = wait_for(lambda: events(api, ns, "hp-3", "FailedScheduling"))
    assert ev[0].type == "Warning" and ev[0].message == cond.message
    assert not bound(api, ns, "hp-3")
    # Freeing a port is a cluster change: the pod is retried and lands there.
    api.delete("pods", "hp-0", ns, grace_period_seconds=0)
    node = wait_for(lambda: bound(api, ns, "hp-3"), what="hp-3 bound after a port freed")
    assert node in names


def test_taint_keeps_pods_away_until_tolerated(api: Client, ns: str, nodes: Any) -> None:
    taint = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    (node,) = nodes(1, cpu="1", taints=[taint])
    sel = {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}
    api.create(make_pod("tolerant", ns, tolerations=[sel], cpu="10m"))
    assert wait_for(lambda: bound(api, ns, "tolerant")) == node
    api.create(make_pod("plain", ns, cpu="10m"))

    def message() -> str:
        c = condition(api.get("pods", "plain", ns), "PodScheduled")
        return c.message if c is not None and c.status == "False" else ""

    assert "node(s) had untolerated taint {dedicated: db}" in wait_for(message)
    n = api.get("nodes", node)
    del n.spec.taints[:]
    api.update(n)
    assert wait_for(lambda: bound(api, ns, "plain"), what="plain bound once untainted") == node


def test_unschedulable_pod_is_not_retried_in_a_hot_loop(api: Client, ns: str,
                                                         nodes: Any) -> None:
    nodes(1, cpu="1")
    api.create(make_pod("huge", ns, cpu="64"))
    ev = wait_for(lambda: events(api, ns, "huge", "FailedScheduling"))
    assert "Insufficient cpu" in ev[0].message
    time.sleep(3)
    (ev,) = events(api, ns, "huge", "FailedScheduling")
    assert ev.count <= 2, f"{ev.count} attempts in 3 s with nothing changing"


def test_pods_of_another_scheduler_are_left_alone(api: Client, ns: str, nodes: Any) -> None:
    nodes(1)
    p = make_pod("other", ns)
    p.spec.schedulerName = "my-scheduler"
    api.create(p)
    api.create(make_pod("mine", ns))
    wait_for(lambda: bound(api, ns, "mine"))
    assert not bound(api, ns, "other")


def test_only_the_lease_holder_schedules_and_another_takes_over(tmp_path: Any) -> None:
    with run_etcd() as etcd, \
            run_master(etcd.endpoint, "--identity", "m1", *FAST_LEASE) as m1, \
            run_master(etcd.endpoint, "--identity", "m2", *FAST_LEASE) as m2:
        c1, c2 = Client(server=m1.address), Client(server=m2.address)
        holder = wait_for(lambda: c1.get("leases", "kube-scheduler", "kube-system")
                          .spec.holderIdentity, what="a lease holder")
        assert holder in ("m1", "m2")
        leader, survivor = (m1, c2) if holder == "m1" else (m2, c1)
        alloc = {"cpu": "2", "memory": "1Gi", "pods": "10"}
        c1.create(convert.from_dict({"apiVersion": "v1", "kind": "Node",
                                     "metadata": {"name": "n1"},
                                     "status": {"capacity": alloc, "allocatable": alloc}},
                                    core_pb2.Node))
        c1.create(make_pod("before", "default"))
        assert wait_for(lambda: bound(c1, "default", "before")) == "n1"
        # The holder dies without releasing: the other master waits the lease out.
        leader.proc.kill()
        leader.proc.wait()
        c = survivor
        t = time.monotonic()
        c.create(make_pod("after", "default"))
        assert wait_for(lambda: bound(c, "default", "after"), timeout=20) == "n1"
        took = time.monotonic() - t
        lease = c.get("leases", "kube-scheduler", "kube-system")
        assert lease.spec.holderIdentity not in ("", holder)
        assert lease.spec.leaseTransitions >= 1
        assert took < 10, f"takeover took {took:.1f}s with a 2 s lease"
        c1.close()
        c2.close()
