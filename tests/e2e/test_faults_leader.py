"""Faults of the control plane: the leading master killed mid-rollout, the
masters and the node agent restarted under running pods.

Two masters share one etcd and both serve the API; the scheduler and the
controller manager run on the holder of the kube-system leader Leases
(2-3 s leases so the test is short). A node agent is given both masters
and fails over between them. Real Docker containers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2
from kubelite.client import Client, ClientConfig
from kubelite.objects import convert
from tests.cluster import ROOT, run_etcd
from tests.e2e.test_deployments import deployment, live_pods, rolled_out
from tests.faults import RestartableMaster, report
from tests.faults import masters_stopped  # noqa: F401 - autouse: no master left behind
from tests.node_agent import ensure_docker, run_node, wait_for

LEASE = ("--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
         "--leader-elect-retry-period", "0.5")


@pytest.fixture()
def masters() -> Iterator[tuple[RestartableMaster, RestartableMaster]]:
    ensure_docker()
    with run_etcd() as etcd:
        ms = (RestartableMaster(etcd.endpoint, "--identity", "m1", *LEASE),
              RestartableMaster(etcd.endpoint, "--identity", "m2", *LEASE))
        try:
            for m in ms:
                m.start()
            yield ms
        finally:
            for m in ms:
                m.stop()

def _holder(c: Client, name: str = "kube-controller-manager") -> str:
    return str(c.get("leases", name, "kube-system").spec.holderIdentity)


def _running(c: Client, ns: str) -> dict[str, str]:
    """pod name -> its container's ID, for the pods running now."""
    return {p.metadata.name: p.status.containerStatuses[0].containerID
            for p in live_pods(c, ns, "app=web")
            if p.status.phase == "Running" and p.status.containerStatuses}


def _ready(c: Client, node: str) -> bool:
    n = c.get("nodes", node)
    return any(x.type == "Ready" and x.status == "True" for x in n.status.conditions)


def test_leader_killed_mid_rollout_then_restarts_keep_pods(
        masters: tuple[RestartableMaster, RestartableMaster]) -> None:
    servers = [m.address for m in masters]
    by_id = {"m1": masters[0], "m2": masters[1]}
    with run_node(",".join(servers), "--metrics-interval", "0") as node, \
            Client(ClientConfig(servers=servers), timeout=10) as c:
        ns = "f-" + uuid.uuid4().hex[:8]
        c.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": ns}}, core_pb2.Namespace))
        wait_for(lambda: _ready(c, node.name), 30, "node Ready")
        c.create(deployment("web", ns, 3, surge=1, unavailable=0))
        wait_for(lambda: rolled_out(c, ns, "web"), 40, "first rollout")

        # `kubelite get -w` given both masters watches through the kill.
        watcher = subprocess.Popen(
            [sys.executable, "-m", "kubelite.cli.main", "--server", ",".join(servers),
             "get", "pods", "-n", ns, "-w", "--no-headers"], cwd=ROOT, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "KUBELITE_CONFIG": "/nonexistent-kubelite-config"})
        # Roll out a new template, and kill -9 the leader as soon as it has begun.
        d = c.get("deployments", "web", ns)
        d.spec.template.spec.containers[0].env.add(name="V", value="2")
        c.update(d)
        wait_for(lambda: len([p for p in live_pods(c, ns, "app=web")
                              if p.status.phase != "Running"]) or
                 len(live_pods(c, ns, "app=web")) > 3, 20, "the rollout under way")
        old = _holder(c)
        killed_at = time.monotonic()
        by_id[old].kill9()
        new = wait_for(lambda: (h := _holder(c)) not in ("", old) and h, 20, "a new leader")
        detect = time.monotonic() - killed_at
        wait_for(lambda: rolled_out(c, ns, "web"), 40, "the rollout under the new leader")
        recover = time.monotonic() - killed_at
        pods = live_pods(c, ns, "app=web")
        assert len(pods) == 3, [p.metadata.name for p in pods]
        assert all(any(e.name == "V" for e in p.spec.containers[0].env) for p in pods)
        lease = c.get("leases", "kube-controller-manager", "kube-system")
        events = wait_for(lambda: [e for e in c.list("events", "kube-system")[0]
                                   if e.involvedObject.uid == lease.metadata.uid
                                   and e.reason == "LeaderElection"
                                   and e.message == f"{new} became leader"], 10,
                          "the LeaderElection event")
        assert events
        report("leader-killed-mid-rollout", detect=detect, recover=recover, lost=0,
               old=old, new=new)
        time.sleep(1)
        assert watcher.poll() is None, watcher.communicate()
        watcher.terminate()
        out, err = watcher.communicate(10)
        leases = subprocess.run(
            [sys.executable, "-m", "kubelite.cli.main", "--server", ",".join(servers), "get",
             "leases", "-n", "kube-system"], cwd=ROOT, text=True, capture_output=True,
            timeout=60, env={**os.environ, "KUBELITE_CONFIG": "/nonexistent-kubelite-config"})
        rows = [line.split() for line in leases.stdout.splitlines()]
        assert rows[0] == ["NAME", "HOLDER", "AGE"], leases
        assert ["kube-controller-manager", new] == rows[1][:2], leases.stdout
        # the new pods, mostly made after the kill, came through the watch
        assert all(p.metadata.name in out for p in pods), (out, err)

        # The killed master comes back, the new leader is killed: pods stay as they are.
        before = _running(c, ns)
        assert len(before) == 3
        by_id[old].start()
        killed_at = time.monotonic()
        by_id[new].kill9()
        wait_for(lambda: _holder(c) == old, 20, "the old master leading again")
        detect2 = time.monotonic() - killed_at
        time.sleep(3)  # controllers resynced: anything they would recreate, they have
        assert _running(c, ns) == before
        by_id[new].start()

        # kill -9 of the node agent, back within the grace period: nothing restarted.
        killed_at = time.monotonic()
        node.restart(kill=True)
        wait_for(lambda: _listening(node.port), 30, "the agent serving again",
                 interval=0.05)
        recover3 = time.monotonic() - killed_at
        time.sleep(1)  # so the next renewal is recognisably after the kill
        wait_for(lambda: _lease_fresh(c, node.name, killed_at), 30,
                 "the agent heartbeating again")
        assert _ready(c, node.name)
        time.sleep(2)
        after = _running(c, ns)
        assert after == before, (before, after)
        for p in live_pods(c, ns, "app=web"):
            assert p.status.containerStatuses[0].restartCount == 0
        report("master-restart-pods-kept", detect=detect2, recover=detect2, lost=0,
               pods_recreated=0)
        report("node-agent-kill9", detect=0, recover=recover3, lost=0, containers_restarted=0)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _since(stamp: str) -> float:
    from datetime import UTC, datetime
    if not stamp:
        return 1e9
    t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(UTC) - t).total_seconds()


def _lease_fresh(c: Client, node: str, after: float) -> Any:
    """The node's heartbeat Lease renewed since `after` (a monotonic time)."""
    lease = c.get("leases", node, "kube-node-lease")
    return _since(lease.spec.renewTime) < time.monotonic() - after
