"""node.stats against fake cgroup trees: v1 and v2 parsing and path finding, the
working set, missing files, millicores, and the collector's grouping and rates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node import stats
from node.kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_TYPE,
)

CID = "c0ffee" * 10 + "abcd"


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v1_container(root: Path, cid: str, *, cpu_ns: int, usage: int, inactive: int | None,
                 parent: str = "docker", cpu_mount: str = "cpuacct") -> None:
    write(root / cpu_mount / parent / cid / "cpuacct.usage", f"{cpu_ns}\n")
    mem = root / "memory" / parent / cid
    write(mem / "memory.usage_in_bytes", f"{usage}\n")
    if inactive is not None:
        write(mem / "memory.stat", f"cache 4096\nrss 8192\ninactive_file 1\n"
                                   f"total_cache 4096\ntotal_inactive_file {inactive}\n")


def v2_root(root: Path) -> Path:
    write(root / "cgroup.controllers", "cpuset cpu io memory pids\n")
    return root


def v2_container(d: Path, *, usage_usec: int, current: int, inactive: int | None) -> None:
    write(d / "cpu.stat", f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 2\n")
    write(d / "memory.current", f"{current}\n")
    if inactive is not None:
        write(d / "memory.stat", f"anon 1\nfile 2\nactive_file 3\ninactive_file {inactive}\n")


# ---- cgroup v1 ------------------------------------------------------------------

def test_v1_docker_layout(tmp_path: Path) -> None:
    v1_container(tmp_path, CID, cpu_ns=123_456_789, usage=10_000_000, inactive=3_000_000)
    assert stats.cgroup_version(tmp_path) == 1
    paths = stats.resolve_cgroup(CID, root=tmp_path, proc=tmp_path / "proc")
    assert paths == stats.CgroupPaths(1, tmp_path / "cpuacct/docker" / CID,
                                      tmp_path / "memory/docker" / CID)
    u = stats.container_usage(CID, root=tmp_path)
    assert u == stats.CgroupUsage(123_456_789, 7_000_000)


def test_v1_uses_total_inactive_file_not_inactive_file(tmp_path: Path) -> None:
    v1_container(tmp_path, CID, cpu_ns=1, usage=5000, inactive=1000)
    assert stats.container_usage(CID, root=tmp_path) == stats.CgroupUsage(1, 4000)


def test_v1_comounted_cpu_cpuacct_and_systemd_driver(tmp_path: Path) -> None:
    v1_container(tmp_path, CID, cpu_ns=5, usage=100, inactive=0, cpu_mount="cpu,cpuacct",
                 parent="system.slice")
    # the systemd driver's scope name, not the bare id
    (tmp_path / "cpu,cpuacct/system.slice" / CID).rename(
        tmp_path / "cpu,cpuacct/system.slice" / f"docker-{CID}.scope")
    (tmp_path / "memory/system.slice" / CID).rename(
        tmp_path / "memory/system.slice" / f"docker-{CID}.scope")
    assert stats.container_usage(CID, root=tmp_path) == stats.CgroupUsage(5, 100)


def test_v1_found_through_proc_pid_cgroup(tmp_path: Path) -> None:
    root, proc = tmp_path / "cg", tmp_path / "proc"
    v1_container(root, CID, cpu_ns=9, usage=300, inactive=100, parent="custom/parent")
    write(proc / "4242" / "cgroup",
          f"12:memory:/custom/parent/{CID}\n3:cpu,cpuacct:/custom/parent/{CID}\n"
          f"1:name=systemd:/custom/parent/{CID}\n0::/custom/parent/{CID}\n")
    assert stats.container_usage(CID, root=root, proc=proc) is None  # not a Docker layout
    assert stats.container_usage(CID, pid=4242, root=root, proc=proc) == \
        stats.CgroupUsage(9, 200)


def test_v1_missing_files(tmp_path: Path) -> None:
    assert stats.container_usage(CID, root=tmp_path) is None  # no cgroup at all
    v1_container(tmp_path, CID, cpu_ns=7, usage=500, inactive=None)
    # no memory.stat: nothing inactive known, the working set is the usage
    assert stats.container_usage(CID, root=tmp_path) == stats.CgroupUsage(7, 500)
    paths = stats.resolve_cgroup(CID, root=tmp_path)
    assert paths is not None
    (tmp_path / "cpuacct/docker" / CID / "cpuacct.usage").unlink()  # the container went
    assert stats.read_usage(paths) is None
    assert stats.container_usage(CID, root=tmp_path) is None
    # memory without cpu is no container either
    write(tmp_path / "cpuacct/docker" / CID / "cpuacct.usage", "garbage")
    assert stats.read_usage(paths) is None


def test_working_set_clamped_at_zero(tmp_path: Path) -> None:
    assert stats.working_set(100, 300) == 0
    assert stats.working_set(100, None) == 100
    v1_container(tmp_path, CID, cpu_ns=1, usage=4096, inactive=8192)
    assert stats.container_usage(CID, root=tmp_path) == stats.CgroupUsage(1, 0)


# ---- cgroup v2 ------------------------------------------------------------------

def test_v2_systemd_scope(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    v2_container(root / "system.slice" / f"docker-{CID}.scope", usage_usec=2_500_000,
                 current=50_000_000, inactive=20_000_000)
    assert stats.cgroup_version(root) == 2
    paths = stats.resolve_cgroup(CID, root=root)
    assert paths is not None and paths.version == 2
    assert stats.container_usage(CID, root=root) == \
        stats.CgroupUsage(2_500_000_000, 30_000_000)


def test_v2_cgroupfs_layout_and_clamp(tmp_path: Path) -> None:
    root = v2_root(tmp_path)
    v2_container(root / "docker" / CID, usage_usec=10, current=1000, inactive=5000)
    assert stats.container_usage(CID, root=root) == stats.CgroupUsage(10_000, 0)


def test_v2_through_proc_and_missing_files(tmp_path: Path) -> None:
    root, proc = v2_root(tmp_path / "cg"), tmp_path / "proc"
    d = root / "kubepods.slice" / "pod1" / CID
    v2_container(d, usage_usec=1, current=4096, inactive=None)
    write(proc / "77" / "cgroup", f"0::/kubepods.slice/pod1/{CID}\n")
    assert stats.container_usage(CID, root=root, proc=proc) is None
    assert stats.container_usage(CID, pid=77, root=root, proc=proc) == \
        stats.CgroupUsage(1000, 4096)
    assert stats.container_usage(CID, pid=78, root=root, proc=proc) is None  # no such pid
    (d / "memory.current").unlink()  # memory controller not enabled there
    assert stats.container_usage(CID, pid=77, root=root, proc=proc) is None
    write(d / "memory.current", "4096\n")
    write(d / "cpu.stat", "user_usec 1\n")  # no usage_usec
    assert stats.container_usage(CID, pid=77, root=root, proc=proc) is None


def test_hybrid_machine_is_read_as_v1(tmp_path: Path) -> None:
    v1_container(tmp_path, CID, cpu_ns=3, usage=10, inactive=0)
    write(tmp_path / "unified" / "cgroup.controllers", "")  # hybrid: v2 mounted aside
    assert stats.cgroup_version(tmp_path) == 1
    assert stats.container_usage(CID, root=tmp_path) == stats.CgroupUsage(3, 10)


# ---- rates ----------------------------------------------------------------------

def test_millicores() -> None:
    # 0.5 s of cpu in 2 s of wall time: half a core... over two seconds is 250m
    assert stats.millicores(0, 10.0, 500_000_000, 12.0) == 250
    assert stats.millicores(1_000_000_000, 0.0, 3_000_000_000, 1.0) == 2000
    assert stats.millicores(5, 1.0, 5, 2.0) == 0
    assert stats.millicores(0, 0.0, 1_499_999, 1.0) == 1  # rounded
    assert stats.millicores(0, 0.0, 1_400_000, 1.0) == 1
    assert stats.millicores(0, 0.0, 400_000, 1.0) == 0
    assert stats.millicores(10, 1.0, 5, 2.0) is None  # counter reset
    assert stats.millicores(0, 1.0, 5, 1.0) is None  # no time passed


# ---- the collector --------------------------------------------------------------

class FakeAPI:
    def __init__(self) -> None:
        self.containers_: list[dict[str, Any]] = []
        self.pids: dict[str, int] = {}
        self.filters: list[Any] = []

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        self.filters.append(filters)
        return list(self.containers_)

    def inspect_container(self, cid: str) -> dict[str, Any]:
        return {"State": {"Pid": self.pids.get(cid, 0)}}


class FakeRuntime:
    def __init__(self) -> None:
        self.api = FakeAPI()


def labels(node: str, pod: str, container: str, *, ns: str = "default", attempt: int = 0,
           type_: str = "app") -> dict[str, str]:
    return {LABEL_NODE: node, LABEL_POD_UID: f"uid-{pod}", LABEL_POD_NAME: pod,
            LABEL_POD_NAMESPACE: ns, LABEL_CONTAINER: container, LABEL_TYPE: type_,
            LABEL_ATTEMPT: str(attempt)}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_collector_groups_pods_and_computes_rates(tmp_path: Path) -> None:
    rt, clock = FakeRuntime(), Clock()
    busy = iter([10.0, 11.0, 12.5])  # cpu-seconds of the whole node
    col = stats.StatsCollector(rt, "n1", str(tmp_path), clock=clock, busy=lambda: next(busy))
    ids = {k: k * 64 for k in "abcde"}
    rt.api.containers_ = [
        {"Id": ids["a"], "Labels": labels("n1", "web", "POD", type_="sandbox")},
        {"Id": ids["b"], "Labels": labels("n1", "web", "nginx")},
        {"Id": ids["c"], "Labels": labels("n1", "web", "sidecar")},
        {"Id": ids["d"], "Labels": labels("n1", "db", "pg", ns="prod")},
        {"Id": ids["e"], "Labels": labels("other", "x", "y")},  # not this node's
    ]
    for k in "abcde":
        v1_container(tmp_path, ids[k], cpu_ns=0, usage=2 << 20, inactive=1 << 20)

    clock.t = 102.0
    s1 = col.sample()
    assert rt.api.filters[0] == {"label": ["io.kubelite.node=n1"], "status": "running"}
    assert [(p.namespace, p.name) for p in s1.pods] == [("default", "web"), ("prod", "db")]
    web = s1.pods[0]
    assert web.uid == "uid-web"
    assert [c.name for c in web.containers] == ["nginx", "sidecar"]  # no sandbox
    assert all(c.cpu_millicores is None for c in web.containers)  # first sample: no rate
    assert not web.complete
    assert web.containers[0].memory_bytes == 1 << 20
    assert s1.node.cpu_millicores == 500  # 1 cpu-second over 2 s
    assert s1.window == 2.0

    for k, ns in (("b", 1_000_000_000), ("c", 0), ("d", 250_000_000)):
        write(tmp_path / "cpuacct/docker" / ids[k] / "cpuacct.usage", str(ns))
    clock.t = 104.0
    s2 = col.sample()
    rates = {(p.name, c.name): c.cpu_millicores for p in s2.pods for c in p.containers}
    assert rates == {("web", "nginx"): 500, ("web", "sidecar"): 0, ("db", "pg"): 125}
    assert all(p.complete for p in s2.pods)
    assert s2.node.cpu_millicores == 750
    assert s2.window == 2.0


def test_collector_new_and_gone_containers(tmp_path: Path) -> None:
    rt, clock = FakeRuntime(), Clock()
    col = stats.StatsCollector(rt, "n1", str(tmp_path), clock=clock, busy=lambda: 0.0)
    a, b = "a" * 64, "b" * 64
    v1_container(tmp_path, a, cpu_ns=0, usage=10, inactive=0)
    rt.api.containers_ = [{"Id": a, "Labels": labels("n1", "p", "app")}]
    col.sample()
    clock.t += 1
    # a restart: the new run (attempt 1) is seen once, the old one is gone
    v1_container(tmp_path, b, cpu_ns=0, usage=10, inactive=0)
    rt.api.containers_ = [{"Id": b, "Labels": labels("n1", "p", "app", attempt=1)}]
    s = col.sample()
    assert [c.id for c in s.pods[0].containers] == [b]
    assert s.pods[0].containers[0].cpu_millicores is None
    assert a not in col._prev and a not in col._paths
    # a container whose cgroup cannot be read: its pod still runs, without numbers
    rt.api.containers_.append({"Id": "f" * 64, "Labels": labels("n1", "q", "app")})
    clock.t += 1
    s = col.sample()
    assert [(p.name, p.complete, len(p.containers), p.unmeasured) for p in s.pods] == [
        ("p", True, 1, 0), ("q", False, 0, 1)]


def test_a_slow_docker_listing_does_not_skew_the_rate(tmp_path: Path) -> None:
    """A container busy on one core reads 1000m even when listing the containers takes
    0.5 s once and no time the next: the rate is over the times the counters were read."""
    rt, clock = FakeRuntime(), Clock()
    col = stats.StatsCollector(rt, "n1", str(tmp_path), clock=clock, busy=lambda: 0.0)
    v1_container(tmp_path, CID, cpu_ns=0, usage=10, inactive=0)
    rt.api.containers_ = [{"Id": CID, "Labels": labels("n1", "p", "app")}]
    delays = iter([0.5, 0.0])
    listing = rt.api.containers

    def slow_listing(**kw: Any) -> list[dict[str, Any]]:
        clock.t += next(delays)
        # the container keeps burning one core while Docker answers
        write(tmp_path / "cpuacct/docker" / CID / "cpuacct.usage",
              str(int((clock.t - 100.0) * 1e9)))
        return listing(**kw)

    rt.api.containers = slow_listing  # type: ignore[method-assign]
    col.sample()  # listing 100.0 -> 100.5, counter read at 100.5
    clock.t = 101.0
    s = col.sample()  # counter read at 101.0: 0.5 cpu-seconds in 0.5 s
    assert s.pods[0].containers[0].cpu_millicores == 1000


def test_collector_overlapping_runs_keep_the_newest(tmp_path: Path) -> None:
    rt, clock = FakeRuntime(), Clock()
    col = stats.StatsCollector(rt, "n1", str(tmp_path), clock=clock, busy=lambda: 0.0)
    new, old = "1" * 64, "2" * 64
    for cid in (new, old):
        v1_container(tmp_path, cid, cpu_ns=0, usage=10, inactive=0)
    rt.api.containers_ = [{"Id": new, "Labels": labels("n1", "p", "app", attempt=3)},
                          {"Id": old, "Labels": labels("n1", "p", "app", attempt=2)}]
    s = col.sample()
    assert [c.id for c in s.pods[0].containers] == [new]


def test_collector_falls_back_to_the_pid(tmp_path: Path) -> None:
    rt, clock = FakeRuntime(), Clock()
    root, proc = tmp_path / "cg", tmp_path / "proc"
    col = stats.StatsCollector(rt, "n1", str(root), proc_root=str(proc), clock=clock,
                               busy=lambda: 0.0)
    v1_container(root, CID, cpu_ns=0, usage=10, inactive=0, parent="elsewhere")
    write(proc / "99" / "cgroup", f"2:cpuacct:/elsewhere/{CID}\n1:memory:/elsewhere/{CID}\n")
    rt.api.containers_ = [{"Id": CID, "Labels": labels("n1", "p", "app")}]
    (p,) = col.sample().pods  # no pid known: not found
    assert (p.containers, p.unmeasured, p.complete) == ([], 1, False)
    rt.api.pids[CID] = 99
    s = col.sample()
    assert s.pods[0].containers[0].memory_bytes == 10


@pytest.mark.parametrize("busy_fails", [True, False])
def test_collector_node_memory(tmp_path: Path, busy_fails: bool) -> None:
    def busy() -> float:
        if busy_fails:
            raise OSError("no /proc/stat")
        return 1.0

    clock = Clock()
    col = stats.StatsCollector(FakeRuntime(), "n1", str(tmp_path), busy=busy, clock=clock)
    clock.t += 1
    s = col.sample()
    assert s.node.memory_bytes > 0
    assert (s.node.cpu_millicores is None) == busy_fails


def test_node_cpu_needs_a_long_enough_window(tmp_path: Path) -> None:
    clock, busy = Clock(), [10.0]
    col = stats.StatsCollector(FakeRuntime(), "n1", str(tmp_path), clock=clock,
                               busy=lambda: busy[0])
    clock.t += 0.001  # the agent samples right after making the collector
    busy[0] = 10.01  # one 10 ms tick: "10 cores" over 1 ms
    assert col.sample().node.cpu_millicores is None
    clock.t += 0.999  # the baseline was kept: the rate covers the whole second
    busy[0] = 10.5
    assert col.sample().node.cpu_millicores == 500
    busy[0] = 1.0  # counters went backwards (not seen on Linux, but): no rate, start over
    clock.t += 1
    assert col.sample().node.cpu_millicores is None
    busy[0], clock.t = 3.0, clock.t + 2
    assert col.sample().node.cpu_millicores == 1000
