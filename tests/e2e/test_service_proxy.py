"""The Service proxy end to end on a local cluster (two nodes in network
namespaces), in iptables mode and in userspace mode: a ClusterIP spreads
over every endpoint, ClientIP affinity pins a client, an endpoint taken out
leaves the rotation, a NodePort answers on every node (also one without a
backend), a Service without a selector forwards to a server outside the
cluster through a hand-written Endpoints, and a Service without endpoints
refuses at once.

(IPVS mode: its rule set is unit-tested; its end-to-end test runs only where
the kernel has ip_vs, which this machine's has not.)
"""

from __future__ import annotations

import collections
import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from node.proxy import ipvs
from tests.localcluster import LocalCluster, local_cluster
from tests.node_agent import wait_for

IMAGE = "kubelite/busybox:1.35"
SERVER = "mkdir -p /www && hostname > /www/index.html && httpd -f -p 8080 -h /www"
MODES = ["iptables", "userspace", "ipvs"]


@pytest.fixture(scope="module", params=MODES)
def cluster(request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    if request.param == "ipvs" and not ipvs.available():
        pytest.skip("this kernel has no IPVS (/proc/net/ip_vs is missing)")
    with local_cluster("host-gw", extra=("--proxy-mode", request.param)) as c:
        c.mode = request.param  # type: ignore[attr-defined]
        yield c


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[Client]:
    with cluster.client() as c:
        yield c


def make_pod(api: Client, name: str, node: str, command: str) -> Any:
    api.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command],
                                 "ports": [{"name": "http", "containerPort": 8080}]}]}},
        pod_pb2.Pod))
    return wait_for(lambda: (p := api.get("pods", name, "default")).status.phase == "Running"
                    and p.status.podIP and p, 60, f"{name} running")


def pexec(pod: Any, script: str, timeout: float = 60) -> str:
    cid = pod.status.containerStatuses[0].containerID.removeprefix("docker://")
    r = subprocess.run(["docker", "exec", cid, "sh", "-c", script], capture_output=True,
                       text=True, errors="replace", timeout=timeout, check=False)
    return r.stdout + r.stderr


def service(api: Client, name: str, ip: str, ports: list[dict[str, Any]],
            addresses: list[str] | None, **spec: Any) -> None:
    """A Service with no selector and, unless None, its Endpoints written by hand."""
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": ports, **spec}}
    api.create(convert.from_dict(body, core_pb2.Service))
    if addresses is not None:
        set_endpoints(api, name, addresses, ports)


def set_endpoints(api: Client, name: str, addresses: list[str],
                  ports: list[dict[str, Any]]) -> None:
    body = {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": "default"},
            "subsets": [{"addresses": [{"ip": a} for a in addresses],
                         "ports": [{"name": p.get("name", ""),
                                    "port": int(p.get("targetPort", p["port"]))}
                                   for p in ports]}] if addresses else []}
    try:
        cur = api.get("endpoints", name, "default")
        new = convert.from_dict(body, core_pb2.Endpoints)
        new.metadata.resourceVersion = cur.metadata.resourceVersion
        api.update(new)
    except APIStatusError as e:
        if not e.not_found:
            raise
        api.create(convert.from_dict(body, core_pb2.Endpoints))


@pytest.fixture(scope="module")
def web(cluster: LocalCluster, api: Client) -> dict[str, Any]:
    n1, n2 = cluster.nodes
    pods = {name: make_pod(api, name, node, SERVER)
            for name, node in (("web-1", n1), ("web-2", n1), ("web-3", n2))}
    pods["client"] = make_pod(api, "client", n2, "sleep 3600")
    ips = [pods[n].status.podIP for n in ("web-1", "web-2", "web-3")]
    service(api, "web", "10.96.100.10", [{"port": 80, "targetPort": 8080}], ips)
    return pods


def fetch(client: Any, address: str, port: int, count: int) -> list[str]:
    out = pexec(client, f"for i in $(seq {count}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "
                        f"nc -w 5 {address} {port} | tail -1; done")
    return [line.strip() for line in out.splitlines() if line.strip()]


