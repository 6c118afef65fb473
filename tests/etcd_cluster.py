"""A real etcd cluster of several members for fault tests, on free loopback ports.

Each member can be stopped (SIGTERM, or kill -9) and started again with its
data directory, as an operator would; everything is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.cluster import _stop, _wait_port, free_port


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log: Path
    cmd: list[str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self) -> None:
        env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or SIGCONT): the member keeps its connections but answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def stop(self, *, kill: bool = False) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)  # a frozen member must be able to stop
        if kill:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        else:
            _stop(self.proc)
        self.proc = None


@dataclass
class EtcdCluster:
    members: list[Member] = field(default_factory=list)

    @property
    def endpoints(self) -> str:
        """The --etcd-servers value naming every member."""
        return ",".join(m.endpoint for m in self.members)


@contextlib.contextmanager
def run_etcd_cluster(size: int = 3) -> Iterator[EtcdCluster]:
    etcd = shutil.which("etcd")
    if etcd is None:
        raise RuntimeError("etcd is not installed: run hack/install-deps.sh")
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-etcd-cluster-"))
    ports = [(free_port(), free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_, peer) in enumerate(ports))
    cluster = EtcdCluster()
    for i, (client, peer) in enumerate(ports):
        cmd = [etcd, "--name", f"m{i}", "--data-dir", str(tmp / f"m{i}"),
               "--listen-client-urls", f"http://127.0.0.1:{client}",
               "--advertise-client-urls", f"http://127.0.0.1:{client}",
               "--listen-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
               "--initial-cluster", initial, "--initial-cluster-state", "new",
               "--initial-cluster-token", tmp.name,
               "--heartbeat-interval", "100", "--election-timeout", "1000",
               "--log-level", "warn", "--logger", "zap"]
        cluster.members.append(Member(f"m{i}", client, peer, tmp / f"m{i}", tmp / f"m{i}.log",
                                      cmd))
    try:
        for m in cluster.members:
            m.start()
        for m in cluster.members:
            assert m.proc is not None
            _wait_port(m.client_port, m.proc, f"etcd {m.name}", m.log)
        yield cluster
    finally:
        for m in cluster.members:
            m.stop()
        shutil.rmtree(tmp, ignore_errors=True)
