"""node.stats against real Docker containers on this machine: one burning a cpu,
one idle, a sandbox and a stopped container, all labelled for a fake pod on a
node name of this test's own (every container it made is removed afterwards,
found by that label, whatever happened)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import pod_pb2
from node import stats
from node.kubelet.runtime import LABEL_NODE, SANDBOX, Runtime, container_name

docker = pytest.importorskip("docker")

BUSYBOX = "kubelite/busybox:latest"


@pytest.fixture()
def runtime() -> Iterator[Runtime]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # pragma: no cover - machines without Docker
        pytest.skip(f"Docker is not available: {e}")
    rt = Runtime("stats-" + uuid.uuid4().hex[:10], client)
    try:
        yield rt
    finally:
        for c in client.api.containers(all=True,
                                       filters={"label": [f"{LABEL_NODE}={rt.node_name}"]}):
            try:
                client.api.remove_container(c["Id"], force=True)
            except docker.errors.NotFound:
                pass
        client.close()


def fake_pod(name: str, namespace: str = "default") -> pod_pb2.Pod:
    p = pod_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, namespace
    p.metadata.uid = str(uuid.uuid4())
    return p


def run(rt: Runtime, pod: Any, container: str, command: list[str] | None, *,
        image: str = BUSYBOX, start: bool = True) -> str:
    type_ = "sandbox" if container == SANDBOX else "app"
    cid = rt.create(container_name(pod, container, 0), image,
                    rt.labels(pod, container, type_, 0), host_config={}, command=command)
    if start:
        rt.start(cid)
    return cid


BURN = ["sh", "-c", "while :; do :; done"]
IDLE = ["sleep", "3600"]


def test_container_usage_of_a_real_container(runtime: Runtime) -> None:
    cid = run(runtime, fake_pod("burn"), "burner", BURN)
    pid = runtime.api.inspect_container(cid)["State"]["Pid"]
    paths = stats.resolve_cgroup(cid)
    assert paths is not None, "the container's cgroup was not found"
    assert paths.version == stats.cgroup_version()
    assert stats.resolve_cgroup(cid, pid=pid) == paths  # /proc/<pid>/cgroup agrees
    first = stats.container_usage(cid)
    t0 = time.monotonic()
    time.sleep(1.0)
    second = stats.container_usage(cid)
    t1 = time.monotonic()
    assert first is not None and second is not None
    rate = stats.millicores(first.cpu_usage_ns, t0, second.cpu_usage_ns, t1)
    assert rate is not None and rate > 300
    assert second.memory_working_set > 0
    runtime.remove(cid)
    assert stats.read_usage(paths) is None  # gone with its container
    assert stats.container_usage(cid) is None


def test_collector_on_real_containers(runtime: Runtime) -> None:
    burn, idle, stopped = fake_pod("burn"), fake_pod("idle", "other"), fake_pod("stopped")
    run(runtime, burn, SANDBOX, None, image="kubelite/pause:latest")
    burner = run(runtime, burn, "burner", BURN)
    run(runtime, idle, SANDBOX, None, image="kubelite/pause:latest")
    sleeper = run(runtime, idle, "sleeper", IDLE)
    run(runtime, stopped, "never-started", IDLE, start=False)

    collector = stats.StatsCollector(runtime, runtime.node_name)
    first = collector.sample()
    assert [(p.namespace, p.name) for p in first.pods] == [("default", "burn"),
                                                           ("other", "idle")]
    assert not any(p.complete for p in first.pods)  # no cpu rate before a second sample
    time.sleep(2.0)
    second = collector.sample()
    by_name = {p.name: p for p in second.pods}
    assert set(by_name) == {"burn", "idle"}  # not the stopped pod's container
    assert all(p.complete for p in second.pods)

    (b,) = by_name["burn"].containers  # the sandbox is not reported
    assert (b.name, b.id) == ("burner", burner)
    assert b.cpu_millicores is not None and b.cpu_millicores > 300
    assert b.memory_bytes > 0
    (s,) = by_name["idle"].containers
    assert (s.name, s.id) == ("sleeper", sleeper)
    assert s.cpu_millicores is not None and s.cpu_millicores < 50
    assert s.memory_bytes > 0
    assert by_name["burn"].uid == burn.metadata.uid

    assert second.node.cpu_millicores is not None and second.node.cpu_millicores >= 300
    assert second.node.memory_bytes > 0
    assert 1.5 < second.window < 10
