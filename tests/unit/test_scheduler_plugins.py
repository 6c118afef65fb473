"""The scheduler's plugins and framework as pure functions over fake snapshots."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.objects import convert
from master.scheduler.framework import (
    Code,
    Profile,
    Snapshot,
    num_feasible_nodes_to_find,
    schedule,
)
from master.scheduler.nodeinfo import NodeInfo, normalize_image, pod_requests
from master.scheduler.plugins import default_profile
from master.scheduler.plugins.basic import ImageLocality, NodePorts, NodeUnschedulable
from master.scheduler.plugins.interpod import InterPodAffinity
from master.scheduler.plugins.nodeaffinity import NodeAffinity
from master.scheduler.plugins.resources import (
    BalancedAllocation,
    LeastAllocated,
    NodeResourcesFit,
)
from master.scheduler.plugins.spread import SelectorSpread
from master.scheduler.plugins.taints import TaintToleration


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         unschedulable: bool = False, images: list[dict[str, Any]] | None = None) -> Any:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    return convert.from_dict({
        "metadata": {"name": name,
                     "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {"capacity": alloc, "allocatable": alloc, "images": images or []},
    }, core_pb2.Node)


def pod(name: str, *, cpu: str = "", memory: str = "", node_name: str = "",
        labels: dict[str, str] | None = None, host_port: int = 0, ns: str = "default",
        owner: str = "", image: str = "nginx:1.25", **spec: Any) -> Any:
    req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "c", "image": image,
                                 "resources": {"requests": req} if req else {}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    md: dict[str, Any] = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                  "uid": owner, "controller": True}]
    return convert.from_dict({"metadata": md,
                              "spec": {"nodeName": node_name, "containers": [container],
                                       **spec}}, pod_pb2.Pod)


def run(p: Any, nodes: list[Any], pods: list[Any] = (), profile: Profile | None = None,  # type: ignore[assignment]
        seed: int = 1) -> Any:
    return schedule(p, Snapshot.build(nodes, pods), profile or default_profile(),
                    rng=random.Random(seed))


def filter_status(plugin: Any, p: Any, n: Any, pods: list[Any] = ()) -> Any:  # type: ignore[assignment]
    snap = Snapshot.build([n], pods)
    state: dict[str, Any] = {}
    assert plugin.pre_filter(state, p, snap).ok
    return plugin.filter(state, p, snap.nodes[0])


def scores(plugin: Any, p: Any, nodes: list[Any], pods: list[Any] = ()) -> dict[str, int]:  # type: ignore[assignment]
    snap = Snapshot.build(nodes, pods)
    state: dict[str, Any] = {}
    plugin.pre_filter(state, p, snap)
    out = {n.name: plugin.score(state, p, n) for n in snap.nodes}
    plugin.normalize(state, p, out)
    return out


# ---- resources ---------------------------------------------------------------

def test_pod_requests_sum_containers_max_init_and_overhead() -> None:
    p = convert.from_dict({"metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "200m"}}},
                       {"name": "b", "image": "i", "resources": {"requests": {"cpu": "300m",
                                                                             "memory": "1Gi"}}}],
        "initContainers": [{"name": "i", "image": "i",
                            "resources": {"requests": {"cpu": "1", "memory": "10Mi"}}}],
        "overhead": {"cpu": "50m"}}}, pod_pb2.Pod)
    assert pod_requests(p) == {"cpu": 1050, "memory": 1 << 30}
    assert pod_requests(pod("be"), non_zero=True) == {"cpu": 100, "memory": 200 << 20}


def test_resources_fit() -> None:
    fit = NodeResourcesFit()
    n = node("n1", cpu="2", memory="1Gi", pods=2)
    assert filter_status(fit, pod("p", cpu="1500m"), n, [pod("a", cpu="500m", node_name="n1")]).ok
    s = filter_status(fit, pod("p", cpu="1600m", memory="2Gi"), n,
                      [pod("a", cpu="500m", node_name="n1")])
    assert s.code == Code.UNSCHEDULABLE
    assert s.reasons == ("Insufficient cpu", "Insufficient memory")
    full = [pod("a", node_name="n1"), pod("b", node_name="n1")]
    assert filter_status(fit, pod("p"), n, full).reasons == ("Too many pods",)


def test_least_allocated_and_balanced() -> None:
    busy = [pod("a", cpu="3", memory="1Gi", node_name="n1")]
    nodes = [node("n1"), node("n2")]
    least = scores(LeastAllocated(), pod("p", cpu="1", memory="1Gi"), nodes, busy)
    assert least["n2"] > least["n1"]
    balanced = scores(BalancedAllocation(), pod("p", cpu="1", memory="1Gi"), nodes, busy)
    assert balanced["n2"] > balanced["n1"]  # n1 would be 100% cpu, 25% memory


# ---- ports, cordon, name -----------------------------------------------------

def test_host_port_conflict() -> None:
    n = node("n1")
    taken = [pod("a", host_port=8080, node_name="n1")]
    s = filter_status(NodePorts(), pod("p", host_port=8080), n, taken)
    assert s.reasons == ("node(s) didn't have free ports for the requested pod ports",)
    assert filter_status(NodePorts(), pod("p", host_port=8081), n, taken).ok
    udp = pod("u", host_port=8080)
    udp.spec.containers[0].ports[0].protocol = "UDP"
    assert filter_status(NodePorts(), udp, n, taken).ok  # other protocol: no conflict


def test_host_ip_overlap() -> None:
    info = NodeInfo(node("n1"))
    p = pod("a", host_port=53, node_name="n1")
    p.spec.containers[0].ports[0].hostIP = "10.0.0.1"
    info.add_pod(p)
    assert info.port_in_use("10.0.0.1", "TCP", 53)
    assert not info.port_in_use("10.0.0.2", "TCP", 53)
    assert info.port_in_use("0.0.0.0", "TCP", 53)  # a wildcard overlaps every address
    info.remove_pod(p)
    assert not info.port_in_use("0.0.0.0", "TCP", 53)


def test_cordoned_node() -> None:
    s = filter_status(NodeUnschedulable(), pod("p"), node("n1", unschedulable=True))
    assert s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert s.reasons == ("node(s) were unschedulable",)
    tolerant = pod("p", tolerations=[{"key": "node.kubernetes.io/unschedulable",
                                      "operator": "Exists", "effect": "NoSchedule"}])
    assert filter_status(NodeUnschedulable(), tolerant, node("n1", unschedulable=True)).ok


# ---- taints ------------------------------------------------------------------

MASTER_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@pytest.mark.parametrize("tolerations, ok", [
    ([], False),
    ([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}], True),
    ([{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists",
       "effect": "NoExecute"}], False),
    ([{"operator": "Exists"}], True),  # tolerates everything
    ([{"key": "node-role.kubernetes.io/control-plane", "value": "x"}], False),
])
def test_taint_toleration_filter(tolerations: list[dict[str, str]], ok: bool) -> None:
    s = filter_status(TaintToleration(), pod("p", tolerations=tolerations),
                      node("m", taints=[MASTER_TAINT]))
    assert s.ok == ok
    if not ok:
        assert s.reasons == ("node(s) had untolerated taint "
                             "{node-role.kubernetes.io/control-plane: }",)


def test_taint_equal_value_and_prefer_no_schedule() -> None:
    t = {"key": "dedicated", "value": "gpu", "effect": "NoExecute"}
    tol = [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"}]
    assert filter_status(TaintToleration(), pod("p", tolerations=tol), node("n", taints=[t])).ok
    soft = [node("a", taints=[{"key": "x", "value": "1", "effect": "PreferNoSchedule"}]),
            node("b")]
    sc = scores(TaintToleration(), pod("p"), soft)
    assert sc == {"a": 0, "b": 100}


# ---- node affinity -----------------------------------------------------------

def test_node_selector_and_required_affinity() -> None:
    ssd = node("n1", labels={"disk": "ssd", "gen": "5"})
    hdd = node("n2", labels={"disk": "hdd"})
    p = pod("p", nodeSelector={"disk": "ssd"})
    assert filter_status(NodeAffinity(), p, ssd).ok
    s = filter_status(NodeAffinity(), p, hdd)
    assert s.reasons == ("node(s) didn't match Pod's node affinity/selector",)
    req = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [
            {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n3"]}]}]}}}
    p = pod("p", affinity=req)
    assert filter_status(NodeAffinity(), p, ssd).ok
    assert not filter_status(NodeAffinity(), p, hdd).ok
    assert filter_status(NodeAffinity(), p, node("n3")).ok  # second term, by field


def test_preferred_node_affinity_scores() -> None:
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 80, "preference": {"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]}]}},
        {"weight": 20, "preference": {"matchExpressions": [
            {"key": "disk", "operator": "Exists"}]}}]}}
    nodes = [node("n1", labels={"zone": "a"}), node("n2", labels={"disk": "ssd"}), node("n3")]
    assert scores(NodeAffinity(), pod("p", affinity=pref), nodes) == {"n1": 100, "n2": 25,
                                                                      "n3": 0}


# ---- inter-pod affinity ------------------------------------------------------

def _term(labels: dict[str, str], key: str = "kubernetes.io/hostname") -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key}


def test_pod_anti_affinity_keeps_replicas_apart() -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term({"app": "db"})]}}
    placed = [pod("db-0", labels={"app": "db"}, node_name="n1", affinity=anti)]
    nodes = [node("n1"), node("n2")]
    r = run(pod("db-1", labels={"app": "db"}, affinity=anti), nodes, placed)
    assert r.node == "n2"
    # A pod without terms of its own is still kept off by the existing pod's anti-affinity.
    r = run(pod("x", labels={"app": "db"}), [node("n1")], placed)
    assert r.node == "" and r.message() == (
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.")


def test_pod_affinity_by_zone_and_first_of_its_kind() -> None:
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term({"app": "cache"}, "topology.kubernetes.io/zone")]}}
    nodes = [node("n1", labels={"topology.kubernetes.io/zone": "a"}),
             node("n2", labels={"topology.kubernetes.io/zone": "b"}),
             node("n3", labels={"topology.kubernetes.io/zone": "b"})]
    placed = [pod("cache-0", labels={"app": "cache"}, node_name="n2")]
    for seed in range(5):
        assert run(pod("web", affinity=aff), nodes, placed, seed=seed).node in ("n2", "n3")
    r = run(pod("web", affinity=aff), nodes[:1], placed)
    assert r.message() == "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
    # No pod matches anywhere, but the pod matches its own term: it may start the group.
    assert run(pod("cache-1", labels={"app": "cache"}, affinity=aff), nodes).node
    assert not run(pod("web", affinity=aff), nodes).node


def test_affinity_terms_respect_namespaces() -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        _term({"app": "db"})]}}
    placed = [pod("db-0", labels={"app": "db"}, node_name="n1", ns="other")]
    assert run(pod("db-1", labels={"app": "db"}, affinity=anti), [node("n1")], placed).node


def test_preferred_pod_affinity_scores() -> None:
    pref = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": _term({"app": "db"})}]}}
    placed = [pod("db-0", labels={"app": "db"}, node_name="n2")]
    sc = scores(InterPodAffinity(), pod("web", affinity=pref), [node("n1"), node("n2")], placed)
    assert sc == {"n1": 0, "n2": 100}


# ---- spread and images -------------------------------------------------------

def test_selector_spread_prefers_nodes_without_replicas() -> None:
    placed = [pod("rs-a", owner="rs1", node_name="n1"), pod("rs-b", owner="rs1", node_name="n1"),
              pod("rs-c", owner="rs1", node_name="n2"), pod("other", owner="rs2", node_name="n3")]
    sc = scores(SelectorSpread(), pod("rs-d", owner="rs1"),
                [node("n1"), node("n2"), node("n3")], placed)
    assert sc == {"n1": 0, "n2": 50, "n3": 100}
    # A pod without a controller has nothing to spread from: all nodes score alike.
    assert len(set(scores(SelectorSpread(), pod("lone"), [node("n1"), node("n2")]).values())) == 1


def test_replicas_spread_over_nodes_end_to_end() -> None:
    nodes = [node(f"n{i}") for i in range(3)]
    placed: list[Any] = []
    for i in range(6):
        p = pod(f"r{i}", owner="rs1", cpu="100m")
        r = run(p, nodes, placed, seed=i)
        p.spec.nodeName = r.node
        placed.append(p)
    per_node = {n.metadata.name: sum(p.spec.nodeName == n.metadata.name for p in placed)
                for n in nodes}
    assert per_node == {"n0": 2, "n1": 2, "n2": 2}


def test_image_locality() -> None:
    assert normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert normalize_image("gcr.io/x/y:1") == "gcr.io/x/y:1"
    assert normalize_image("me/app:2") == "docker.io/me/app:2"
    big = [{"names": ["nginx:1.25"], "sizeBytes": 500 << 20}]
    sc = scores(ImageLocality(), pod("p", image="nginx:1.25"),
                [node("n1", images=big), node("n2")])
    assert sc["n1"] > sc["n2"] == 0


# ---- the framework -----------------------------------------------------------

def test_failure_message_counts_reasons_per_node() -> None:
    nodes = [node("m", taints=[MASTER_TAINT]), node("n1", cpu="1"), node("n2", cpu="1")]
    r = run(pod("p", cpu="2"), nodes)
    assert r.node == ""
    assert r.message() == ("0/3 nodes are available: 1 node(s) had untolerated taint "
                           "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu.")
    assert not r.unresolvable_everywhere
    assert run(pod("p"), []).message() == "no nodes available to schedule pods"


def test_master_taint_keeps_ordinary_pods_off() -> None:
    nodes = [node("m", taints=[MASTER_TAINT], cpu="64"), node("n1", cpu="1")]
    for seed in range(5):
        assert run(pod("p"), nodes, seed=seed).node == "n1"


def test_large_cluster_stops_after_enough_feasible_nodes_and_rotates() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(1000) == 420  # 50% - 1000/125 = 42%
    assert num_feasible_nodes_to_find(5000) == 500  # 10%
    assert num_feasible_nodes_to_find(100_000) == 5000  # floor of 5%
    nodes = [node(f"n{i:04d}") for i in range(1000)]
    snap = Snapshot.build(nodes, [])
    r1 = schedule(pod("a"), snap, default_profile(), start=0)
    assert r1.evaluated == 420 and r1.next_start == 420
    r2 = schedule(pod("b"), snap, default_profile(), start=r1.next_start)
    assert r2.next_start == 840


def test_schedule_does_not_mutate_inputs() -> None:
    nodes = [node("n1"), node("n2")]
    p = pod("p", cpu="1")
    before = p.SerializeToString()
    snap = Snapshot.build(nodes, [pod("x", cpu="1", node_name="n1")])
    schedule(p, snap, default_profile())
    assert p.SerializeToString() == before
    assert snap.by_name["n1"].requested["cpu"] == 1000 and not snap.by_name["n2"].pods
