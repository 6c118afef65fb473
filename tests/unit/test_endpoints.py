"""The Endpoints computation (pure): readiness, named ports, hostnames, kube-dns."""

from __future__ import annotations

from typing import Any

from kubelite.api import core_pb2, pod_pb2
from kubelite.objects import convert, defaults
from master.controllers.dnsendpoints import dns_subsets
from master.controllers.endpoints import endpoint_subsets, endpoints_labels


def service(ports: list[dict[str, Any]] | None = None, **spec: Any) -> Any:
    obj = convert.from_dict({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "web", "namespace": "ns",
                                          "labels": {"app": "web"}},
                             "spec": {"selector": {"app": "web"},
                                      "ports": ports if ports is not None else [{"port": 80}],
                                      **spec}}, core_pb2.Service)
    defaults.apply(obj)
    return obj


def pod(name: str, ip: str, *, ready: bool = True, ports: list[dict[str, Any]] | None = None,
        labels: dict[str, str] | None = None, phase: str = "Running", deleting: bool = False,
        **spec: Any) -> Any:
    md: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                          "labels": labels if labels is not None else {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": md,
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "i",
                                                      "ports": ports or []}], **spec},
        "status": {"phase": phase, "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }, pod_pb2.Pod)


def addr(name: str, ip: str, **extra: Any) -> dict[str, Any]:
    return {"ip": ip, "nodeName": "node-1",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"uid-{name}"},
            **extra}


def test_ready_and_not_ready_addresses() -> None:
    pods = [pod("b", "10.244.1.3"), pod("a", "10.244.1.2"), pod("c", "10.244.1.4", ready=False),
            pod("other", "10.244.1.9", labels={"app": "db"}), pod("noip", ""),
            pod("done", "10.244.1.5", phase="Succeeded"),
            pod("going", "10.244.1.6", deleting=True)]
    assert endpoint_subsets(service(), pods) == [{
        "addresses": [addr("a", "10.244.1.2"), addr("b", "10.244.1.3")],
        "notReadyAddresses": [addr("c", "10.244.1.4")],
        "ports": [{"port": 80, "protocol": "TCP"}]}]


def test_publish_not_ready_addresses() -> None:
    pods = [pod("c", "10.244.1.4", ready=False), pod("going", "10.244.1.6", deleting=True)]
    got = endpoint_subsets(service(publishNotReadyAddresses=True), pods)
    assert got == [{"addresses": [addr("c", "10.244.1.4"), addr("going", "10.244.1.6")],
                    "ports": [{"port": 80, "protocol": "TCP"}]}]


def test_named_target_ports_resolve_per_pod_and_group_subsets() -> None:
    """The worked example of master/controllers/endpoints.py."""
    svc = service([{"name": "http", "port": 80, "targetPort": "web"},
                   {"name": "metrics", "port": 9090}])
    pods = [pod("a", "10.244.1.2", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.244.2.3", ready=False, ports=[{"name": "web", "containerPort": 8081}]),
            pod("c", "10.244.3.4"),
            pod("u", "10.244.3.5", ports=[{"name": "web", "containerPort": 53,
                                           "protocol": "UDP"}])]
    http = {"name": "http", "protocol": "TCP"}
    metrics = {"name": "metrics", "port": 9090, "protocol": "TCP"}
    assert endpoint_subsets(svc, pods) == [
        {"addresses": [addr("a", "10.244.1.2")], "ports": [{**http, "port": 8080}, metrics]},
        {"notReadyAddresses": [addr("b", "10.244.2.3")],
         "ports": [{**http, "port": 8081}, metrics]},
        {"addresses": [addr("c", "10.244.3.4"), addr("u", "10.244.3.5")], "ports": [metrics]},
    ]


def test_hostname_only_for_the_pods_subdomain() -> None:
    svc = service(clusterIP="None")
    pods = [pod("web-0", "10.244.1.2", hostname="web-0", subdomain="web"),
            pod("x", "10.244.1.3", hostname="x", subdomain="other")]
    got = endpoint_subsets(svc, pods)
    assert got[0]["addresses"] == [addr("web-0", "10.244.1.2", hostname="web-0"),
                                   addr("x", "10.244.1.3")]
    assert endpoints_labels(svc) == {"app": "web", "service.kubernetes.io/headless": ""}
    portless = endpoint_subsets(service([], clusterIP="None"), pods[:1])
    assert portless == [{"addresses": [addr("web-0", "10.244.1.2", hostname="web-0")]}]
    assert endpoint_subsets(service([]), pods[:1]) == []  # only headless lists bare addresses


def test_no_pods_no_subsets() -> None:
    assert endpoint_subsets(service(), []) == []


def node(name: str, ip: str, ready: bool = True, deleting: bool = False) -> Any:
    md: dict[str, Any] = {"name": name, "uid": f"uid-{name}"}
    if deleting:
        md["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return convert.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": md,
        "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }, core_pb2.Node)


def test_kube_dns_endpoints_are_the_nodes() -> None:
    nodes = [node("node-2", "10.240.0.12"), node("node-1", "10.240.0.11"),
             node("node-3", "10.240.0.13", ready=False), node("gone", "10.240.0.14",
                                                              deleting=True)]

    def n(name: str, ip: str) -> dict[str, Any]:
        return {"ip": ip, "nodeName": name,
                "targetRef": {"kind": "Node", "name": name, "uid": f"uid-{name}"}}

    assert dns_subsets(nodes) == [{
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        "addresses": [n("node-1", "10.240.0.11"), n("node-2", "10.240.0.12")],
        "notReadyAddresses": [n("node-3", "10.240.0.13")]}]
    assert dns_subsets([]) == []