def test_cluster_ip_reaches_every_endpoint_evenly(api: Client, web: dict[str, Any]) -> None:
    got = wait_for(lambda: (r := fetch(web["client"], "10.96.100.10", 80, 60)) and
                   set(r) == {"web-1", "web-2", "web-3"} and r, 60, "all three answering")
    counts = collections.Counter(got)
    assert sum(counts.values()) == 60
    assert min(counts.values()) >= 8, counts  # expected 20 each


def test_client_ip_affinity_pins_a_client(api: Client, web: dict[str, Any]) -> None:
    ips = [web[n].status.podIP for n in ("web-1", "web-2", "web-3")]
    service(api, "sticky", "10.96.100.11", [{"port": 80, "targetPort": 8080}], ips,
            sessionAffinity="ClientIP")
    wait_for(lambda: fetch(web["client"], "10.96.100.11", 80, 1)[0].startswith("web-"), 60,
             "sticky answering")
    got = fetch(web["client"], "10.96.100.11", 80, 20)
    assert len(got) == 20 and len(set(got)) == 1, got


def test_removed_endpoint_leaves_the_rotation(api: Client, web: dict[str, Any]) -> None:
    service(api, "shrink", "10.96.100.12", [{"port": 80, "targetPort": 8080}],
            [web[n].status.podIP for n in ("web-1", "web-2", "web-3")])
    wait_for(lambda: len(set(fetch(web["client"], "10.96.100.12", 80, 30))) == 3, 60)
    set_endpoints(api, "shrink", [web["web-1"].status.podIP, web["web-3"].status.podIP],
                  [{"port": 80, "targetPort": 8080}])
    # 30 answers without web-2 (by chance before the sync: (2/3)^30), not 10 ((2/3)^10)
    wait_for(lambda: "web-2" not in fetch(web["client"], "10.96.100.12", 80, 30), 30,
             "web-2 out of the rotation")
    assert set(fetch(web["client"], "10.96.100.12", 80, 30)) == {"web-1", "web-3"}


def _host_get(address: str, port: int) -> str:
    with socket.create_connection((address, port), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode(errors="replace").strip().splitlines()[-1]


def test_node_port_from_outside_on_every_node(cluster: LocalCluster, api: Client,
                                              web: dict[str, Any]) -> None:
    """Backends only on the first node: the second node's NodePort forwards there."""
    service(api, "np", "10.96.100.13", [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
            [web["web-1"].status.podIP, web["web-2"].status.podIP], type="NodePort")
    for node in cluster.nodes:
        got = wait_for(lambda n=node: _host_get(cluster.address(n), 30080), 60,
                       f"NodePort on {node}")
        assert got in ("web-1", "web-2")


def test_selectorless_service_reaches_a_server_outside(cluster: LocalCluster, api: Client,
                                                       web: dict[str, Any]) -> None:
    """The seed's external database: a Service without a selector plus Endpoints
    written by hand, pointing at a server outside the cluster (on the bridge)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            body = b"outside-db\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_a: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer((cluster.net.gateway, 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        port = srv.server_address[1]
        service(api, "external-db", "10.96.100.14", [{"port": 5432, "targetPort": port}],
                [cluster.net.gateway])
        wait_for(lambda: fetch(web["client"], "10.96.100.14", 5432, 1) == ["outside-db"], 60,
                 "the outside server through the Service")
    finally:
        srv.shutdown()
        srv.server_close()


def test_service_without_endpoints_refuses_at_once(cluster: LocalCluster, api: Client,
                                                   web: dict[str, Any]) -> None:
    if cluster.mode == "ipvs":  # type: ignore[attr-defined]
        pytest.skip("ipvs answers a virtual server without real servers by dropping")
    service(api, "empty", "10.96.100.15", [{"port": 80, "targetPort": 8080}], [])
    time.sleep(2)  # one sync
    t = time.monotonic()
    out = pexec(web["client"], "nc -w 5 10.96.100.15 80 </dev/null; echo rc=$?")
    assert time.monotonic() - t < 4, "refused, not timed out"
    if cluster.mode == "userspace":  # type: ignore[attr-defined]
        assert out.strip() in ("rc=0", "rc=1")  # accepted by the proxy, closed at once
    else:
        assert "rc=0" not in out  # REJECT: connection refused
