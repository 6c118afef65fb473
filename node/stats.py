"""Resource usage of the node and of its pods' containers, as the kubelet's
summary API (cAdvisor) measures it for metrics-server.

Per container, straight from its cgroup (no `docker stats`, which costs a
second per container):

- cpu: cumulative usage in nanoseconds (cgroup v1 `cpuacct.usage`, v2
  `cpu.stat` usage_usec). A rate needs two samples: millicores are the
  usage delta over the wall time between them.
- memory: the working set, Kubernetes' definition: usage minus inactive file
  pages (page cache the kernel can drop at once), never negative. v1:
  `memory.usage_in_bytes` - `total_inactive_file` of `memory.stat`; v2:
  `memory.current` - `inactive_file`.

Finding a container's cgroup: Docker's layouts (cgroupfs driver
`<root>/<controller>/docker/<id>` on v1, `<root>/docker/<id>` on v2; systemd
driver `.../system.slice/docker-<id>.scope`) or, when those are not there
(another cgroup parent, nested setups), what `/proc/<pid>/cgroup` of the
container's process says; a found path is kept until the container goes.
A machine whose `<root>` is a cgroup2 mount (`cgroup.controllers` there) is
read as v2; otherwise as v1, which includes "hybrid" machines whose
controllers are v1 with an extra `unified` mount.

The node: cpu is the busy time of all cpus (psutil) over the wall time since
the previous sample; memory is total minus available, the kernel's estimate
of what could be freed without swapping (Kubernetes uses the root cgroup's
working set; this is its host-wide equivalent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from node.kubelet.runtime import (
    LABEL_ATTEMPT,
    LABEL_CONTAINER,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_TYPE,
    SANDBOX,
)

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
PROC_ROOT = "/proc"
# The node's cpu times tick in 10 ms (USER_HZ): a rate over less than this is noise.
MIN_NODE_WINDOW = 0.5


# ---- one container's cgroup ---------------------------------------------------

@dataclass(frozen=True)
class CgroupUsage:
    """A container's counters at one instant."""

    cpu_usage_ns: int  # cumulative cpu time, nanoseconds
    memory_working_set: int  # bytes


@dataclass(frozen=True)
class CgroupPaths:
    """Where a container's counters are: one directory on v2, two on v1."""

    version: int
    cpu: Path  # v1: the cpuacct directory; v2: the container's cgroup
    memory: Path  # v1: the memory directory; v2: the same as cpu


def cgroup_version(root: str | os.PathLike[str] = CGROUP_ROOT) -> int:
    """2 when `root` is a cgroup2 (unified) mount, else 1 (v1 or hybrid)."""
    return 2 if (Path(root) / "cgroup.controllers").is_file() else 1


def _proc_cgroups(pid: int, proc: str | os.PathLike[str]) -> list[tuple[list[str], str]]:
    """/proc/<pid>/cgroup as (controllers, path); v2's line has no controllers."""
    try:
        text = (Path(proc) / str(pid) / "cgroup").read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append(([c for c in parts[1].split(",") if c], parts[2]))
    return out


def _under(base: Path, path: str) -> Path:
    return base / path.lstrip("/")


def _v1_candidates(container_id: str, controller: str, root: Path,
                   proc_lines: list[tuple[list[str], str]]) -> Iterable[Path]:
    for controllers, path in proc_lines:
        if controller in controllers:
            # mounted alone (cpuacct) or co-mounted (cpu,cpuacct, mostly with a symlink)
            for mount in dict.fromkeys([root / controller, root / ",".join(controllers)]):
                yield _under(mount, path)
    mounts = [root / controller] + ([root / "cpu,cpuacct"] if controller == "cpuacct" else [])
    for mount in mounts:
        yield mount / "docker" / container_id
        yield mount / "system.slice" / f"docker-{container_id}.scope"


