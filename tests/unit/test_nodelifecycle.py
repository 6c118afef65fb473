"""Node lifecycle decisions with a fake clock: staleness, Unknown, taints,
the eviction rate limit, disruption mode, NoExecute deadlines, and the
DefaultTolerationSeconds admission."""

from __future__ import annotations

import math
from typing import Any

from kubelite.api import coordination_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError
from master.apiserver.admission import TolerationDefaults, default_toleration_seconds
from master.controllers import nodehealth as nh
from master.controllers.nodelifecycle import NodeLifecycleController, Options
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.plugins.taints import TaintToleration

T0 = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class FakeClient:
    """Records writes; update/update_status return what they were given."""

    def __init__(self) -> None:
        self.status_writes: list[Any] = []
        self.updates: list[Any] = []
        self.deleted: list[tuple[str, str]] = []

    async def update_status(self, obj: Any) -> Any:
        self.status_writes.append(obj)
        return obj

    async def update(self, obj: Any) -> Any:
        self.updates.append(obj)
        return obj

    async def delete(self, resource: str, name: str, namespace: str = "", **kw: Any) -> Any:
        self.deleted.append((namespace, name))
        return None

    async def create(self, obj: Any) -> Any:  # events
        return obj


def node(name: str, ready: str = "True") -> Any:
    n = core_pb2.Node()
    n.metadata.name = name
    n.status.conditions.add(type="Ready", status=ready, lastHeartbeatTime="2027-01-15T08:00:00Z")
    n.status.conditions.add(type="MemoryPressure", status="False")
    return n


def lease(name: str, renew: str) -> Any:
    ls = coordination_pb2.Lease()
    ls.metadata.name, ls.metadata.namespace = name, "kube-node-lease"
    ls.spec.renewTime = renew
    return ls


def pod(name: str, node_name: str, tolerations: list[dict[str, Any]] | None = None) -> Any:
    p = pod_pb2.Pod()
    p.metadata.name, p.metadata.namespace, p.metadata.uid = name, "default", f"uid-{name}"
    p.spec.nodeName = node_name
    for t in tolerations or []:
        p.spec.tolerations.add(**t)
    return p


def controller(clock: FakeClock, **opts: Any) -> tuple[NodeLifecycleController, FakeClient]:
    client = FakeClient()
    c = NodeLifecycleController(client, Options(grace_period=40, **opts),  # type: ignore[arg-type]
                                clock=clock)
    return c, client


def put(c: NodeLifecycleController, *objs: Any) -> None:
    for o in objs:
        inf = {"Node": c.nodes, "Lease": c.leases, "Pod": c.pods}[type(o).__name__]
        key = f"{o.metadata.namespace}/{o.metadata.name}" if o.metadata.namespace \
            else o.metadata.name
        inf._cache[key] = o


# ---- pure decisions -------------------------------------------------------------

def test_mark_unknown_sets_every_kubelet_condition_once() -> None:
    n = node("a")
    assert nh.mark_unknown(n, T0)
    by = {c.type: c for c in n.status.conditions}
    assert set(by) == set(nh.KUBELET_CONDITIONS)
    assert all(c.status == "Unknown" and c.reason == "NodeStatusUnknown"
               and c.message == "Kubelet stopped posting node status." for c in by.values())
    assert not nh.mark_unknown(n, T0 + 5)


async def test_node_without_conditions_is_untainted_until_its_grace_runs_out() -> None:
    clock = FakeClock()
    c, client = controller(clock)
    bare = core_pb2.Node()
    bare.metadata.name = "bare"
    put(c, bare, node("b"))
    await c.sync_node("bare")
    assert not client.updates and not client.status_writes
    clock.now += 41
    await c.sync_node("bare")
    assert nh.ready_status(client.status_writes[-1]) == "Unknown"
    assert (nh.UNREACHABLE, "NoSchedule") in nh.our_taints(client.updates[-1])


def test_taints_follow_ready() -> None:
    assert nh.wanted_taints("True", evict=True) == set()
    assert nh.wanted_taints("", evict=True) == set()
    assert nh.wanted_taints("Unknown", evict=True) == {
        (nh.UNREACHABLE, "NoSchedule"), (nh.UNREACHABLE, "NoExecute")}
    assert nh.wanted_taints("False", evict=False) == {(nh.NOT_READY, "NoSchedule")}
    n = node("a")
    n.spec.taints.add(key="dedicated", value="x", effect="NoSchedule")
    assert nh.apply_taints(n, nh.wanted_taints("Unknown", evict=True), T0)
    added = [t for t in n.spec.taints if t.effect == "NoExecute"]
    assert added[0].timeAdded == nh.rfc3339(T0)
    assert nh.apply_taints(n, set(), T0)
    assert [(t.key, t.effect) for t in n.spec.taints] == [("dedicated", "NoSchedule")]


