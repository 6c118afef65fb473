"""The API side of node failures, against a real etcd: the
DefaultTolerationSeconds admission, and a force delete (grace 0) of a pod
bound to a node that will never confirm."""

from __future__ import annotations

from kubelite.api import pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert

NO_SCHEDULER = "test-no-scheduler"
UNREACHABLE, NOT_READY = "node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"


def make_pod(client: Client, namespace: str, name: str, **spec: object) -> pod_pb2.Pod:
    return client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedulerName": NO_SCHEDULER,
                 "containers": [{"name": "c", "image": "busybox:1.36"}], **spec},
    }, pod_pb2.Pod))


def tolerations(p: pod_pb2.Pod) -> set[tuple[str, str, int | None]]:
    return {(t.key, t.effect, t.tolerationSeconds if t.HasField("tolerationSeconds") else None)
            for t in p.spec.tolerations}


def test_every_pod_gets_default_noexecute_tolerations(client: Client, namespace: str) -> None:
    p = make_pod(client, namespace, "plain")
    assert tolerations(p) == {(NOT_READY, "NoExecute", 300), (UNREACHABLE, "NoExecute", 300)}
    # A daemon pod's tolerations (no seconds) are kept as they are.
    d = make_pod(client, namespace, "daemon", tolerations=[
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"},
        {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute"}])
    assert tolerations(d) == {(NOT_READY, "NoExecute", None), (UNREACHABLE, "NoExecute", None)}
    own = make_pod(client, namespace, "own", tolerations=[
        {"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 7}])
    assert tolerations(own) == {(UNREACHABLE, "NoExecute", 7), (NOT_READY, "NoExecute", 300)}


def test_force_delete_of_a_bound_pod(client: Client, namespace: str) -> None:
    make_pod(client, namespace, "stuck")
    client.bind(namespace, "stuck", "gone-node")
    marked = client.delete("pods", "stuck", namespace)
    assert marked.metadata.deletionTimestamp  # Terminating: waits for its node
    assert client.get("pods", "stuck", namespace).metadata.deletionTimestamp
    client.delete("pods", "stuck", namespace, grace_period_seconds=0)  # --force
    try:
        client.get("pods", "stuck", namespace)
        raise AssertionError("the pod is still there")
    except APIStatusError as e:
        assert e.not_found
    make_pod(client, namespace, "fresh")  # never marked: grace 0 removes it at once
    client.bind(namespace, "fresh", "gone-node")
    client.delete("pods", "fresh", namespace, grace_period_seconds=0)
    assert not [p for p in client.list("pods", namespace)[0] if p.metadata.name == "fresh"]
