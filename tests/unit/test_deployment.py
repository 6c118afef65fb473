"""Deployment arithmetic (pure) and one controller sync against a fake API:
pod-template-hash, maxSurge/maxUnavailable, new/old ReplicaSet sizes,
proportional scaling, history limit, conditions, the CLI's rollout helpers and
kubectl 1.x's rolling-update steps."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api import apps_pb2, pod_pb2
from kubelite.cli import cmd_rolling_update as ru
from kubelite.cli.cmd_rollout import deployment_status, history_table, revision_to_restore
from kubelite.cli.cmd_set import set_images
from kubelite.cli.context import CLIError
from kubelite.client import APIStatusError
from kubelite.objects import convert, rollout
from kubelite.objects.convert import int_or_string
from master.controllers import deployment as dc
from master.controllers.deployment import RS


def tmpl(image: str = "nginx:1.25", **labels: str) -> Any:
    return convert.from_dict({"metadata": {"labels": labels or {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": image}]}},
                             pod_pb2.PodTemplateSpec)


def dep(replicas: int = 10, surge: Any = "25%", unavailable: Any = "25%", **spec: Any) -> Any:
    d = convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": surge,
                                                "maxUnavailable": unavailable}},
                 "template": convert.to_dict(tmpl()), **spec}}, apps_pb2.Deployment)
    return d


# ---- hash ------------------------------------------------------------------------------

def test_fnv32a_vectors() -> None:
    assert rollout.fnv32a(b"") == 0x811C9DC5
    assert rollout.fnv32a(b"a") == 0xE40C292C
    assert rollout.fnv32a(b"foobar") == 0xBF9CF968


def test_pod_template_hash_is_stable_and_safe() -> None:
    h = rollout.pod_template_hash(tmpl())
    assert h == "765957f5d"  # pinned: ReplicaSet names must not change between versions
    assert h == rollout.pod_template_hash(tmpl())
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert rollout.pod_template_hash(tmpl("nginx:1.26")) != h
    assert rollout.pod_template_hash(tmpl(), 1) == "5f75b86987"
    assert rollout.pod_template_hash(tmpl(), 0) not in (h, "5f75b86987")
    labelled = tmpl()
    labelled.metadata.labels["pod-template-hash"] = "whatever"
    assert rollout.pod_template_hash(labelled) == h
    assert rollout.equal_ignore_hash(labelled, tmpl())
    assert not rollout.equal_ignore_hash(tmpl("nginx:1.26"), tmpl())


# ---- fenceposts ----------------------------------------------------------------------------

@pytest.mark.parametrize("surge,unavailable,desired,want", [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 3, (1, 0)),
    (0, 0, 5, (0, 1)),  # both zero: one at a time
    ("0%", "10%", 5, (0, 1)),  # 10% of 5 rounds down to 0: then 1
    (2, 1, 5, (2, 1)),
    ("100%", "0%", 3, (3, 0)),
])
def test_resolve_fenceposts(surge: Any, unavailable: Any, desired: int,
                            want: tuple[int, int]) -> None:
    assert rollout.resolve_fenceposts(int_or_string(surge), int_or_string(unavailable),
                                      desired) == want


def test_max_surge_and_unavailable_of_a_deployment() -> None:
    assert (rollout.max_surge(dep(10)), rollout.max_unavailable(dep(10))) == (3, 2)
    assert rollout.max_unavailable(dep(2, surge=0, unavailable=5)) == 2  # capped at replicas
    assert rollout.max_unavailable(dep(0)) == 0
    recreate = dep(4)
    recreate.spec.strategy.type = "Recreate"
    recreate.spec.strategy.ClearField("rollingUpdate")
    assert (rollout.max_surge(recreate), rollout.max_unavailable(recreate)) == (0, 0)
    with pytest.raises(ValueError):
        rollout.scaled_value(int_or_string("abc"), 10, True)


# ---- new and old ReplicaSet sizes ------------------------------------------------------------

def rs(name: str, replicas: int, created: float = 0.0, **kw: Any) -> RS:
    kw.setdefault("live", replicas)
    kw.setdefault("available", kw["live"])
    return RS(name=name, replicas=replicas, created=created, **kw)


def test_new_replica_set_grows_within_the_surge() -> None:
    old = rs("old", 10)
    assert dc.new_rs_replicas(10, 3, [old], None) == 3
    new = rs("new", 3, 1, live=3, available=0)
    assert dc.new_rs_replicas(10, 3, [old, new], new) == 3  # at 13 already
    old.replicas = 8  # scaled down, but 10 pods still there until they are deleted
    assert dc.new_rs_replicas(10, 3, [old, new], new) == 3
    old.live = 8
    assert dc.new_rs_replicas(10, 3, [old, new], new) == 5
    assert dc.new_rs_replicas(10, 3, [rs("o", 2), new], new) == 10 - 0  # capped at replicas
    assert dc.new_rs_replicas(10, 0, [old], None, recreate=True) == 10


def test_old_scale_down_keeps_minimum_availability() -> None:
    # 10 replicas, maxUnavailable 2: with 3 new pods not yet available, old may lose 2.
    new = rs("new", 3, 2, live=3, available=0)
    assert dc.plan_old_scale_down(new, [rs("old", 10)], 10, 2) == {"old": 8}
    # with 2 of the old ones unavailable, those two go and no more
    assert dc.plan_old_scale_down(new, [rs("old", 10, available=8)], 10, 2) == {"old": 8}
    assert dc.plan_old_scale_down(new, [rs("old", 8, live=10, available=8)], 10, 2) == {}
    new.available = 3
    assert dc.plan_old_scale_down(new, [rs("old", 10)], 10, 2) == {"old": 5}
    # unhealthy old replicas go first, and cost nothing
    a, b = rs("a", 4, 0, available=2), rs("b", 4, 1)
    got = dc.plan_old_scale_down(rs("new", 2, 2, available=2), [a, b], 8, 0)
    assert got == {"a": 2}
    assert dc.plan_old_scale_down(rs("new", 2, 2, available=0), [a, b], 8, 0) == {}
    # a stale count above the target never counts more than the target
    stale = rs("old", 3, 0, live=5, available=5)
    assert dc.plan_old_scale_down(rs("new", 1, 1, available=0), [stale], 3, 0) == {}


def test_surge_and_unavailability_along_a_whole_rollout() -> None:
    """Simulate a rollout step by step, pods becoming available at once: the limits hold."""
    replicas, surge, unavailable = 5, 2, 1
    old, new = rs("old", 5), rs("new", 0, 1, live=0, available=0)
    for _ in range(20):
        size = dc.new_rs_replicas(replicas, surge, [old, new], new)
        new.replicas = new.live = new.available = size
        assert old.live + new.live <= replicas + surge
        plan = dc.plan_old_scale_down(new, [old], replicas, unavailable)
        if "old" in plan:
            old.replicas = old.live = old.available = plan["old"]
        assert old.available + new.available >= replicas - unavailable
        if (old.replicas, new.replicas) == (0, replicas):
            break
    assert (old.replicas, new.replicas) == (0, replicas)


# ---- proportional scaling --------------------------------------------------------------------

def test_proportional_scaling_as_in_the_kubernetes_docs() -> None:
    # 10 replicas, maxSurge 3, stuck at 8 old + 5 new; scaled to 15: 3 to old, 2 to new.
    old = rs("old", 8, 0, max_replicas=13)
    new = rs("new", 5, 1, max_replicas=13)
    order, sizes = dc.proportional_sizes([old, new], 15, 3, 13)
    assert sizes == {"old": 11, "new": 7} and order[0] is old
    # and back down to 10: 13 in total again
    old.replicas, new.replicas = 11, 7
    old.max_replicas = new.max_replicas = 18
    _, sizes = dc.proportional_sizes([old, new], 10, 3, 18)
    assert sum(sizes.values()) == 13 and sizes == {"old": 8, "new": 5}


def test_proportional_leftovers_and_zero() -> None:
    # Equal sizes: the rounding leftover goes to the first, the newest when growing...
    a, b, c = (rs(n, 1, t, max_replicas=3) for n, t in (("a", 0), ("b", 1), ("c", 2)))
    order, sizes = dc.proportional_sizes([a, b, c], 4, 0, 3)
    assert order[0] is c and sizes == {"a": 1, "b": 1, "c": 2}
    # ...and the oldest when shrinking.
    a.replicas = b.replicas = c.replicas = 2
    a.max_replicas = b.max_replicas = c.max_replicas = 6
    order, sizes = dc.proportional_sizes([a, b, c], 5, 0, 6)
    assert order[0] is a and sizes == {"a": 1, "b": 2, "c": 2}
    # to zero: everything goes
    _, sizes = dc.proportional_sizes([a, b, c], 0, 0, 6)
    assert sizes == {"a": 0, "b": 0, "c": 0}
    # no annotation (scaled by hand): the Deployment's status.replicas is the base
    x = rs("x", 4, 0)
    assert dc.rs_fraction(x, 8, 0, 4) == 4


def test_find_active_or_latest() -> None:
    old1, old2 = rs("o1", 0, 0), rs("o2", 0, 1)
    new = rs("n", 0, 2)
    assert dc.find_active_or_latest(new, [old1, old2]) is new
    assert dc.find_active_or_latest(None, [old1, old2]) is old2  # the newest
    old1.replicas = 3
    assert dc.find_active_or_latest(new, [old1, old2]) is old1
    new.replicas = 1
    assert dc.find_active_or_latest(new, [old1, old2]) is None
    assert dc.find_active_or_latest(None, []) is None


# ---- history -----------------------------------------------------------------------------

def test_history_limit_deletes_oldest_revisions_with_nothing_left() -> None:
    old = [rs("r1", 0, 0, revision=1), rs("r2", 0, 1, revision=2), rs("r3", 1, 2, revision=3),
           rs("r4", 0, 3, revision=4)]
    assert [r.name for r in dc.history_victims(old, 2)] == ["r1", "r2"]
    assert [r.name for r in dc.history_victims(old, 1)] == ["r1", "r2"]  # r3 still has a pod
    assert dc.history_victims(old, 4) == []
    old[0].deleting = True
    assert [r.name for r in dc.history_victims(old, 2)] == ["r2"]
    old[1].live = 1  # pods still going
    assert dc.history_victims(old, 2) == []


def test_new_replica_set_annotations_and_revision_history() -> None:
    d = dep(3)
    d.metadata.annotations.update({rollout.CHANGE_CAUSE: "kubelite set image",
                                   rollout.REVISION: "7", rollout.LAST_APPLIED: "{}"})
    new = apps_pb2.ReplicaSet()
    assert dc.set_new_rs_annotations(d, new, 1, exists=False)
    assert dict(new.metadata.annotations) == {
        rollout.CHANGE_CAUSE: "kubelite set image", rollout.REVISION: "1",
        rollout.DESIRED_REPLICAS: "3", rollout.MAX_REPLICAS: "4"}
    assert not dc.set_new_rs_annotations(d, new, 1, exists=True)
    # brought back by a rollback: a new number, the old one remembered
    assert dc.set_new_rs_annotations(d, new, 4, exists=True)
    assert new.metadata.annotations[rollout.REVISION] == "4"
    assert new.metadata.annotations[rollout.REVISION_HISTORY] == "1"
    dc.set_new_rs_annotations(d, new, 6, exists=True)
    assert new.metadata.annotations[rollout.REVISION_HISTORY] == "1,4"
    assert not dc.set_new_rs_annotations(d, new, 5, exists=True)  # never backwards


# ---- conditions ------------------------------------------------------------------------------

def test_set_condition_keeps_transition_time_for_the_same_status() -> None:
    st = apps_pb2.DeploymentStatus()
    first = dc.new_condition("Progressing", "True", dc.NEW_RS_CREATED, "a")
    first.lastTransitionTime = first.lastUpdateTime = "2020-01-01T00:00:00Z"
    dc.set_condition(st, first)
    dc.set_condition(st, dc.new_condition("Available", "False", dc.MIN_UNAVAILABLE, "b"))
    dc.set_condition(st, dc.new_condition("Progressing", "True", dc.RS_UPDATED, "c"))
    assert [c.type for c in st.conditions] == ["Available", "Progressing"]
    prog = dc.get_condition(st, "Progressing")
    assert prog.reason == dc.RS_UPDATED and prog.lastTransitionTime == "2020-01-01T00:00:00Z"
    dc.set_condition(st, dc.new_condition("Progressing", "False", dc.TIMED_OUT, "d"))
    assert dc.get_condition(st, "Progressing").lastTransitionTime != "2020-01-01T00:00:00Z"


def test_timed_out_after_the_deadline_from_the_last_progress() -> None:
    d = dep(1, progressDeadlineSeconds=10)
    st = apps_pb2.DeploymentStatus()
    cond = dc.new_condition("Progressing", "True", dc.RS_UPDATED, "x")
    cond.lastUpdateTime = "2020-01-01T00:00:00Z"
    dc.set_condition(st, cond)
    t0 = dc._ts("2020-01-01T00:00:00Z")
    assert not dc.deployment_timed_out(d, st, t0 + 9)
    assert dc.deployment_timed_out(d, st, t0 + 11)
    st.conditions[0].reason = dc.NEW_RS_AVAILABLE
    assert not dc.deployment_timed_out(d, st, t0 + 11)


# ---- one sync against a fake API --------------------------------------------------------------

class FakeAPI:
    """Enough of AsyncClient for a Deployment sync: objects in a dict, CAS on update."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], Any] = {}
        self.rv = 100
        self.calls: list[str] = []

    def _key(self, obj: Any) -> tuple[str, str]:
        return type(obj).__name__, obj.metadata.name

    def _store(self, obj: Any) -> Any:
        self.rv += 1
        out = type(obj)()
        out.CopyFrom(obj)
        out.metadata.resourceVersion = str(self.rv)
        self.objects[self._key(out)] = out
        return out

    async def create(self, obj: Any) -> Any:
        self.calls.append(f"create {type(obj).__name__} {obj.metadata.name}")
        if self._key(obj) in self.objects:
            raise APIStatusError(_code("ALREADY_EXISTS"), "AlreadyExists", "exists")
        obj.metadata.uid = obj.metadata.uid or f"uid-{obj.metadata.name}"
        obj.metadata.creationTimestamp = "2020-01-01T00:00:01Z"
        return self._store(obj)

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        kind = {"replicasets": "ReplicaSet", "deployments": "Deployment"}[resource]
        if (kind, name) not in self.objects:
            raise APIStatusError(_code("NOT_FOUND"), "NotFound", "not found")
        return self.objects[(kind, name)]

    async def update(self, obj: Any) -> Any:
        self.calls.append(f"update {type(obj).__name__} {obj.metadata.name}")
        cur = self.objects[self._key(obj)]
        if obj.metadata.resourceVersion != cur.metadata.resourceVersion:
            raise APIStatusError(_code("ABORTED"), "Conflict", "conflict")
        return self._store(obj)

    async def update_status(self, obj: Any) -> Any:
        self.calls.append(f"status {obj.metadata.name}")
        cur = self.objects[self._key(obj)]
        new = type(cur)()
        new.CopyFrom(cur)
        new.status.CopyFrom(obj.status)
        return self._store(new)

    async def patch(self, resource: str, name: str, patch: dict[str, Any],
                    namespace: str = "") -> Any:
        self.calls.append(f"patch {resource} {name}")
        cur = await self.get(resource, name, namespace)
        new = type(cur)()
        new.CopyFrom(cur)
        for k, v in patch.get("metadata", {}).get("annotations", {}).items():
            new.metadata.annotations[k] = v
        return self._store(new)