def test_disruption() -> None:
    assert not nh.disrupted(["True", "Unknown"], 0.55)          # 1 of 2: evict
    assert nh.disrupted(["Unknown", "Unknown"], 0.55)           # everything: never
    assert nh.disrupted(["Unknown"], 0.55)
    assert not nh.disrupted(["True", "True", "Unknown"], 0.55)  # 33 %
    assert nh.disrupted(["True", "False", "Unknown"], 0.55)     # 67 % of 3
    assert not nh.disrupted([], 0.55)


def test_token_bucket() -> None:
    b = nh.TokenBucket(0.1)
    assert b.take(T0)
    assert not b.take(T0 + 1)
    assert math.isclose(b.wait(T0 + 1), 9.0)
    assert b.take(T0 + 10)
    never = nh.TokenBucket(0)
    assert not never.take(T0) and never.wait(T0) == math.inf


def test_eviction_time() -> None:
    n = node("a", "Unknown")
    nh.apply_taints(n, nh.wanted_taints("Unknown", evict=True), T0)
    taints = list(n.spec.taints)
    assert nh.eviction_time(pod("p", "a"), taints, T0 + 1) == T0 + 1  # untolerated: now
    default = {"key": nh.UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 300}
    assert nh.eviction_time(pod("p", "a", [default]), taints, T0 + 1) == T0 + 300
    zero = dict(default, tolerationSeconds=0)
    assert nh.eviction_time(pod("p", "a", [default, zero]), taints, T0 + 1) == T0
    forever = {"key": nh.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}
    assert nh.eviction_time(pod("p", "a", [forever]), taints, T0) is None
    assert nh.eviction_time(pod("p", "a"), [], T0) is None


def test_scheduler_keeps_pods_off_unreachable_nodes() -> None:
    n = node("a", "Unknown")
    nh.apply_taints(n, nh.wanted_taints("Unknown", evict=True), T0)
    p = pod("p", "")
    default_toleration_seconds(p.spec, TolerationDefaults())
    status = TaintToleration().filter({}, p, NodeInfo(n))
    assert not status.ok and nh.UNREACHABLE in status.reasons[0]


# ---- admission ------------------------------------------------------------------

def test_default_toleration_seconds() -> None:
    p = pod("p", "")
    default_toleration_seconds(p.spec, TolerationDefaults(200, 100))
    got = {(t.key, t.operator, t.effect, t.tolerationSeconds) for t in p.spec.tolerations}
    assert got == {(nh.NOT_READY, "Exists", "NoExecute", 200),
                   (nh.UNREACHABLE, "Exists", "NoExecute", 100)}
    # Already tolerated (a DaemonSet pod's, or a tolerate-everything one): left alone.
    d = pod("d", "", [{"key": nh.UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}])
    default_toleration_seconds(d.spec, TolerationDefaults())
    assert [t.key for t in d.spec.tolerations] == [nh.UNREACHABLE, nh.NOT_READY]
    assert not d.spec.tolerations[0].HasField("tolerationSeconds")
    e = pod("e", "", [{"operator": "Exists"}])
    default_toleration_seconds(e.spec, TolerationDefaults())
    assert len(e.spec.tolerations) == 1


# ---- the controller with a fake clock ---------------------------------------------