def _v2_candidates(container_id: str, root: Path,
                   proc_lines: list[tuple[list[str], str]]) -> Iterable[Path]:
    for controllers, path in proc_lines:
        if not controllers:  # "0::/path"
            yield _under(root, path)
    yield root / "system.slice" / f"docker-{container_id}.scope"
    yield root / "docker" / container_id


def _first_with(candidates: Iterable[Path], filename: str) -> Path | None:
    for d in candidates:
        if (d / filename).is_file():
            return d
    return None


def resolve_cgroup(container_id: str, *, pid: int | None = None,
                   root: str | os.PathLike[str] = CGROUP_ROOT,
                   proc: str | os.PathLike[str] = PROC_ROOT) -> CgroupPaths | None:
    """The container's cgroup directories, or None when they cannot be found.

    With `pid` (the container's main process) the paths its /proc/<pid>/cgroup
    names come first; then Docker's layouts for `container_id`.
    """
    base = Path(root)
    lines = _proc_cgroups(pid, proc) if pid else []
    if cgroup_version(base) == 2:
        d = _first_with(_v2_candidates(container_id, base, lines), "cpu.stat")
        return CgroupPaths(2, d, d) if d is not None else None
    cpu = _first_with(_v1_candidates(container_id, "cpuacct", base, lines), "cpuacct.usage")
    mem = _first_with(_v1_candidates(container_id, "memory", base, lines),
                      "memory.usage_in_bytes")
    if cpu is None or mem is None:
        return None
    return CgroupPaths(1, cpu, mem)


def _read_int(path: Path) -> int:
    return int(path.read_text().strip())


def _stat_value(path: Path, key: str) -> int | None:
    """One `key value` line of a flat-keyed file (memory.stat, cpu.stat)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return int(v.strip())
    return None


def working_set(usage: int, inactive_file: int | None) -> int:
    """Kubernetes' memory working set: usage minus inactive file cache, at least 0."""
    return max(0, usage - (inactive_file or 0))


def read_v1(cpuacct_dir: Path, memory_dir: Path) -> CgroupUsage:
    """Counters of a v1 cgroup; OSError/ValueError when the files are gone or garbled."""
    cpu = _read_int(cpuacct_dir / "cpuacct.usage")
    usage = _read_int(memory_dir / "memory.usage_in_bytes")
    inactive = _stat_value(memory_dir / "memory.stat", "total_inactive_file")
    return CgroupUsage(cpu, working_set(usage, inactive))


def read_v2(cgroup_dir: Path) -> CgroupUsage:
    """Counters of a v2 cgroup; OSError/ValueError when the files are gone or garbled."""
    usec = _stat_value(cgroup_dir / "cpu.stat", "usage_usec")
    if usec is None:
        raise ValueError(f"no usage_usec in {cgroup_dir / 'cpu.stat'}")
    usage = _read_int(cgroup_dir / "memory.current")
    inactive = _stat_value(cgroup_dir / "memory.stat", "inactive_file")
    return CgroupUsage(usec * 1000, working_set(usage, inactive))


def read_usage(paths: CgroupPaths) -> CgroupUsage | None:
    """The counters, or None when the cgroup is gone (the container stopped) or unreadable."""
    try:
        if paths.version == 2:
            return read_v2(paths.cpu)
        return read_v1(paths.cpu, paths.memory)
    except (OSError, ValueError):
        return None


def container_usage(container_id: str, *, pid: int | None = None,
                    root: str | os.PathLike[str] = CGROUP_ROOT,
                    proc: str | os.PathLike[str] = PROC_ROOT) -> CgroupUsage | None:
    """cpu (cumulative ns) and memory working set of a running container, or None."""
    paths = resolve_cgroup(container_id, pid=pid, root=root, proc=proc)
    return read_usage(paths) if paths is not None else None


