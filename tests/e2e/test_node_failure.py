"""Fault test: a node partitioned from the cluster (its uplink down inside its
network namespace) on the local cluster, with a master on a short grace.

Ready Unknown -> unreachable taints -> its Deployment pods evicted (default
toleration 3 s here) and Running on the other node; its StatefulSet pod
stays Terminating (no second db-1) until force-deleted, with kubectl's
warning; heal: the node is Ready and untainted again, the Terminating pods
are confirmed gone, no duplicate remains, and the containers of the evicted
pods are removed from the node. Figures go to stdout (pytest -s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import apps_pb2
from kubelite.client import Client
from kubelite.objects import convert
from master.controllers import nodehealth as nh
from tests.localcluster import LocalCluster, heal, local_cluster, partition
from tests.node_agent import wait_for

IMAGE = "kubelite/busybox:1.35"
GRACE = 10
TOLERATION = 3
MASTER_ARGS = (f"--master-arg=--node-monitor-grace-period={GRACE}",
               "--master-arg=--node-monitor-period=1",
               f"--master-arg=--default-unreachable-toleration-seconds={TOLERATION}",
               f"--master-arg=--default-not-ready-toleration-seconds={TOLERATION}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster("vxlan", extra=MASTER_ARGS) as c:
        yield c


def template(app: str) -> dict[str, Any]:
    return {"metadata": {"labels": {"app": app}}, "spec": {
        "terminationGracePeriodSeconds": 5,
        "containers": [{"name": app, "image": IMAGE, "command": ["sleep", "3600"]}]}}


def pods(api: Client, app: str) -> list[Any]:
    return api.list("pods", "default", label_selector=f"app={app}")[0]


def running_on(api: Client, app: str, node: str, n: int) -> bool:
    live = [p for p in pods(api, app)
            if not p.metadata.deletionTimestamp and p.status.phase == "Running"]
    return len(live) == n and all(p.spec.nodeName == node for p in live)


def containers_of(node: str, uids: set[str]) -> list[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.kubelite.node={node}",
                          "--format", "{{json .Labels}}"], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if any(u in line for u in uids)]


def kubelite(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubelite.cli.main", *args],
                          env=cluster.env, capture_output=True, text=True, timeout=60,
                          check=False)


def test_partitioned_node_pods_move_and_nothing_is_duplicated(cluster: LocalCluster) -> None:
    with cluster.client() as api:
        api.create(convert.from_dict({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"replicas": 2, "serviceName": "db",
                     "selector": {"matchLabels": {"app": "db"}}, "template": template("db")}},
            apps_pb2.StatefulSet))
        wait_for(lambda: sum(p.status.phase == "Running" for p in pods(api, "db")) == 2,
                 120, "db-0 and db-1 Running")
        db1 = api.get("pods", "db-1", "default")
        victim = db1.spec.nodeName
        other = next(n for n in cluster.nodes if n != victim)
        api.create(convert.from_dict({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web")}}, apps_pb2.Deployment))
        wait_for(lambda: sum(p.status.phase == "Running" for p in pods(api, "web")) == 4,
                 120, "4 web pods Running")
        before = {p.metadata.uid: p for p in pods(api, "web") + pods(api, "db")}
        on_victim = {u for u, p in before.items() if p.spec.nodeName == victim}
        web_on_victim = [p for p in pods(api, "web") if p.spec.nodeName == victim]
        assert web_on_victim, "the scheduler put no web pod on the victim node"
        # Defaults from the DefaultTolerationSeconds admission.
        tols = {(t.key, t.tolerationSeconds) for t in web_on_victim[0].spec.tolerations}
        assert (nh.UNREACHABLE, TOLERATION) in tols

        lease = api.get("leases", victim, "kube-node-lease")
        partition(cluster, victim)
        t_cut = time.time()

        def ready_of() -> str:
            return nh.ready_status(api.get("nodes", victim))

        wait_for(lambda: ready_of() == "Unknown", GRACE + 30, "Ready Unknown")
        t_unknown = time.time()
        node = api.get("nodes", victim)
        assert {c.reason for c in node.status.conditions
                if c.type in nh.KUBELET_CONDITIONS} == {nh.UNKNOWN_REASON}
        wait_for(lambda: (nh.UNREACHABLE, "NoExecute") in nh.our_taints(api.get("nodes",
                                                                                 victim)),
                 30, "unreachable taint")
        t_taint = time.time()

        def db1_ready() -> str:
            p = api.get("pods", "db-1", "default")
            return next((c.status for c in p.status.conditions if c.type == "Ready"), "")

        wait_for(lambda: db1_ready() == "False", 10, "db-1 marked not Ready")
        wait_for(lambda: running_on(api, "web", other, 4), 90,
                 "the 4 web pods Running on the other node")
        t_recovered = time.time()
        evicted = [p for p in pods(api, "web") if p.metadata.uid in on_victim]
        assert evicted and all(p.metadata.deletionTimestamp for p in evicted), \
            "evicted pods stay Terminating until the node confirms"
        # StatefulSet safety: db-1 is Terminating, never replaced behind its back.
        time.sleep(3)
        db = {p.metadata.name: p for p in pods(api, "db")}
        assert db["db-1"].metadata.uid == db1.metadata.uid and db["db-1"].metadata.deletionTimestamp
        assert len(db) == 2
        r = kubelite(cluster, "delete", "pod", "db-1", "--force", "--grace-period=0")
        assert r.returncode == 0, r.stderr
        assert "Immediate deletion does not wait for confirmation that the running resource " \
               "has been terminated. The resource may continue to run on the cluster " \
               "indefinitely." in r.stderr
        assert 'pod "db-1" force deleted' in r.stdout
        wait_for(lambda: running_on(api, "db", other, 2), 90, "db-1 again, on the other node")

        heal(cluster, victim)
        t_heal = time.time()
        try:
            wait_for(lambda: ready_of() == "True" and not nh.our_taints(api.get("nodes",
                                                                                 victim)),
                     60, "the node Ready and untainted again")
        except AssertionError:
            print((cluster.state / f"{victim}.log").read_text(errors="replace")[-6000:])
            raise
        t_back = time.time()
        wait_for(lambda: not [p for p in pods(api, "web") + pods(api, "db")
                              if p.metadata.uid in on_victim], 60,
                 "the evicted pods confirmed gone by their node")
        wait_for(lambda: not containers_of(victim, on_victim), 60,
                 "the evicted pods' containers removed from the node")
        t_clean = time.time()
        web, db_pods = pods(api, "web"), pods(api, "db")
        assert len(web) == 4 and sorted(p.metadata.name for p in db_pods) == ["db-0", "db-1"]
        assert all(not p.metadata.deletionTimestamp for p in web + db_pods)
        lost = [k for k in ("web", "db") if not api.list(
            "deployments" if k == "web" else "statefulsets", "default")[0]]
        assert not lost
        print(json.dumps({
            "lease_renew_before_cut": lease.spec.renewTime,
            "time_to_detect_s": round(t_unknown - t_cut, 1),
            "time_to_taint_s": round(t_taint - t_cut, 1),
            "time_to_recover_s (pods Running elsewhere)": round(t_recovered - t_cut, 1),
            "heal_to_ready_s": round(t_back - t_heal, 1),
            "heal_to_clean_s": round(t_clean - t_heal, 1),
            "objects_lost": len(lost)}, indent=1))
