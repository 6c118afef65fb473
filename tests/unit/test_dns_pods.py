"""Pods' resolv.conf per dnsPolicy (the kubelet's rules), dnsConfig
validation, and the node agent's DNS flags."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api import pod_pb2
from kubelite.objects import convert
from node.agent import parse_args
from node.dns import flags
from node.dns.resolvconf import ResolvConf
from node.kubelet.dnsconfig import DNSSettings, pod_dns
from tests.unit.test_validation import errors
from tests.unit.test_validation import pod as pod_manifest

HOST = ResolvConf(["10.0.0.2", "10.0.0.3"], ["corp.example", "lab.example."], ["edns0"])
SETTINGS = DNSSettings(cluster_dns=["10.96.0.10"], domain="cluster.local")


def pod(ns: str = "shop", **spec: Any) -> Any:
    spec.setdefault("containers", [{"name": "c", "image": "busybox"}])
    return convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": "p", "namespace": ns, "uid": "u1"},
                              "spec": spec}, pod_pb2.Pod)


def conf(p: Any, settings: DNSSettings = SETTINGS) -> tuple[list[str], list[str], list[str]]:
    d = pod_dns(p, settings, HOST)
    return d.nameservers, d.searches, d.options


def test_cluster_first_is_the_default() -> None:
    expected = (["10.96.0.10"],
                ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local",
                 "corp.example", "lab.example"], ["ndots:5"])
    assert conf(pod()) == expected
    assert conf(pod(dnsPolicy="ClusterFirst")) == expected
    # hostNetwork: ClusterFirst means the node's own; WithHostNet keeps the cluster's
    assert conf(pod(hostNetwork=True)) == (HOST.nameservers, ["corp.example", "lab.example"],
                                           ["edns0"])
    assert conf(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")) == expected


def test_default_is_the_nodes_resolv_conf() -> None:
    assert conf(pod(dnsPolicy="Default")) == (HOST.nameservers,
                                              ["corp.example", "lab.example"], ["edns0"])
    # --resolv-conf "": the kubelet's "no DNS" (localhost, search .)
    assert conf(pod(dnsPolicy="Default"), DNSSettings(resolv_conf="")) == (
        ["127.0.0.1"], ["."], [])


def test_none_takes_only_dns_config_and_others_merge_it() -> None:
    cfg = {"nameservers": ["1.1.1.1"], "searches": ["x.example"],
           "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}
    assert conf(pod(dnsPolicy="None", dnsConfig=cfg)) == (["1.1.1.1"], ["x.example"],
                                                          ["ndots:2", "edns0"])
    ns, search, opts = conf(pod(dnsConfig={**cfg, "nameservers": ["10.96.0.10", "1.1.1.1"],
                                           "searches": ["svc.cluster.local", "x.example"]}))
    assert ns == ["10.96.0.10", "1.1.1.1"]                       # duplicates omitted
    assert search[-2:] == ["lab.example", "x.example"] and len(search) == 6
    assert opts == ["ndots:2", "edns0"]                          # same name: the pod's wins


def test_docker_arguments() -> None:
    d = pod_dns(pod(), SETTINGS, HOST)
    assert d.docker() == {"dns": ["10.96.0.10"], "dns_search": d.searches,
                          "dns_opt": ["ndots:5"]}
    assert pod_dns(pod(dnsPolicy="Default"), SETTINGS, ResolvConf()).docker() == {}


def test_cluster_first_without_cluster_dns_falls_back_with_an_event() -> None:
    d = pod_dns(pod(), DNSSettings(cluster_dns=[]), HOST)
    assert d.nameservers == HOST.nameservers
    assert d.warnings == [("MissingClusterDNS", 'pod: "p_shop(u1)". kubelet does not have '
                           "ClusterDNS IP configured and cannot create Pod using "
                           '"ClusterFirst" policy. Falling back to "Default" policy.')]


def test_limits_cut_with_an_event() -> None:
    cfg = {"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"],
           "searches": [f"s{i}.example" for i in range(40)]}
    d = pod_dns(pod(dnsConfig=cfg), SETTINGS, HOST)
    assert d.nameservers == ["10.96.0.10", "1.1.1.1", "8.8.8.8"] and len(d.searches) == 32
    assert [w[0] for w in d.warnings] == ["DNSConfigForming", "DNSConfigForming"]
    assert d.warnings[0][1].endswith("the applied nameserver line is: 10.96.0.10 1.1.1.1 "
                                     "8.8.8.8")
    long = pod_dns(pod(dnsConfig={"searches": ["a" * 60 + f".x{i}" for i in range(31)]}),
                   DNSSettings(domain=""), ResolvConf())
    assert len(" ".join(long.searches)) <= 2048 and len(long.searches) == 31


# ---- validation of dnsConfig (errors naming the field) ------------------------------------


def test_dns_config_validation() -> None:
    assert errors(pod_manifest(dnsPolicy="None")) == [
        "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]
    assert errors(pod_manifest(dnsPolicy="None", dnsConfig={"searches": ["a"]})) == [
        "spec.dnsConfig.nameservers: Required value: must provide at least one DNS "
        "nameserver when `dnsPolicy` is None"]
    errs = errors(pod_manifest(dnsConfig={
        "nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "bad"],
        "searches": ["ok.example.", "Bad_Domain"] + [f"s{i}" for i in range(31)],
        "options": [{"value": "2"}]}))
    assert any(e.startswith("spec.dnsConfig.nameservers: Invalid value:") and
               e.endswith("must not have more than 3 nameservers") for e in errs)
    assert any(e.startswith('spec.dnsConfig.nameservers[3]: Invalid value: "bad"')
               for e in errs)
    assert any(e.endswith("must not have more than 32 search paths") for e in errs)
    assert any(e.startswith('spec.dnsConfig.searches[1]: Invalid value: "Bad_Domain"')
               for e in errs)
    assert "spec.dnsConfig.options[0]: Required value: must not be empty" in errs
    long = errors(pod_manifest(dnsConfig={"searches": ["a" * 63 + f".b{i:02}" for i in
                                                       range(31)]}))
    assert len(long) == 1 and long[0].startswith("spec.dnsConfig.searches: Invalid value:")
    assert long[0].endswith("must not have more than 2048 characters (including spaces) in "
                            "the search list")
    assert errors(pod_manifest(dnsPolicy="Sometimes"))[0].startswith(
        'spec.dnsPolicy: Unsupported value: "Sometimes"')
    assert errors(pod_manifest(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"]})) == []


# ---- agent flags ---------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--cluster-dns", "10.96.0.10,dns"], "--cluster-dns: 'dns' is not an IP address"),
    (["--cluster-domain", "Cluster_Local"], "--cluster-domain: 'Cluster_Local' is not a DNS"),
    (["--cluster-dns-port", "70000"], "--cluster-dns-port: 70000 is not a port"),
    (["--dns-bind-address", "node"], "--dns-bind-address: 'node' is not an IP address"),
])
def test_bad_dns_flags_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        parse_args(argv)


def test_dns_flags_become_settings() -> None:
    args = parse_args(["--node-ip", "10.0.0.5", "--cluster-dns", "10.96.0.10,10.96.0.11",
                       "--cluster-domain", "corp.internal."])
    assert flags.pod_settings(args) == DNSSettings(["10.96.0.10", "10.96.0.11"],
                                                   "corp.internal", "/etc/resolv.conf")
    opts = flags.server_options(args, "10.0.0.5")
    assert opts is not None and (opts.host, opts.port) == ("10.0.0.5", 53)
    assert flags.server_options(parse_args(["--dns-bind-address", "none"]), "x") is None
    assert parse_args(["--cluster-dns", ""]).cluster_dns == ""  # pods fall back to Default
