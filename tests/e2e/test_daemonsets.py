"""The DaemonSet controller on a real cluster: etcd, a master running its
scheduler and controllers, and two node agents running the pods in Docker
(a third joins and leaves in one test).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from master.controllers.daemonset import DEFAULT_TOLERATIONS, LABEL_HASH, target_node
from tests.cluster import Master, _stop, run_etcd, run_master
from tests.e2e.conftest import Kl
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"
FAST = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
        "--leader-elect-retry-period", "0.3")
AGENT = ("--metrics-interval", "0")


@dataclass
class Cluster:
    master: Master
    nodes: list[NodeAgent]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    ensure_docker()
    with run_etcd() as etcd, run_master(etcd.endpoint, *FAST) as m, \
            run_node(m.address, *AGENT) as n1, run_node(m.address, *AGENT) as n2:
        with Client(server=m.address) as c:
            for n in (n1, n2):
                wait_for(lambda n=n: c.get("nodes", n.name), 30, "node registration")
        yield Cluster(m, [n1, n2])


@pytest.fixture()
def api(cluster: Cluster) -> Iterator[Client]:
    with Client(server=cluster.master.address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "d-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


def daemonset(name: str, ns: str, *, strategy: dict[str, Any] | None = None,
              **pod_spec: Any) -> Any:
    labels = {"app": name}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "terminationGracePeriodSeconds": 0, **pod_spec, "containers": [
                {"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                 "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}}
    if strategy:
        spec["updateStrategy"] = strategy
    return convert.from_dict({"apiVersion": "apps/v1", "kind": "DaemonSet",
                              "metadata": {"name": name, "namespace": ns}, "spec": spec},
                             apps_pb2.DaemonSet)


def pods_of(api: Client, ns: str, name: str) -> list[Any]:
    items, _ = api.list("pods", ns, label_selector=f"app={name}")
    return [p for p in items if not p.metadata.deletionTimestamp]


def status(api: Client, ns: str, name: str) -> Any:
    return api.get("daemonsets", name, ns).status


def settled(api: Client, ns: str, name: str, want: int) -> Any:
    """The DaemonSet's status once `want` nodes run an available, up-to-date pod."""
    def check() -> Any:
        ds = api.get("daemonsets", name, ns)
        s = ds.status
        ok = (s.observedGeneration == ds.metadata.generation and s.desiredNumberScheduled == want
              and s.numberAvailable == want and s.updatedNumberScheduled == want
              and s.currentNumberScheduled == want and len(pods_of(api, ns, name)) == want)
        return ok and s
    return wait_for(check, 60, f"{name}: {want} nodes available and up to date")


def nodes_of(pods: list[Any]) -> list[str]:
    return sorted(p.spec.nodeName for p in pods)


def gone(api: Client, resource: str, name: str, ns: str = "") -> bool:
    try:
        api.get(resource, name, ns)
        return False
    except APIStatusError as e:
        return e.not_found


def test_one_pod_per_node_status_and_get(cluster: Cluster, api: Client, ns: str) -> None:
    api.create(daemonset("agent", ns))
    st = settled(api, ns, "agent", 2)
    assert (st.numberReady, st.numberUnavailable, st.numberMisscheduled) == (2, 0, 0)
    pods = pods_of(api, ns, "agent")
    assert nodes_of(pods) == sorted(n.name for n in cluster.nodes)
    revs, _ = api.list("controllerrevisions", ns)
    assert len(revs) == 1 and revs[0].revision == 1
    h = revs[0].metadata.labels[LABEL_HASH]
    assert revs[0].metadata.name == f"agent-{h}"
    for p in pods:
        md = p.metadata
        assert md.name.startswith("agent-") and md.labels[LABEL_HASH] == h
        assert md.labels["pod-template-generation"] == "1"
        ref = md.ownerReferences[0]
        assert (ref.kind, ref.name, ref.controller) == ("DaemonSet", "agent", True)
        # Pinned by node affinity, bound by the scheduler.
        assert target_node(p) == p.spec.nodeName
        terms = p.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
        assert terms.nodeSelectorTerms[0].matchFields[0].values == [p.spec.nodeName]
        assert set(DEFAULT_TOLERATIONS) <= {(t.key, t.effect) for t in p.spec.tolerations}
    out = Kl(cluster.master, ns).ok("get", "ds")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                              "NODE", "SELECTOR", "AGE"]
    assert row.split()[:7] == ["agent", "2", "2", "2", "2", "2", "<none>"]
    wide = Kl(cluster.master, ns).ok("get", "daemonsets", "-o", "wide").splitlines()
    assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[-3:] == ["c", IMAGE, "app=agent"]
    # A pod deleted by hand comes back on the same node.
    victim = pods[0]
    api.delete("pods", victim.metadata.name, ns)
    wait_for(lambda: victim.metadata.name not in {p.metadata.name for p in pods_of(
        api, ns, "agent")} and len(pods_of(api, ns, "agent")) == 2, 30, "a replacement")
    assert sorted(target_node(p) for p in pods_of(api, ns, "agent")) == nodes_of(pods)
    settled(api, ns, "agent", 2)
    # Deleting the DaemonSet removes its pods (and its history) via the GC.
    api.delete("daemonsets", "agent", ns)
    wait_for(lambda: not api.list("pods", ns, label_selector="app=agent")[0], 30, "pods gone")
    wait_for(lambda: not api.list("controllerrevisions", ns)[0], 30, "revisions gone")


