"""What the fault tests (tests/e2e/test_faults_*.py) share: a master that can
be kill -9'd and restarted on the same port, a pool of clients creating
ConfigMaps that records what was acknowledged, and the figures line.

Figures are printed as one line per fault (visible with `pytest -s`):

    FAULT <name>: detect=<s> recover=<s> lost=<n> (...)

detect: from the fault to the first sign of it (a client error, a new lease
holder); recover: from the fault to work succeeding again; lost: acknowledged
writes missing or different afterwards (must be 0).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, Client, ClientConfig
from tests.cluster import ROOT, _stop, _wait_port, _wait_ready, free_port


_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@pytest.fixture(autouse=True)
def masters_stopped() -> Iterator[None]:
    """Import into a test module: its RestartableMasters stop after each test."""
    yield
    RestartableMaster.stop_all()


def report(name: str, *, detect: float, recover: float, lost: int, **more: object) -> str:
    extra = " ".join(f"{k}={v}" for k, v in more.items())
    line = f"FAULT {name}: detect={detect:.2f}s recover={recover:.2f}s lost={lost} {extra}"
    print("\n" + line.rstrip(), flush=True)
    return line


class RestartableMaster:
    """kubelite-master on a fixed port that a test may kill -9 and start again.

    Every instance is remembered until `stop_all()` (the fault tests' autouse
    fixture), so a failing test leaves no master running.
    """

    instances: list[RestartableMaster] = []

    @classmethod
    def stop_all(cls) -> None:
        while cls.instances:
            m = cls.instances.pop()
            m.stop()
            shutil.rmtree(m.dir, ignore_errors=True)

    def __init__(self, etcd_servers: str, *extra: str, port: int = 0) -> None:
        RestartableMaster.instances.append(self)
        self.etcd_servers = etcd_servers
        self.extra = extra
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="kubelite-master-"))
        self.log = self.dir / "master.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        cmd = [sys.executable, "-m", "master.main", "--etcd-servers", self.etcd_servers,
               "--listen", self.address, *self.extra]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        if wait:
            _wait_port(self.port, self.proc, "kubelite-master", self.log)
            _wait_ready(self.address, self.proc, self.log, self.extra)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def create_retrying(c: Client, obj: object, attempts: int = 10) -> int:
    """Create as a client that retries does: UNAVAILABLE (e.g. "etcdserver: leader
    changed" while etcd elects a new leader) is tried again with the same name, and
    AlreadyExists on a retry means the earlier attempt was written. The retries."""
    for retry in range(attempts):
        try:
            c.create(obj)
            return retry
        except APIStatusError as e:
            if retry and e.already_exists:
                return retry
            if e.code not in _RETRYABLE or retry == attempts - 1:
                raise
            time.sleep(0.2 * (retry + 1))
    return attempts


def configmap(ns: str, name: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(apiVersion="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.data["payload"] = payload(name)
    return cm


def payload(name: str) -> str:
    """Content that tells a whole object from a half-written one."""
    return f"{name}:" + "x" * 512 + f":{name[::-1]}"


@dataclass
class Creators:
    """`clients` threads creating ConfigMaps c<thread>-<n> in `ns` until stopped.

    A create that fails UNAVAILABLE (or times out) is retried with the same
    name; AlreadyExists on such a retry means the first attempt was written,
    so it counts as acknowledged too. Anything else is an error.
    """

    servers: str
    ns: str
    clients: int = 20
    acked: list[str] = field(default_factory=list)
    acked_at: list[float] = field(default_factory=list)  # monotonic, same order
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    first_error_at: float = 0.0
    last_error_at: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for t in range(self.clients):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self._threads.append(th)

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(60)

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def figures(self, fault_at: float) -> tuple[float, float]:
        """(detect, recover) after a fault at `fault_at`: to the first failed
        call, and to the first create acknowledged after that. When no client
        ever saw an error, detect is 0 and recover is the longest pause
        between two acknowledgements from the fault on (the stall it caused)."""
        with self._lock:
            if not self.first_error_at or self.first_error_at < fault_at:
                times = [fault_at, *sorted(t for t in self.acked_at if t > fault_at)]
                return 0.0, max((b - a for a, b in zip(times, times[1:], strict=False)),
                                default=0.0)
            after = [t for t in self.acked_at if t > self.first_error_at]
            return (self.first_error_at - fault_at,
                    (after[0] - fault_at) if after else float("inf"))


    def _run(self, t: int) -> None:
        with Client(ClientConfig(servers=self.servers.split(",")), timeout=5) as c:
            n = 0
            while not self._stop.is_set():
                name = f"c{t}-{n}"
                retried = False
                while not self._stop.is_set():
                    try:
                        c.create(configmap(self.ns, name))
                        ok = True
                    except APIStatusError as e:
                        ok = retried and e.already_exists
                        if not ok and e.code not in _RETRYABLE:
                            with self._lock:
                                self.errors.append(f"{name}: {e.code} {e.message}")
                            ok = False
                            retried = False
                            break
                    if ok:
                        with self._lock:
                            self.acked.append(name)
                            self.acked_at.append(time.monotonic())
                        break
                    now = time.monotonic()
                    with self._lock:
                        self.retries += 1
                        self.first_error_at = self.first_error_at or now
                        self.last_error_at = now
                    retried = True
                    time.sleep(0.1)
                n += 1


def check_acked(c: Client, ns: str, acked: list[str]) -> tuple[int, int]:
    """(lost, damaged): acknowledged names missing, objects whose content is not whole."""
    items, _ = c.list("configmaps", ns)
    have = {cm.metadata.name: cm for cm in items}
    lost = sum(1 for name in acked if name not in have)
    damaged = sum(1 for name, cm in have.items() if cm.data.get("payload") != payload(name))
    return lost, damaged


def etcd_member_in_use(master_pid: int, ports: list[int]) -> int:
    """Index in `ports` of the etcd member the master's connection goes to (-1: none)."""
    import psutil

    used = {c.raddr.port for c in psutil.Process(master_pid).net_connections("tcp")
            if c.raddr and c.status == psutil.CONN_ESTABLISHED}
    return next((i for i, p in enumerate(ports) if p in used), -1)
