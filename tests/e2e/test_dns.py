"""Cluster DNS end to end: a real master, a real node agent serving DNS,
Services and Endpoints written through the API, queries over UDP and TCP;
pods' /etc/resolv.conf for each dnsPolicy; a pod resolving a Service name
with its own resolver.

The agent's DNS listens on Docker's bridge gateway, port 53, when it can
bind there (then pods on the bridge reach it as their nameserver, as they
would reach the kube-dns Service), else on 127.0.0.1 and a free port (the
pod-side resolution test is then skipped: a resolv.conf has no port).
"""

from __future__ import annotations

import functools
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.client import Client
from kubelite.objects import convert
from node.dns import resolvconf
from node.dns.client import query
from node.dns.wire import AAAA, CNAME, NOERROR, NXDOMAIN, REFUSED, SRV, A, Response
from tests.cluster import Master, free_port
from tests.e2e.test_node import container, docker_exec, make_pod, running_ready
from tests.node_agent import NodeAgent, ensure_docker, node_containers, run_node, wait_for

HOST_RESOLV = "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"


@dataclass
class DNS:
    agent: NodeAgent
    host: str
    port: int
    cluster_dns: str

    def ask(self, name: str, qtype: int = A, *, tcp: bool = False) -> Response:
        return query(self.host, self.port, name, qtype, tcp=tcp, timeout=2)


def _docker_gateway() -> str:
    out = subprocess.run(["docker", "network", "inspect", "bridge", "-f",
                          "{{range .IPAM.Config}}{{.Gateway}}{{end}}"],
                         capture_output=True, text=True).stdout.strip()
    return out


def _can_bind(host: str, port: int) -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, socket.socket() as t:
            t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            u.bind((host, port))
            t.bind((host, port))
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def dns(master: Master, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNS]:
    ensure_docker()
    resolv = tmp_path_factory.mktemp("dns") / "resolv.conf"
    resolv.write_text(HOST_RESOLV)
    gateway = _docker_gateway()
    if gateway and _can_bind(gateway, 53):
        host, port, cluster_dns = gateway, 53, gateway
    else:
        host, port, cluster_dns = "127.0.0.1", free_port(), "10.96.0.10"
    with run_node(master.address, "--metrics-interval", "0", "--dns-bind-address", host,
                  "--cluster-dns-port", str(port), "--cluster-dns", cluster_dns,
                  "--dns-upstream", "none", "--resolv-conf", str(resolv)) as a:
        d = DNS(a, host, port, cluster_dns)
        try:
            wait_for(lambda: d.ask("cluster.local").rcode == NOERROR, 30, "the DNS to serve")
        except AssertionError:
            raise AssertionError(a.logs()) from None
        yield d


def create(client: Client, kind: str, ns: str, name: str, **body: Any) -> Any:
    message = {"Service": core_pb2.Service, "Endpoints": core_pb2.Endpoints}[kind]
    return client.create(convert.from_dict({"apiVersion": "v1", "kind": kind, "metadata": {
        "name": name, "namespace": ns}, **body}, message))


def data(r: Response, rtype: int = A) -> list[Any]:
    return [rr.data for rr in r.answer if rr.rtype == rtype]