def test_node_joins_and_leaves(cluster: Cluster, api: Client, ns: str) -> None:
    api.create(daemonset("joiner", ns))
    settled(api, ns, "joiner", 2)
    with run_node(cluster.master.address, *AGENT) as n3:
        wait_for(lambda: api.get("nodes", n3.name), 30, "third node registration")
        settled(api, ns, "joiner", 3)
        on3 = [p for p in pods_of(api, ns, "joiner") if p.spec.nodeName == n3.name]
        assert len(on3) == 1
        # The agent stops (its containers stay until the fixture exits); the Node goes.
        _stop(n3.proc)
        api.delete("nodes", n3.name)
        wait_for(lambda: gone(api, "pods", on3[0].metadata.name, ns), 30, "its pod deleted")
        st = settled(api, ns, "joiner", 2)
        assert st.numberMisscheduled == 0
    assert n3.name not in nodes_of(pods_of(api, ns, "joiner"))


def test_taints_tolerations_and_node_selector(cluster: Cluster, api: Client, ns: str) -> None:
    a, b = (n.name for n in cluster.nodes)
    taint = {"key": "ds-e2e", "value": ns, "effect": "NoSchedule"}
    api.patch("nodes", a, {"spec": {"taints": [taint]}})
    try:
        api.create(daemonset("plain", ns))
        api.create(daemonset("tolerant", ns, tolerations=[
            {"key": "ds-e2e", "operator": "Equal", "value": ns, "effect": "NoSchedule"}]))
        settled(api, ns, "plain", 1)
        assert nodes_of(pods_of(api, ns, "plain")) == [b]
        settled(api, ns, "tolerant", 2)
        # nodeSelector: only labelled nodes; labels added and removed move the pods.
        api.create(daemonset("picky", ns, nodeSelector={"ds-e2e": ns},
                             tolerations=[{"key": "ds-e2e", "operator": "Exists"}]))
        wait_for(lambda: api.get("daemonsets", "picky", ns).status.observedGeneration, 30)
        assert not pods_of(api, ns, "picky")
        api.patch("nodes", b, {"metadata": {"labels": {"ds-e2e": ns}}})
        settled(api, ns, "picky", 1)
        api.patch("nodes", a, {"metadata": {"labels": {"ds-e2e": ns}}})
        settled(api, ns, "picky", 2)
        api.patch("nodes", b, {"metadata": {"labels": {"ds-e2e": None}}})
        settled(api, ns, "picky", 1)
        assert nodes_of(pods_of(api, ns, "picky")) == [a]
        # Lifting the taint: the plain DaemonSet gets its second pod.
        api.patch("nodes", a, {"spec": {"taints": None}})
        settled(api, ns, "plain", 2)
    finally:
        for n in (a, b):
            api.patch("nodes", n, {"spec": {"taints": None},
                                   "metadata": {"labels": {"ds-e2e": None}}})


def _ready(p: Any) -> bool:
    return not p.metadata.deletionTimestamp and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions)


def _available_nodes(frame: dict[str, Any]) -> set[str]:
    return {p.spec.nodeName for p in frame.values() if _ready(p)}


def _pods_per_node(frame: dict[str, Any]) -> int:
    per: dict[str, int] = {}
    for p in frame.values():
        if not p.metadata.deletionTimestamp:
            n = target_node(p)
            per[n] = per.get(n, 0) + 1
    return max(per.values(), default=0)


