"""pods/binding and pods/eviction over gRPC, against a real etcd."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from kubelite.api import pod_pb2
from kubelite.client import APIStatusError, AsyncClient, Client
from kubelite.objects import convert
from tests.cluster import Master

# Pods here name a scheduler that does not run, so no scheduler binds them first.
NO_SCHEDULER = "test-no-scheduler"


@pytest.fixture(autouse=True)
def _remove_bound_pods(client: Client, namespace: str) -> Iterator[None]:
    """No node agent confirms termination here: remove leftover pods at once."""
    yield
    pods, _ = client.list("pods", namespace)
    for p in pods:
        try:
            client.patch("pods", p.metadata.name, {"metadata": {"finalizers": None}},
                         namespace)
            client.delete("pods", p.metadata.name, namespace, grace_period_seconds=0)
        except APIStatusError:
            pass


def make_pod(client: Client, namespace: str, name: str, **spec: object) -> pod_pb2.Pod:
    p = convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedulerName": NO_SCHEDULER,
                 "containers": [{"name": "c", "image": "busybox:1.36"}], **spec},
    }, pod_pb2.Pod)
    return client.create(p)


def api_error(fn: object, *args: object, **kw: object) -> APIStatusError:
    with pytest.raises(APIStatusError) as e:
        fn(*args, **kw)  # type: ignore[operator]
    return e.value


def condition(p: pod_pb2.Pod, ctype: str) -> pod_pb2.PodCondition | None:
    return next((c for c in p.status.conditions if c.type == ctype), None)


def test_bind_sets_node_and_pod_scheduled(client: Client, namespace: str) -> None:
    created = make_pod(client, namespace, "web")
    bound = client.bind(namespace, "web", "node-1")
    assert isinstance(bound, pod_pb2.Pod)
    assert bound.spec.nodeName == "node-1"
    cond = condition(bound, "PodScheduled")
    assert cond is not None and cond.status == "True"
    assert cond.lastTransitionTime.endswith("Z") and "T" in cond.lastTransitionTime
    assert int(bound.metadata.resourceVersion) > int(created.metadata.resourceVersion)
    # nothing else changed: not a general spec update
    assert bound.metadata.generation == created.metadata.generation
    assert bound.status.phase == "Pending"
    expected = pod_pb2.Pod()
    expected.CopyFrom(created)
    expected.spec.nodeName = "node-1"
    expected.metadata.resourceVersion = bound.metadata.resourceVersion
    expected.status.conditions.add().CopyFrom(cond)
    assert bound == expected
    assert client.get("pods", "web", namespace) == bound


def test_bind_replaces_an_existing_pod_scheduled_condition(client: Client,
                                                           namespace: str) -> None:
    p = make_pod(client, namespace, "retry")
    p.status.conditions.add(type="PodScheduled", status="False", reason="Unschedulable",
                            message="0/3 nodes are available",
                            lastTransitionTime="2020-01-01T00:00:00Z")
    client.update_status(p)
    bound = client.bind(namespace, "retry", "node-2")
    scheduled = [c for c in bound.status.conditions if c.type == "PodScheduled"]
    assert len(scheduled) == 1
    assert scheduled[0].status == "True" and not scheduled[0].reason
    assert scheduled[0].lastTransitionTime != "2020-01-01T00:00:00Z"


def test_second_bind_is_a_conflict(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "once")
    client.bind(namespace, "once", "n1")
    e = api_error(client.bind, namespace, "once", "n2")
    assert e.code == grpc.StatusCode.ABORTED and e.reason == "Conflict"
    assert e.message == ('Operation cannot be fulfilled on pods/binding "once": '
                         'pod once is already assigned to node "n1"')
    assert client.get("pods", "once", namespace).spec.nodeName == "n1"


def test_pod_created_with_node_name_cannot_be_bound(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "pinned", nodeName="n3")
    e = api_error(client.bind, namespace, "pinned", "n1")
    assert e.reason == "Conflict" and 'already assigned to node "n3"' in e.message


def test_bind_terminating_pod_is_a_conflict(client: Client, namespace: str) -> None:
    p = make_pod(client, namespace, "going")
    p.metadata.finalizers.append("example.com/hold")
    client.update(p)
    client.delete("pods", "going", namespace)
    assert client.get("pods", "going", namespace).metadata.deletionTimestamp
    e = api_error(client.bind, namespace, "going", "n1")
    assert e.reason == "Conflict"
    assert e.message.endswith("pod going is being deleted, cannot be assigned to a host")
    client.patch("pods", "going", {"metadata": {"finalizers": None}}, namespace)


def test_bind_gated_pod_is_a_conflict(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "gated", schedulingGates=[{"name": "example.com/wait"}])
    e = api_error(client.bind, namespace, "gated", "n1")
    assert e.reason == "Conflict"
    assert e.message.endswith("pod gated has non-empty .spec.schedulingGates")


def test_bind_missing_pod_is_not_found(client: Client, namespace: str) -> None:
    e = api_error(client.bind, namespace, "ghost", "n1")
    assert e.code == grpc.StatusCode.NOT_FOUND and e.reason == "NotFound"
    assert e.message == 'pods "ghost" not found'


def _binding(namespace: str, name: str, kind: str, node: str) -> pod_pb2.Binding:
    b = pod_pb2.Binding(apiVersion="v1", kind="Binding")
    b.metadata.namespace, b.metadata.name = namespace, name
    b.target.kind, b.target.name = kind, node
    return b


def test_bind_bad_target_is_invalid(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "t")
    e = api_error(client.bind, namespace, "t", "")
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and e.reason == "Invalid"
    assert e.message == 'Binding "t" is invalid: target.name: Required value'
    e = api_error(client.create, _binding(namespace, "t", "Pod", "n1"))
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.message == ('Binding "t" is invalid: target.kind: Unsupported value: "Pod": '
                         'supported values: "Node", "<empty>"')
    e = api_error(client.bind, namespace, "t", "Bad_Node")
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.message.startswith('Binding "t" is invalid: target.name: Invalid value: '
                                '"Bad_Node": a lowercase RFC 1123 subdomain')
    e = api_error(client.create, _binding(namespace, "", "Node", "n1"))
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.message == 'Binding "" is invalid: metadata.name: Required value'
    # an empty target.kind means Node
    bound = client.create(_binding(namespace, "t", "", "n1"))
    assert bound.spec.nodeName == "n1"


def test_bind_uid_precondition(client: Client, namespace: str) -> None:
    p = make_pod(client, namespace, "pre")
    e = api_error(client.bind, namespace, "pre", "n1", uid="not-the-uid")
    assert e.code == grpc.StatusCode.ABORTED and e.reason == "Conflict"
    assert e.message == ('Operation cannot be fulfilled on pods "pre": Precondition failed: '
                         f"UID in precondition: not-the-uid, UID in object meta: "
                         f"{p.metadata.uid}")
    assert not client.get("pods", "pre", namespace).spec.nodeName
    assert client.bind(namespace, "pre", "n1", uid=p.metadata.uid).spec.nodeName == "n1"


def test_bind_resource_version_precondition(client: Client, namespace: str) -> None:
    p = make_pod(client, namespace, "rv")
    stale = p.metadata.resourceVersion
    client.patch("pods", "rv", {"metadata": {"labels": {"x": "1"}}}, namespace)
    b = _binding(namespace, "rv", "Node", "n1")
    b.metadata.resourceVersion = stale
    e = api_error(client.create, b)
    assert e.reason == "Conflict" and "ResourceVersion in precondition" in e.message
    b.metadata.resourceVersion = client.get("pods", "rv", namespace).metadata.resourceVersion
    assert client.create(b).spec.nodeName == "n1"


def test_dry_run_bind_writes_nothing(client: Client, namespace: str) -> None:
    before = make_pod(client, namespace, "dry")
    out = client.bind(namespace, "dry", "n1", dry_run=True)
    assert out.spec.nodeName == "n1" and condition(out, "PodScheduled") is not None
    assert client.get("pods", "dry", namespace) == before


def test_update_cannot_change_node_name(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "stay")
    bound = client.bind(namespace, "stay", "n1")
    bound.spec.nodeName = "n2"
    e = api_error(client.update, bound)
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and e.reason == "Invalid"
    assert e.message == ('Pod "stay" is invalid: spec.nodeName: Forbidden: pod updates may not '
                         'change spec.nodeName once it is set (the pod is bound to node "n1")')
    e = api_error(client.patch, "pods", "stay", {"spec": {"nodeName": None}}, namespace)
    assert e.reason == "Invalid" and "spec.nodeName: Forbidden" in e.message
    assert client.get("pods", "stay", namespace).spec.nodeName == "n1"
    # other updates of a bound pod still work
    relabeled = client.patch("pods", "stay", {"metadata": {"labels": {"a": "b"}}}, namespace)
    assert relabeled.spec.nodeName == "n1" and relabeled.metadata.labels["a"] == "b"


def test_evict_unbound_pod_removes_it(client: Client, namespace: str) -> None:
    p = make_pod(client, namespace, "free")
    out = client.evict(namespace, "free")
    assert isinstance(out, pod_pb2.Pod) and out.metadata.uid == p.metadata.uid
    e = api_error(client.get, "pods", "free", namespace)
    assert e.not_found


def test_evict_bound_pod_is_graceful(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "busy", terminationGracePeriodSeconds=45)
    client.bind(namespace, "busy", "n1")
    out = client.evict(namespace, "busy")
    assert out.metadata.deletionTimestamp and out.metadata.deletionGracePeriodSeconds == 45
    live = client.get("pods", "busy", namespace)
    assert live.metadata.deletionTimestamp and live.metadata.deletionGracePeriodSeconds == 45
    # a shorter grace period in the eviction's deleteOptions wins
    assert client.evict(namespace, "busy", grace_period_seconds=5
                        ).metadata.deletionGracePeriodSeconds == 5
    # grace period 0 removes it at once
    client.evict(namespace, "busy", grace_period_seconds=0)
    assert api_error(client.get, "pods", "busy", namespace).not_found


def test_evict_missing_pod_is_not_found(client: Client, namespace: str) -> None:
    e = api_error(client.evict, namespace, "ghost")
    assert e.code == grpc.StatusCode.NOT_FOUND and e.message == 'pods "ghost" not found'


def test_evict_dry_run_and_bad_options(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "kept")
    client.evict(namespace, "kept", dry_run=True)
    client.get("pods", "kept", namespace)
    ev = pod_pb2.Eviction(apiVersion="policy/v1", kind="Eviction")
    ev.metadata.namespace, ev.metadata.name = namespace, "kept"
    ev.deleteOptions.dryRun.append("All")
    client.create(ev)
    client.get("pods", "kept", namespace)
    ev.deleteOptions.dryRun[:] = ["Some"]
    e = api_error(client.create, ev)
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT
    assert e.message == ('Eviction "kept" is invalid: deleteOptions.dryRun: Unsupported value: '
                         '"Some": supported values: "All"')
    ev.deleteOptions.ClearField("dryRun")
    ev.deleteOptions.gracePeriodSeconds = -1
    e = api_error(client.create, ev)
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and "gracePeriodSeconds" in e.message
    ev.deleteOptions.ClearField("gracePeriodSeconds")
    ev.deleteOptions.propagationPolicy = "Sideways"
    e = api_error(client.create, ev)
    assert e.code == grpc.StatusCode.INVALID_ARGUMENT and "propagationPolicy" in e.message
    ev.metadata.name = ""
    e = api_error(client.create, ev)
    assert e.message == 'Eviction "" is invalid: metadata.name: Required value'
    client.get("pods", "kept", namespace)


async def test_async_client_bind_and_evict(master: Master, client: Client,
                                           namespace: str) -> None:
    make_pod(client, namespace, "a")
    ac = AsyncClient(server=master.address, timeout=15)
    try:
        bound = await ac.bind(namespace, "a", "n1")
        assert bound.spec.nodeName == "n1"
        gone = await ac.evict(namespace, "a", grace_period_seconds=0)
        assert gone.metadata.name == "a"
    finally:
        await ac.close()
    assert api_error(client.get, "pods", "a", namespace).not_found
