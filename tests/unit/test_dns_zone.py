"""Cluster DNS names as pure functions of fake Services/Endpoints caches:
A, headless, StatefulSet hostnames, SRV, NXDOMAIN vs NODATA, search-path
style names, ExternalName CNAMEs, PTR, pod names."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.objects import convert
from node.dns.wire import (
    AAAA,
    CNAME,
    MX,
    NOERROR,
    NS,
    NXDOMAIN,
    PTR,
    SOA,
    SRV,
    A,
    Question,
    name_from_text,
    name_to_text,
)
from node.dns.zone import NEGATIVE_TTL, TTL, Answer, ClusterView, Zone, reverse_ip


class FakeStore:
    def __init__(self, objs: list[Any]) -> None:
        self.d = {f"{o.metadata.namespace}/{o.metadata.name}": o for o in objs}

    def get(self, key: str) -> Any | None:
        return self.d.get(key)

    def items(self) -> list[Any]:
        return list(self.d.values())


def service(name: str, ns: str = "default", **spec: Any) -> Any:
    spec.setdefault("clusterIP", "10.96.0.20")
    return convert.from_dict({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": name, "namespace": ns}, "spec": spec},
                             core_pb2.Service)


def endpoints(name: str, ns: str = "default", *subsets: dict[str, Any]) -> Any:
    return convert.from_dict({"apiVersion": "v1", "kind": "Endpoints",
                              "metadata": {"name": name, "namespace": ns},
                              "subsets": list(subsets)}, core_pb2.Endpoints)


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": 8080},
             {"name": "dns", "port": 53, "protocol": "UDP"}]


@pytest.fixture()
def view() -> ClusterView:
    svcs = [
        service("web", ports=WEB_PORTS),
        service("plain", clusterIP="10.96.0.21", ports=[{"port": 80}]),
        service("dual", clusterIP="10.96.0.22", clusterIPs=["10.96.0.22", "fd00::22"]),
        service("nginx", "shop", clusterIP="None", ports=[{"name": "web", "port": 80}]),
        service("empty", "shop", clusterIP="None"),
        service("loose", "shop", clusterIP="None", publishNotReadyAddresses=True),
        service("db", "shop", type="ExternalName", externalName="DB.Example.COM.",
                clusterIP=""),
        service("alias", "shop", type="ExternalName", externalName="web.default.svc.cluster.local",
                clusterIP=""),
        service("pending", clusterIP=""),
    ]
    eps = [
        endpoints("nginx", "shop", {
            "addresses": [{"ip": "10.244.1.5", "hostname": "web-0"},
                          {"ip": "10.244.2.6", "hostname": "web-1"}],
            "notReadyAddresses": [{"ip": "10.244.1.9", "hostname": "web-2"}],
            "ports": [{"name": "web", "port": 8080}]},
            {"addresses": [{"ip": "10.244.3.7"}], "ports": [{"name": "web", "port": 8080}]}),
        endpoints("loose", "shop", {"addresses": [{"ip": "10.244.1.10"}],
                                    "notReadyAddresses": [{"ip": "10.244.1.11"}]}),
        endpoints("web", "default", {"addresses": [{"ip": "10.244.1.20"}],
                                     "ports": [{"name": "http", "port": 8080}]}),
    ]
    return ClusterView(FakeStore(svcs), FakeStore(eps))


zone = Zone("cluster.local", dns_ip="10.96.0.10")


def ask(view: ClusterView, name: str, qtype: int = A) -> Answer:
    return zone.resolve(Question(name_from_text(name), qtype), view)


def data(ans: Answer) -> list[Any]:
    return [rr.data for rr in ans.answer]


def nodata(ans: Answer) -> bool:
    return ans.rcode == NOERROR and not ans.answer and ans.authority[0].rtype == SOA


def nxdomain(ans: Answer) -> bool:
    return ans.rcode == NXDOMAIN and not ans.answer and ans.authority[0].rtype == SOA


# ---- services -------------------------------------------------------------------


def test_service_name_is_its_cluster_ip_with_the_askers_case(view: ClusterView) -> None:
    ans = ask(view, "Web.Default.svc.Cluster.Local.")
    assert data(ans) == ["10.96.0.20"]
    assert ans.answer[0].name == ("Web", "Default", "svc", "Cluster", "Local")
    assert ans.answer[0].ttl == TTL
    assert nodata(ask(view, "web.default.svc.cluster.local", AAAA))
    assert nodata(ask(view, "web.default.svc.cluster.local", MX))


def test_dual_stack_service_answers_each_family(view: ClusterView) -> None:
    assert data(ask(view, "dual.default.svc.cluster.local")) == ["10.96.0.22"]
    assert data(ask(view, "dual.default.svc.cluster.local", AAAA)) == ["fd00::22"]


def test_service_without_an_allocated_ip_exists_without_records(view: ClusterView) -> None:
    assert nodata(ask(view, "pending.default.svc.cluster.local"))


def test_headless_service_answers_ready_addresses_only(view: ClusterView) -> None:
    assert data(ask(view, "nginx.shop.svc.cluster.local")) == [
        "10.244.1.5", "10.244.2.6", "10.244.3.7"]
    assert nodata(ask(view, "empty.shop.svc.cluster.local"))  # no endpoints yet: exists
    # publishNotReadyAddresses: the not-ready ones too (StatefulSet peer discovery)
    assert data(ask(view, "loose.shop.svc.cluster.local")) == ["10.244.1.10", "10.244.1.11"]


def test_statefulset_hostnames_and_dashed_endpoint_names(view: ClusterView) -> None:
    assert data(ask(view, "web-0.nginx.shop.svc.cluster.local")) == ["10.244.1.5"]
    assert data(ask(view, "web-1.nginx.shop.svc.cluster.local")) == ["10.244.2.6"]
    assert nxdomain(ask(view, "web-2.nginx.shop.svc.cluster.local"))  # not ready
    assert data(ask(view, "10-244-3-7.nginx.shop.svc.cluster.local")) == ["10.244.3.7"]
    assert nxdomain(ask(view, "web-9.nginx.shop.svc.cluster.local"))
    # a ClusterIP service has no per-endpoint names
    assert nxdomain(ask(view, "10-244-1-20.web.default.svc.cluster.local"))


def test_srv_for_named_ports_of_a_cluster_ip_service(view: ClusterView) -> None:
    ans = ask(view, "_http._tcp.web.default.svc.cluster.local", SRV)
    target = name_from_text("web.default.svc.cluster.local")
    assert data(ans) == [(0, 100, 80, target)]
    assert [(rr.name, rr.data) for rr in ans.additional] == [(target, "10.96.0.20")]
    assert data(ask(view, "_dns._udp.web.default.svc.cluster.local", SRV)) == [
        (0, 100, 53, target)]
    assert nxdomain(ask(view, "_http._udp.web.default.svc.cluster.local", SRV))
    assert nxdomain(ask(view, "_nope._tcp.web.default.svc.cluster.local", SRV))
    assert nodata(ask(view, "_http._tcp.web.default.svc.cluster.local", A))
    assert nodata(ask(view, "_tcp.web.default.svc.cluster.local", A))  # empty non-terminal
    # SRV on the service name itself: every named port
    both = ask(view, "web.default.svc.cluster.local", SRV)
    assert sorted(rr.data[2] for rr in both.answer) == [53, 80]
    assert name_to_text(both.answer[0].name) == "_http._tcp.web.default.svc.cluster.local."
    # an unnamed port gets none
    assert nodata(ask(view, "plain.default.svc.cluster.local", SRV))


def test_srv_of_a_headless_service_points_at_each_endpoint(view: ClusterView) -> None:
    ans = ask(view, "_web._tcp.nginx.shop.svc.cluster.local", SRV)
    targets = [name_to_text(d[3]) for d in data(ans)]
    assert targets == ["web-0.nginx.shop.svc.cluster.local.",
                       "web-1.nginx.shop.svc.cluster.local.",
                       "10-244-3-7.nginx.shop.svc.cluster.local."]
    assert {d[2] for d in data(ans)} == {8080} and {d[1] for d in data(ans)} == {33}
    assert sorted(rr.data for rr in ans.additional) == ["10.244.1.5", "10.244.2.6",
                                                        "10.244.3.7"]


def test_nxdomain_versus_nodata(view: ClusterView) -> None:
    assert nxdomain(ask(view, "nope.default.svc.cluster.local"))
    assert nxdomain(ask(view, "web.nope.svc.cluster.local"))
    assert nodata(ask(view, "default.svc.cluster.local"))    # a namespace with services
    assert nxdomain(ask(view, "nope.svc.cluster.local"))
    assert nodata(ask(view, "svc.cluster.local"))
    assert nodata(ask(view, "cluster.local"))
    assert nxdomain(ask(view, "anything.cluster.local"))
    assert nxdomain(ask(view, "a.b.c.web.default.svc.cluster.local"))
    neg = ask(view, "nope.default.svc.cluster.local")
    assert neg.authority[0].ttl == NEGATIVE_TTL and neg.authority[0].data[-1] == NEGATIVE_TTL


def test_zone_apex_has_soa_and_ns_with_glue(view: ClusterView) -> None:
    soa = ask(view, "cluster.local", SOA)
    assert soa.answer[0].rtype == SOA and soa.answer[0].ttl == NEGATIVE_TTL
    ns = ask(view, "cluster.local", NS)
    assert data(ns) == [name_from_text("ns.dns.cluster.local")]
    assert [rr.data for rr in ns.additional] == ["10.96.0.10"]
    assert data(ask(view, "ns.dns.cluster.local")) == ["10.96.0.10"]


def _search(view: ClusterView, name: str, namespace: str = "shop") -> str | None:
    """What a glibc stub with ClusterFirst's resolv.conf (ndots:5) settles on."""
    searches = [f"{namespace}.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    candidates = [f"{name}.{s}" for s in searches]
    candidates = [name, *candidates] if name.count(".") >= 5 else [*candidates, name]
    for c in candidates:
        ans = ask(view, c)
        if ans.forward:
            return f"forward:{c}"
        if ans.answer:
            return c
    return None


def test_search_path_style_names(view: ClusterView) -> None:
    assert _search(view, "nginx") == "nginx.shop.svc.cluster.local"
    # another namespace needs its name: the bare name, last, is not ours
    assert _search(view, "web") == "forward:web"
    assert _search(view, "web.default") == "web.default.svc.cluster.local"
    assert _search(view, "web-0.nginx") == "web-0.nginx.shop.svc.cluster.local"
    assert _search(view, "web.default.svc") == "web.default.svc.cluster.local"
    assert _search(view, "web.default.svc.cluster.local") == "web.default.svc.cluster.local"
    # an outside name walks the search list (all misses in the zone) and is then forwarded
    assert _search(view, "example.com") == "forward:example.com"
    for name in ("example.com.shop.svc.cluster.local", "example.com.cluster.local"):
        assert nxdomain(ask(view, name))


def test_external_name_is_a_cname(view: ClusterView) -> None:
    ans = ask(view, "db.shop.svc.cluster.local")
    assert [(rr.rtype, rr.data) for rr in ans.answer] == [
        (CNAME, name_from_text("db.example.com"))]
    assert ans.chase == name_from_text("db.example.com")  # the server resolves it upstream
    assert ask(view, "db.shop.svc.cluster.local", CNAME).chase is None
    # an in-zone target is followed here
    inside = ask(view, "alias.shop.svc.cluster.local")
    assert [rr.data for rr in inside.answer] == [name_from_text("web.default.svc.cluster.local"),
                                                 "10.96.0.20"]
    assert inside.chase is None


def test_ptr_for_service_ips_and_headless_endpoints(view: ClusterView) -> None:
    assert data(ask(view, "20.0.96.10.in-addr.arpa", PTR)) == [
        name_from_text("web.default.svc.cluster.local")]
    assert data(ask(view, "5.1.244.10.in-addr.arpa", PTR)) == [
        name_from_text("web-0.nginx.shop.svc.cluster.local")]
    assert ask(view, "9.9.9.9.in-addr.arpa", PTR).forward
    assert reverse_ip(name_from_text("2.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
                                     ".0.0.0.0.0.0.d.f.ip6.arpa")) == "fd00::22"
    assert reverse_ip(name_from_text("10.in-addr.arpa")) is None


def test_view_sees_changes_after_invalidate() -> None:
    svcs = FakeStore([service("a")])
    view = ClusterView(svcs, FakeStore([]))
    assert data(ask(view, "20.0.96.10.in-addr.arpa", PTR))
    svcs.d["default/b"] = service("b", clusterIP="10.96.0.30")
    assert ask(view, "30.0.96.10.in-addr.arpa", PTR).forward  # index is stale until told
    view.invalidate()
    assert data(ask(view, "30.0.96.10.in-addr.arpa", PTR)) == [
        name_from_text("b.default.svc.cluster.local")]
    assert data(ask(view, "b.default.svc.cluster.local")) == ["10.96.0.30"]  # direct: at once


def test_pod_names_and_outside_names(view: ClusterView) -> None:
    assert data(ask(view, "10-244-1-5.shop.pod.cluster.local")) == ["10.244.1.5"]
    assert data(ask(view, "fd00--5.shop.pod.cluster.local", AAAA)) == ["fd00::5"]
    assert nxdomain(ask(view, "10-244-1-999.shop.pod.cluster.local"))
    assert nodata(ask(view, "shop.pod.cluster.local"))
    assert ask(view, "example.com").forward
    assert ask(view, "cluster.local.example.com").forward


def test_another_cluster_domain() -> None:
    z = Zone("corp.internal.", dns_ip="10.0.0.10")
    view = ClusterView(FakeStore([service("web")]), FakeStore([]))
    ans = z.resolve(Question(name_from_text("web.default.svc.corp.internal"), A), view)
    assert data(ans) == ["10.96.0.20"]
    assert z.resolve(Question(name_from_text("web.default.svc.cluster.local"), A), view).forward
