"""The DaemonSet controller's pure parts (eligibility, tolerations, hashing, update
planning) and its reconcile against a fake API (expectations, extras, vanished nodes)."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError
from kubelite.objects import convert, defaults
from master.controllers.daemonset import (
    DEFAULT_TOLERATIONS,
    LABEL_GENERATION,
    LABEL_HASH,
    DaemonSetController,
    add_default_tolerations,
    daemon_pod_spec,
    node_should_run,
    pin_to_node,
    revision_data,
    plan_node,
    plan_rolling_update,
    plan_surge_update,
    scaled,
    target_node,
    template_hash,
    update_budget,
)

NOW = 1_700_000_000.0


def node(name: str, labels: dict[str, str] | None = None,
         taints: list[dict[str, str]] | None = None, unschedulable: bool = False) -> Any:
    return convert.from_dict({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": "2", "memory": "2Gi", "pods": "110"}}},
        core_pb2.Node)


def daemonset(name: str = "agent", *, strategy: dict[str, Any] | None = None,
              **pod_spec: Any) -> Any:
    ds = convert.from_dict({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": "ns", "uid": "ds-uid", "generation": 3},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "updateStrategy": strategy or {},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}],
                                       **pod_spec}}}}, apps_pb2.DaemonSet)
    defaults.apply(ds)
    return ds


def should_run(ds: Any, n: Any) -> tuple[bool, bool]:
    return node_should_run(daemon_pod_spec(ds.spec.template), n)


_seq = iter(range(10_000))


def pod(node_name: str = "", *, hash_: str = "h1", phase: str = "Running", ready: bool = True,
        ready_for: float = 100.0, deleting: bool = False, created: int | None = None) -> Any:
    n = next(_seq)
    created = n if created is None else created
    p = convert.from_dict({
        "metadata": {"name": f"agent-{n:04d}", "namespace": "ns", "uid": f"uid-{n}",
                     "labels": {"app": "agent", LABEL_HASH: hash_},
                     "creationTimestamp": f"2024-01-01T00:{created // 60:02d}:{created % 60:02d}Z",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "agent", "uid": "ds-uid", "controller": True}]},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]},
        "status": {"phase": phase}}, pod_pb2.Pod)
    if node_name:
        pin_to_node(p.spec, node_name)
    if deleting:
        p.metadata.deletionTimestamp = "2024-01-01T01:00:00Z"
    if ready:
        import datetime as dt
        since = dt.datetime.fromtimestamp(NOW - ready_for, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        p.status.conditions.add(type="Ready", status="True", lastTransitionTime=since)
    return p


# ---- tolerations and eligibility ----------------------------------------------

def test_default_tolerations_are_added_once_and_replace_timed_ones() -> None:
    spec = pod_pb2.PodSpec()
    spec.tolerations.add(key="node.kubernetes.io/not-ready", operator="Exists",
                         effect="NoExecute", tolerationSeconds=300)
    spec.tolerations.add(key="dedicated", operator="Equal", value="infra", effect="NoSchedule")
    add_default_tolerations(spec)
    add_default_tolerations(spec)
    got = [(t.key, t.operator, t.effect, t.HasField("tolerationSeconds")) for t in spec.tolerations]
    assert got[0] == ("node.kubernetes.io/not-ready", "Exists", "NoExecute", False)
    assert got[1] == ("dedicated", "Equal", "NoSchedule", False)
    assert {(k, e) for k, _, e, _ in got[2:]} | {(got[0][0], got[0][2])} == set(DEFAULT_TOLERATIONS)
    assert len(got) == len(DEFAULT_TOLERATIONS) + 1
    keys = {(k, e) for k, _, e, _ in got}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    assert ("node.kubernetes.io/unreachable", "NoExecute") in keys
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") not in keys
    host = pod_pb2.PodSpec(hostNetwork=True)
    add_default_tolerations(host)
    assert ("node.kubernetes.io/network-unavailable", "NoSchedule") in {
        (t.key, t.effect) for t in host.tolerations}


def test_eligibility_taints_and_tolerations() -> None:
    ds = daemonset()
    assert should_run(ds, node("a")) == (True, True)
    tainted = node("b", taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    assert should_run(ds, tainted) == (False, True)  # a running pod may stay
    assert should_run(ds, node("c", taints=[{"key": "gpu", "effect": "NoExecute"}])) == (
        False, False)
    assert should_run(ds, node("d", taints=[{"key": "gpu", "effect": "PreferNoSchedule"}])) == (
        True, True)
    tolerant = daemonset(tolerations=[{"key": "gpu", "operator": "Exists"}])
    assert should_run(tolerant, tainted) == (True, True)
    wrong_value = daemonset(tolerations=[{"key": "gpu", "operator": "Equal", "value": "no",
                                          "effect": "NoSchedule"}])
    assert should_run(wrong_value, tainted) == (False, True)
    # The default tolerations: not-ready/unreachable nodes and cordoned ones still run it.
    for key, effect in DEFAULT_TOLERATIONS:
        assert should_run(ds, node("e", taints=[{"key": key, "effect": effect}])) == (True, True)
    assert should_run(ds, node("f", unschedulable=True)) == (True, True)


def test_eligibility_node_selector_affinity_and_node_name() -> None:
    ds = daemonset(nodeSelector={"disk": "ssd"})
    assert should_run(ds, node("a", {"disk": "ssd"})) == (True, True)
    assert should_run(ds, node("b", {"disk": "hdd"})) == (False, False)
    assert should_run(ds, node("c")) == (False, False)
    aff = daemonset(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]}}})
    assert should_run(aff, node("a", {"zone": "z2"}))[0]
    assert not should_run(aff, node("b", {"zone": "z3"}))[0]
    named = daemonset(nodeName="a")
    assert should_run(named, node("a"))[0] and not should_run(named, node("b"))[0]


def test_pin_to_node_replaces_required_terms_and_keeps_preferred() -> None:
    spec = daemonset(affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "x", "operator": "Exists"}]}}]}}).spec.template.spec
    p = pod_pb2.Pod()
    p.spec.CopyFrom(spec)
    assert target_node(p) == ""
    pin_to_node(p.spec, "n1")
    terms = p.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    assert convert.to_dict(terms) == {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert len(p.spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution) == 1
    assert target_node(p) == "n1"
    p.spec.nodeName = "n2"
    assert target_node(p) == "n2"
    # The scheduler's NodeAffinity filter accepts the pin on that node only.
    from master.scheduler.nodeinfo import NodeInfo
    from master.scheduler.plugins.nodeaffinity import required_matches
    p.spec.nodeName = ""
    assert required_matches(p, NodeInfo(node("n1")))
    assert not required_matches(p, NodeInfo(node("n3")))


# ---- hashing --------------------------------------------------------------------

def test_template_hash_is_stable_and_tracks_the_template() -> None:
    a, b = daemonset(), daemonset()
    h = template_hash(a.spec.template)
    assert h == template_hash(b.spec.template)
    assert h == template_hash(convert.from_dict(convert.to_dict(a.spec.template),
                                                type(a.spec.template)))
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    b.spec.template.spec.containers[0].image = "busybox:1.36"
    assert template_hash(b.spec.template) != h
    c = daemonset(strategy={"type": "OnDelete"})  # not part of the template
    assert template_hash(c.spec.template) == h
    assert template_hash(a.spec.template, 1) != h != template_hash(a.spec.template, 0)


def test_template_hash_pinned_value() -> None:
    """Not Python's randomized hash(): the same in every process."""
    t = pod_pb2.PodTemplateSpec()
    t.metadata.labels["app"] = "x"
    t.spec.containers.add(name="c", image="i")
    assert template_hash(t) == "69c76746f8"  # changing it would roll every DaemonSet
    assert template_hash(t) == template_hash(pod_pb2.PodTemplateSpec.FromString(
        t.SerializeToString()))
    import subprocess
    import sys
    code = ("from kubelite.api import pod_pb2; from master.controllers.daemonset import "
            "template_hash as h; t = pod_pb2.PodTemplateSpec(); t.metadata.labels['app'] = 'x';"
            " t.spec.containers.add(name='c', image='i'); print(h(t))")
    out = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "123"},
                         cwd=Path(__file__).resolve().parents[2]).stdout.strip()
    assert out == template_hash(t)