def _code(name: str) -> Any:
    import grpc

    return getattr(grpc.StatusCode, name)


def _controller(api: FakeAPI) -> dc.DeploymentController:
    ctl = dc.DeploymentController(api)  # type: ignore[arg-type]
    ctl.recorder.event = lambda *a, **k: None  # type: ignore[method-assign]
    return ctl


def _cache(ctl: dc.DeploymentController, api: FakeAPI) -> None:
    for (kind, name), obj in api.objects.items():
        inf = ctl.deployments if kind == "Deployment" else ctl.replicasets
        inf._cache[f"ns/{name}"] = obj


async def test_sync_creates_the_hash_named_replica_set_and_status() -> None:
    api = FakeAPI()
    d = dep(4, surge=1, unavailable=0, progressDeadlineSeconds=600, revisionHistoryLimit=10)
    api._store(d)
    ctl = _controller(api)
    _cache(ctl, api)
    await ctl.reconcile("ns/web")
    h = rollout.pod_template_hash(d.spec.template)
    rs = api.objects[("ReplicaSet", f"web-{h}")]
    assert rs.spec.replicas == 4 and rs.spec.selector.matchLabels == {"app": "web",
                                                                      "pod-template-hash": h}
    assert rs.spec.template.metadata.labels["pod-template-hash"] == h
    assert rs.metadata.ownerReferences[0].uid == "d-uid"
    assert rs.metadata.annotations[rollout.REVISION] == "1"
    stored = api.objects[("Deployment", "web")]
    assert stored.metadata.annotations[rollout.REVISION] == "1"
    prog = dc.get_condition(stored.status, "Progressing")
    assert (prog.reason, prog.message) == (dc.NEW_RS_CREATED,
                                           f'Created new replica set "web-{h}"')
    assert dc.get_condition(stored.status, "Available").reason == dc.MIN_UNAVAILABLE
    assert stored.status.observedGeneration == 1
    # A template change: a second ReplicaSet of 1 (the surge), the old one untouched.
    stored.spec.template.spec.containers[0].image = "nginx:1.26"
    stored.metadata.generation = 2
    _cache(ctl, api)
    for p in range(4):  # the old pods, all available
        ctl._pods_of.setdefault(rs.metadata.uid, {})[f"ns/p{p}"] = _ready_pod(f"p{p}")
    await ctl.reconcile("ns/web")
    h2 = rollout.pod_template_hash(stored.spec.template)
    new = api.objects[("ReplicaSet", f"web-{h2}")]
    assert new.spec.replicas == 1 and new.metadata.annotations[rollout.REVISION] == "2"
    assert api.objects[("ReplicaSet", f"web-{h}")].spec.replicas == 4


