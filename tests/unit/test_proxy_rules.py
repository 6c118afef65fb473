"""The Service proxy's rules as pure functions of Services and Endpoints: the
model, the iptables payload, the IPVS rule set and its diff, the userspace
balancer."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.objects import convert
from node.proxy import ipvs, model
from node.proxy.iptables import render
from node.proxy.model import Endpoint, ServicePortInfo
from node.proxy.userspace import Balancer


def svc(name: str, ports: list[dict[str, Any]], **spec: Any) -> Any:
    return convert.from_dict({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": name, "namespace": "default"},
                              "spec": {"ports": ports, **spec}}, core_pb2.Service)


def eps(name: str, subsets: list[dict[str, Any]]) -> Any:
    return convert.from_dict({"apiVersion": "v1", "kind": "Endpoints",
                              "metadata": {"name": name, "namespace": "default"},
                              "subsets": subsets}, core_pb2.Endpoints)


def test_model_from_services_and_endpoints() -> None:
    services = [
        svc("web", [{"name": "http", "port": 80}, {"name": "dns", "port": 53,
                                                     "protocol": "UDP"}],
            clusterIP="10.96.0.20", type="NodePort", sessionAffinity="ClientIP"),
        svc("headless", [{"port": 80}], clusterIP="None"),
        svc("ext", [{"port": 80}], type="ExternalName", externalName="example.com"),
        svc("db", [{"port": 5432}], clusterIP="10.96.0.30"),
    ]
    services[0].spec.ports[0].nodePort = 30080
    endpoints = [
        eps("web", [{"addresses": [{"ip": "10.244.1.5", "nodeName": "n1"},
                                   {"ip": "10.244.0.7"}],
                     "notReadyAddresses": [{"ip": "10.244.0.9"}],
                     "ports": [{"name": "http", "port": 8080},
                               {"name": "dns", "port": 5353, "protocol": "UDP"}]}]),
        eps("db", [{"addresses": [{"ip": "192.168.5.5"}], "ports": [{"port": 5432}]}]),
    ]
    ports = model.build(services, endpoints)
    assert [p.key for p in ports] == ["default/db", "default/web:dns", "default/web:http"]
    db, dns, http = ports
    assert db.endpoints == (Endpoint("192.168.5.5", 5432),)  # by hand, outside the cluster
    assert http.endpoints == (Endpoint("10.244.0.7", 8080), Endpoint("10.244.1.5", 8080, "n1"))
    assert dns.protocol == "udp" and [e.port for e in dns.endpoints] == [5353, 5353]
    assert http.node_port == 30080 and http.affinity_timeout == 10800 and db.node_port == 0
    assert model.build(services, endpoints) == ports  # stable


def _sp(n: int, **kw: Any) -> ServicePortInfo:
    return ServicePortInfo("default", "web", "http", "tcp", "10.96.0.20", 80,
                           endpoints=tuple(Endpoint(f"10.244.1.{i + 2}", 8080)
                                           for i in range(n)), **kw)


def test_iptables_spreads_evenly_with_statistic_probabilities() -> None:
    payload = render([_sp(3)], "10.244.0.0/16")
    svc_chain = f"KUBE-SVC-{_sp(3).chain_suffix()}"
    rules = [line for line in payload.splitlines() if line.startswith(f"-A {svc_chain} ")]
    assert "! -s 10.244.0.0/16 -d 10.96.0.20/32" in rules[0] and "KUBE-MARK-MASQ" in rules[0]
    probs = [re.search(r"--probability (\S+)", r) for r in rules[1:]]
    assert [p.group(1) if p else None for p in probs] == ["0.3333333333", "0.5000000000", None]
    seps = [r.split("-j ")[-1] for r in rules[1:]]
    assert len(set(seps)) == 3 and all(s.startswith("KUBE-SEP-") for s in seps)
    for s, ip in zip(seps, ("10.244.1.2", "10.244.1.3", "10.244.1.4"), strict=True):
        assert f":{s} - [0:0]" in payload
        assert f"-A {s} -s {ip}/32" in payload and "KUBE-MARK-MASQ" in payload  # hairpin
        assert re.search(rf"-A {s} .*-j DNAT --to-destination {ip}:8080", payload)
    svc_rule = next(line for line in payload.splitlines()
                    if line.startswith("-A KUBE-SERVICES -d 10.96.0.20/32"))
    assert "-p tcp -m tcp --dport 80" in svc_rule and svc_rule.endswith(f"-j {svc_chain}")
    last = [line for line in payload.splitlines() if line.startswith("-A KUBE-SERVICES")][-1]
    assert "--dst-type LOCAL -j KUBE-NODEPORTS" in last  # the node-port catch-all goes last
    assert payload == render([_sp(3)], "10.244.0.0/16")  # deterministic


def test_iptables_affinity_nodeport_reject_and_stale_chains() -> None:
    sticky = _sp(2, affinity_timeout=600, node_port=30080)
    payload = render([sticky, ServicePortInfo("default", "empty", "", "udp", "10.96.0.9", 53,
                                              node_port=30053)],
                     "10.244.0.0/16", existing_nat_chains=["KUBE-SVC-GONE", "KUBE-SEP-GONE",
                                                           "KUBE-SERVICES", "OTHER"])
    svc_chain = f"KUBE-SVC-{sticky.chain_suffix()}"
    rules = [line for line in payload.splitlines() if line.startswith(f"-A {svc_chain} ")]
    assert all("--rcheck --seconds 600 --reap" in r for r in rules[1:3])  # affinity first
    assert "--probability 0.5000000000" in rules[3]
    assert "--set -m tcp -j DNAT" in payload
    assert f"-A KUBE-NODEPORTS -m comment --comment \"default/web:http\" -p tcp -m tcp " \
           f"--dport 30080 -j {svc_chain}" in payload
    assert ('-A KUBE-SERVICES -d 10.96.0.9/32 -m comment --comment "default/empty has no '
            'endpoints" -p udp -m udp --dport 53 -j REJECT') in payload
    assert "-A KUBE-EXTERNAL-SERVICES -m addrtype --dst-type LOCAL" in payload
    assert "KUBE-SVC-" not in payload.split("*nat")[0]  # no rules in filter point at nat
    for gone in ("KUBE-SVC-GONE", "KUBE-SEP-GONE"):
        assert f":{gone} - [0:0]" in payload and f"-X {gone}" in payload
    assert "OTHER" not in payload and "-X KUBE-SERVICES" not in payload


def test_ipvs_rule_set_and_minimal_diff() -> None:
    ports = [_sp(2, node_port=30080, affinity_timeout=60),
             ServicePortInfo("default", "dns", "", "udp", "10.96.0.10", 53,
                             endpoints=(Endpoint("10.244.1.9", 53),))]
    table = ipvs.desired(ports, ["10.240.0.11"], "wrr")
    lines = ipvs.render(table)
    assert "-A -t 10.96.0.20:80 -s wrr -p 60" in lines
    assert "-a -t 10.96.0.20:80 -r 10.244.1.2:8080 -m -w 1" in lines
    assert "-A -t 10.240.0.11:30080 -s wrr -p 60" in lines  # the NodePort on the node
    assert "-A -u 10.96.0.10:53 -s wrr" in lines
    current = ipvs.parse_save("\n".join(lines) + "\n")
    assert current == table and ipvs.diff(current, table) == []
    # one endpoint goes, one comes, the scheduler changes: only that is written
    ports2 = [_sp(2, node_port=30080, affinity_timeout=60)]
    ports2[0] = ServicePortInfo(**{**ports2[0].__dict__, "endpoints": (
        Endpoint("10.244.1.2", 8080), Endpoint("10.244.1.7", 8080))})
    changes = ipvs.diff(current, ipvs.desired(ports2, ["10.240.0.11"], "rr"))
    assert "-D -u 10.96.0.10:53" in changes
    assert "-E -t 10.96.0.20:80 -s rr -p 60" in changes
    assert "-d -t 10.96.0.20:80 -r 10.244.1.3:8080" in changes
    assert "-a -t 10.96.0.20:80 -r 10.244.1.7:8080 -m -w 1" in changes
    assert not any("10.244.1.2" in c for c in changes)  # the endpoint that stays is untouched
    with pytest.raises(ipvs.IPVSError, match="--ipvs-scheduler: 'fast'"):
        ipvs.desired(ports, [], "fast")
    nat = ipvs.nat_payload(ports, "10.244.0.0/16")
    assert "! -s 10.244.0.0/16 -d 10.96.0.20/32" in nat and "--dport 30080" in nat


def test_userspace_balancer_round_robin_and_affinity() -> None:
    b = Balancer()
    assert b.pick("1.2.3.4") is None  # no endpoints: the connection is refused
    e1, e2 = Endpoint("10.244.1.2", 80), Endpoint("10.244.1.3", 80)
    b.update((e1, e2), 0)
    assert [b.pick("c") for _ in range(4)] == [e1, e2, e1, e2]
    b.update((e1, e2), 3600)
    first = b.pick("client-a")
    assert all(b.pick("client-a") == first for _ in range(5))
    b.update((e2,) if first == e1 else (e1,), 3600)  # its endpoint left: re-balanced
    assert b.pick("client-a") != first