def millicores(prev_ns: int, prev_time: float, cur_ns: int, cur_time: float) -> int | None:
    """The average cpu rate between two cumulative readings, in millicores (rounded).

    None when there is no rate to give: no time passed or the counter went
    backwards (a new cgroup under the same id).
    """
    elapsed = cur_time - prev_time
    delta = cur_ns - prev_ns
    if elapsed <= 0 or delta < 0:
        return None
    return round(delta / elapsed / 1e6)


# ---- the node's sample --------------------------------------------------------

@dataclass
class ContainerUsage:
    name: str  # in the pod spec
    id: str
    cpu_millicores: int | None  # None: first sample of this container, no rate yet
    memory_bytes: int


@dataclass
class PodUsage:
    uid: str
    name: str
    namespace: str
    containers: list[ContainerUsage] = field(default_factory=list)
    unmeasured: int = 0  # running containers whose cgroup could not be read this time

    @property
    def complete(self) -> bool:
        """Every container was measured and has a cpu rate (metrics-server reports only
        such pods)."""
        return bool(self.containers) and not self.unmeasured and all(
            c.cpu_millicores is not None for c in self.containers)


@dataclass
class NodeUsage:
    cpu_millicores: int | None
    memory_bytes: int


@dataclass
class Sample:
    timestamp: datetime  # when it was taken (UTC)
    window: float  # seconds since the previous sample (or since the collector was made)
    node: NodeUsage
    pods: list[PodUsage]  # pods with running app containers on this node, by namespace/name


def _busy_seconds() -> float:
    """Cumulative non-idle cpu time of all cpus, seconds."""
    t = psutil.cpu_times()
    # Linux counts guest time in user/nice too; idle, iowait and steal are not ours.
    not_busy = ("idle", "iowait", "steal", "guest", "guest_nice")
    return float(sum(t) - sum(getattr(t, f, 0.0) for f in not_busy))


