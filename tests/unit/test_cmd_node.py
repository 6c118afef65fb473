"""cordon/taint/drain logic with a fake client: parsing, the taint CAS loop, eviction."""

from __future__ import annotations

import argparse
import io
from typing import Any

import grpc
import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.cli import cmd_node
from kubelite.cli.context import CLIError, Context
from kubelite.client import APIStatusError, ClientConfig
from kubelite.objects import convert


def node(name: str = "n1", taints: list[dict[str, str]] | None = None,
         rv: str = "1") -> Any:
    return convert.from_dict({"apiVersion": "v1", "kind": "Node",
                              "metadata": {"name": name, "resourceVersion": rv},
                              "spec": {"taints": taints or []}}, core_pb2.Node)


def conflict() -> APIStatusError:
    return APIStatusError(grpc.StatusCode.ABORTED, "Conflict", "the object has been modified")


class FakeClient:
    """Serves nodes from a dict; `writes_fail` Conflicts the next N updates, after which
    `meanwhile` (another writer's change) lands in the stored node."""

    def __init__(self, nodes: dict[str, Any]) -> None:
        self.nodes = nodes
        self.writes_fail = 0
        self.meanwhile: dict[str, str] | None = None
        self.updates: list[Any] = []
        self.pods: list[Any] = []
        self.evict_error: APIStatusError | None = None
        self.evicted: list[tuple[str, str, int | None]] = []

    def get(self, resource: str, name: str, namespace: str = "") -> Any:
        if resource == "nodes" and name in self.nodes:
            out = type(self.nodes[name])()
            out.CopyFrom(self.nodes[name])
            return out
        raise APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound",
                             f'{resource} "{name}" not found')

    def update(self, obj: Any) -> Any:
        self.updates.append(obj)
        stored = self.nodes[obj.metadata.name]
        if self.writes_fail:
            self.writes_fail -= 1
            if self.meanwhile:
                stored.spec.taints.add(**self.meanwhile)
            stored.metadata.resourceVersion = str(int(stored.metadata.resourceVersion) + 1)
            raise conflict()
        assert obj.metadata.resourceVersion == stored.metadata.resourceVersion
        stored.CopyFrom(obj)
        return obj

    def list(self, resource: str, namespace: str = "", **kw: Any) -> tuple[list[Any], str]:
        assert resource == "pods"
        return list(self.pods), "1"

    def evict(self, namespace: str, name: str, *, grace_period_seconds: int | None = None
              ) -> Any:
        gone = [p for p in self.pods if p.metadata.name != name]
        if self.evict_error:
            if self.evict_error.not_found:
                self.pods = gone
            raise self.evict_error
        self.evicted.append((namespace, name, grace_period_seconds))
        self.pods = gone


def context(client: FakeClient) -> Context:
    return Context(argparse.Namespace(), ClientConfig(), out=io.StringIO(), err=io.StringIO(),
                   _client=client)  # type: ignore[arg-type]


# ---- parsing -------------------------------------------------------------------

def test_parse_taint_forms() -> None:
    assert cmd_node.parse_taint("k=v:NoSchedule") == cmd_node.TaintSpec("k", "v", "NoSchedule")
    assert cmd_node.parse_taint("example.com/k:NoExecute") == \
        cmd_node.TaintSpec("example.com/k", "", "NoExecute")
    assert cmd_node.parse_taint("k") == cmd_node.TaintSpec("k")
    assert str(cmd_node.TaintSpec("k", "v", "NoSchedule")) == "k=v:NoSchedule"
    assert str(cmd_node.TaintSpec("k", "", "NoSchedule")) == "k:NoSchedule"
    assert str(cmd_node.TaintSpec("k")) == "k"
    with pytest.raises(CLIError, match="invalid taint effect: Never, unsupported"):
        cmd_node.parse_taint("k=v:Never")
    with pytest.raises(CLIError, match="prefix part must be non-empty"):
        cmd_node.parse_taint("/k:NoSchedule")


def test_parse_taints_splits_adds_and_removes() -> None:
    adds, removes = cmd_node.parse_taints(["a=1:NoSchedule", "b:NoExecute-", "c-"])
    assert adds == [cmd_node.TaintSpec("a", "1", "NoSchedule")]
    assert removes == [cmd_node.TaintSpec("b", "", "NoExecute"), cmd_node.TaintSpec("c")]
    # removing by value is accepted, the value is ignored (kubectl matches key and effect)
    assert cmd_node.parse_taints(["a=1:NoSchedule-"])[1] == [
        cmd_node.TaintSpec("a", "", "NoSchedule")]