async def test_hash_collision_bumps_collision_count() -> None:
    api = FakeAPI()
    d = dep(1)
    api._store(d)
    h = rollout.pod_template_hash(d.spec.template)
    squatter = apps_pb2.ReplicaSet(apiVersion="apps/v1", kind="ReplicaSet")
    squatter.metadata.name, squatter.metadata.namespace = f"web-{h}", "ns"
    squatter.metadata.labels["app"] = "other"
    squatter.spec.template.CopyFrom(tmpl("other:1"))
    await api.create(squatter)
    ctl = _controller(api)
    _cache(ctl, api)
    with pytest.raises(RuntimeError, match="hash collision"):
        await ctl.reconcile("ns/web")
    stored = api.objects[("Deployment", "web")]
    assert stored.status.collisionCount == 1
    _cache(ctl, api)
    await ctl.reconcile("ns/web")
    h1 = rollout.pod_template_hash(d.spec.template, 1)
    assert ("ReplicaSet", f"web-{h1}") in api.objects


def _ready_pod(name: str) -> Any:
    return convert.from_dict({"metadata": {"name": name, "namespace": "ns"},
                              "status": {"phase": "Running", "conditions": [
                                  {"type": "Ready", "status": "True"}]}}, pod_pb2.Pod)


# ---- CLI helpers ---------------------------------------------------------------------------

