"""Service cluster IPs and NodePorts through a real master and etcd."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient, Client
from kubelite.objects import convert
from master.apiserver.storage import Storage
from tests.cluster import Etcd, Master, run_master
from tests.node_agent import wait_for

IP_RECORDS = "/registry/ranges/serviceips/"
PORT_RECORDS = "/registry/ranges/servicenodeports/"


def svc(name: str, ns: str, **spec: Any) -> Any:
    spec.setdefault("ports", [{"port": 80}])
    return convert.from_dict({"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": name, "namespace": ns}, "spec": spec},
                             core_pb2.Service)


def refused(client: Client, obj: Any) -> str:
    with pytest.raises(APIStatusError) as e:
        client.create(obj)
    return f"{e.value.reason}: {e.value.message}"


async def _records(etcd: Etcd, prefix: str) -> dict[str, dict[str, str]]:
    s = Storage(etcd.host, etcd.port)
    await s.connect()
    try:
        kvs, _ = await s.list(prefix)
        return {kv.key.removeprefix(prefix): json.loads(kv.value) for kv in kvs}
    finally:
        await s.close()


def records(etcd: Etcd, prefix: str = IP_RECORDS) -> dict[str, dict[str, str]]:
    return asyncio.run(_records(etcd, prefix))


def test_default_services(client: Client) -> None:
    k = client.get("services", "kubernetes", "default")
    assert (k.spec.clusterIP, k.spec.ports[0].name, k.spec.ports[0].port) == \
        ("10.96.0.1", "https", 443)
    assert not k.spec.selector
    ep = client.get("endpoints", "kubernetes", "default")
    api_port = int(client.server.rpartition(":")[2])
    assert [p.port for p in ep.subsets[0].ports] == [api_port]
    assert k.spec.ports[0].targetPort.intVal == api_port
    assert ep.subsets[0].addresses[0].ip
    dns = client.get("services", "kube-dns", "kube-system")
    assert dns.spec.clusterIP == "10.96.0.10" and not dns.spec.selector
    assert [(p.name, p.port, p.protocol) for p in dns.spec.ports] == \
        [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]


def test_allocated_requested_and_refused(client: Client, namespace: str, etcd: Etcd) -> None:
    a = client.create(svc("a", namespace))
    ip = a.spec.clusterIP
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert list(a.spec.clusterIPs) == [ip] and list(a.spec.ipFamilies) == ["IPv4"]
    assert records(etcd)[ip] == {"namespace": namespace, "name": "a", "uid": a.metadata.uid}
    assert refused(client, svc("b", namespace, clusterIP=ip)) == (
        f'Invalid: Service "b" is invalid: spec.clusterIPs: Invalid value: "{ip}": provided '
        "IP is already allocated")
    assert refused(client, svc("b", namespace, clusterIP="10.200.0.5")) == (
        'Invalid: Service "b" is invalid: spec.clusterIPs: Invalid value: "10.200.0.5": '
        "provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12")
    # the refused creates left nothing behind; a deleted Service gives its IP back
    client.delete("services", "a", namespace)
    assert ip not in records(etcd)
    b = client.create(svc("b", namespace, clusterIP=ip))
    assert b.spec.clusterIP == ip
    # a failed create (the name is taken) allocates nothing
    assert refused(client, svc("b", namespace, clusterIP="10.96.0.77")).startswith(
        "AlreadyExists")
    assert "10.96.0.77" not in records(etcd)
    # dry run: the answer, no allocation
    dry = client.create(svc("c", namespace), dry_run=True)
    assert dry.spec.clusterIP and dry.spec.clusterIP not in records(etcd)
    with pytest.raises(APIStatusError, match="provided IP is already allocated"):
        client.create(svc("c", namespace, clusterIP=ip), dry_run=True)


def test_headless_and_external_name_get_no_ip(client: Client, namespace: str,
                                              etcd: Etcd) -> None:
    before = set(records(etcd))
    h = client.create(svc("h", namespace, clusterIP="None", selector={"app": "h"}))
    assert list(h.spec.clusterIPs) == ["None"]
    e = client.create(svc("e", namespace, type="ExternalName", externalName="db.example.com",
                          ports=[]))
    assert not e.spec.clusterIP and not e.spec.clusterIPs
    assert set(records(etcd)) == before


def test_update_keeps_ip_and_refuses_changes(client: Client, namespace: str) -> None:
    a = client.create(svc("a", namespace, selector={"app": "a"}))
    replaced = svc("a", namespace, selector={"app": "b"})  # `replace` of the original file
    got = client.update(replaced)
    assert got.spec.clusterIP == a.spec.clusterIP and got.spec.selector["app"] == "b"
    moved = svc("a", namespace, clusterIP="10.96.0.99")
    with pytest.raises(APIStatusError) as e:
        client.update(moved)
    assert e.value.message == (
        'Service "a" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.99"}: '
        "may not change once set")


def test_node_ports(client: Client, namespace: str, etcd: Etcd) -> None:
    n = client.create(svc("n", namespace, type="NodePort",
                          ports=[{"name": "http", "port": 80},
                                 {"name": "dns", "port": 53, "protocol": "UDP",
                                  "nodePort": 30053}]))
    ports = [p.nodePort for p in n.spec.ports]
    assert ports[1] == 30053 and 30086 <= ports[0] <= 32767
    assert set(records(etcd, PORT_RECORDS)) >= {str(p) for p in ports}
    assert refused(client, svc("m", namespace, type="NodePort",
                               ports=[{"port": 80, "nodePort": 30053}])) == (
        'Invalid: Service "m" is invalid: spec.ports[0].nodePort: Invalid value: 30053: '
        "provided port is already allocated")
    assert refused(client, svc("m", namespace, type="NodePort",
                               ports=[{"port": 80, "nodePort": 40000}])) == (
        'Invalid: Service "m" is invalid: spec.ports[0].nodePort: Invalid value: 40000: '
        "provided port is not in the valid range. The range of valid ports is 30000-32767")
    assert "forbidden" in refused(client, svc("m", namespace, ports=[
        {"port": 80, "nodePort": 30081}])).lower()
    # replacing without nodePorts keeps them; changing the type to ClusterIP frees them
    same = client.update(svc("n", namespace, type="NodePort",
                             ports=[{"name": "http", "port": 80},
                                    {"name": "dns", "port": 53, "protocol": "UDP"}]))
    assert [p.nodePort for p in same.spec.ports] == ports
    d = convert.to_dict(same)
    d["spec"]["type"] = "ClusterIP"
    flat = client.update(convert.from_dict(d, core_pb2.Service))
    assert [p.nodePort for p in flat.spec.ports] == [0, 0]
    assert not {str(p) for p in ports} & set(records(etcd, PORT_RECORDS))
    m = client.create(svc("m", namespace, type="NodePort", ports=[{"port": 80,
                                                                   "nodePort": 30053}]))
    assert m.spec.ports[0].nodePort == 30053
    client.delete("services", "m", namespace)
    assert "30053" not in records(etcd, PORT_RECORDS)


async def _concurrent(addresses: list[str], ns: str, n: int) -> list[Any]:
    clients = [AsyncClient(server=a, timeout=30) for a in addresses]
    try:
        return await asyncio.gather(*(clients[i % len(clients)].create(svc(f"s{i}", ns))
                                      for i in range(n)))
    finally:
        for c in clients:
            await c.close()


def test_concurrent_creates_get_distinct_ips(master: Master, namespace: str,
                                             etcd: Etcd) -> None:
    made = asyncio.run(_concurrent([master.address], namespace, 50))
    ips = [s.spec.clusterIP for s in made]
    assert len(set(ips)) == 50 and all(ips)
    held = records(etcd)
    assert all(held[ip]["name"] == s.metadata.name for ip, s in zip(ips, made, strict=True))


def test_two_masters_never_hand_out_one_ip(master: Master, etcd: Etcd, namespace: str) -> None:
    """A small range (14 addresses) shared by two masters: all distinct, then full."""
    with run_master(etcd.endpoint, "--no-scheduler", "--no-controllers",
                    "--service-cluster-ip-range", "10.96.0.0/28",
                    "--cluster-dns", "10.96.0.10") as m1, \
            run_master(etcd.endpoint, "--no-scheduler", "--no-controllers",
                       "--service-cluster-ip-range", "10.96.0.0/28",
                       "--cluster-dns", "10.96.0.10") as m2:
        taken = sum(1 for ip in records(etcd)
                    if ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/28"))
        free = 14 - taken
        assert 0 < free <= 12
        # every master is in the `kubernetes` Endpoints (one subset per API port here)
        ports = {int(m.address.rpartition(":")[2]) for m in (master, m1, m2)}
        wait_for(lambda: _master_ports(m1.address) == ports, 10, "masters in endpoints")
        made = asyncio.run(_concurrent([m1.address, m2.address], namespace, free))
        ips = {s.spec.clusterIP for s in made}
        assert len(ips) == free
        with Client(server=m2.address) as c:
            with pytest.raises(APIStatusError) as e:
                c.create(svc("full", namespace))
        assert e.value.message == ("Internal error occurred: failed to allocate a serviceIP: "
                                   "range is full")
        with Client(server=m1.address) as c:
            for s in made:
                c.delete("services", s.metadata.name, namespace)
    # stopped masters take themselves out
    assert _master_ports(master.address) == {int(master.address.rpartition(":")[2])}


def _master_ports(address: str) -> set[int]:
    with Client(server=address) as c:
        ep = c.get("endpoints", "kubernetes", "default")
    return {p.port for s in ep.subsets for p in s.ports}


async def _write_raw(etcd: Etcd, key: str, value: bytes) -> None:
    s = Storage(etcd.host, etcd.port)
    await s.connect()
    try:
        await s.create(key, value)
    finally:
        await s.close()


def test_repair_at_start(etcd: Etcd, namespace: str, client: Client) -> None:
    """Services written before allocation existed get values; stray records go."""
    old = svc("legacy", namespace, type="NodePort", ports=[{"port": 80, "protocol": "TCP"}])
    old.metadata.uid = "legacy-uid"
    old.spec.sessionAffinity = "None"
    asyncio.run(_write_raw(etcd, f"/registry/services/{namespace}/legacy",
                           old.SerializeToString()))
    stray = json.dumps({"namespace": namespace, "name": "gone", "uid": "x"}).encode()
    asyncio.run(_write_raw(etcd, IP_RECORDS + "10.96.0.200", stray))
    with run_master(etcd.endpoint, "--no-scheduler", "--no-controllers"):
        pass  # repair runs before the master serves
    got = client.get("services", "legacy", namespace)
    assert got.spec.clusterIP and got.spec.ports[0].nodePort
    held = records(etcd)
    assert held[got.spec.clusterIP]["uid"] == "legacy-uid"
    assert "10.96.0.200" not in held
    assert records(etcd, PORT_RECORDS)[str(got.spec.ports[0].nodePort)]["name"] == "legacy"


def test_type_changes_allocate_and_release(client: Client, namespace: str, etcd: Etcd) -> None:
    e = client.create(svc("e", namespace, type="ExternalName", externalName="db.example.com"))
    d = convert.to_dict(e)
    d["spec"]["type"] = "ClusterIP"
    del d["spec"]["externalName"]
    c = client.update(convert.from_dict(d, core_pb2.Service))
    ip = c.spec.clusterIP
    assert ip and records(etcd)[ip]["name"] == "e"
    d = convert.to_dict(c)
    d["spec"]["type"], d["spec"]["externalName"] = "ExternalName", "db.example.com"
    back = client.update(convert.from_dict(d, core_pb2.Service))
    assert not back.spec.clusterIP and ip not in records(etcd)
