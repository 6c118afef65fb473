"""`kubelite-up --etcd-members 3`: the local cluster on a 3-member etcd keeps
answering with a member kill -9'd, `kubelite-up` again restarts that member,
and `kubelite-down` stops every member."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kubelite.client import Client, load_config
from tests.cluster import ROOT, free_port
from tests.faults import configmap, create_retrying, report
from tests.localcluster import free_host_cidr


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def _free_block() -> int:
    """A base port with base..base+2 and base+10..base+12 free (clients, peers)."""
    for _ in range(50):
        base = random.randrange(41000, 59000)
        with contextlib.ExitStack() as stack:
            try:
                for p in (*range(base, base + 3), *range(base + 10, base + 13)):
                    s = stack.enter_context(socket.socket())
                    s.bind(("127.0.0.1", p))
            except OSError:
                continue
            return base
    raise RuntimeError("no free port block")


def test_local_cluster_on_three_etcd_members(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    env = {**os.environ, "KUBELITE_LOCAL_DIR": str(state),
           "KUBELITE_CONFIG": str(tmp_path / "home-config")}
    tag = uuid.uuid4().hex[:5]
    up = [sys.executable, "-c", "from kubelite.up import main; main()",
          "--etcd-members", "3", "--nodes", "0", "--port", str(free_port()),
          "--etcd-port", str(_free_block()), "--bridge", f"klu{tag}",
          "--netns-prefix", f"klu{tag}-", "--host-cidr", free_host_cidr()]
    down = [sys.executable, "-c", "from kubelite.up import main_down; main_down()"]
    pids: list[int] = []
    try:
        r = _run(up, env)
        assert r.returncode == 0, r.stdout + r.stderr
        pids = [int((state / f"{n}.pid").read_text()) for n in ("etcd", "etcd-2", "etcd-3")]
        with Client(load_config(str(tmp_path / "home-config")), timeout=15) as c:
            c.create(configmap("default", "before"))
            os.kill(pids[0], signal.SIGKILL)
            t = time.monotonic()
            # the master moves to another member; while etcd elects a new leader a
            # write may come back UNAVAILABLE ("leader changed"): retried, never lost
            retries = create_retrying(c, configmap("default", "during"))
            took = time.monotonic() - t
            r = _run(up, env)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "etcd: started" in r.stdout and "etcd-2: already running" in r.stdout
            names = {cm.metadata.name for cm in c.list("configmaps", "default")[0]}
            assert {"before", "during"} <= names
        report("local-etcd-member-killed", detect=0, recover=took, lost=0, retries=retries)
        pids[0] = int((state / "etcd.pid").read_text())
    finally:
        r = _run(down, env)
    assert r.returncode == 0, r.stdout + r.stderr
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"etcd {pid} still runs"