def test_rollout_status_messages() -> None:
    d = dep(3)
    d.metadata.generation, d.status.observedGeneration = 2, 1
    assert deployment_status(d) == ("Waiting for deployment spec update to be observed...",
                                     False)
    d.status.observedGeneration = 2
    d.status.updatedReplicas, d.status.replicas = 1, 4
    assert deployment_status(d)[0] == ('Waiting for deployment "web" rollout to finish: 1 out '
                                       "of 3 new replicas have been updated...")
    d.status.updatedReplicas = 3
    assert deployment_status(d)[0].endswith("1 old replicas are pending termination...")
    d.status.replicas, d.status.availableReplicas = 3, 2
    assert deployment_status(d)[0].endswith("2 of 3 updated replicas are available...")
    d.status.availableReplicas = 3
    assert deployment_status(d) == ('deployment "web" successfully rolled out', True)
    with pytest.raises(CLIError, match=r"desired revision \(2\) is different"):
        deployment_status(d, 2)
    d.status.conditions.add(type="Progressing", status="False", reason=dc.TIMED_OUT)
    with pytest.raises(CLIError, match='deployment "web" exceeded its progress deadline'):
        deployment_status(d)


def _rs_with(revision: int, cause: str = "") -> Any:
    r = apps_pb2.ReplicaSet()
    r.metadata.name = f"web-{revision}"
    r.metadata.annotations[rollout.REVISION] = str(revision)
    if cause:
        r.metadata.annotations[rollout.CHANGE_CAUSE] = cause
    return r


