"""The API server end to end over gRPC, against a real etcd."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import grpc
import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from master.apiserver.storage import Storage
from tests.cluster import Etcd, Master


def pod(name: str = "", *, generate: str = "", labels: dict[str, str] | None = None,
        image: str = "busybox:1.36", **spec: Any) -> pod_pb2.Pod:
    md: dict[str, Any] = {"labels": labels or {"app": "web"}}
    if name:
        md["name"] = name
    if generate:
        md["generateName"] = generate
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": md,
        "spec": {"containers": [{"name": "c", "image": image}], **spec},
    }, pod_pb2.Pod)


def deployment(name: str, replicas: int = 2) -> apps_pb2.Deployment:
    return convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}},
    }, apps_pb2.Deployment)


def in_ns(obj: Any, ns: str) -> Any:
    obj.metadata.namespace = ns
    return obj


def test_crud_round_trip(client: Client, namespace: str) -> None:
    created = client.create(in_ns(pod("web-1"), namespace))
    md = created.metadata
    assert md.uid and md.creationTimestamp.endswith("Z") and md.generation == 1
    assert int(md.resourceVersion) > 0
    assert created.status.phase == "Pending"
    # server defaults are applied
    assert created.spec.restartPolicy == "Always"
    assert created.spec.containers[0].imagePullPolicy == "IfNotPresent"

    got = client.get("pods", "web-1", namespace)
    assert got == created

    got.metadata.labels["tier"] = "front"
    updated = client.update(got)
    assert updated.metadata.labels["tier"] == "front"
    assert int(updated.metadata.resourceVersion) > int(md.resourceVersion)

    deleted = client.delete("pods", "web-1", namespace)
    assert deleted.metadata.name == "web-1"
    with pytest.raises(APIStatusError) as e:
        client.get("pods", "web-1", namespace)
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.message == 'pods "web-1" not found'


def test_create_existing_name_is_already_exists(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("dup"), namespace))
    with pytest.raises(APIStatusError) as e:
        client.create(in_ns(pod("dup"), namespace))
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert e.value.message == 'pods "dup" already exists'


def test_generate_name(client: Client, namespace: str) -> None:
    names = {client.create(in_ns(pod(generate="web-"), namespace)).metadata.name
             for _ in range(5)}
    assert len(names) == 5
    for n in names:
        assert n.startswith("web-") and len(n) == len("web-") + 5


def test_two_writers_same_resource_version_one_wins(client: Client, namespace: str) -> None:
    client.create(in_ns(deployment("race"), namespace))
    a = client.get("deployments", "race", namespace)
    b = client.get("deployments", "race", namespace)
    a.spec.replicas = 5
    b.spec.replicas = 7
    client.update(a)
    with pytest.raises(APIStatusError) as e:
        client.update(b)
    assert e.value.code == grpc.StatusCode.ABORTED
    assert e.value.reason == "Conflict"
    assert "the object has been modified" in e.value.message
    assert client.get("deployments", "race", namespace).spec.replicas == 5


def test_concurrent_unconditional_updates_all_land(client: Client, namespace: str,
                                                    master: Master) -> None:
    """Without a resourceVersion the server retries its CAS: no update is lost."""
    client.create(in_ns(deployment("counter"), namespace))
    errors: list[Exception] = []

    def label(i: int) -> None:
        try:
            with Client(server=master.address) as c:
                c.patch("deployments", "counter", {"metadata": {"labels": {f"k{i}": "v"}}},
                        namespace)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=label, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    labels = client.get("deployments", "counter", namespace).metadata.labels
    assert {f"k{i}" for i in range(8)} <= set(labels)


def test_generation_moves_only_with_spec(client: Client, namespace: str) -> None:
    d = client.create(in_ns(deployment("gen"), namespace))
    assert d.metadata.generation == 1
    d.metadata.labels["x"] = "y"
    d = client.update(d)
    assert d.metadata.generation == 1
    d.status.replicas = 3
    d = client.update_status(d)
    assert d.metadata.generation == 1 and d.status.replicas == 3
    d.spec.replicas = 4
    d = client.update(d)
    assert d.metadata.generation == 2
    assert d.status.replicas == 3  # Update keeps status
    # A spec that differs from the stored one only by defaults is the same spec:
    # no new generation, and no write at all.
    rv = d.metadata.resourceVersion
    d.spec.template.spec.containers[0].ClearField("imagePullPolicy")
    d.spec.ClearField("revisionHistoryLimit")
    d = client.update(d)
    assert d.metadata.generation == 2 and d.metadata.resourceVersion == rv


def test_update_status_ignores_spec(client: Client, namespace: str) -> None:
    d = client.create(in_ns(deployment("st"), namespace))
    d.spec.replicas = 9
    d.status.readyReplicas = 1
    d = client.update_status(d)
    assert d.spec.replicas == 2 and d.status.readyReplicas == 1


def test_merge_patch_sets_and_removes(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("p", labels={"a": "1", "b": "2"}), namespace))
    p = client.patch("pods", "p", {"metadata": {"labels": {"a": None, "c": "3"}}}, namespace)
    assert dict(p.metadata.labels) == {"b": "2", "c": "3"}
    with pytest.raises(APIStatusError) as e:
        client.patch("pods", "p", {"spec": {"restartPolicy": "Sometimes"}}, namespace)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert 'spec.restartPolicy: Unsupported value: "Sometimes"' in e.value.message
    with pytest.raises(APIStatusError) as e:
        client.patch("pods", "p", "{not json", namespace)
    assert e.value.reason == "BadRequest"


def test_label_and_field_selectors(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("a", labels={"app": "web", "tier": "fe"}), namespace))
    client.create(in_ns(pod("b", labels={"app": "web", "tier": "be"}), namespace))
    client.create(in_ns(pod("c", labels={"app": "db"}), namespace))

    def names(**kw: str) -> list[str]:
        items, _ = client.list("pods", namespace, **kw)
        return sorted(o.metadata.name for o in items)

    assert names(label_selector="app=web") == ["a", "b"]
    assert names(label_selector="tier in (fe,xx)") == ["a"]
    assert names(label_selector="app=web,tier notin (fe)") == ["b"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="app!=web") == ["c"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b,status.phase=Pending") == ["a", "c"]
    with pytest.raises(APIStatusError) as e:
        names(field_selector="spec.bogus=1")
    assert e.value.message == "field label not supported: spec.bogus"
    with pytest.raises(APIStatusError) as e:
        names(label_selector="app in web")
    assert e.value.reason == "BadRequest"


def test_invalid_object_writes_nothing(client: Client, namespace: str) -> None:
    bad = in_ns(pod("Bad_Name", image=""), namespace)
    with pytest.raises(APIStatusError) as e:
        client.create(bad)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.reason == "Invalid"
    assert e.value.message.startswith('Pod "Bad_Name" is invalid: [')
    assert "metadata.name: Invalid value: \"Bad_Name\"" in e.value.message
    assert "spec.containers[0].image: Required value" in e.value.message
    items, _ = client.list("pods", namespace)
    assert items == []


def test_create_in_missing_namespace(client: Client) -> None:
    with pytest.raises(APIStatusError) as e:
        client.create(in_ns(pod("x"), "no-such-ns"))
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert e.value.message == 'namespaces "no-such-ns" not found'


def test_namespace_deletion_removes_contents(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("p1"), namespace))
    client.create(in_ns(deployment("d1"), namespace))
    cm = convert.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "cfg", "namespace": namespace},
                            "data": {"k": "v"}}, core_pb2.ConfigMap)
    client.create(cm)
    ns = client.delete("namespaces", namespace)
    assert ns.metadata.deletionTimestamp and ns.status.phase == "Terminating"
    deadline = time.monotonic() + 20
    while True:
        try:
            client.get("namespaces", namespace)
        except APIStatusError as e:
            assert e.not_found
            break
        assert time.monotonic() < deadline, "namespace was not removed"
        time.sleep(0.2)
    for res in ("pods", "deployments", "configmaps"):
        assert client.list(res, namespace)[0] == []


def test_create_in_terminating_namespace_is_forbidden(client: Client, namespace: str) -> None:
    # A finalizer keeps an object (and so the namespace) around while we try.
    held = in_ns(pod("held"), namespace)
    held.metadata.finalizers.append("example.com/hold")
    client.create(held)
    client.delete("namespaces", namespace)
    with pytest.raises(APIStatusError) as e:
        client.create(in_ns(pod("late"), namespace))
    assert e.value.reason == "Forbidden"
    assert "because it is being terminated" in e.value.message
    deadline = time.monotonic() + 20
    while not (obj := client.get("pods", "held", namespace)).metadata.deletionTimestamp:
        assert time.monotonic() < deadline, "the namespace controller did not delete the pod"
        time.sleep(0.1)
    del obj.metadata.finalizers[:]
    client.update(obj)  # the last finalizer gone: the pod, then the namespace, go


def test_default_namespaces_exist_and_are_protected(client: Client) -> None:
    for n in ("default", "kube-system", "kube-public"):
        assert client.get("namespaces", n).status.phase == "Active"
    with pytest.raises(APIStatusError) as e:
        client.delete("namespaces", "default")
    assert e.value.reason == "Forbidden"


@pytest.mark.parametrize("policy,finalizer", [("Foreground", "foregroundDeletion"),
                                              ("Orphan", "orphan")])
def test_propagation_policy_recorded_for_gc(client: Client, namespace: str, policy: str,
                                            finalizer: str) -> None:
    client.create(in_ns(deployment("gc"), namespace))
    d = client.delete("deployments", "gc", namespace, propagation_policy=policy)
    assert d.metadata.deletionTimestamp
    assert list(d.metadata.finalizers) == [finalizer]
    # the garbage collector finishes by removing its finalizer
    d = client.get("deployments", "gc", namespace)
    del d.metadata.finalizers[:]
    client.update(d)
    with pytest.raises(APIStatusError) as e:
        client.get("deployments", "gc", namespace)
    assert e.value.not_found


def test_background_delete_is_immediate(client: Client, namespace: str) -> None:
    client.create(in_ns(deployment("bg"), namespace))
    client.delete("deployments", "bg", namespace, propagation_policy="Background")
    with pytest.raises(APIStatusError):
        client.get("deployments", "bg", namespace)
    with pytest.raises(APIStatusError) as e:
        client.delete("deployments", "bg", namespace, propagation_policy="Sideways")
    assert e.value.reason in ("BadRequest", "NotFound")


def test_bound_pod_is_deleted_gracefully(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("bound", nodeName="node-1"), namespace))
    p = client.delete("pods", "bound", namespace)
    assert p.metadata.deletionTimestamp and p.metadata.deletionGracePeriodSeconds == 30
    assert client.get("pods", "bound", namespace).metadata.deletionTimestamp
    # the node agent confirms with grace period 0
    client.delete("pods", "bound", namespace, grace_period_seconds=0)
    with pytest.raises(APIStatusError):
        client.get("pods", "bound", namespace)


def test_delete_preconditions(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("pre"), namespace))
    with pytest.raises(APIStatusError) as e:
        client.delete("pods", "pre", namespace, precondition_uid="not-the-uid")
    assert e.value.reason == "Conflict" and "Precondition failed" in e.value.message
    client.get("pods", "pre", namespace)


def _collect(client: Client, n: int, **kw: Any) -> list[tuple[str, Any, str]]:
    out = []
    for ev in client.watch("pods", timeout=10, **kw):
        out.append(ev)
        if len(out) >= n:
            break
    return out


def test_watch_sees_changes_and_resumes(client: Client, namespace: str, master: Master) -> None:
    _, rv = client.list("pods", namespace)
    client.create(in_ns(pod("w1"), namespace))
    client.patch("pods", "w1", {"metadata": {"labels": {"x": "1"}}}, namespace)
    events = _collect(client, 2, namespace=namespace, resource_version=rv)
    assert [e[0] for e in events] == ["ADDED", "MODIFIED"]
    resume_at = events[-1][2]
    # the stream is gone; changes happen meanwhile
    client.delete("pods", "w1", namespace)
    client.create(in_ns(pod("w2"), namespace))
    later = _collect(client, 2, namespace=namespace, resource_version=resume_at)
    assert [(e[0], e[1].metadata.name) for e in later] == [("DELETED", "w1"), ("ADDED", "w2")]


def test_watch_from_empty_lists_first(client: Client, namespace: str) -> None:
    client.create(in_ns(pod("e1"), namespace))
    events = _collect(client, 1, namespace=namespace)
    assert events[0][0] == "ADDED" and events[0][1].metadata.name == "e1"


def test_watch_selector_transitions(client: Client, namespace: str) -> None:
    """An object leaving a selector's set is DELETED for that watcher, entering is ADDED."""
    client.create(in_ns(pod("s1", labels={"app": "web"}), namespace))
    _, rv = client.list("pods", namespace)
    client.patch("pods", "s1", {"metadata": {"labels": {"app": "db"}}}, namespace)
    client.patch("pods", "s1", {"metadata": {"labels": {"app": "web"}}}, namespace)
    events = _collect(client, 2, namespace=namespace, resource_version=rv,
                      label_selector="app=web")
    assert [e[0] for e in events] == ["DELETED", "ADDED"]


