"""Real etcd and a real kubelite-master for tests, on free loopback ports.

Each process gets a temporary directory and is stopped (and the directory
removed) even when a test fails. Nothing here touches anything it did not
create.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path,
               timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} in {timeout}s:\n"
                       f"{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Etcd:
    endpoint: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    data_dir: Path


@contextlib.contextmanager
def run_etcd() -> Iterator[Etcd]:
    etcd = shutil.which("etcd")
    if etcd is None:
        raise RuntimeError("etcd is not installed: run hack/install-deps.sh")
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-etcd-"))
    client, peer = free_port(), free_port()
    log = tmp / "etcd.log"
    cmd = [etcd, "--name", "test", "--data-dir", str(tmp / "data"),
           "--listen-client-urls", f"http://127.0.0.1:{client}",
           "--advertise-client-urls", f"http://127.0.0.1:{client}",
           "--listen-peer-urls", f"http://127.0.0.1:{peer}",
           "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
           "--initial-cluster", f"test=http://127.0.0.1:{peer}",
           "--log-level", "warn", "--logger", "zap"]
    env = dict(os.environ, ETCD_UNSUPPORTED_ARCH=os.environ.get("ETCD_UNSUPPORTED_ARCH", ""))
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_port(client, proc, "etcd", log)
        yield Etcd(f"http://127.0.0.1:{client}", "127.0.0.1", client, proc, tmp)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Master:
    address: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def run_master(etcd_endpoint: str, *extra: str) -> Iterator[Master]:
    tmp = Path(tempfile.mkdtemp(prefix="kubelite-master-"))
    port = free_port()
    log = tmp / "master.log"
    cmd = [sys.executable, "-m", "master.main", "--etcd-servers", etcd_endpoint,
           "--listen", f"127.0.0.1:{port}", *extra]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        _wait_port(port, proc, "kubelite-master", log)
        _wait_ready(f"127.0.0.1:{port}", proc, log, extra)
        yield Master(f"127.0.0.1:{port}", proc, log)
    finally:
        _stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_ready(address: str, proc: subprocess.Popen[bytes], log: Path,
                extra: tuple[str, ...]) -> None:
    """The port opens before the default namespaces exist; wait for them."""
    from kubelite.client import APIStatusError, Client

    token = ""
    if "--token-file" in extra:
        from master.auth import load_tokens

        token = sorted(load_tokens(extra[extra.index("--token-file") + 1]))[0]
    deadline = time.monotonic() + 30
    with Client(server=address, token=token, timeout=5) as c:
        while True:
            try:
                c.get("namespaces", "kube-system")
                return
            except APIStatusError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"master not ready:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.1)
