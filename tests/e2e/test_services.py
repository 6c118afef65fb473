"""Services as a user meets them on the local cluster (two nodes in network
namespaces, iptables proxy): a Deployment behind a Service found by name
through the cluster DNS and reached through its ClusterIP, readiness
deciding the rotation, environment variables in pods created after the
Service, the `kubernetes` Service, and a StatefulSet's pods found by their
stable names through its headless Service.
"""

from __future__ import annotations

import collections
import ipaddress
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.client import Client
from kubelite.objects import convert
from tests.localcluster import LocalCluster, local_cluster
from tests.node_agent import wait_for

IMAGE = "kubelite/busybox:1.35"
SERVE = "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster("vxlan") as c:
        yield c


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[Client]:
    with cluster.client() as c:
        yield c


def apply(api: Client, body: dict[str, Any], kind: Any) -> Any:
    return api.create(convert.from_dict(body, kind))


def pexec(api: Client, name: str, script: str, timeout: float = 60) -> str:
    p = api.get("pods", name, "default")
    cid = p.status.containerStatuses[0].containerID.removeprefix("docker://")
    r = subprocess.run(["docker", "exec", cid, "sh", "-c", script], capture_output=True,
                       text=True, errors="replace", timeout=timeout, check=False)
    return r.stdout + r.stderr


def running(api: Client, name: str) -> Any:
    p = api.get("pods", name, "default")
    return p if p.status.phase == "Running" and p.status.podIP else None


def ready_addresses(api: Client, name: str) -> list[str]:
    e = api.get("endpoints", name, "default")
    return sorted(a.ip for s in e.subsets for a in s.addresses)


@pytest.fixture(scope="module")
def web(cluster: LocalCluster, api: Client) -> dict[str, Any]:
    """Deployment web (3 replicas, ready only while /www/ready exists... all ready at
    first), Service web (port 80 -> named port http), and a client pod."""
    apply(api, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "terminationGracePeriodSeconds": 0,
                     "containers": [{
                         "name": "web", "image": IMAGE,
                         "command": ["sh", "-c", "touch /ready && " + SERVE],
                         "ports": [{"name": "http", "containerPort": 8080}],
                         "readinessProbe": {"exec": {"command": ["test", "-e", "/ready"]},
                                            "periodSeconds": 1}}]}}}}, apps_pb2.Deployment)
    svc = apply(api, {"apiVersion": "v1", "kind": "Service",
                      "metadata": {"name": "web", "namespace": "default"},
                      "spec": {"selector": {"app": "web"},
                               "ports": [{"name": "http", "port": 80,
                                          "targetPort": "http"}]}}, core_pb2.Service)
    wait_for(lambda: len(ready_addresses(api, "web")) == 3, 90, "3 ready endpoints")
    apply(api, {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "client", "namespace": "default"},
                "spec": {"nodeName": cluster.nodes[1], "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": IMAGE,
                                         "command": ["sleep", "3600"]}]}}, pod_pb2.Pod)
    wait_for(lambda: running(api, "client"), 60, "client running")
    return {"service": svc}


