"""`make up` / `make down` as a user runs them (kubelite-up / kubelite-down)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from kubelite.client import Client, load_config
from kubelite import localnet
from tests.cluster import ROOT, free_port
from tests.localcluster import free_host_cidr, leftovers
from tests.node_agent import ensure_docker, node_containers, remove_node_containers, wait_for


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_up_repairs_and_down_removes_everything(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    cfg = tmp_path / "home-config"
    env = {**os.environ, "KUBELITE_LOCAL_DIR": str(state), "KUBELITE_CONFIG": str(cfg)}
    ensure_docker()
    prefix = f"up-{uuid.uuid4().hex[:6]}-"  # never the names of a cluster a user runs here
    node = f"{prefix}1"
    port, etcd_port, kubelet_port = free_port(), free_port(), free_port()
    tag = uuid.uuid4().hex[:5]
    host_cidr = free_host_cidr()
    up = [sys.executable, "-c", "from kubelite.up import main; main()",
          "--port", str(port), "--etcd-port", str(etcd_port), "--kubelet-port", str(kubelet_port),
          "--node-prefix", prefix, "--nodes", "1", "--bridge", f"klu{tag}",
          "--netns-prefix", f"klu{tag}-", "--host-cidr", host_cidr]
    net = localnet.plan(f"klu{tag}", host_cidr, [node], f"klu{tag}-")
    down = [sys.executable, "-c", "from kubelite.up import main_down; main_down()"]
    try:
        r = _run(up, env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "kubelite is running" in r.stdout
        config = load_config(str(cfg))
        assert config.token and config.servers == [f"127.0.0.1:{port}"]
        with Client(config) as c:
            assert c.get("namespaces", "default").status.phase == "Active"
        # the master dies; running up again restarts it and keeps etcd
        etcd_pid = int((state / "etcd.pid").read_text())
        os.kill(int((state / "master.pid").read_text()), signal.SIGKILL)
        r = _run(up, env)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "etcd: already running" in r.stdout and "master: started" in r.stdout
        assert int((state / "etcd.pid").read_text()) == etcd_pid
        with Client(load_config(str(cfg))) as c:
            c.get("namespaces", "kube-system")
        # the CLI finds the cluster through the config kubelite-up wrote
        cli = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "get", "ns", "-o",
                              "name"], cwd=ROOT, env={**env, "KUBELITE_SERVER": ""},
                             capture_output=True, text=True, timeout=60, check=False)
        assert "namespace/default" in cli.stdout, cli.stderr
        # the node agent registered; the scheduler binds a pod to it and it runs
        cli = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "apply", "-f",
                              "examples/busybox-pod.yaml"], cwd=ROOT,
                             env={**env, "KUBELITE_SERVER": ""}, capture_output=True,
                             text=True, timeout=60, check=False)
        assert cli.returncode == 0, cli.stderr
        with Client(load_config(str(cfg))) as c:
            assert c.get("nodes", node).status.nodeInfo.kubeletVersion
            pod = wait_for(lambda: _ready(c), 60, "the example pod Ready")
            assert pod.spec.nodeName == node
    finally:
        r = _run(down, env)
        remove_node_containers(node)  # in case down itself failed
        left = leftovers(net)
        if left:
            localnet.remove(net)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not left, f"kubelite-down left behind: {left}"
    assert not state.exists() and not cfg.exists()
    assert not node_containers(node), "kubelite-down left containers behind"


def _ready(c: Client) -> Any:
    p = c.get("pods", "busybox", "default")
    return p if any(x.type == "Ready" and x.status == "True" for x in p.status.conditions) else None