def test_history_table_and_revision_lookup() -> None:
    rss = [_rs_with(3, "kubelite set image deploy/web c=b"), _rs_with(1)]
    assert history_table(rss) == ("REVISION  CHANGE-CAUSE\n"
                                  "1         <none>\n"
                                  "3         kubelite set image deploy/web c=b\n")
    assert history_table([]) == "No rollout history found.\n"
    assert revision_to_restore(rss, 0, "web").metadata.name == "web-1"
    assert revision_to_restore(rss, 3, "web").metadata.name == "web-3"
    with pytest.raises(CLIError, match="unable to find specified revision 2 in history"):
        revision_to_restore(rss, 2, "web")
    with pytest.raises(CLIError, match='no rollout history found for deployment "web"'):
        revision_to_restore(rss[:1], 0, "web")


def test_set_images() -> None:
    spec = convert.from_dict({"containers": [{"name": "a", "image": "x"},
                                             {"name": "b", "image": "y"}],
                              "initContainers": [{"name": "i", "image": "z"}]},
                             pod_pb2.PodSpec)
    assert set_images(spec, {"a": "x2", "nope": "q"}) == ["nope"]
    assert [c.image for c in spec.containers] == ["x2", "y"]
    assert set_images(spec, {"*": "all"}) == []
    assert {c.image for c in (*spec.containers, *spec.initContainers)} == {"all"}


# ---- kubectl 1.x rolling-update ------------------------------------------------------------

def test_rolling_update_steps_like_kubectl() -> None:
    p = ru.plan(3, 3)
    assert (p.max_surge, p.max_unavailable, p.min_available) == (1, 0, 3)
    new, old, steps = 0, 3, []
    while new != 3 or old != 0:
        up = ru.scale_up_to(p, new, old)
        if up is not None:
            new = up
            steps.append(f"new {up}")
        down = ru.scale_down_to(p, new, old, new_available=new)  # pods ready at once
        if down is not None:
            old = down
            steps.append(f"old {down}")
    assert steps == ["new 1", "old 2", "new 2", "old 1", "new 3", "old 0"]
    # while the new pod is not ready nothing old goes
    assert ru.scale_down_to(p, 1, 3, new_available=0) is None
    assert ru.scale_up_to(p, 1, 3) is None  # already at 4 = 3 + surge
    # nothing to keep when the new size is 0
    assert ru.plan(0, 5).min_available == 0