async def test_stale_lease_unknown_then_taint_then_eviction_then_heal() -> None:
    clock = FakeClock()
    c, client = controller(clock)
    a, b = node("a"), node("b")
    put(c, a, b, lease("a", "t0"), lease("b", "t0"), pod("web", "a"),
        pod("tolerant", "a", [{"key": nh.UNREACHABLE, "operator": "Exists",
                               "effect": "NoExecute", "tolerationSeconds": 60}]))
    await c.sync_node("a")
    await c.sync_node("b")
    assert not client.status_writes and not client.updates
    clock.now += 39
    put(c, lease("b", "t39"))
    await c.sync_node("a")
    assert not client.status_writes  # within the grace period
    clock.now += 2
    await c.sync_node("a")
    assert nh.ready_status(client.status_writes[-1]) == "Unknown"
    tainted = client.updates[-1]
    assert nh.our_taints(tainted) == {(nh.UNREACHABLE, "NoSchedule"),
                                      (nh.UNREACHABLE, "NoExecute")}
    put(c, tainted)
    c.pods.get("default/web").status.conditions.add(type="Ready", status="True")
    await c.sync_pod("default/web")
    assert [(p.metadata.name, p.status.conditions[0].status, p.status.conditions[0].reason)
            for p in client.status_writes[1:]] == [("web", "False", "NodeNotReady")]
    await c.sync_pod("default/tolerant")
    assert client.deleted == [("default", "web")]  # the other has 60 s
    clock.now += 61
    await c.sync_pod("default/tolerant")
    assert client.deleted[-1] == ("default", "tolerant")
    # The agent is back and reports Ready: taints go.
    healed = node("a")
    healed.spec.CopyFrom(tainted.spec)
    healed.status.conditions[0].lastHeartbeatTime = "2027-01-15T09:00:00Z"
    put(c, healed, lease("a", "t102"))
    await c.sync_node("a")
    assert nh.our_taints(client.updates[-1]) == set()


async def test_not_ready_node_gets_not_ready_taint() -> None:
    clock = FakeClock()
    c, client = controller(clock)
    put(c, node("a", "False"), node("b"), lease("a", "t0"))
    await c.sync_node("a")
    assert not client.status_writes
    assert nh.our_taints(client.updates[-1]) == {(nh.NOT_READY, "NoSchedule"),
                                                 (nh.NOT_READY, "NoExecute")}


async def test_eviction_rate_limits_noexecute_taints() -> None:
    clock = FakeClock()
    c, client = controller(clock, eviction_rate=0.1)
    names = [f"n{i}" for i in range(6)]
    put(c, *(node(n) for n in names))
    for n in names:
        await c.sync_node(n)
    clock.now += 41
    put(c, *(lease(n, "x") for n in names[2:]))  # n0, n1 stale: 2 of 6 unhealthy
    c.survey()
    c.survey()
    for n in names:
        await c.sync_node(n)
    noexec = [u.metadata.name for u in client.updates
              if (nh.UNREACHABLE, "NoExecute") in nh.our_taints(u)]
    assert noexec == ["n0"]  # n1 waits for the next token (10 s)
    for u in client.updates:
        put(c, u)
    clock.now += 10
    await c.sync_node("n1")
    assert (nh.UNREACHABLE, "NoExecute") in nh.our_taints(client.updates[-1])


async def test_master_cut_off_evicts_nothing() -> None:
    clock = FakeClock()
    c, client = controller(clock, eviction_rate=100)
    names = ["n0", "n1", "n2"]
    put(c, *(node(n) for n in names), pod("web", "n0"))
    for n in names:
        await c.sync_node(n)
    clock.now += 41  # no lease moved: every node stale
    c.survey()  # the monitor's tick
    for n in names:
        await c.sync_node(n)
    assert c.suspended
    latest = {u.metadata.name: u for u in client.updates}
    assert all((nh.UNREACHABLE, "NoExecute") not in nh.our_taints(u) for u in latest.values())
    for u in latest.values():
        put(c, u)
    await c.sync_pod("default/web")
    assert client.deleted == []


async def test_eviction_skips_pods_already_terminating_or_gone() -> None:
    clock = FakeClock()
    c, client = controller(clock)
    n = node("a", "Unknown")
    nh.apply_taints(n, nh.wanted_taints("Unknown", evict=True), T0)
    p = pod("web", "a")
    p.metadata.deletionTimestamp = "2027-01-15T08:00:00Z"
    put(c, n, node("b"), p)
    await c.sync_pod("default/web")
    await c.sync_pod("default/missing")
    assert client.deleted == []

    async def gone(*_a: Any, **_k: Any) -> Any:
        import grpc
        raise APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound", "gone")

    client.delete = gone  # type: ignore[method-assign]
    put(c, pod("web2", "a"))
    await c.sync_pod("default/web2")  # raced with someone else's delete: fine


def test_master_flags() -> None:
    from master.main import node_lifecycle_options, parse_args

    o = node_lifecycle_options(parse_args([]))
    assert (o.grace_period, o.eviction_rate, o.unhealthy_threshold) == (40.0, 0.1, 0.55)
    args = parse_args(["--node-monitor-grace-period", "10",
                       "--default-unreachable-toleration-seconds", "0"])
    assert node_lifecycle_options(args).grace_period == 10
    assert args.default_unreachable_toleration_seconds == 0
    assert args.default_not_ready_toleration_seconds == 300
