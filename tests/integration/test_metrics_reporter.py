"""MetricsReporter against the session's real master, with a scripted collector:
NodeMetrics and PodMetrics written and updated, gone pods' PodMetrics removed,
races with other writers, and a loop that survives every failure."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.api import metrics_pb2
from kubelite.client import APIStatusError, AsyncClient, Client
from node.metrics import NODE_LABEL, MetricsReporter
from node.stats import ContainerUsage, NodeUsage, PodUsage, Sample
from tests.cluster import Master, free_port


class ScriptedCollector:
    """`sample()` reports `pods` (and raises `fail` once when set)."""

    def __init__(self) -> None:
        self.pods: list[PodUsage] = []
        self.node = NodeUsage(1500, 3 << 30)
        self.fail: Exception | None = None
        self.calls = 0

    def sample(self) -> Sample:
        self.calls += 1
        if self.fail is not None:
            e, self.fail = self.fail, None
            raise e
        return Sample(datetime.now(UTC), 10.0, self.node, list(self.pods))


def pod(ns: str, name: str, cpu: int | None = 100, mem: int = 64 << 20) -> PodUsage:
    return PodUsage("uid-" + name, name, ns, [ContainerUsage("app", "id-" + name, cpu, mem)])


def usage(pm: Any) -> dict[str, tuple[str, str]]:
    return {c.name: (c.usage["cpu"].string, c.usage["memory"].string) for c in pm.containers}


def pod_metrics_names(client: Client, node: str) -> set[tuple[str, str]]:
    items, _ = client.list("podmetrics", label_selector=f"{NODE_LABEL}={node}")
    return {(m.metadata.namespace, m.metadata.name) for m in items}


@pytest.fixture()
def node_name(client: Client) -> Iterator[str]:
    name = "mr-" + uuid.uuid4().hex[:8]
    yield name
    for m in client.list("podmetrics", label_selector=f"{NODE_LABEL}={name}")[0]:
        try:
            client.delete("podmetrics", m.metadata.name, m.metadata.namespace)
        except APIStatusError:
            pass
    try:
        client.delete("nodemetrics", name)
    except APIStatusError:
        pass


@pytest.fixture()
async def aclient(master: Master) -> AsyncIterator[AsyncClient]:
    c = AsyncClient(server=master.address, timeout=15)
    yield c
    await c.close()


async def test_writes_updates_and_prunes(aclient: AsyncClient, client: Client, namespace: str,
                                         node_name: str) -> None:
    col = ScriptedCollector()
    col.pods = [pod(namespace, "web"), pod(namespace, "db", cpu=0, mem=1000),
                pod(namespace, "new", cpu=None)]  # no rate yet: not reported
    reporter = MetricsReporter(aclient, node_name, col, interval=10.0)
    await reporter.report_once()

    nm = client.get("nodemetrics", node_name)
    assert (nm.apiVersion, nm.kind) == ("metrics.k8s.io/v1beta1", "NodeMetrics")
    assert {k: v.string for k, v in nm.usage.items()} == {"cpu": "1500m",
                                                          "memory": "3145728Ki"}
    assert nm.window == "10s" and nm.timestamp.endswith("Z")
    assert pod_metrics_names(client, node_name) == {(namespace, "web"), (namespace, "db")}
    web = client.get("podmetrics", "web", namespace)
    assert usage(web) == {"app": ("100m", "65536Ki")}
    assert usage(client.get("podmetrics", "db", namespace)) == {"app": ("0", "1Ki")}

    # next round: new values, "db" gone from the node, "new" has its rate now
    col.node = NodeUsage(250, 1 << 30)
    col.pods = [pod(namespace, "web", cpu=2000), pod(namespace, "new")]
    await reporter.report_once()
    assert {k: v.string for k, v in client.get("nodemetrics", node_name).usage.items()} == \
        {"cpu": "250m", "memory": "1048576Ki"}
    assert usage(client.get("podmetrics", "web", namespace)) == {"app": ("2", "65536Ki")}
    assert client.get("podmetrics", "web", namespace).metadata.uid == web.metadata.uid
    assert pod_metrics_names(client, node_name) == {(namespace, "web"), (namespace, "new")}

    # a pod still running but momentarily without a rate keeps its last PodMetrics
    col.pods = [pod(namespace, "web", cpu=None), pod(namespace, "new")]
    await reporter.report_once()
    assert usage(client.get("podmetrics", "web", namespace)) == {"app": ("2", "65536Ki")}

    col.pods = []
    await reporter.report_once()
    assert pod_metrics_names(client, node_name) == set()
    client.get("nodemetrics", node_name)  # the node's own stays


async def test_races_with_other_writers(aclient: AsyncClient, client: Client, namespace: str,
                                        node_name: str) -> None:
    other = "mr-other-" + uuid.uuid4().hex[:6]
    # someone wrote "web" before us (another node, or us before a restart)
    pm = metrics_pb2.PodMetrics(apiVersion="metrics.k8s.io/v1beta1", kind="PodMetrics")
    pm.metadata.name, pm.metadata.namespace = "web", namespace
    pm.metadata.labels[NODE_LABEL] = other
    client.create(pm)
    # and another node's pod that we must never remove
    pm.metadata.name = "theirs"
    client.create(pm)
    # a leftover of ours from before a restart, for a pod gone since
    pm.metadata.name = "leftover"
    pm.metadata.labels[NODE_LABEL] = node_name
    client.create(pm)

    col = ScriptedCollector()
    col.pods = [pod(namespace, "web")]
    reporter = MetricsReporter(aclient, node_name, col)
    await reporter.report_once()  # create: AlreadyExists -> update
    web = client.get("podmetrics", "web", namespace)
    assert web.metadata.labels[NODE_LABEL] == node_name
    assert usage(web) == {"app": ("100m", "65536Ki")}
    names = {m.metadata.name for m in client.list("podmetrics", namespace)[0]}
    assert names == {"web", "theirs"}

    # deleted behind our back: update -> NotFound -> create
    client.delete("podmetrics", "web", namespace)
    client.delete("nodemetrics", node_name)
    await reporter.report_once()
    assert usage(client.get("podmetrics", "web", namespace)) == {"app": ("100m", "65536Ki")}
    client.get("nodemetrics", node_name)
    client.delete("podmetrics", "theirs", namespace)


async def test_one_failed_write_does_not_stop_the_others(
        aclient: AsyncClient, client: Client, namespace: str, node_name: str,
        caplog: pytest.LogCaptureFixture) -> None:
    col = ScriptedCollector()
    col.pods = [pod("no-such-namespace-" + uuid.uuid4().hex[:6], "lost"), pod(namespace, "ok")]
    reporter = MetricsReporter(aclient, node_name, col)
    with caplog.at_level(logging.WARNING, logger="node.metrics"):
        await reporter.report_once()
    assert pod_metrics_names(client, node_name) == {(namespace, "ok")}
    assert "1 write(s) failed" in caplog.text


async def test_run_survives_failures_and_stops_when_cancelled(
        aclient: AsyncClient, client: Client, namespace: str, node_name: str) -> None:
    col = ScriptedCollector()
    col.pods = [pod(namespace, "web")]
    col.fail = OSError("docker went away")  # the first round fails
    reporter = MetricsReporter(aclient, node_name, col, interval=0.1)
    task = asyncio.create_task(reporter.run())
    try:
        for _ in range(100):
            if reporter.rounds >= 2:
                break
            await asyncio.sleep(0.05)
        assert reporter.rounds >= 2 and col.calls >= 3
        assert pod_metrics_names(client, node_name) == {(namespace, "web")}
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_run_survives_an_unreachable_api(node_name: str) -> None:
    dead = AsyncClient(server=f"127.0.0.1:{free_port()}", timeout=2)
    col = ScriptedCollector()
    col.pods = [pod("default", "web")]
    reporter = MetricsReporter(dead, node_name, col, interval=0.05)
    task = asyncio.create_task(reporter.run())
    try:
        for _ in range(200):
            if col.calls >= 3:
                break
            await asyncio.sleep(0.05)
        assert col.calls >= 3 and not task.done()
        assert reporter.rounds == 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await dead.close()


def test_constructed_from_the_agents_arguments() -> None:
    r = MetricsReporter(object(), "n1", ScriptedCollector())
    assert r.interval == 10.0
    with pytest.raises(ValueError):
        MetricsReporter(object(), "n1", ScriptedCollector(), interval=0)
