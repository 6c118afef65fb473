"""kubelite top's tables (kubectl's exact layout) and the metrics objects the node writes."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest

from kubelite.api import metrics_pb2, pod_pb2
from kubelite.cli import cmd_top
from kubelite.cli.age import go_duration
from kubelite.cli.context import CLIError, Context
from kubelite.client import APIStatusError, ClientConfig
from node import metrics
from node.stats import ContainerUsage, NodeUsage, PodUsage, Sample


def node_m(name: str, cpu: str, mem: str) -> metrics_pb2.NodeMetrics:
    m = metrics_pb2.NodeMetrics()
    m.metadata.name = name
    m.usage["cpu"].string, m.usage["memory"].string = cpu, mem
    return m


def pod_m(ns: str, name: str, containers: list[tuple[str, str, str]]) -> metrics_pb2.PodMetrics:
    m = metrics_pb2.PodMetrics()
    m.metadata.name, m.metadata.namespace = name, ns
    for c, cpu, mem in containers:
        cm = m.containers.add(name=c)
        cm.usage["cpu"].string, cm.usage["memory"].string = cpu, mem
    return m


PODS = [pod_m("default", "web", [("nginx", "100m", "10240Ki"), ("side", "5m", "2048Ki")]),
        pod_m("kube", "dns", [("dns", "1", "20Mi")])]


def lines(*rows: str) -> str:
    return "".join(r + "\n" for r in rows)


# ---- tables -------------------------------------------------------------------------

def test_node_table() -> None:
    text = cmd_top.node_table(
        [node_m("node-b", "1500m", "2097152Ki"), node_m("node-a", "250m", "1048576Ki")],
        {"node-a": {"cpu": Decimal(2), "memory": Decimal(4 << 30)}, "node-b": {},
         "node-c": {}})
    assert text == lines(
        "NAME     CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%     ",
        "node-a   250m         12%         1024Mi          25%         ",
        "node-b   1500m        <unknown>   2048Mi          <unknown>   ",
        "node-c   <unknown>    <unknown>   <unknown>       <unknown>   ")


def test_node_table_rounding_and_sorting() -> None:
    avail = {"cpu": Decimal(3), "memory": Decimal(3 << 20)}
    ms = [node_m("a", "999m", "1Mi"), node_m("b", "2", "2Mi"), node_m("c", "1n", "1536Ki")]
    text = cmd_top.node_table(ms, {"a": avail, "b": avail, "c": avail}, sort_by="cpu",
                              no_headers=True)
    # 999/3000 = 33.3% -> 33%; 1n cpu is 1m (rounded up); 1.5Mi prints as 1Mi
    assert [ln.split() for ln in text.splitlines()] == [
        ["b", "2000m", "66%", "2Mi", "66%"], ["a", "999m", "33%", "1Mi", "33%"],
        ["c", "1m", "0%", "1Mi", "50%"]]
    by_mem = cmd_top.node_table(ms, {}, sort_by="memory", no_headers=True)
    assert [ln.split()[0] for ln in by_mem.splitlines()] == ["b", "c", "a"]
    assert cmd_top.node_table([], {"a": avail}) == ""


def test_pod_table() -> None:
    assert cmd_top.pod_table(PODS) == lines(
        "NAME   CPU(cores)   MEMORY(bytes)   ",
        "dns    1000m        20Mi            ",
        "web    105m         12Mi            ")
    assert cmd_top.pod_table(PODS, with_namespace=True) == lines(
        "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)   ",
        "default     web    105m         12Mi            ",
        "kube        dns    1000m        20Mi            ")


def test_pod_table_containers_sum_sort() -> None:
    assert cmd_top.pod_table(PODS, containers=True, with_namespace=True) == lines(
        "NAMESPACE   POD   NAME    CPU(cores)   MEMORY(bytes)   ",
        "default     web   nginx   100m         10Mi            ",
        "default     web   side    5m           2Mi             ",
        "kube        dns   dns     1000m        20Mi            ")
    assert cmd_top.pod_table(PODS, show_sum=True) == lines(
        "NAME   CPU(cores)   MEMORY(bytes)   ",
        "dns    1000m        20Mi            ",
        "web    105m         12Mi            ",
        "       ________     ________        ",
        "       1105m        32Mi            ")
    text = cmd_top.pod_table(PODS, containers=True, sort_by="memory", no_headers=True)
    assert [ln.split()[:2] for ln in text.splitlines()] == [
        ["dns", "dns"], ["web", "nginx"], ["web", "side"]]


# ---- commands with a fake client --------------------------------------------------

def not_found(resource: str, name: str) -> APIStatusError:
    return APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound",
                          f'{resource} "{name}" not found')


class FakeClient:
    def __init__(self, objs: dict[str, list[Any]]) -> None:
        self.objs = objs

    def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
             field_selector: str = "") -> tuple[list[Any], str]:
        items = [o for o in self.objs.get(resource, [])
                 if not namespace or o.metadata.namespace == namespace]
        if label_selector:
            k, _, v = label_selector.partition("=")
            items = [o for o in items if o.metadata.labels.get(k) == v]
        return items, "1"

    def get(self, resource: str, name: str, namespace: str = "") -> Any:
        for o in self.objs.get(resource, []):
            if o.metadata.name == name and o.metadata.namespace == namespace:
                return o
        raise not_found(resource, name)


def pod(ns: str, name: str, age: float, labels: dict[str, str] | None = None) -> Any:
    p = pod_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, ns
    p.metadata.labels.update(labels or {})
    created = datetime.now(UTC) - timedelta(seconds=age)
    p.metadata.creationTimestamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return p


def run_pods(client: FakeClient, **flags: Any) -> tuple[int, str, str]:
    args = argparse.Namespace(name=None, all_namespaces=False, selector="", containers=False,
                              no_headers=False, sort_by="", sum=False, namespace="default",
                              request_timeout=5)
    vars(args).update(flags)
    ctx = Context(args, ClientConfig(), out=io.StringIO(), err=io.StringIO(),
                  _client=client)  # type: ignore[arg-type]
    code = cmd_top.run_pods(ctx, args)
    return code, ctx.out.getvalue(), ctx.err.getvalue()  # type: ignore[attr-defined]


def test_top_pods_errors_like_kubectl() -> None:
    young = FakeClient({"pods": [pod("default", "new", 5)]})
    with pytest.raises(CLIError, match="^metrics not available yet$"):
        run_pods(young)
    old = FakeClient({"pods": [pod("default", "new", 5), pod("default", "old", 300)]})
    with pytest.raises(CLIError, match=r"^Metrics not available for pod default/old, "
                                       r"age: 5m\d+(\.\d+)?s$"):
        run_pods(old)
    assert run_pods(FakeClient({})) == (0, "", "No resources found in default namespace.\n")
    assert run_pods(FakeClient({}), all_namespaces=True) == (0, "", "No resources found\n")
    with pytest.raises(CLIError, match="only one of NAME or --selector"):
        run_pods(young, name="x", selector="a=b")
    with pytest.raises(CLIError, match="--sort-by accepts only cpu or memory"):
        run_pods(young, sort_by="disk")


def test_top_pods_shows_metrics_of_existing_selected_pods_only() -> None:
    web, dns = PODS
    client = FakeClient({"pods": [pod("default", "web", 5, {"app": "web"}),
                                  pod("kube", "dns", 5)],
                         "podmetrics": [web, dns, pod_m("default", "gone", [])]})
    code, out, _ = run_pods(client, all_namespaces=True)
    assert [ln.split()[:2] for ln in out.splitlines()] == [
        ["NAMESPACE", "NAME"], ["default", "web"], ["kube", "dns"]]
    _, out, _ = run_pods(client, selector="app=web")
    assert [ln.split()[0] for ln in out.splitlines()] == ["NAME", "web"]
    with pytest.raises(APIStatusError, match="not found"):
        run_pods(client, name="nothere")


# ---- what the node writes ------------------------------------------------------

def test_usage_quantities() -> None:
    assert metrics.cpu_quantity(250) == "250m"
    assert metrics.cpu_quantity(0) == "0"
    assert metrics.cpu_quantity(2000) == "2"
    assert metrics.cpu_quantity(-3) == "0"
    assert metrics.memory_quantity(123456 * 1024) == "123456Ki"
    assert metrics.memory_quantity(1025) == "2Ki"  # rounded up
    assert metrics.memory_quantity(1 << 20) == "1024Ki"
    assert metrics.memory_quantity(0) == "0"
    assert go_duration(10.0) == "10s"
    assert go_duration(9.9984) == "9.998s"
    assert go_duration(90) == "1m30s"
    assert go_duration(0.25) == "250ms"
    assert go_duration(0) == "0s"


def test_owner_value() -> None:
    assert metrics.owner_value("node-1") == "node-1"
    long = "n" * 70 + ".example.com"
    v = metrics.owner_value(long)
    assert v.startswith("sha256-") and len(v) <= 63 and v == metrics.owner_value(long)


def test_metrics_objects() -> None:
    sample = Sample(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC), 10.0021,
                    NodeUsage(1234, 2 << 30),
                    [PodUsage("u1", "web", "prod", [ContainerUsage("a", "id1", 250, 5 << 20),
                                                     ContainerUsage("b", "id2", 0, 1000)])])
    nm = metrics.node_metrics("n1", sample)
    assert nm is not None
    assert (nm.apiVersion, nm.kind, nm.metadata.name) == ("metrics.k8s.io/v1beta1",
                                                          "NodeMetrics", "n1")
    assert (nm.timestamp, nm.window) == ("2026-01-02T03:04:05Z", "10.002s")
    assert {k: v.string for k, v in nm.usage.items()} == {"cpu": "1234m",
                                                          "memory": "2097152Ki"}
    pm = metrics.pod_metrics("n1", sample.pods[0], sample)
    assert (pm.kind, pm.metadata.namespace, pm.metadata.name) == ("PodMetrics", "prod", "web")
    assert dict(pm.metadata.labels) == {metrics.NODE_LABEL: "n1"}
    assert [(c.name, c.usage["cpu"].string, c.usage["memory"].string)
            for c in pm.containers] == [("a", "250m", "5120Ki"), ("b", "0", "1Ki")]
    sample.node.cpu_millicores = None
    assert metrics.node_metrics("n1", sample) is None