@pytest.mark.parametrize("text, seconds", [
    ("60s", 60), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("0", 0), ("0s", 0),
    ("45", 45), ("1.5s", 1.5),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert cmd_node.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "s", "-1s", "1s 2s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(CLIError, match='for "--timeout" flag'):
        cmd_node.parse_duration(text)


def test_format_duration_like_go() -> None:
    assert [cmd_node.format_duration(s) for s in (0, 0.5, 1, 45, 60, 90, 3600, 3661)] == \
        ["0s", "500ms", "1s", "45s", "1m0s", "1m30s", "1h0m0s", "1h1m1s"]


# ---- taint ---------------------------------------------------------------------

def test_update_taints_operations() -> None:
    n = node(taints=[{"key": "a", "value": "1", "effect": "NoSchedule"}])
    add = [cmd_node.TaintSpec("b", "", "NoSchedule")]
    op, new = cmd_node.update_taints(n, add, [], overwrite=False)
    assert op == "tainted" and [(t.key, t.effect) for t in new] == [
        ("b", "NoSchedule"), ("a", "NoSchedule")]
    op, new = cmd_node.update_taints(n, [], [cmd_node.TaintSpec("a")], overwrite=False)
    assert op == "untainted" and new == []
    op, new = cmd_node.update_taints(n, [cmd_node.TaintSpec("a", "2", "NoSchedule")], [],
                                     overwrite=True)
    assert op == "modified" and [(t.key, t.value) for t in new] == [("a", "2")]


def test_update_taints_no_execute_time_added() -> None:
    n = node(taints=[{"key": "x", "value": "1", "effect": "NoExecute",
                      "timeAdded": "2020-01-01T00:00:00Z"}])
    same = [cmd_node.TaintSpec("x", "1", "NoExecute")]
    _, new = cmd_node.update_taints(n, same, [], overwrite=True)
    assert new[0].timeAdded == "2020-01-01T00:00:00Z"  # unchanged taint keeps its time
    _, new = cmd_node.update_taints(n, [cmd_node.TaintSpec("x", "2", "NoExecute")], [],
                                    overwrite=True)
    assert new[0].timeAdded != "2020-01-01T00:00:00Z" and new[0].timeAdded.endswith("Z")
    _, new = cmd_node.update_taints(n, [cmd_node.TaintSpec("y", "", "NoSchedule")], [],
                                    overwrite=False)
    assert new[0].timeAdded == ""  # only NoExecute taints record it


def test_taint_retries_on_conflict_and_keeps_the_other_writers_change() -> None:
    fake = FakeClient({"n1": node()})
    fake.writes_fail = 2
    fake.meanwhile = {"key": "by-controller", "effect": "NoExecute"}
    ctx = context(fake)
    adds = [cmd_node.TaintSpec("mine", "1", "NoSchedule")]
    assert cmd_node._taint_node(ctx, "n1", adds, [], False) == "tainted"
    assert len(fake.updates) == 3
    stored = fake.nodes["n1"]
    assert {(t.key, t.effect) for t in stored.spec.taints} == {
        ("mine", "NoSchedule"), ("by-controller", "NoExecute")}


def test_taint_rechecks_overwrite_after_a_conflict() -> None:
    """The other writer added the same key+effect: the retry must now refuse."""
    fake = FakeClient({"n1": node()})
    fake.writes_fail = 1
    fake.meanwhile = {"key": "mine", "value": "theirs", "effect": "NoSchedule"}
    with pytest.raises(CLIError, match="already has mine taint"):
        cmd_node._taint_node(context(fake), "n1",
                             [cmd_node.TaintSpec("mine", "1", "NoSchedule")], [], False)


def test_taint_gives_up_after_repeated_conflicts() -> None:
    fake = FakeClient({"n1": node()})
    fake.writes_fail = 100
    with pytest.raises(CLIError, match="kept changing"):
        cmd_node._taint_node(context(fake), "n1",
                             [cmd_node.TaintSpec("k", "", "NoSchedule")], [], False)


def test_taint_other_api_errors_propagate() -> None:
    fake = FakeClient({"n1": node()})
    with pytest.raises(APIStatusError) as e:
        cmd_node._taint_node(context(fake), "n2",
                             [cmd_node.TaintSpec("k", "", "NoSchedule")], [], False)
    assert e.value.not_found


# ---- drain -----------------------------------------------------------------------

def pod(name: str, owner: str = "ReplicaSet") -> Any:
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner, "name": "o",
                                          "uid": "u", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
    }, pod_pb2.Pod)


def drain_args(**kw: Any) -> argparse.Namespace:
    base = {"force": False, "ignore_daemonsets": False, "delete_emptydir_data": False,
            "grace_period": -1}
    return argparse.Namespace(**{**base, **kw})


def test_drain_node_evicts_with_grace_and_waits() -> None:
    fake = FakeClient({"n1": node()})
    fake.pods = [pod("b"), pod("a")]
    ctx = context(fake)
    cmd_node.drain_node(ctx, "n1", drain_args(grace_period=7), timeout=5)
    assert fake.evicted == [("ns", "a", 7), ("ns", "b", 7)]
    assert ctx.out.getvalue() == ("evicting pod ns/a\nevicting pod ns/b\n"  # type: ignore[attr-defined]
                                  "pod/a evicted\npod/b evicted\n")


def test_drain_node_pod_already_gone_is_fine() -> None:
    fake = FakeClient({"n1": node()})
    fake.pods = [pod("a")]
    fake.evict_error = APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound",
                                      'pods "a" not found')
    ctx = context(fake)  # the pod goes between the list and the eviction
    cmd_node.drain_node(ctx, "n1", drain_args(), timeout=5)
    assert ctx.out.getvalue() == "evicting pod ns/a\npod/a evicted\n"  # type: ignore[attr-defined]


def test_drain_node_eviction_error_is_reported() -> None:
    fake = FakeClient({"n1": node()})
    fake.pods = [pod("a")]
    fake.evict_error = APIStatusError(grpc.StatusCode.FAILED_PRECONDITION, "Forbidden",
                                      'pods "a" is forbidden: no')
    with pytest.raises(cmd_node.DrainError) as e:
        cmd_node.drain_node(context(fake), "n1", drain_args(), timeout=5)
    assert str(e.value) == 'error when evicting pods/"a" -n "ns": pods "a" is forbidden: no'
