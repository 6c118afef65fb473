"""ansible/cluster.yml for real, against three Debian 12 containers that boot
systemd (unprivileged: hack/build-systemd-image.sh), then again (nothing may
change), then ansible/tests/smoke.yml.

What a container cannot be, and so what this does not cover (the VMs of
`make vagrant-smoke` do):
- its own kernel: the `kernel` tag (modules, sysctls, swap) is skipped;
- its own Docker (Docker in Docker needs a privileged container): the
  `docker` tag is skipped, and the node containers use this machine's Docker
  through its socket; so every node's pods share one bridge, and pod to pod
  "across nodes" proves exec through the master and the agents, not routing;
- its own network stack to plumb: the node agents put pods on Docker's
  bridge (node_extra_flags pod-network docker:bridge) instead of cni0, veths
  and vxlan, which need CAP_NET_ADMIN;
- its own clock: common_timesync=false;
- Services (`--skip-tags services` in the smoke check) are not checked here.
Everything else runs as on a VM: apt, etcd from Debian's package as a
systemd service, the venv from the wheelhouse, the units from deploy/, the
tokens, the nodes turning Ready, a Deployment spread over both nodes.

Last, `systemctl stop` of a node agent and of the master must be clean.
Containers, their pods and the temporary files are removed afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster import ROOT
from tests.node_agent import ensure_docker, remove_node_containers

IMAGE = "kubelite-test/debian12-systemd:1"
ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent


@dataclass
class Cluster:
    inventory: Path
    master: str
    nodes: list[str]
    dist: Path


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    ensure_docker()
    subprocess.run(["bash", str(ROOT / "hack/build-systemd-image.sh"), IMAGE], check=True)
    docker_cli = shutil.which("docker")
    assert docker_cli
    tmp = tmp_path_factory.mktemp("ansible-containers")
    prefix = "kl-ans-" + uuid.uuid4().hex[:6]
    master, nodes = f"{prefix}-master-1", [f"{prefix}-node-1", f"{prefix}-node-2"]
    try:
        for name in [master, *nodes]:
            extra = [] if name == master else [
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{os.path.realpath(docker_cli)}:/usr/local/bin/docker:ro"]
            _docker("run", "-d", "--name", name, "--hostname", name,
                    "--label", "io.kubelite.test=ansible-containers",
                    "--stop-signal", "SIGRTMIN+3", "--tmpfs", "/run", "--tmpfs", "/run/lock",
                    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", *extra, IMAGE)
        ips = {n: _docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", n)
               for n in [master, *nodes]}
        inventory = tmp / "hosts.ini"
        inventory.write_text(
            f"[etcd]\n{master} ip={ips[master]}\n[masters]\n{master} ip={ips[master]}\n"
            "[nodes]\n" + "".join(f"{n} ip={ips[n]}\n" for n in nodes) +
            "[all:vars]\nansible_connection=community.docker.docker\n"
            "common_timesync=false\n"
            # pods on Docker's bridge (a container cannot plumb its own pod network),
            # and so no Service proxy on that network
            "kubelite_proxy_mode=none\n"
            """node_extra_flags={"pod-network": "docker:bridge"}\n""")
        yield Cluster(inventory, master, nodes, tmp / "dist")
    finally:
        subprocess.run(["docker", "rm", "-f", master, *nodes], capture_output=True)
        for n in nodes:
            remove_node_containers(n)


def _playbook(cluster: Cluster, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    cmd = [str(BIN / "ansible-playbook"), "-i", str(cluster.inventory), playbook,
           "-e", f"kubelite_dist_dir={cluster.dist}", *args]
    return subprocess.run(cmd, cwd=ANSIBLE, env=env, capture_output=True, text=True,
                          timeout=1500)


def _changed_tasks(output: str) -> list[str]:
    """`TASK [...]: host` for every task that reported a change."""
    tasks, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line.split("]")[0] + "]"
        elif line.startswith("changed: ["):
            tasks.append(f"{task}: {line.split(']')[0][10:]}")
    return tasks


def _changed(output: str) -> dict[str, int]:
    return {host: int(n) for host, n in
            re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


@pytest.mark.timeout(1800)
def test_cluster_playbook_then_rerun_then_smoke(cluster: Cluster) -> None:
    first = _playbook(cluster, "cluster.yml", "--skip-tags", "kernel,docker")
    assert first.returncode == 0, first.stdout[-8000:] + first.stderr[-3000:]

    nodes = json.loads(_docker("exec", cluster.master, "/opt/kubelite/venv/bin/kubelite",
                               "get", "nodes", "-o", "json"))
    ready = {n["metadata"]["name"] for n in nodes["items"]
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions", []))}
    assert ready == set(cluster.nodes)
    for unit in ("etcd", "kubelite-master"):
        assert _docker("exec", cluster.master, "systemctl", "is-active", unit) == "active"
    for node in cluster.nodes:
        assert _docker("exec", node, "systemctl", "is-active", "kubelite-node") == "active"

    second = _playbook(cluster, "cluster.yml", "--skip-tags", "kernel,docker")
    assert second.returncode == 0, second.stdout[-8000:] + second.stderr[-3000:]
    changed = _changed(second.stdout)
    assert set(changed) == {cluster.master, *cluster.nodes}, second.stdout[-3000:]
    assert all(n == 0 for n in changed.values()), _changed_tasks(second.stdout)

    smoke = _playbook(cluster, "tests/smoke.yml", "--skip-tags", "services")
    assert smoke.returncode == 0, smoke.stdout[-8000:] + smoke.stderr[-3000:]
    assert "The pods run on two different nodes" in smoke.stdout

    # `systemctl stop` sends SIGTERM: a clean stop exits 0 and leaves the unit
    # inactive, not failed.
    for host, unit in ((cluster.nodes[0], "kubelite-node"), (cluster.master, "kubelite-master")):
        _docker("exec", host, "systemctl", "stop", unit)
        show = _docker("exec", host, "systemctl", "show", unit,
                       "-p", "ActiveState,Result,ExecMainStatus")
        assert sorted(show.splitlines()) == [
            "ActiveState=inactive", "ExecMainStatus=0", "Result=success"], (unit, show)