# ---- update budget and planning -----------------------------------------------

def test_scaled_and_update_budget() -> None:
    assert scaled(convert.int_or_string("50%"), 3) == 2
    assert scaled(convert.int_or_string("10%"), 3) == 1
    assert scaled(convert.int_or_string(2), 3) == 2
    ds = daemonset()
    assert update_budget(ds, 5) == (0, 1)  # the default: maxUnavailable 1, maxSurge 0
    pct = daemonset(strategy={"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": "25%"}})
    assert update_budget(pct, 10) == (0, 3)
    assert update_budget(pct, 1) == (0, 1)
    surge = daemonset(strategy={"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "50%"}})
    assert update_budget(surge, 4) == (2, 0)
    zero = daemonset(strategy={"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "1%"}})
    assert update_budget(zero, 0) == (0, 0)


def test_plan_node_create_keep_oldest_and_replace_failed() -> None:
    kw = {"surge": False, "min_ready": 0, "now": NOW}
    assert plan_node([], True, True, "h1", **kw) == (True, [])
    old, young = pod("n", created=1), pod("n", created=5)
    assert plan_node([young, old], True, True, "h1", **kw) == (False, [young])
    failed = pod("n", phase="Failed", ready=False)
    assert plan_node([failed], True, True, "h1", **kw) == (True, [failed])
    done = pod("n", phase="Succeeded", ready=False)
    assert plan_node([done, old], True, True, "h1", **kw) == (False, [done])
    # A terminating pod is not counted: its replacement may start at once.
    going = pod("n", deleting=True)
    assert plan_node([going], True, True, "h1", **kw) == (True, [])
    # Not eligible: delete; NoSchedule only: keep it, drop failures.
    assert plan_node([old, going], False, False, "h1", **kw) == (False, [old])
    assert plan_node([old], False, True, "h1", **kw) == (False, [])
    assert plan_node([old, failed], False, True, "h1", **kw) == (False, [failed])
    assert plan_node([], False, False, "h1", **kw) == (False, [])


def test_plan_node_with_surge_keeps_old_until_new_is_available() -> None:
    kw = {"surge": True, "min_ready": 0, "now": NOW}
    old = pod("n", hash_="h0", created=1)
    new_waiting = pod("n", hash_="h1", ready=False, created=2)
    assert plan_node([old, new_waiting], True, True, "h1", **kw) == (False, [])
    new_ready = pod("n", hash_="h1", created=3)
    assert plan_node([old, new_ready], True, True, "h1", **kw) == (False, [old])
    old_not_ready = pod("n", hash_="h0", ready=False, created=1)
    assert plan_node([old_not_ready, new_waiting], True, True, "h1", **kw) == (
        False, [old_not_ready])
    assert plan_node([old, new_waiting, new_ready], True, True, "h1", **kw) == (
        False, [new_ready])
    # minReadySeconds: ready for 5s of 30 is not available yet.
    fresh = pod("n", hash_="h1", ready_for=5, created=4)
    assert plan_node([old, fresh], True, True, "h1", surge=True, min_ready=30, now=NOW) == (
        False, [])


def test_rolling_update_honours_max_unavailable() -> None:
    nodes = {f"n{i}": [pod(f"n{i}", hash_="h0")] for i in range(4)}
    first = plan_rolling_update(nodes, "h1", 1, 0, NOW)
    assert [target_node(p) for p in first] == ["n0"]
    assert len(plan_rolling_update(nodes, "h1", 2, 0, NOW)) == 2
    assert len(plan_rolling_update(nodes, "h1", 10, 0, NOW)) == 4
    # n0's old pod is gone and nothing replaced it yet: the budget is spent.
    step = {**nodes, "n0": []}
    assert plan_rolling_update(step, "h1", 1, 0, NOW) == []
    step["n0"] = [pod("n0", hash_="h0", deleting=True)]
    assert plan_rolling_update(step, "h1", 1, 0, NOW) == []
    # A new pod that is not ready yet counts as unavailable too.
    step["n0"] = [pod("n0", hash_="h1", ready=False)]
    assert plan_rolling_update(step, "h1", 1, 0, NOW) == []
    assert [target_node(p) for p in plan_rolling_update(step, "h1", 2, 0, NOW)] == ["n1"]
    step["n0"] = [pod("n0", hash_="h1", ready_for=3)]
    assert plan_rolling_update(step, "h1", 1, 10, NOW) == []  # minReadySeconds 10
    step["n0"] = [pod("n0", hash_="h1")]
    assert [target_node(p) for p in plan_rolling_update(step, "h1", 1, 0, NOW)] == ["n1"]
    # An old pod that is unavailable anyway is replaced even with no budget left.
    broken = pod("n3", hash_="h0", ready=False)
    step = {**nodes, "n0": [], "n3": [broken]}
    assert plan_rolling_update(step, "h1", 1, 0, NOW) == [broken]
    # Two pods on a node: manage cleans up first, the node counts unavailable.
    step = {**nodes, "n0": [pod("n0", hash_="h0"), pod("n0", hash_="h1")]}
    assert plan_rolling_update(step, "h1", 1, 0, NOW) == []
    done = {f"n{i}": [pod(f"n{i}", hash_="h1")] for i in range(3)}
    assert plan_rolling_update(done, "h1", 1, 0, NOW) == []


def test_surge_update_starts_new_pods_within_max_surge() -> None:
    nodes = {f"n{i}": [pod(f"n{i}", hash_="h0")] for i in range(3)}
    assert plan_surge_update(nodes, "h1", 1, 0, NOW) == ([], ["n0"])
    assert plan_surge_update(nodes, "h1", 2, 0, NOW) == ([], ["n0", "n1"])
    waiting = {**nodes, "n0": [nodes["n0"][0], pod("n0", hash_="h1", ready=False)]}
    assert plan_surge_update(waiting, "h1", 1, 0, NOW) == ([], [])
    old0 = nodes["n0"][0]
    up = {**nodes, "n0": [old0, pod("n0", hash_="h1")]}
    assert plan_surge_update(up, "h1", 1, 0, NOW) == ([old0], ["n1"])
    broken = {**nodes, "n2": [pod("n2", hash_="h0", ready=False)]}
    assert plan_surge_update(broken, "h1", 1, 0, NOW) == ([], ["n2", "n0"])


# ---- reconcile against a fake API -----------------------------------------------

class FakeAPI:
    def __init__(self) -> None:
        self.created: list[Any] = []
        self.deleted: list[tuple[str, str, int | None]] = []
        self.statuses: list[Any] = []
        self.nodes: set[str] = set()
        self.patched: list[tuple[str, str, Any]] = []

    async def create(self, obj: Any, **kw: Any) -> Any:
        if obj.DESCRIPTOR.name == "Event":
            return obj
        out = type(obj)()
        out.CopyFrom(obj)
        md = out.metadata
        md.name = md.name or md.generateName + uuid.uuid4().hex[:5]
        md.uid = md.uid or uuid.uuid4().hex
        md.creationTimestamp = "2024-01-01T00:00:00Z"
        self.created.append(out)
        return out

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        if resource == "nodes" and name in self.nodes:
            return node(name)
        raise APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound", f"{name} not found")

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, **kw: Any) -> Any:
        self.deleted.append((resource, name, grace_period_seconds))

    async def patch(self, resource: str, name: str, patch: Any, namespace: str = "",
                    **kw: Any) -> Any:
        self.patched.append((resource, name, patch))

    async def update_status(self, obj: Any, **kw: Any) -> Any:
        self.statuses.append(obj.status)
        return obj


def put(inf: Any, obj: Any) -> None:
    md = obj.metadata
    inf._cache[f"{md.namespace}/{md.name}" if md.namespace else md.name] = obj


def created_pods(api: FakeAPI) -> list[Any]:
    return [o for o in api.created if o.DESCRIPTOR.name == "Pod"]


def test_reconcile_one_pinned_pod_per_node_and_expectations() -> None:
    async def go() -> None:
        api = FakeAPI()
        c = DaemonSetController(api)  # type: ignore[arg-type]
        ds = daemonset(nodeSelector={"role": "worker"})
        put(c.sets, ds)
        for n in (node("a", {"role": "worker"}), node("b", {"role": "worker"}), node("c"),
                  node("d", {"role": "worker"},
                       taints=[{"key": "k", "effect": "NoSchedule"}])):
            put(c.nodes, n)
        await c.reconcile("ns/agent")
        pods = created_pods(api)
        assert sorted(target_node(p) for p in pods) == ["a", "b"]
        h = template_hash(ds.spec.template)
        for p in pods:
            assert p.metadata.generateName == "agent-" and not p.spec.nodeName
            assert p.metadata.labels[LABEL_HASH] == h
            assert p.metadata.labels[LABEL_GENERATION] == "3"
            assert p.metadata.ownerReferences[0].kind == "DaemonSet"
            assert p.metadata.ownerReferences[0].controller
            assert {(t.key, t.effect) for t in p.spec.tolerations} == set(DEFAULT_TOLERATIONS)
        revs = [o for o in api.created if o.DESCRIPTOR.name == "ControllerRevision"]
        assert [r.metadata.name for r in revs] == [f"agent-{h}"] and revs[0].revision == 1
        st = api.statuses[-1]
        assert (st.desiredNumberScheduled, st.currentNumberScheduled,
                st.numberUnavailable, st.observedGeneration) == (2, 0, 2, 3)
        # The watch has not shown the pods yet: nothing more is created.
        put(c.revisions, revs[0])
        await c.reconcile("ns/agent")
        assert len(created_pods(api)) == 2
        # The informer delivers them: expectations are met, and still nothing to do.
        for p in pods:
            put(c.pods, p)
            c._pod_changed(p)
        await c.reconcile("ns/agent")
        assert len(created_pods(api)) == 2 and not api.deleted
        await c.recorder.flush()

    asyncio.run(go())


def test_reconcile_deletes_extras_and_pods_of_vanished_nodes() -> None:
    async def go() -> None:
        api = FakeAPI()
        c = DaemonSetController(api)  # type: ignore[arg-type]
        ds = daemonset()
        put(c.sets, ds)
        put(c.nodes, node("a"))
        h = template_hash(ds.spec.template)
        keep, extra = pod("a", hash_=h, created=1), pod("a", hash_=h, created=2)
        gone = pod("zz", hash_=h)
        gone.spec.nodeName = "zz"
        cached_only = pod("late", hash_=h)  # its Node exists; our cache is behind
        api.nodes.add("late")
        for p in (keep, extra, gone, cached_only):
            put(c.pods, p)
        await c.reconcile("ns/agent")
        assert ("pods", extra.metadata.name, None) in api.deleted
        assert ("pods", gone.metadata.name, 0) in api.deleted  # forced: nobody will confirm
        assert all(name != cached_only.metadata.name for _, name, _ in api.deleted)
        assert all(name != keep.metadata.name for _, name, _ in api.deleted)
        assert not created_pods(api)
        await c.recorder.flush()

    asyncio.run(go())


@pytest.mark.parametrize("strategy", ["RollingUpdate", "OnDelete"])
def test_reconcile_update_strategies(strategy: str) -> None:
    async def go() -> None:
        api = FakeAPI()
        c = DaemonSetController(api)  # type: ignore[arg-type]
        ds = daemonset(strategy={"type": strategy})
        put(c.sets, ds)
        olds = []
        for name in ("a", "b", "c"):
            put(c.nodes, node(name))
            olds.append(pod(name, hash_="old"))
            put(c.pods, olds[-1])
        await c.reconcile("ns/agent")
        deleted = [name for res, name, _ in api.deleted if res == "pods"]
        if strategy == "OnDelete":
            assert deleted == []
        else:
            assert deleted == [olds[0].metadata.name]  # maxUnavailable 1, node order
        assert not created_pods(api)
        st = api.statuses[-1]
        assert (st.desiredNumberScheduled, st.updatedNumberScheduled, st.numberReady) == (3, 0, 3)
        await c.recorder.flush()

    asyncio.run(go())


def revision(ds: Any, template: Any, number: int) -> Any:
    h = template_hash(template)
    cr = convert.from_dict({
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"agent-{h}", "namespace": "ns", "uid": f"cr-{number}",
                     "labels": {LABEL_HASH: h},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet",
                                          "name": "agent", "uid": "ds-uid", "controller": True}]},
        "revision": number}, apps_pb2.ControllerRevision)
    cr.data = revision_data(template)
    return cr


