"""A real kubelite-node for tests: its own node name, state dir and port,
against a given master; every container it made is removed afterwards,
even when the test fails, and nothing else is touched (label filter).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import ROOT, _stop, free_port

LABEL_NODE = "io.kubelite.node"


def ensure_docker() -> None:
    """Start dockerd and build the test images when missing (the harness' job)."""
    subprocess.run(["bash", str(ROOT / "hack/start-docker.sh")], check=True)
    subprocess.run(["bash", str(ROOT / "hack/build-images.sh")], check=True)


def remove_node_containers(node: str) -> None:
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={LABEL_NODE}={node}"],
                         capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True)


def node_containers(node: str, **labels: str) -> list[str]:
    filters = ["--filter", f"label={LABEL_NODE}={node}"]
    for k, v in labels.items():
        filters += ["--filter", f"label=io.kubelite.{k.replace('_', '.')}={v}"]
    return subprocess.run(["docker", "ps", "-q", *filters], capture_output=True,
                          text=True).stdout.split()


@dataclass
class NodeAgent:
    name: str
    port: int
    root: Path
    log: Path
    proc: subprocess.Popen[bytes]
    args: list[str]

    def restart(self, *, kill: bool = True) -> None:
        if kill:
            self.proc.kill()
        else:
            _stop(self.proc)
        self.proc.wait()
        self.proc = _spawn(self.args, self.log)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


@contextlib.contextmanager
def run_node(master: str, *extra: str, name: str = "") -> Iterator[NodeAgent]:
    name = name or "node-" + uuid.uuid4().hex[:6]
    tmp = Path(tempfile.mkdtemp(prefix=f"kubelite-{name}-"))
    port = free_port()
    args = [sys.executable, "-m", "node.agent", "--server", master, "--node-name", name,
            "--port", str(port), "--address", "127.0.0.1", "--node-ip", "127.0.0.1",
            "--root-dir", str(tmp / "root"), "--restart-backoff", "1",
            "--max-restart-backoff", "4",
            # on this machine's own network namespace: pods on Docker's bridge, so the
            # test never re-plumbs the host (the pod network's tests use kubelite-up)
            *([] if "--pod-network" in extra else ["--pod-network", "docker:bridge"]),
            # the cluster DNS on a port of its own (several agents share 127.0.0.1)
            *([] if "--cluster-dns-port" in extra else ["--cluster-dns-port",
                                                         str(free_port())]), *extra]
    agent = NodeAgent(name, port, tmp / "root", tmp / "agent.log", _spawn(args, tmp / "agent.log"),
                      args)
    try:
        yield agent
    finally:
        _stop(agent.proc)
        remove_node_containers(name)
        shutil.rmtree(tmp, ignore_errors=True)


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, what: str = "",
             interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - keep polling
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}: last {last!r}")
