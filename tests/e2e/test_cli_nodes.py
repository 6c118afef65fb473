"""kubelite cordon / uncordon / taint / drain against a real master.

The Nodes here are API objects with no node agent behind them: a pod bound
to one is only removed at once when deleted with grace period 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.e2e.conftest import Kl

NodeFactory = Callable[..., str]


@pytest.fixture()
def make_node(client: Client) -> Iterator[NodeFactory]:
    """Creates Ready nodes with unique names; deletes them afterwards."""
    made: list[str] = []

    def make(**spec: Any) -> str:
        name = "node-" + uuid.uuid4().hex[:8]
        client.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec,
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }, core_pb2.Node))
        made.append(name)
        return name

    yield make
    for name in made:
        pods, _ = client.list("pods", field_selector=f"spec.nodeName={name}")
        for p in pods:
            try:
                client.delete("pods", p.metadata.name, p.metadata.namespace,
                              grace_period_seconds=0)
            except APIStatusError:
                pass
        try:
            client.delete("nodes", name)
        except APIStatusError:
            pass


def taints(client: Client, node: str) -> list[dict[str, Any]]:
    return convert.to_dict(client.get("nodes", node)).get("spec", {}).get("taints", [])


def kv_taints(client: Client, node: str) -> set[tuple[str, str, str]]:
    return {(t["key"], t.get("value", ""), t["effect"]) for t in taints(client, node)}


# ---- cordon / uncordon ---------------------------------------------------------

def test_cordon_and_uncordon(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n = make_node()
    assert kl.ok("cordon", n) == f"node/{n} cordoned\n"
    assert client.get("nodes", n).spec.unschedulable
    assert kl.ok("cordon", n) == f"node/{n} already cordoned\n"
    row = next(line.split() for line in kl.ok("get", "nodes").splitlines()
               if line.startswith(n + " "))
    assert row[1] == "Ready,SchedulingDisabled"
    assert kl.ok("uncordon", f"node/{n}") == f"node/{n} uncordoned\n"
    assert not client.get("nodes", n).spec.unschedulable
    assert kl.ok("uncordon", n) == f"node/{n} already uncordoned\n"
    row = next(line.split() for line in kl.ok("get", "nodes").splitlines()
               if line.startswith(n + " "))
    assert row[1] == "Ready"


def test_cordon_by_selector(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n = make_node()
    client.patch("nodes", n, {"metadata": {"labels": {"pool": n}}})
    assert kl.ok("cordon", "-l", f"pool={n}") == f"node/{n} cordoned\n"
    r = kl("cordon", "-l", "pool=no-such-pool")
    assert r.returncode == 0 and r.stdout == "" and "No resources found" in r.stderr


def test_cordon_errors(kl: Kl, make_node: NodeFactory) -> None:
    r = kl("cordon", "no-such-node")
    assert r.returncode == 1
    assert r.stderr == 'Error from server (NotFound): nodes "no-such-node" not found\n'
    r = kl("uncordon", "no-such-node")
    assert r.returncode == 1 and "NotFound" in r.stderr
    r = kl("cordon")
    assert r.returncode == 1 and r.stderr == "error: USAGE: cordon NODE [flags]\n"
    r = kl("cordon", "x", "-l", "a=b")
    assert r.returncode == 1
    assert r.stderr == "error: cannot specify both a node name and a --selector option\n"
    r = kl("cordon", "pod/x")
    assert r.returncode == 1
    assert r.stderr == "error: invalid resource type pod, only node types are supported\n"


# ---- taint ---------------------------------------------------------------------

def test_taint_add_overwrite_remove(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n = make_node()
    assert kl.ok("taint", "nodes", n, "dedicated=gpu:NoSchedule") == f"node/{n} tainted\n"
    assert kv_taints(client, n) == {("dedicated", "gpu", "NoSchedule")}
    assert not taints(client, n)[0].get("timeAdded")

    r = kl("taint", "nodes", n, "dedicated=cpu:NoSchedule")
    assert r.returncode == 1
    assert r.stderr == (f"error: node {n} already has dedicated taint(s) with same effect(s) "
                        "and --overwrite is false\n")
    r = kl("taint", "nodes", n, "dedicated=gpu:NoSchedule")  # same value: still refused
    assert r.returncode == 1 and "--overwrite is false" in r.stderr

    out = kl.ok("taint", "nodes", n, "dedicated=cpu:NoSchedule", "--overwrite")
    assert out == f"node/{n} modified\n"
    assert kv_taints(client, n) == {("dedicated", "cpu", "NoSchedule")}

    # same key, another effect is another taint; a key alone is allowed
    assert kl.ok("taint", f"node/{n}", "dedicated:PreferNoSchedule", "solo:NoSchedule") == \
        f"node/{n} tainted\n"
    assert kv_taints(client, n) == {("dedicated", "cpu", "NoSchedule"),
                                    ("dedicated", "", "PreferNoSchedule"),
                                    ("solo", "", "NoSchedule")}

    assert kl.ok("taint", "no", n, "dedicated:NoSchedule-") == f"node/{n} untainted\n"
    assert kv_taints(client, n) == {("dedicated", "", "PreferNoSchedule"),
                                    ("solo", "", "NoSchedule")}
    # add one and remove another in one command
    assert kl.ok("taint", "nodes", n, "new=1:NoSchedule", "solo-") == f"node/{n} modified\n"
    # key- removes every effect of the key
    kl.ok("taint", "nodes", n, "dedicated=x:NoSchedule")
    assert kl.ok("taint", "nodes", n, "dedicated-") == f"node/{n} untainted\n"
    assert kv_taints(client, n) == {("new", "1", "NoSchedule")}


def test_no_execute_taint_records_time_added(kl: Kl, client: Client,
                                             make_node: NodeFactory) -> None:
    n = make_node()
    kl.ok("taint", "nodes", n, "maint=yes:NoExecute")
    (t,) = taints(client, n)
    assert t["effect"] == "NoExecute" and t["timeAdded"].endswith("Z")
    # untouched NoExecute taints keep their time when others change
    kl.ok("taint", "nodes", n, "other=1:NoSchedule")
    again = next(x for x in taints(client, n) if x["key"] == "maint")
    assert again["timeAdded"] == t["timeAdded"]


def test_taint_is_a_compare_and_swap(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    """Taints added by someone else meanwhile survive (the write is a fresh read + CAS)."""
    n = make_node(taints=[{"key": "by-controller", "effect": "NoSchedule"}])
    kl.ok("taint", "nodes", n, "by-admin=1:NoSchedule")
    assert kv_taints(client, n) == {("by-controller", "", "NoSchedule"),
                                    ("by-admin", "1", "NoSchedule")}


@pytest.mark.parametrize("args, error", [
    (["dedicated=gpu:Sometimes"], "invalid taint effect: Sometimes, unsupported taint effect"),
    (["dedicated=gpu"], "invalid taint spec: dedicated=gpu"),
    (["a=b=c:NoSchedule"], "invalid taint spec: a=b=c:NoSchedule"),
    (["a:b:NoSchedule"], "invalid taint spec: a:b:NoSchedule"),
    (["bad key!:NoSchedule"], "invalid taint spec: bad key!:NoSchedule, name part must consist"),
    (["k=bad value!:NoSchedule"], "invalid taint spec: k=bad value!:NoSchedule, a valid label "
                                  "must be an empty string"),
    (["k=1:NoSchedule", "k=2:NoSchedule"],
     "duplicated taints with the same key and effect: k=2:NoSchedule"),
    (["k=1:NoSchedule", "k-"],
     "can not both modify and remove the following taint(s) in the same command: k="),
    (["k=1:NoSchedule", "k:NoSchedule-"],
     "can not both modify and remove the following taint(s) in the same command: "
     "k=NoSchedule"),
    (["missing-"], 'taint "missing" not found'),
    (["missing:NoExecute-"], 'taint "missing:NoExecute" not found'),
    (["missing-", "gone:NoSchedule-"],
     '[taint "missing" not found, taint "gone:NoSchedule" not found]'),
    ([], "at least one taint update is required"),
    (["k=1:NoSchedule", "extra"], "all resources must be specified before taint changes: extra"),
])
def test_taint_errors(kl: Kl, client: Client, make_node: NodeFactory, args: list[str],
                      error: str) -> None:
    n = make_node(taints=[{"key": "keep", "value": "1", "effect": "NoSchedule"}])
    before = client.get("nodes", n).metadata.resourceVersion
    r = kl("taint", "nodes", n, *args)
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith(f"error: {error}"), r.stderr
    assert r.stdout == ""
    assert client.get("nodes", n).metadata.resourceVersion == before


def test_taint_target_errors(kl: Kl) -> None:
    r = kl("taint", "nodes", "no-such-node", "k=v:NoSchedule")
    assert r.returncode == 1
    assert r.stderr == 'Error from server (NotFound): nodes "no-such-node" not found\n'
    r = kl("taint", "pods", "p", "k=v:NoSchedule")
    assert r.returncode == 1
    assert r.stderr == "error: invalid resource type pods, only node types are supported\n"
    r = kl("taint", "nodes", "k=v:NoSchedule")
    assert r.returncode == 1 and r.stderr == (
        "error: at least one resource name must be specified since 'all' parameter is not "
        "set\n")
    r = kl("taint", "nodes", "k=v:NoSchedule", "--all", "-l", "a=b")
    assert r.returncode == 1 and "'all' parameter with a non empty selector" in r.stderr
    r = kl("taint", "k=v:NoSchedule")
    assert r.returncode == 1 and r.stderr == (
        "error: one or more resources must be specified as <resource> <name>\n")


def test_taint_by_selector(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    a, b = make_node(), make_node()
    for n in (a, b):
        client.patch("nodes", n, {"metadata": {"labels": {"group": a}}})
    out = kl.ok("taint", "nodes", "-l", f"group={a}", "g=1:NoSchedule")
    assert sorted(out.splitlines()) == sorted([f"node/{a} tainted", f"node/{b} tainted"])


# ---- drain -----------------------------------------------------------------------

def bound_pod(client: Client, namespace: str, name: str, node: str, *,
              owner: dict[str, Any] | None = None, **spec: Any) -> pod_pb2.Pod:
    md: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        md["ownerReferences"] = [{"apiVersion": "apps/v1", "controller": True, **owner}]
    return client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": md,
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1.36"}],
                 **spec},
    }, pod_pb2.Pod))


def replica_owner() -> dict[str, Any]:
    return {"kind": "ReplicaSet", "name": "web-abc", "uid": str(uuid.uuid4())}


def daemon_set(client: Client, namespace: str, name: str) -> dict[str, Any]:
    ds = client.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}},
    }, apps_pb2.DaemonSet))
    return {"kind": "DaemonSet", "name": name, "uid": ds.metadata.uid}


def exists(client: Client, namespace: str, name: str) -> bool:
    try:
        client.get("pods", name, namespace)
        return True
    except APIStatusError as e:
        assert e.not_found
        return False


def test_drain_refuses_unmanaged_pods_without_force(kl: Kl, client: Client,
                                                    make_node: NodeFactory) -> None:
    n = make_node()
    ns = kl.namespace
    bound_pod(client, ns, "bare", n)
    r = kl("drain", n)
    assert r.returncode == 1
    assert r.stdout == f"node/{n} cordoned\n"
    err = ("cannot delete Pods that declare no controller (use --force to override): "
           f"{ns}/bare")
    assert r.stderr == (f'error: unable to drain node "{n}" due to error: {err}, '
                        "continuing command...\n"
                        "There are pending nodes to be drained:\n"
                        f" {n}\n"
                        f"{err}\n")
    assert exists(client, ns, "bare")
    assert client.get("nodes", n).spec.unschedulable  # cordoned all the same, as kubectl


def test_drain_reports_every_refusal(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n = make_node()
    ns = kl.namespace
    bound_pod(client, ns, "agent", n, owner=daemon_set(client, ns, "agent"))
    bound_pod(client, ns, "cache", n, owner=replica_owner(),
              volumes=[{"name": "scratch", "emptyDir": {}}])
    bound_pod(client, ns, "orphan", n, owner={"kind": "DaemonSet", "name": "gone",
                                              "uid": str(uuid.uuid4())})
    bound_pod(client, ns, "bare", n)
    r = kl("drain", n)
    assert r.returncode == 1
    errs = [f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
            f"{ns}/agent",
            f'daemonsets.apps "gone" not found: {ns}/orphan',
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): "
            f"{ns}/cache",
            f"cannot delete Pods that declare no controller (use --force to override): {ns}/bare"]
    first = r.stderr.splitlines()[0]
    assert first.startswith(f'error: unable to drain node "{n}" due to error: [')
    assert first.endswith("], continuing command...")
    for e in errs:
        assert e in first
    assert r.stderr.splitlines()[-4:] == errs
    for p in ("agent", "cache", "orphan", "bare"):
        assert exists(client, ns, p)


def test_drain_skips_daemonset_pods_and_evicts_the_rest(
        kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n, other = make_node(), make_node()
    ns = kl.namespace
    bound_pod(client, ns, "agent", n, owner=daemon_set(client, ns, "agent"))
    bound_pod(client, ns, "web-1", n, owner=replica_owner())
    bound_pod(client, ns, "web-2", n, owner=replica_owner())
    bound_pod(client, ns, "cache", n, owner=replica_owner(),
              volumes=[{"name": "scratch", "emptyDir": {}}])
    bound_pod(client, ns, "bare", n)
    bound_pod(client, ns, "elsewhere", other)
    r = kl("drain", n, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
           "--grace-period", "0")
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"Warning: ignoring DaemonSet-managed Pods: {ns}/agent; "
                        f"deleting Pods with local storage: {ns}/cache; "
                        f"deleting Pods that declare no controller: {ns}/bare\n")
    lines = r.stdout.splitlines()
    assert lines[0] == f"node/{n} cordoned" and lines[-1] == f"node/{n} drained"
    evicting = [f"evicting pod {ns}/{p}" for p in ("bare", "cache", "web-1", "web-2")]
    evicted = [f"pod/{p} evicted" for p in ("bare", "cache", "web-1", "web-2")]
    assert lines[1:5] == evicting
    assert sorted(lines[5:-1]) == evicted
    for p in ("bare", "cache", "web-1", "web-2"):
        assert not exists(client, ns, p)
    assert exists(client, ns, "agent") and exists(client, ns, "elsewhere")
    assert client.get("nodes", n).spec.unschedulable
    assert not client.get("nodes", other).spec.unschedulable
    row = next(line.split() for line in kl.ok("get", "nodes").splitlines()
               if line.startswith(n + " "))
    assert row[1] == "Ready,SchedulingDisabled"


def test_drain_orphaned_daemonset_pod_needs_force(kl: Kl, client: Client,
                                                  make_node: NodeFactory) -> None:
    n = make_node()
    ns = kl.namespace
    bound_pod(client, ns, "orphan", n, owner={"kind": "DaemonSet", "name": "gone",
                                              "uid": str(uuid.uuid4())})
    r = kl("drain", n, "--force", "--grace-period=0")
    assert r.returncode == 0, r.stderr
    assert r.stderr == f'Warning: daemonsets.apps "gone" not found: {ns}/orphan\n'
    assert f"pod/orphan evicted\nnode/{n} drained\n" in r.stdout
    assert not exists(client, ns, "orphan")


def test_drain_empty_and_finished_pods(kl: Kl, client: Client, make_node: NodeFactory) -> None:
    n = make_node(unschedulable=True)
    ns = kl.namespace
    done = bound_pod(client, ns, "done", n, volumes=[{"name": "tmp", "emptyDir": {}}])
    done.status.phase = "Succeeded"
    client.update_status(done)
    # a finished pod needs neither --force nor --delete-emptydir-data, and goes at once
    out = kl.ok("drain", n)
    assert out == (f"node/{n} already cordoned\nevicting pod {ns}/done\npod/done evicted\n"
                   f"node/{n} drained\n")
    assert kl.ok("drain", n) == f"node/{n} already cordoned\nnode/{n} drained\n"


def test_drain_times_out_when_pods_do_not_go(kl: Kl, client: Client,
                                             make_node: NodeFactory) -> None:
    n = make_node()
    ns = kl.namespace
    bound_pod(client, ns, "slow", n, owner=replica_owner())
    r = kl("drain", n, "--timeout", "1s")
    assert r.returncode == 1
    assert r.stdout == f"node/{n} cordoned\nevicting pod {ns}/slow\n"
    assert r.stderr == (f'error: unable to drain node "{n}" due to error: drain did not '
                        "complete within 1s, continuing command...\n"
                        f"There are pending nodes to be drained:\n {n}\n"
                        "drain did not complete within 1s\n")
    # evicted gracefully: marked, waiting for a node agent that does not exist
    p = client.get("pods", "slow", ns)
    assert p.metadata.deletionTimestamp and p.metadata.deletionGracePeriodSeconds == 30


def test_drain_argument_errors(kl: Kl, make_node: NodeFactory) -> None:
    r = kl("drain", "no-such-node")
    assert r.returncode == 1
    assert r.stderr == 'Error from server (NotFound): nodes "no-such-node" not found\n'
    n = make_node()
    r = kl("drain", n, "--timeout", "soon")
    assert r.returncode == 1
    assert r.stderr == ('error: invalid argument "soon" for "--timeout" flag: time: invalid '
                        'duration "soon"\n')
    r = kl("drain")
    assert r.returncode == 1 and r.stderr == "error: USAGE: drain NODE [flags]\n"


def test_node_commands_in_help(kl: Kl) -> None:
    out = kl.ok("--help", ns=False)
    for verb in ("cordon", "uncordon", "taint", "drain"):
        assert verb in out