def test_rolling_update_honours_max_unavailable(cluster: Cluster, api: Client, ns: str) -> None:
    api.create(daemonset("roll", ns))  # default: RollingUpdate, maxUnavailable 1
    settled(api, ns, "roll", 2)
    old_hash = pods_of(api, ns, "roll")[0].metadata.labels[LABEL_HASH]
    new_hash, frames = _roll_and_watch(api, ns, "roll")
    assert new_hash != old_hash
    # At every moment at least desired - maxUnavailable = 1 node had a ready pod,
    # never two pods on one node, and the old pods went one at a time.
    assert min(len(_available_nodes(f)) for f in frames) == 1
    assert max(_pods_per_node(f) for f in frames) == 1
    revs, _ = api.list("controllerrevisions", ns)
    assert sorted(r.revision for r in revs) == [1, 2]


def test_surge_update_keeps_every_node_available(cluster: Cluster, api: Client,
                                                 ns: str) -> None:
    api.create(daemonset("surge", ns, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}))
    settled(api, ns, "surge", 2)
    _, frames = _roll_and_watch(api, ns, "surge")
    assert min(len(_available_nodes(f)) for f in frames) == 2
    assert max(_pods_per_node(f) for f in frames) == 2  # new next to old, one node at a time
    assert max(len(f) for f in frames) <= 3


def _roll_and_watch(api: Client, ns: str, name: str) -> tuple[str, list[dict[str, Any]]]:
    """Change the template, wait for the rollout; (new hash, the pods after each change)."""
    items, rv = api.list("pods", ns, label_selector=f"app={name}")
    state = {p.metadata.name: p for p in items}
    ds = api.get("daemonsets", name, ns)
    ds.spec.template.spec.containers[0].env.add(name="VERSION", value="2")
    api.update(ds)
    settled(api, ns, name, 2)
    pods = pods_of(api, ns, name)
    hashes = {p.metadata.labels[LABEL_HASH] for p in pods}
    assert len(hashes) == 1 and not set(state) & {p.metadata.name for p in pods}
    assert all(p.spec.containers[0].env[0].value == "2" for p in pods)
    frames = [dict(state)]
    for typ, obj, _ in api.watch("pods", ns, label_selector=f"app={name}",
                                 resource_version=rv, timeout=2):
        if obj is None:
            continue
        if typ == "DELETED":
            state.pop(obj.metadata.name, None)
        else:
            state[obj.metadata.name] = obj
        frames.append(dict(state))
    assert {p.metadata.name for p in frames[-1].values() if not p.metadata.deletionTimestamp} \
        == {p.metadata.name for p in pods}
    return hashes.pop(), frames


def test_on_delete_replaces_only_deleted_pods(cluster: Cluster, api: Client, ns: str) -> None:
    import time

    api.create(daemonset("lazy", ns, strategy={"type": "OnDelete"}))
    settled(api, ns, "lazy", 2)
    before = {p.spec.nodeName: p for p in pods_of(api, ns, "lazy")}
    api.patch("daemonsets", "lazy", {"spec": {"template": {"metadata": {
        "annotations": {"v": "2"}}}}}, ns)
    ds = api.get("daemonsets", "lazy", ns)
    wait_for(lambda: status(api, ns, "lazy").observedGeneration == ds.metadata.generation, 30)
    time.sleep(2)
    assert {p.metadata.name for p in pods_of(api, ns, "lazy")} == {
        p.metadata.name for p in before.values()}
    st = status(api, ns, "lazy")
    assert (st.updatedNumberScheduled, st.numberAvailable) == (0, 2)
    node, victim = sorted(before.items())[0]
    api.delete("pods", victim.metadata.name, ns)
    fresh = wait_for(lambda: [p for p in pods_of(api, ns, "lazy")
                              if p.spec.nodeName == node
                              and p.metadata.name != victim.metadata.name], 30, "replacement")
    assert fresh[0].metadata.annotations["v"] == "2"
    assert fresh[0].metadata.labels[LABEL_HASH] != victim.metadata.labels[LABEL_HASH]
    wait_for(lambda: (s := status(api, ns, "lazy")).updatedNumberScheduled == 1
             and s.numberAvailable == 2, 30, "one updated, both available")
    others = [p for p in pods_of(api, ns, "lazy") if p.spec.nodeName != node]
    assert [p.metadata.name for p in others] == [
        p.metadata.name for n, p in before.items() if n != node]
