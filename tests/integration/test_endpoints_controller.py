"""The Endpoints and kube-dns Endpoints controllers against the session's real
master (which runs no controllers): Services, Pods with set statuses and Nodes
are written here and the controllers, run in this process, converge."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert
from master.controllers.dnsendpoints import DNSEndpointsController
from master.controllers.endpoints import EndpointsController
from tests.cluster import Master

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture()
async def aclient(master: Master) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(server=master.address, timeout=15)
    yield c
    await c.close()


@pytest.fixture()
async def running(aclient: AsyncClient) -> AsyncIterator[None]:
    ctls = [EndpointsController(aclient), DNSEndpointsController(aclient)]
    tasks = [asyncio.create_task(c.run()) for c in ctls]
    yield
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            result = await check()
            if result:
                return result
        except (AssertionError, APIStatusError):
            if asyncio.get_running_loop().time() > deadline:
                raise
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not converged: {result!r}")
        await asyncio.sleep(0.1)


async def make_pod(c: AsyncClient, ns: str, name: str, ip: str, ready: bool,
                   labels: dict[str, str] | None = None) -> None:
    await c.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "i",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]}},
        pod_pb2.Pod))
    await set_status(c, ns, name, ip, ready)


async def set_status(c: AsyncClient, ns: str, name: str, ip: str, ready: bool) -> None:
    p = await c.get("pods", name, ns)
    p.status.phase, p.status.podIP = "Running", ip
    del p.status.conditions[:]
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    await c.update_status(p)


async def ips(c: AsyncClient, ns: str, name: str) -> tuple[list[str], list[str]]:
    ep = await c.get("endpoints", name, ns)
    return ([a.ip for s in ep.subsets for a in s.addresses],
            [a.ip for s in ep.subsets for a in s.notReadyAddresses])


async def test_endpoints_follow_pods(aclient: AsyncClient, namespace: str,
                                     running: None) -> None:
    c, ns = aclient, namespace
    await c.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        core_pb2.Service))
    await make_pod(c, ns, "a", "10.244.1.2", ready=True)
    await make_pod(c, ns, "b", "10.244.1.3", ready=False)
    await eventually(lambda: _is(ips(c, ns, "web"), (["10.244.1.2"], ["10.244.1.3"])))
    ep = await c.get("endpoints", "web", ns)
    assert [(p.name, p.port) for p in ep.subsets[0].ports] == [("http", 8080)]
    assert ep.subsets[0].addresses[0].targetRef.name == "a"
    await set_status(c, ns, "b", "10.244.1.3", ready=True)  # readiness probe passes
    await eventually(lambda: _is(ips(c, ns, "web"), (["10.244.1.2", "10.244.1.3"], [])))
    await c.delete("pods", "a", ns)  # unbound: goes at once
    await eventually(lambda: _is(ips(c, ns, "web"), (["10.244.1.3"], [])))
    b = await c.get("pods", "b", ns)
    b.metadata.labels["app"] = "other"  # relabelled out of the Service
    await c.update(b)
    await eventually(lambda: _is(ips(c, ns, "web"), ([], [])))
    await c.delete("endpoints", "web", ns)  # deleted by hand: put back
    await eventually(lambda: c.get("endpoints", "web", ns))
    await c.delete("services", "web", ns)  # the Service goes: so do its Endpoints
    await eventually(lambda: _gone(c, ns, "web"))


async def test_selectorless_service_keeps_hand_written_endpoints(
        aclient: AsyncClient, namespace: str, running: None) -> None:
    c, ns = aclient, namespace
    await c.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": ns},
        "spec": {"ports": [{"port": 3306}]}}, core_pb2.Service))
    await c.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "namespace": ns},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 3306}]}]},
        core_pb2.Endpoints))
    await make_pod(c, ns, "x", "10.244.1.7", ready=True)
    await asyncio.sleep(1.0)  # give the controller every chance to interfere
    assert await ips(c, ns, "db") == (["192.0.2.10"], [])


async def test_kube_dns_endpoints_list_ready_nodes(aclient: AsyncClient,
                                                   running: None) -> None:
    c = aclient
    names = [f"dns-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    addrs = ["10.240.9.11", "10.240.9.12"]
    try:
        for name, ip, ready in zip(names, addrs, (True, False), strict=True):
            await c.create(convert.from_dict({
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                           "conditions": [{"type": "Ready",
                                           "status": "True" if ready else "False"}]}},
                core_pb2.Node))

        async def check() -> bool:
            ready, not_ready = await ips(c, "kube-system", "kube-dns")
            ep = await c.get("endpoints", "kube-dns", "kube-system")
            assert [(p.name, p.port, p.protocol) for p in ep.subsets[0].ports] == \
                [("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")]
            return addrs[0] in ready and addrs[1] in not_ready and addrs[1] not in ready

        await eventually(check)
    finally:
        for name in names:
            await c.delete("nodes", name)
    await eventually(lambda: _absent(c, addrs))


async def _is(got: Awaitable[Any], want: Any) -> bool:
    value = await got
    assert value == want, value
    return True


async def _gone(c: AsyncClient, ns: str, name: str) -> bool:
    try:
        await c.get("endpoints", name, ns)
    except APIStatusError as e:
        return e.not_found
    return False


async def _absent(c: AsyncClient, addrs: list[str]) -> bool:
    ready, not_ready = await ips(c, "kube-system", "kube-dns")
    assert not set(addrs) & set(ready + not_ready)
    return True