def test_history_rollback_renumbers_and_old_revisions_are_pruned() -> None:
    async def go() -> None:
        api = FakeAPI()
        c = DaemonSetController(api)  # type: ignore[arg-type]
        ds = daemonset(strategy={"type": "OnDelete"})
        ds.spec.revisionHistoryLimit = 1
        put(c.sets, ds)
        templates = []
        for i in range(4):
            t = type(ds.spec.template)()
            t.CopyFrom(ds.spec.template)
            t.spec.containers[0].image = f"busybox:1.{i}"
            templates.append(t)
        # Revisions 1..4; the DaemonSet is back at revision 2's template.
        for i, t in enumerate(templates):
            put(c.revisions, revision(ds, t, i + 1))
        ds.spec.template.CopyFrom(templates[1])
        in_use = pod("a", hash_=template_hash(templates[0]))  # revision 1 still runs
        put(c.pods, in_use)
        put(c.nodes, node("a"))
        await c.reconcile("ns/agent")
        h = template_hash(templates[1])
        assert ("controllerrevisions", f"agent-{h}", {"revision": 5}) in api.patched
        assert not [o for o in api.created if o.DESCRIPTOR.name == "ControllerRevision"]
        # Revisions 3 and 4 are unused; the limit keeps the newest of them.
        pruned = [name for res, name, _ in api.deleted if res == "controllerrevisions"]
        assert pruned == [f"agent-{template_hash(templates[2])}"]
        await c.recorder.flush()

    asyncio.run(go())


