"""Service IP and NodePort ranges, and the Service strategy's pure parts."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.objects import convert, defaults, validation
from master.apiserver.allocators import IPRange, PortRange, RangeFull
from master.apiserver.services import needs_node_port, prepare_create, prepare_update


def svc(**spec: Any) -> Any:
    spec.setdefault("ports", [{"port": 80}])
    obj = convert.from_dict({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": "web", "namespace": "default"},
                             "spec": spec}, core_pb2.Service)
    defaults.apply(obj)
    return obj


def errors(new: Any, old: Any | None = None) -> list[str]:
    return [str(e) for e in validation.validate(new, old)]


# ---- ranges -----------------------------------------------------------------------

def test_ip_range_offsets_and_band() -> None:
    r = IPRange.parse("10.96.0.0/12")
    assert r.size == 2**20 - 2 and r.band == 256
    assert r.first() == "10.96.0.1"
    assert r.contains("10.111.255.254") and not r.contains("10.111.255.255")  # broadcast
    assert not r.contains("10.96.0.0") and not r.contains("10.200.0.5")
    assert not r.contains("fd00::1") and not r.contains("bogus")
    rng = random.Random(1)
    for _ in range(200):  # random picks stay out of the static band while it has room
        ip = r.pick([], rng)
        assert r.offset(ip) is not None and r.offset(ip) >= 256


def test_small_range_fills_up_exactly() -> None:
    r = IPRange.parse("10.0.0.0/28")  # 14 usable, smaller than a band would need
    assert r.size == 14 and r.band == 0
    taken: list[str] = []
    rng = random.Random(2)
    for _ in range(14):
        taken.append(r.pick(taken, rng))
    assert sorted(taken, key=lambda ip: r.offset(ip) or 0) == [f"10.0.0.{i}" for i in range(1, 15)]
    with pytest.raises(RangeFull):
        r.pick(taken, rng)


def test_dynamic_picks_fall_back_to_the_static_band() -> None:
    r = IPRange.parse("10.0.0.0/24")  # 254 usable, band 16
    assert r.band == 16
    upper = [r.address(o) for o in range(16, 254)]
    ip = r.pick(upper)
    assert r.offset(ip) is not None and r.offset(ip) < 16


@pytest.mark.parametrize("text", ["10.96.0.0/33", "10.96.0.1/12", "nonsense", "10.0.0.0/31",
                                  "fd00::/64"])
def test_bad_ip_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        IPRange.parse(text)


def test_port_range() -> None:
    r = PortRange.parse("30000-32767")
    assert (r.size, r.band, str(r)) == (2768, 86, "30000-32767")
    assert r.contains(30000) and r.contains(32767) and not r.contains(32768)
    rng = random.Random(3)
    assert all(r.pick(set(), rng) >= 30086 for _ in range(100))
    small = PortRange.parse("31000-31002")
    got = {small.pick({31000, 31001}), small.pick({31000, 31002})}
    assert got == {31001, 31002}
    with pytest.raises(RangeFull):
        small.pick({31000, 31001, 31002})
    for bad in ("1-", "40000-30000", "0-10", "30000-70000", "x"):
        with pytest.raises(ValueError):
            PortRange.parse(bad)


# ---- create: clusterIP(s) in step, families ----------------------------------------

def test_prepare_create_fills_cluster_ips_and_families() -> None:
    s = svc(clusterIP="10.96.0.5")
    prepare_create(s)
    assert list(s.spec.clusterIPs) == ["10.96.0.5"]
    assert list(s.spec.ipFamilies) == ["IPv4"] and s.spec.ipFamilyPolicy == "SingleStack"
    ext = svc(type="ExternalName", externalName="db.example.com", ports=[])
    prepare_create(ext)
    assert not ext.spec.ipFamilies and not ext.spec.HasField("ipFamilyPolicy")


def test_cluster_ip_validation_messages() -> None:
    assert errors(svc(clusterIP="10.96.0.5", clusterIPs=["10.96.0.6"])) == [
        'spec.clusterIPs: Invalid value: []string{"10.96.0.6"}: first value must match '
        '`clusterIP`']
    assert errors(svc(clusterIPs=["10.96.0.6"])) == [
        'spec.clusterIPs: Invalid value: []string{"10.96.0.6"}: must be empty when '
        '`clusterIP` is not specified']
    assert errors(svc(clusterIP="None", clusterIPs=["None", "10.96.0.1"])) == [
        'spec.clusterIPs: Invalid value: []string{"None", "10.96.0.1"}: \'None\' must be the '
        'first and only value']
    assert errors(svc(ipFamilies=["IPv5"], ipFamilyPolicy="Maybe")) == [
        'spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"',
        'spec.ipFamilyPolicy: Unsupported value: "Maybe": supported values: '
        '"PreferDualStack", "RequireDualStack", "SingleStack"']
    bad = svc(clusterIP="10.1.2.300")
    prepare_create(bad)
    assert errors(bad) == [
        'spec.clusterIP: Invalid value: "10.1.2.300": must be a valid IP address, (e.g. '
        '10.9.8.7 or 2001:db8::ffff)',
        'spec.clusterIPs[0]: Invalid value: "10.1.2.300": must be a valid IP address, (e.g. '
        '10.9.8.7 or 2001:db8::ffff)']
    ext = svc(type="ExternalName", externalName="db.example.com", clusterIPs=["10.96.0.3"])
    assert "spec.clusterIPs: Forbidden: may not be set for ExternalName services" in errors(ext)


# ---- update: carried over, immutable, dropped with the type -------------------------

def stored(**spec: Any) -> Any:
    s = svc(**spec)
    prepare_create(s)
    return s


def test_update_carries_allocated_values_over() -> None:
    old = stored(type="NodePort", clusterIP="10.96.3.4",
                 ports=[{"name": "http", "port": 80, "nodePort": 30080},
                        {"name": "https", "port": 443, "nodePort": 30443}])
    new = svc(type="NodePort", ports=[{"name": "http", "port": 80},
                                      {"name": "https", "port": 8443}])
    prepare_update(new, old)
    assert (new.spec.clusterIP, list(new.spec.clusterIPs)) == ("10.96.3.4", ["10.96.3.4"])
    assert [p.nodePort for p in new.spec.ports] == [30080, 30443]
    assert errors(new, old) == []


def test_cluster_ip_may_not_change() -> None:
    old = stored(clusterIP="10.96.3.4")
    new = svc(clusterIP="10.96.3.5")
    prepare_update(new, old)
    assert errors(new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.3.5"}: may not change once set']
    cleared = svc(clusterIP="", clusterIPs=[])
    prepare_update(cleared, old)
    assert cleared.spec.clusterIP == "10.96.3.4"  # left out = kept, as Kubernetes does
    headless = svc(clusterIP="None")
    prepare_update(headless, old)
    assert errors(headless, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set']


def test_type_change_drops_what_the_new_type_does_not_use() -> None:
    old = stored(type="NodePort", clusterIP="10.96.3.4", externalTrafficPolicy="Cluster",
                 ports=[{"port": 80, "nodePort": 30080}])
    to_cluster_ip = convert.from_dict(convert.to_dict(old), core_pb2.Service)
    to_cluster_ip.spec.type = "ClusterIP"
    prepare_update(to_cluster_ip, old)
    assert to_cluster_ip.spec.ports[0].nodePort == 0
    assert to_cluster_ip.spec.externalTrafficPolicy == ""
    assert to_cluster_ip.spec.clusterIP == "10.96.3.4" and errors(to_cluster_ip, old) == []
    to_external = convert.from_dict(convert.to_dict(old), core_pb2.Service)
    to_external.spec.type = "ExternalName"
    to_external.spec.externalName = "db.example.com"
    prepare_update(to_external, old)
    assert not to_external.spec.clusterIP and not to_external.spec.clusterIPs
    assert not to_external.spec.ipFamilies and not to_external.spec.HasField("ipFamilyPolicy")
    back = svc(type="ClusterIP")
    prepare_update(back, to_external)
    assert list(back.spec.ipFamilies) == ["IPv4"]  # to be allocated


def test_node_port_needs() -> None:
    assert needs_node_port(svc(type="NodePort"))
    assert needs_node_port(svc(type="LoadBalancer"))
    assert not needs_node_port(svc(type="LoadBalancer", allocateLoadBalancerNodePorts=False))
    assert not needs_node_port(svc(type="ClusterIP"))


# ---- master flags ----------------------------------------------------------------

def test_master_flags_name_themselves() -> None:
    from master.main import advertise_address, parse_args, service_ranges

    ips, ports = service_ranges(parse_args([]))
    assert (ips.cidr, str(ports)) == ("10.96.0.0/12", "30000-32767")
    cases = {
        ("--service-cluster-ip-range", "10.96.0.0/33"): "--service-cluster-ip-range: invalid",
        ("--service-node-port-range", "32767-30000"): "--service-node-port-range: invalid",
        ("--cluster-dns", "10.200.0.10"): "--cluster-dns: '10.200.0.10' is not an address",
        ("--cluster-dns", "10.96.0.1"): "--cluster-dns: 10.96.0.1 is the `kubernetes`",
    }
    for argv, message in cases.items():
        with pytest.raises(SystemExit) as e:
            service_ranges(parse_args(list(argv)))
        assert str(e.value).startswith(f"kubelite-master: {message}"), e.value
    assert advertise_address(parse_args([]), ["127.0.0.1:6443", "10.240.0.1:6443"]) == \
        ("10.240.0.1", 6443)
    assert advertise_address(parse_args(["--advertise-address", "192.0.2.7"]),
                             ["0.0.0.0:7000"]) == ("192.0.2.7", 7000)
    with pytest.raises(SystemExit, match="--advertise-address: 'nope' is not an IP"):
        advertise_address(parse_args(["--advertise-address", "nope"]), ["0.0.0.0:7000"])
    host, port = advertise_address(parse_args([]), ["127.0.0.1:6443"])
    assert port == 6443 and host  # the host's own address