def fetch(api: Client, target: str, count: int) -> list[str]:
    out = pexec(api, "client", f"for i in $(seq {count}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
                               f" | nc -w 5 {target} 80 | tail -1; done")
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_service_gets_a_cluster_ip_and_dns_name(api: Client, web: dict[str, Any]) -> None:
    ip = web["service"].spec.clusterIP
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    out = wait_for(lambda: (o := pexec(api, "client", "nslookup web.default.svc.cluster.local"))
                   and ip in o and o, 60, "the Service's name resolving")
    assert "10.96.0.10" in out  # asked the cluster DNS, through its Service address
    resolv = pexec(api, "client", "cat /etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv


def test_requests_by_short_name_reach_every_replica(api: Client, web: dict[str, Any]) -> None:
    names = {p.metadata.name for p in api.list("pods", "default", label_selector="app=web")[0]}
    got = wait_for(lambda: (r := fetch(api, "web", 45)) and set(r) == names and r, 90,
                   "every replica answering through the name web")
    counts = collections.Counter(got)
    assert sum(counts.values()) == 45 and min(counts.values()) >= 5, counts


def test_a_pod_that_is_not_ready_leaves_the_rotation(api: Client, web: dict[str, Any]) -> None:
    pods = sorted(p.metadata.name for p in
                  api.list("pods", "default", label_selector="app=web")[0])
    sick = pods[0]
    pexec(api, sick, "rm /ready")
    wait_for(lambda: len(ready_addresses(api, "web")) == 2, 30, "two ready endpoints")
    e = api.get("endpoints", "web", "default")
    not_ready = [a for s in e.subsets for a in s.notReadyAddresses]
    assert [a.targetRef.name for a in not_ready] == [sick]
    wait_for(lambda: sick not in fetch(api, "web", 20), 30, f"{sick} out of the rotation")
    pexec(api, sick, "touch /ready")
    wait_for(lambda: len(ready_addresses(api, "web")) == 3, 30, "back in")


def test_environment_of_pods_created_after_the_service(cluster: LocalCluster, api: Client,
                                                       web: dict[str, Any]) -> None:
    apply(api, {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "late", "namespace": "default"},
                "spec": {"nodeName": cluster.nodes[0], "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "c", "image": IMAGE,
                                         "command": ["sleep", "3600"]}]}}, pod_pb2.Pod)
    wait_for(lambda: running(api, "late"), 60, "late running")
    env = dict(line.split("=", 1) for line in pexec(api, "late", "env").splitlines()
               if "=" in line)
    ip = web["service"].spec.clusterIP
    assert env["WEB_SERVICE_HOST"] == ip and env["WEB_SERVICE_PORT"] == "80"
    assert env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_PORT"] == f"tcp://{ip}:80"
    assert env["WEB_PORT_80_TCP_ADDR"] == ip
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_the_kubernetes_service(api: Client, web: dict[str, Any]) -> None:
    k = api.get("services", "kubernetes", "default")
    assert k.spec.clusterIP == "10.96.0.1"
    out = pexec(api, "client", "nslookup kubernetes.default")
    assert "10.96.0.1" in out


def test_statefulset_pods_by_stable_dns_names(cluster: LocalCluster, api: Client,
                                              web: dict[str, Any]) -> None:
    apply(api, {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "nginx", "namespace": "default"},
                "spec": {"clusterIP": "None", "selector": {"app": "sts"},
                         "ports": [{"name": "web", "port": 80}]}}, core_pb2.Service)
    apply(api, {"apiVersion": "apps/v1", "kind": "StatefulSet",
                "metadata": {"name": "web-sts", "namespace": "default"},
                "spec": {"serviceName": "nginx", "replicas": 2,
                         "selector": {"matchLabels": {"app": "sts"}},
                         "template": {"metadata": {"labels": {"app": "sts"}}, "spec": {
                             "terminationGracePeriodSeconds": 0,
                             "containers": [{"name": "c", "image": IMAGE,
                                             "command": ["sleep", "3600"],
                                             "ports": [{"name": "web",
                                                        "containerPort": 80}]}]}}}},
          apps_pb2.StatefulSet)
    pods = [wait_for(lambda n=n: running(api, n) and
                     any(c.type == "Ready" and c.status == "True"
                         for c in api.get("pods", n, "default").status.conditions)
                     and running(api, n), 120, f"{n} ready") for n in ("web-sts-0", "web-sts-1")]
    for p in pods:
        name = f"{p.metadata.name}.nginx.default.svc.cluster.local"
        wait_for(lambda n=name, ip=p.status.podIP: ip in pexec(api, "client", f"nslookup {n}"),
                 60, f"{name} resolving to {p.status.podIP}")
    # the headless Service's own name: every ready pod's address
    out = pexec(api, "client", "nslookup nginx.default.svc.cluster.local")
    assert all(p.status.podIP in out for p in pods), out