def test_failed_pods_are_replaced_with_a_back_off() -> None:
    async def go() -> None:
        api = FakeAPI()
        c = DaemonSetController(api)  # type: ignore[arg-type]
        ds = daemonset()
        put(c.sets, ds)
        put(c.nodes, node("a"))
        h = template_hash(ds.spec.template)
        first = pod("a", hash_=h, phase="Failed", ready=False)
        put(c.pods, first)
        await c.reconcile("ns/agent")
        assert [name for _, name, _ in api.deleted] == [first.metadata.name]
        assert [target_node(p) for p in created_pods(api)] == ["a"]
        # The replacement fails at once too: it stays until the back-off is over.
        del c.pods._cache[f"ns/{first.metadata.name}"]
        second = pod("a", hash_=h, phase="Failed", ready=False)
        put(c.pods, second)
        c._expect.clear()  # as if the informer had shown the create and the delete
        await c.reconcile("ns/agent")
        assert len(api.deleted) == 1 and len(created_pods(api)) == 1
        delay, since = c._failed[("ns/agent", "a")]
        c._failed[("ns/agent", "a")] = (delay, since - delay)  # the back-off has passed
        await c.reconcile("ns/agent")
        assert api.deleted[-1][1] == second.metadata.name and len(created_pods(api)) == 2
        assert c._failed[("ns/agent", "a")][0] == 2 * delay
        await c.recorder.flush()

    asyncio.run(go())