class StatsCollector:
    """Samples the node's and its pods' usage; keeps what rates need between samples.

    `sample()` is blocking (Docker and /sys reads): call it from a thread.
    Only running containers labelled with this node are measured; the
    sandbox ("POD") is not reported, as Kubernetes reports app containers only.
    """

    def __init__(self, runtime: Any, node_name: str, cgroup_root: str = CGROUP_ROOT, *,
                 proc_root: str = PROC_ROOT,
                 clock: Callable[[], float] = time.monotonic,
                 busy: Callable[[], float] = _busy_seconds) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.cgroup_root = cgroup_root
        self.proc_root = proc_root
        self._clock = clock
        self._busy = busy
        self._lock = threading.Lock()
        self._paths: dict[str, CgroupPaths] = {}
        self._prev: dict[str, tuple[int, float]] = {}  # container id -> (cpu ns, time)
        self._warned: set[str] = set()
        self._last_time = self._busy_time = clock()
        self._last_busy = self._safe_busy()

    def _safe_busy(self) -> float | None:
        try:
            return self._busy()
        except Exception:  # psutil can fail in odd sandboxes; memory still works
            log.debug("reading cpu times failed", exc_info=True)
            return None

    # ---- containers -----------------------------------------------------------

    def _running(self) -> list[tuple[str, dict[str, str]]]:
        """(id, labels) of this node's running containers: one Docker call, no inspects."""
        found = self.runtime.api.containers(
            filters={"label": [f"{LABEL_NODE}={self.node_name}"], "status": "running"})
        return [(c["Id"], c.get("Labels") or {}) for c in found]

    def _pid(self, container_id: str) -> int | None:
        try:
            pid = self.runtime.api.inspect_container(container_id)["State"]["Pid"]
        except Exception:
            return None
        return int(pid) if pid else None

    def _paths_of(self, container_id: str) -> CgroupPaths | None:
        paths = self._paths.get(container_id)
        if paths is None:
            paths = resolve_cgroup(container_id, root=self.cgroup_root, proc=self.proc_root)
            if paths is None:
                pid = self._pid(container_id)
                if pid:
                    paths = resolve_cgroup(container_id, pid=pid, root=self.cgroup_root,
                                           proc=self.proc_root)
            if paths is None:
                if container_id not in self._warned:
                    self._warned.add(container_id)
                    log.warning("no cgroup found for container %s under %s",
                                container_id[:12], self.cgroup_root)
                return None
            self._paths[container_id] = paths
        return paths

    def _measure(self, container_id: str) -> tuple[int | None, int] | None:
        paths = self._paths_of(container_id)
        if paths is None:
            return None
        usage = read_usage(paths)
        # The time of this very reading, not of the sample's start: the Docker listing
        # and the containers before this one take a varying while (tens to hundreds of
        # ms on a busy host), which would otherwise skew a rate over a 1 s interval.
        now = self._clock()
        if usage is None:  # stopped since the listing, or the cached path went stale
            self._paths.pop(container_id, None)
            return None
        rate = None
        prev = self._prev.get(container_id)
        if prev is not None:
            rate = millicores(prev[0], prev[1], usage.cpu_usage_ns, now)
        self._prev[container_id] = (usage.cpu_usage_ns, now)
        return rate, usage.memory_working_set

    def _pods(self) -> list[PodUsage]:
        pods: dict[str, PodUsage] = {}
        latest: dict[tuple[str, str], int] = {}  # (pod uid, container) -> attempt kept
        seen: set[str] = set()
        for cid, labels in self._running():
            if labels.get(LABEL_NODE) != self.node_name:
                continue
            name = labels.get(LABEL_CONTAINER, "")
            uid = labels.get(LABEL_POD_UID, "")
            if not uid or not name or name == SANDBOX or labels.get(LABEL_TYPE) == "sandbox":
                continue
            seen.add(cid)
            pod = pods.setdefault(uid, PodUsage(uid, labels.get(LABEL_POD_NAME, ""),
                                                labels.get(LABEL_POD_NAMESPACE, "")))
            measured = self._measure(cid)
            if measured is None:  # still the pod's: it runs, it just has no numbers now
                pod.unmeasured += 1
                continue
            rate, memory = measured
            attempt = _int(labels.get(LABEL_ATTEMPT))
            key = (uid, name)
            if key in latest:  # two runs of one container alive at once: keep the newer
                if attempt < latest[key]:
                    continue
                pod.containers = [c for c in pod.containers if c.name != name]
            latest[key] = attempt
            pod.containers.append(ContainerUsage(name, cid, rate, memory))
        for cid in set(self._prev) - seen:
            del self._prev[cid]
        for cid in set(self._paths) - seen:
            del self._paths[cid]
        self._warned &= seen
        out = [p for p in pods.values() if p.name and p.namespace]
        for p in out:
            p.containers.sort(key=lambda c: c.name)
        return sorted(out, key=lambda p: (p.namespace, p.name))

    # ---- the node ---------------------------------------------------------------

    def _node(self, now: float) -> NodeUsage:
        busy = self._safe_busy()
        cpu = None
        elapsed = now - self._busy_time
        if busy is None or self._last_busy is None or busy < self._last_busy:
            self._last_busy, self._busy_time = busy, now  # start over
        elif elapsed >= MIN_NODE_WINDOW:
            cpu = max(0, round((busy - self._last_busy) / elapsed * 1000))
            self._last_busy, self._busy_time = busy, now
        # else: too soon for the cpu times' 10 ms ticks to mean anything; keep the baseline
        mem = 0
        with contextlib.suppress(Exception):
            vm = psutil.virtual_memory()
            mem = max(0, int(vm.total - vm.available))
        return NodeUsage(cpu, mem)

    def sample(self) -> Sample:
        """The node's and its pods' usage now, cpu averaged since the previous sample."""
        with self._lock:
            now = self._clock()
            stamp = datetime.now(UTC)
            window = max(0.0, now - self._last_time)
            pods = self._pods()
            node = self._node(self._clock())  # likewise timed when read
            self._last_time = now
            return Sample(stamp, window, node, pods)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
