"""The pod network's pure parts: IPAM on disk, net-conf.json, node CIDR
allocation, the iptables payloads, the local cluster's plan, flags."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError
from kubelite.objects import netconf
from kubelite.objects.validation_core import validate_node
from master.controllers.nodeipam import NodeIPAMController
from master.main import network_config, parse_args
from node.network import hostports, masq
from node.network.ipam import IPAM, IPAMError

# ---- IPAM ---------------------------------------------------------------------


def test_ipam_hands_out_each_address_once_and_skips_reserved(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.244.3.0/29")  # .0 network, .1 gateway, .7 broadcast
    got = [ipam.allocate(f"sandbox-{i}") for i in range(5)]
    assert got == [f"10.244.3.{i}" for i in range(2, 7)]
    assert str(ipam.gateway) == "10.244.3.1" and ipam.prefixlen == 29
    with pytest.raises(IPAMError, match=r"no free address left in 10.244.3.0/29"):
        ipam.allocate("one-too-many")
    assert ipam.allocate("sandbox-2") == "10.244.3.4"  # the same owner: its address again


def test_ipam_round_robin_state_survives_a_restart(tmp_path: Path) -> None:
    ipam = IPAM(tmp_path, "10.244.3.0/24")
    a = ipam.allocate("a")
    ipam.allocate("b")
    assert ipam.release("a") == [a]
    again = IPAM(tmp_path, "10.244.3.0/24")  # a restarted agent
    assert again.lookup("b") == "10.244.3.3"
    assert again.allocate("c") == "10.244.3.4"  # not the one just given back
    assert again.release_all_but({"c"}) == ["10.244.3.3"]
    assert again.entries() == {"10.244.3.4": "c"}


def test_ipam_rejects_ranges_it_cannot_serve(tmp_path: Path) -> None:
    with pytest.raises(IPAMError, match="IPv4 range of /30 or larger"):
        IPAM(tmp_path, "10.244.3.0/31")
    with pytest.raises(ValueError):
        IPAM(tmp_path, "10.244.3.1/24")  # host bits set


# ---- net-conf.json ----------------------------------------------------------------

def test_netconf_round_trip_and_defaults() -> None:
    conf = netconf.NetConf("10.244.0.0/16", "vxlan", 7, 4789)
    assert netconf.parse(conf.to_json()) == conf
    assert netconf.parse('{"Network": "10.1.0.0/16"}') == netconf.NetConf("10.1.0.0/16")
    hg = netconf.NetConf("10.244.0.0/16", "host-gw")
    assert json.loads(hg.to_json()) == {"Network": "10.244.0.0/16",
                                        "Backend": {"Type": "host-gw"}}


@pytest.mark.parametrize(("text", "field"), [
    ("[", "not JSON"),
    ("[]", "must be a JSON object"),
    ("{}", "Network: required"),
    ('{"Network": "10.244.0.1/16"}', "Network: 10.244.0.1/16 has host bits set"),
    ('{"Network": "fd00::/64"}', "Network: only IPv4"),
    ('{"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}', "Backend.Type: 'udp'"),
    ('{"Network": "10.244.0.0/16", "Backend": {"VNI": 0}}', "Backend.VNI: 0"),
    ('{"Network": "10.244.0.0/16", "Backend": {"Port": 70000}}', "Backend.Port: 70000"),
])
def test_netconf_errors_name_the_field(text: str, field: str) -> None:
    with pytest.raises(netconf.ConfigError, match="net-conf.json: " + field.replace(
            ".", r"\.").replace("[", r"\[").replace("(", r"\(")):
        netconf.parse(text)


def test_master_network_flags_are_checked() -> None:
    conf = network_config(parse_args(["--network-backend", "host-gw"]))
    assert conf == netconf.NetConf("10.244.0.0/16", "host-gw")
    assert network_config(parse_args(["--no-allocate-node-cidrs"])) is None
    with pytest.raises(SystemExit, match=r"--cluster-cidr: 10.244.0.1/16 has host bits set"):
        network_config(parse_args(["--cluster-cidr", "10.244.0.1/16"]))
    with pytest.raises(SystemExit, match=r"--node-cidr-mask-size: 12 does not fit"):
        network_config(parse_args(["--node-cidr-mask-size", "12"]))
    with pytest.raises(SystemExit, match=r"--vxlan-vni: 0 is not in"):
        network_config(parse_args(["--vxlan-vni", "0"]))
    assert isinstance(parse_args([]), argparse.Namespace)


# ---- node CIDRs ---------------------------------------------------------------------

class FakeNodes:
    """get/update of Nodes with resourceVersion checks; create for events."""

    def __init__(self) -> None:
        self.nodes: dict[str, Any] = {}
        self.rv = 0

    def add(self, name: str, cidr: str = "") -> Any:
        n = core_pb2.Node(apiVersion="v1", kind="Node")
        n.metadata.name = name
        n.spec.podCIDR = cidr
        self.rv += 1
        n.metadata.resourceVersion = str(self.rv)
        self.nodes[name] = n
        return n

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        if name not in self.nodes:
            raise APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound", "not found")
        out = core_pb2.Node()
        out.CopyFrom(self.nodes[name])
        return out

    async def update(self, obj: Any) -> Any:
        cur = self.nodes[obj.metadata.name]
        if cur.metadata.resourceVersion != obj.metadata.resourceVersion:
            raise APIStatusError(grpc.StatusCode.ABORTED, "Conflict", "conflict")
        self.rv += 1
        obj.metadata.resourceVersion = str(self.rv)
        self.nodes[obj.metadata.name] = obj
        return obj

    async def create(self, obj: Any) -> Any:
        return obj


def _controller(client: FakeNodes, network: str = "10.244.0.0/16",
                mask: int = 24) -> NodeIPAMController:
    c = NodeIPAMController(client, netconf.NetConf(network), mask_size=mask)  # type: ignore[arg-type]
    c.nodes._cache = client.nodes  # the informer's view: whatever the fake holds
    return c


async def test_node_ipam_gives_the_lowest_free_range_once() -> None:
    api = FakeNodes()
    api.add("a", "10.244.0.0/24")
    api.add("b")
    api.add("c")
    ctl = _controller(api)
    await ctl.reconcile("b")
    assert api.nodes["b"].spec.podCIDR == "10.244.1.0/24"
    assert list(api.nodes["b"].spec.podCIDRs) == ["10.244.1.0/24"]
    await ctl.reconcile("c")
    assert api.nodes["c"].spec.podCIDR == "10.244.2.0/24"
    # a Node that leaves gives its range back
    del api.nodes["a"]
    api.add("d")
    await ctl.reconcile("d")
    assert api.nodes["d"].spec.podCIDR == "10.244.0.0/24"
    await ctl.reconcile("d")  # already has one: nothing changes
    assert api.nodes["d"].spec.podCIDR == "10.244.0.0/24"
    await asyncio.sleep(0)


async def test_node_ipam_never_gives_a_range_twice_before_the_cache_catches_up() -> None:
    api = FakeNodes()
    api.add("a")
    api.add("b")
    ctl = _controller(api)
    stale = {"a": api.nodes["a"], "b": api.nodes["b"]}
    ctl.nodes._cache = dict(stale)  # the cache does not see the first write yet
    await ctl.reconcile("a")
    await ctl.reconcile("b")
    assert {api.nodes["a"].spec.podCIDR, api.nodes["b"].spec.podCIDR} == {
        "10.244.0.0/24", "10.244.1.0/24"}


async def test_node_ipam_full_cluster_waits_for_a_range() -> None:
    api = FakeNodes()
    api.add("a")
    api.add("b")
    ctl = _controller(api, "10.244.0.0/24", 25)  # room for two /25s... one taken below
    api.nodes["a"].spec.podCIDR = "10.244.0.0/25"
    api.add("x", "10.244.0.128/25")
    await ctl.reconcile("b")
    assert api.nodes["b"].spec.podCIDR == "" and "b" in ctl._waiting
    del api.nodes["x"]
    ctl._retry_waiting()
    assert len(ctl.queue) == 1 and not ctl._waiting
    await ctl.reconcile("b")
    assert api.nodes["b"].spec.podCIDR == "10.244.0.128/25"


def test_node_ipam_rejects_a_mask_that_does_not_fit() -> None:
    with pytest.raises(ValueError, match="--node-cidr-mask-size: 8 does not fit"):
        NodeIPAMController(FakeNodes(), netconf.NetConf("10.244.0.0/16"),  # type: ignore[arg-type]
                           mask_size=8)


def test_pod_cidr_is_immutable_once_set() -> None:
    old = core_pb2.Node()
    old.metadata.name = "n"
    old.spec.podCIDR = "10.244.1.0/24"
    new = core_pb2.Node()
    new.CopyFrom(old)
    new.spec.podCIDR = "10.244.2.0/24"
    errs = validate_node(new, old)
    assert any(e.path == "spec.podCIDR" and "may not change podCIDR" in str(e) for e in errs)
    fresh = core_pb2.Node()
    fresh.metadata.name = "n"
    assert not validate_node(old, fresh)  # from "" to a range: allowed
    bad = core_pb2.Node()
    bad.CopyFrom(old)
    bad.spec.podCIDRs.append("10.244.9.0/24")
    assert any(e.path == "spec.podCIDRs[0]" for e in validate_node(bad, None))


# ---- iptables payloads -----------------------------------------------------------

def test_masquerade_payload() -> None:
    text = masq.payload("10.244.0.0/16")
    assert ":KUBELITE-POSTROUTING - [0:0]" in text and ":KUBELITE-FORWARD - [0:0]" in text
    lines = text.splitlines()
    ret = lines.index('-A KUBELITE-POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment '
                      '--comment "pod to pod: no masquerade" -j RETURN')
    masq_line = next(i for i, x in enumerate(lines) if "MASQUERADE --random-fully" in x)
    assert ret < masq_line and "! -d 224.0.0.0/4" in lines[masq_line]
    assert text.count("COMMIT") == 2


def test_hostport_payload() -> None:
    pod = pod_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "web", "default"
    c = pod.spec.containers.add(name="c")
    c.ports.add(containerPort=8080, hostPort=18080)
    c.ports.add(containerPort=53, hostPort=5353, protocol="UDP", hostIP="10.0.0.5")
    c.ports.add(containerPort=9090)  # no hostPort: no rule
    ms = hostports.mappings_of(pod, "10.244.1.7")
    assert [(m.protocol, m.host_port, m.host_ip, m.container_port) for m in ms] == [
        ("tcp", 18080, "", 8080), ("udp", 5353, "10.0.0.5", 53)]
    text = hostports.payload(ms)
    assert ("-A KUBELITE-HOSTPORTS -p tcp -m tcp --dport 18080 -m comment --comment "
            '"default/web hostPort 18080" -j DNAT --to-destination 10.244.1.7:8080') in text
    assert "-A KUBELITE-HOSTPORTS -d 10.0.0.5/32 -p udp -m udp --dport 5353" in text
    assert ("-A KUBELITE-HOSTPORTS-MASQ -s 10.244.1.7/32 -d 10.244.1.7/32 -p tcp -m tcp "
            "--dport 8080 -j MASQUERADE") in text
    empty = hostports.payload([])
    assert ":KUBELITE-HOSTPORTS - [0:0]" in empty and "-A " not in empty


# ---- the local cluster's plan ----------------------------------------------------------

def test_local_cluster_plan() -> None:
    from kubelite import localnet

    ln = localnet.plan("kl0", "10.240.0.0/24", ["node-1", "node-2"])
    assert ln.gateway == "10.240.0.1" and ln.chain == "KUBELITE-UP-kl0"
    assert [(n.netns, n.veth, n.address) for n in ln.nodes] == [
        ("kubelite-node-1", "kl-node-1", "10.240.0.11"),
        ("kubelite-node-2", "kl-node-2", "10.240.0.12")]
    long = localnet.plan("kl0", "10.240.0.0/24", ["a-very-long-node-name"]).nodes[0]
    assert len(long.veth) <= 15 and long.veth.startswith("kl-")
    with pytest.raises(localnet.LocalNetError, match="too small for 2 nodes"):
        localnet.plan("kl0", "10.240.0.0/29", ["a", "b"])
    with pytest.raises(localnet.LocalNetError, match="at most 15 characters"):
        localnet.plan("a-bridge-name-too-long", "10.240.0.0/24", ["a"])
    assert localnet.LocalNet.load(Path("/nonexistent")) is None