def test_service_records_follow_the_api(dns: DNS, client: Client, namespace: str) -> None:
    ns = namespace
    zone = f"{ns}.svc.cluster.local"
    create(client, "Service", ns, "web", spec={
        "clusterIP": "10.96.7.7", "ports": [{"name": "http", "port": 80}]})
    create(client, "Service", ns, "db", spec={
        "clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]})
    create(client, "Endpoints", ns, "db", subsets=[{
        "addresses": [{"ip": "10.244.9.1", "hostname": "db-0"},
                      {"ip": "10.244.9.2", "hostname": "db-1"}],
        "notReadyAddresses": [{"ip": "10.244.9.3", "hostname": "db-2"}],
        "ports": [{"name": "pg", "port": 5432}]}])
    create(client, "Service", ns, "alias", spec={"type": "ExternalName",
                                                 "externalName": f"web.{zone}"})

    wait_for(lambda: data(dns.ask(f"web.{zone}")) == ["10.96.7.7"], 20, "the service's A")
    wait_for(lambda: len(data(dns.ask(f"db.{zone}"))) == 2, 20, "the headless A")
    assert sorted(data(dns.ask(f"db.{zone}"))) == ["10.244.9.1", "10.244.9.2"]
    assert data(dns.ask(f"db-1.db.{zone}")) == ["10.244.9.2"]
    assert dns.ask(f"db-2.db.{zone}").rcode == NXDOMAIN  # not ready
    srv = dns.ask(f"_pg._tcp.db.{zone}", SRV)
    assert sorted((d[2], ".".join(d[3])) for d in data(srv, SRV)) == [
        (5432, f"db-0.db.{zone}"), (5432, f"db-1.db.{zone}")]
    assert data(dns.ask(f"_http._tcp.web.{zone}", SRV), SRV)[0][2] == 80
    alias = wait_for(lambda: dns.ask(f"alias.{zone}").answer, 20, "the CNAME")
    assert [rr.rtype for rr in alias] == [CNAME, A] and alias[1].data == "10.96.7.7"
    nodata = dns.ask(f"web.{zone}", AAAA)
    assert nodata.rcode == NOERROR and not nodata.answer and nodata.authority
    assert dns.ask(f"nope.{zone}").rcode == NXDOMAIN
    assert data(dns.ask(f"web.{zone}", tcp=True)) == ["10.96.7.7"]
    t = time.monotonic()
    assert dns.ask("example.com").rcode == REFUSED  # --dns-upstream none
    assert time.monotonic() - t < 0.5

    # changes arrive through the watch: an address leaves, a Service goes
    eps = client.get("endpoints", "db", ns)
    del eps.subsets[0].addresses[1]
    client.update(eps)
    wait_for(lambda: data(dns.ask(f"db.{zone}")) == ["10.244.9.1"], 20, "the address to go")
    client.delete("services", "web", ns)
    wait_for(lambda: dns.ask(f"web.{zone}").rcode == NXDOMAIN, 20, "NXDOMAIN after delete")


POLICIES: dict[str, dict[str, Any]] = {
    "cluster-first": {},
    "default": {"dnsPolicy": "Default"},
    "none": {"dnsPolicy": "None", "dnsConfig": {
        "nameservers": ["1.1.1.1"], "searches": ["x.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}},
    "merged": {"dnsConfig": {"nameservers": ["1.1.1.1"], "options": [
        {"name": "ndots", "value": "1"}]}},
    "host-net": {"hostNetwork": True},
    "host-net-cluster": {"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"},
}


def test_pod_resolv_conf_per_dns_policy(dns: DNS, client: Client, namespace: str) -> None:
    ns = namespace
    cluster = ([dns.cluster_dns],
               [f"{ns}.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"],
               ["ndots:5"])
    host = (["10.0.0.2"], ["corp.example"], ["edns0"])
    expected = {
        "cluster-first": cluster,
        "default": host,
        "none": (["1.1.1.1"], ["x.example"], ["ndots:2", "edns0"]),
        "merged": ([dns.cluster_dns, "1.1.1.1"], cluster[1], ["ndots:1"]),
        "host-net": host,
        "host-net-cluster": cluster,
    }
    for name, spec in POLICIES.items():
        make_pod(client, ns, name, dns.agent.name, [container("c", "exec sleep 3600")], **spec)
    for name in POLICIES:
        wait_for(functools.partial(running_ready, client, ns, name), 60, f"pod {name} running")
        cid = node_containers(dns.agent.name, pod_name=name, container_name="c")[0]
        conf = resolvconf.parse(docker_exec(cid, "cat", "/etc/resolv.conf"))
        assert (conf.nameservers, conf.searches, conf.options) == expected[name], name


def test_a_pod_resolves_a_service_by_its_short_name(dns: DNS, client: Client,
                                                    namespace: str) -> None:
    if dns.port != 53:
        pytest.skip(f"cannot listen on {_docker_gateway() or 'a Docker bridge'}:53 here")
    ns = namespace
    create(client, "Service", ns, "api", spec={"clusterIP": "10.96.7.9",
                                               "ports": [{"port": 80}]})
    make_pod(client, ns, "resolver", dns.agent.name, [container("c", "exec sleep 3600")])
    wait_for(lambda: running_ready(client, ns, "resolver"), 60, "the resolver pod")
    cid = node_containers(dns.agent.name, pod_name="resolver", container_name="c")[0]

    def lookup(name: str) -> str:
        return docker_exec(cid, "nslookup", name)

    out = wait_for(lambda: "10.96.7.9" in lookup(f"api.{ns}.svc.cluster.local"), 20,
                   "the full name from the pod")
    assert out
    short = lookup("api")  # through the search list: api.<ns>.svc.cluster.local
    assert "10.96.7.9" in short, short