def test_watch_bookmarks_while_idle(client: Client, namespace: str) -> None:
    _, rv = client.list("pods", namespace)
    events = _collect(client, 1, namespace=namespace, resource_version=rv,
                      allow_bookmarks=True)
    assert events[0][0] == "BOOKMARK" and events[0][1] is None
    assert int(events[0][2]) >= int(rv)


def test_watch_after_compaction_is_too_old(client: Client, namespace: str, etcd: Etcd) -> None:
    _, rv = client.list("pods", namespace)
    client.create(in_ns(pod("c1"), namespace))
    client.create(in_ns(pod("c2"), namespace))

    async def compact() -> None:
        s = Storage(etcd.host, etcd.port)
        await s.connect()
        await s.compact(await s.revision())
        await s.close()

    asyncio.run(compact())
    with pytest.raises(APIStatusError) as e:
        _collect(client, 1, namespace=namespace, resource_version=rv)
    assert e.value.code == grpc.StatusCode.OUT_OF_RANGE
    assert e.value.reason == "Expired"
    assert e.value.message.startswith(f"too old resource version: {rv}")


def test_unknown_resource_and_bad_resource_version(client: Client) -> None:
    with pytest.raises(Exception) as e:
        client.list("widgets")
    assert "widgets" in str(e.value)
    with pytest.raises(APIStatusError) as e2:
        _collect(client, 1, resource_version="abc")
    assert e2.value.reason == "BadRequest"


def test_cluster_scoped_kind_ignores_namespace(client: Client) -> None:
    node = convert.from_dict({"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": "n-scoped", "namespace": "default"},
                              "status": {"capacity": {"cpu": "2"}}}, core_pb2.Node)
    created = client.create(node)
    try:
        assert created.metadata.namespace == ""
        assert created.status.capacity["cpu"].string == "2"  # nodes report status at creation
        assert client.get("nodes", "n-scoped").metadata.name == "n-scoped"
    finally:
        client.delete("nodes", "n-scoped")


def test_token_authentication(etcd: Etcd, tmp_path: Any) -> None:
    from tests.cluster import run_master

    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret,admin\n")
    with run_master(etcd.endpoint, "--token-file", str(tokens)) as m:
        with Client(server=m.address) as anon:
            with pytest.raises(APIStatusError) as e:
                anon.get("namespaces", "default")
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with Client(server=m.address, token="wrong") as bad:
            with pytest.raises(APIStatusError):
                list(bad.watch("pods", timeout=2))
        with Client(server=m.address, token="s3cret") as ok:
            assert ok.get("namespaces", "default").metadata.name == "default"
