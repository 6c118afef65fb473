"""kubelite top against the real master: NodeMetrics/PodMetrics written here
(with Nodes and Pods for them), then the whole chain with a real node agent
reporting a real busy container."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2, metrics_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert, quantity
from tests.cluster import Master
from tests.e2e.conftest import Kl

API = "metrics.k8s.io/v1beta1"
# built locally (hack/build-images.sh): a :latest image must not be pulled
LOCAL_IMAGE = {"image": "kubelite/busybox:latest", "imagePullPolicy": "IfNotPresent"}


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


@pytest.fixture()
def made(client: Client) -> Iterator[list[tuple[str, str, str]]]:
    """(resource, namespace, name) to delete afterwards."""
    objs: list[tuple[str, str, str]] = []
    yield objs
    for resource, ns, name in reversed(objs):
        try:
            client.delete(resource, name, ns, grace_period_seconds=0 if resource == "pods"
                          else None)
        except APIStatusError:
            pass


@pytest.fixture()
def node(client: Client, made: list[tuple[str, str, str]]) -> str:
    """A Node with 2 cpus and 4Gi allocatable, and its NodeMetrics: 500m and 1Gi used."""
    name = "top-" + uuid.uuid4().hex[:8]
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"top-test": name}},
        "status": {"capacity": {"cpu": "4", "memory": "8Gi"},
                   "allocatable": {"cpu": "2", "memory": "4Gi"}}}, core_pb2.Node))
    made.append(("nodes", "", name))
    client.create(convert.from_dict({
        "apiVersion": API, "kind": "NodeMetrics", "metadata": {"name": name},
        "timestamp": "2026-01-01T00:00:00Z", "window": "10s",
        "usage": {"cpu": "500m", "memory": "1048576Ki"}}, metrics_pb2.NodeMetrics))
    made.append(("nodemetrics", "", name))
    return name


PodFactory = Callable[..., None]


@pytest.fixture()
def make_pod(client: Client, namespace: str, made: list[tuple[str, str, str]]) -> PodFactory:
    def make(name: str, containers: dict[str, tuple[str, str]] | None,
             labels: dict[str, str] | None = None) -> None:
        """A Pod (never run: no agent behind it) and, unless None, its PodMetrics."""
        names = list(containers or {"app": ("0", "0")})
        client.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": [{"name": c, "image": "kubelite/busybox:latest"}
                                    for c in names]}}, pod_pb2.Pod))
        made.append(("pods", namespace, name))
        if containers is None:
            return
        client.create(convert.from_dict({
            "apiVersion": API, "kind": "PodMetrics",
            "metadata": {"name": name, "namespace": namespace},
            "timestamp": "2026-01-01T00:00:00Z", "window": "10s",
            "containers": [{"name": c, "usage": {"cpu": cpu, "memory": mem}}
                           for c, (cpu, mem) in containers.items()]}, metrics_pb2.PodMetrics))
        made.append(("podmetrics", namespace, name))

    return make


def test_top_nodes(kl: Kl, node: str) -> None:
    out = kl.ok("top", "nodes", node, ns=False)
    assert rows(out) == [["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
                         [node, "500m", "25%", "1024Mi", "25%"]]
    assert out.splitlines()[0].startswith("NAME" + " " * (len(node) + 3 - 4) + "CPU(cores)")
    assert rows(kl.ok("top", "node", "-l", f"top-test={node}", ns=False))[1:] == \
        [[node, "500m", "25%", "1024Mi", "25%"]]
    assert rows(kl.ok("top", "no", node, "--show-capacity", "--no-headers", ns=False)) == \
        [[node, "500m", "12%", "1024Mi", "12%"]]
    assert [node, "500m", "25%", "1024Mi", "25%"] in rows(kl.ok("top", "nodes", ns=False))


def test_top_nodes_errors(kl: Kl, node: str) -> None:
    r = kl("top", "nodes", "-l", "top-test=nothing-" + node, ns=False)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: metrics not available yet\n")
    r = kl("top", "nodes", "no-such-" + node, ns=False)
    assert r.returncode == 1
    assert r.stderr == (f'Error from server (NotFound): nodemetrics.metrics.k8s.io '
                        f'"no-such-{node}" not found\n')
    r = kl("top", "nodes", node, "-l", "a=b", ns=False)
    assert (r.returncode, r.stderr) == (1, "error: only one of NAME or --selector can be "
                                           "provided\n")


def test_top_pods(kl: Kl, namespace: str, make_pod: PodFactory) -> None:
    make_pod("web", {"nginx": ("250m", "51200Ki"), "sidecar": ("5m", "10Mi")}, {"app": "web"})
    make_pod("db", {"postgres": ("1", "1Gi")}, {"app": "db"})
    assert rows(kl.ok("top", "pods")) == [["NAME", "CPU(cores)", "MEMORY(bytes)"],
                                          ["db", "1000m", "1024Mi"],
                                          ["web", "255m", "60Mi"]]
    assert rows(kl.ok("top", "pod", "web", "--containers")) == [
        ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
        ["web", "nginx", "250m", "50Mi"], ["web", "sidecar", "5m", "10Mi"]]
    assert rows(kl.ok("top", "po", "-l", "app=web", "--no-headers")) == [["web", "255m", "60Mi"]]
    assert rows(kl.ok("top", "pods", "--sort-by", "cpu", "--sum")) == [
        ["NAME", "CPU(cores)", "MEMORY(bytes)"], ["db", "1000m", "1024Mi"],
        ["web", "255m", "60Mi"], ["________", "________"], ["1255m", "1084Mi"]]
    all_ns = rows(kl.ok("top", "pods", "-A", ns=False))
    assert all_ns[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert [r for r in all_ns if r[0] == namespace] == [[namespace, "db", "1000m", "1024Mi"],
                                                          [namespace, "web", "255m", "60Mi"]]


def test_top_pods_without_metrics(kl: Kl, namespace: str, make_pod: PodFactory) -> None:
    r = kl("top", "pods")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", f"No resources found in {namespace} "
                                                         "namespace.\n")
    make_pod("fresh", None, {"app": "fresh"})  # just created: metrics may still come
    r = kl("top", "pods")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "error: metrics not available yet\n")
    r = kl("top", "pods", "fresh")
    assert r.returncode == 1
    assert r.stderr == ('Error from server (NotFound): podmetrics.metrics.k8s.io "fresh" not '
                        "found\n")
    make_pod("measured", {"app": ("1m", "1Ki")})
    assert rows(kl.ok("top", "pods", "--no-headers")) == [["measured", "1m", "0Mi"]]
    r = kl("top", "pods", "--sort-by", "disk")
    assert (r.returncode, r.stderr) == (1, "error: --sort-by accepts only cpu or memory\n")


# ---- the whole chain: agent -> cgroups -> API -> kubelite top ---------------------------

def test_top_shows_what_a_real_node_measures(master: Master, client: Client, kl: Kl,
                                             namespace: str) -> None:
    from tests.node_agent import ensure_docker, run_node, wait_for

    ensure_docker()
    with run_node(master.address, "--metrics-interval", "1") as agent:
        try:
            wait_for(lambda: client.get("nodes", agent.name), 30, "node registration")
            client.create(convert.from_dict({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "burn", "namespace": namespace},
                "spec": {"nodeName": agent.name, "terminationGracePeriodSeconds": 0,
                         "containers": [
                             {"name": "burner", "command": ["sh", "-c", "while :; do :; done"],
                              **LOCAL_IMAGE},
                             {"name": "idle", "command": ["sleep", "3600"], **LOCAL_IMAGE}]}},
                pod_pb2.Pod))

            def busy() -> Any:
                pm = client.get("podmetrics", "burn", namespace)
                cpu = {c.name: quantity.milli(c.usage["cpu"].string) for c in pm.containers}
                return pm if cpu.get("burner", 0) > 300 else None

            pm = wait_for(busy, 60, "PodMetrics of the busy pod")
            usage = {c.name: (quantity.milli(c.usage["cpu"].string),
                              quantity.value(c.usage["memory"].string)) for c in pm.containers}
            assert set(usage) == {"burner", "idle"}  # no sandbox
            assert usage["idle"][0] < 50 and all(mem > 0 for _, mem in usage.values())
            assert pm.metadata.labels["metrics.kubelite.io/node"] == agent.name

            out = rows(kl.ok("top", "pods", "burn", "--containers"))
            assert [r[:2] for r in out[1:]] == [["burn", "burner"], ["burn", "idle"]]
            assert int(out[1][2].rstrip("m")) > 300
            node_row = rows(kl.ok("top", "nodes", agent.name, ns=False))[1]
            assert node_row[0] == agent.name and int(node_row[1].rstrip("m")) > 300

            client.delete("pods", "burn", namespace, grace_period_seconds=0)
            wait_for(lambda: _gone(client, "burn", namespace), 60, "PodMetrics removal")
        except AssertionError as e:
            raise AssertionError(f"{e}\nagent log:\n{agent.logs()}") from None
        finally:
            for resource, ns in (("pods", namespace), ("podmetrics", namespace)):
                try:
                    client.delete(resource, "burn", ns)
                except APIStatusError:
                    pass
            for resource in ("nodemetrics", "nodes"):
                try:
                    client.delete(resource, agent.name)
                except APIStatusError:
                    pass


def _gone(client: Client, name: str, namespace: str) -> bool:
    try:
        client.get("podmetrics", name, namespace)
    except APIStatusError as e:
        return e.not_found
    return False
