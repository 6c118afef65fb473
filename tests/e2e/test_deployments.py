"""Deployments on a real cluster (etcd, a master running its scheduler and
controllers, a node agent running the pods in Docker), driven through the
`kubelite` CLI where kubectl would be used: rollout, set image, scale,
rolling-update of ReplicationControllers.

Rolling updates are watched while they happen: every pod event is checked
against the limits (available pods never below replicas - maxUnavailable,
pods never above replicas + maxSurge; for Recreate, old and new pods never
exist together).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite.api import apps_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert, rollout
from tests.cluster import ROOT, Master, run_etcd, run_master
from tests.e2e.conftest import Kl
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"
FAST = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
        "--leader-elect-retry-period", "0.3")


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Master, NodeAgent]]:
    ensure_docker()
    with run_etcd() as etcd, run_master(etcd.endpoint, *FAST) as m, \
            run_node(m.address, "--metrics-interval", "0") as node:
        with Client(server=m.address) as c:
            wait_for(lambda: c.get("nodes", node.name), 30, "node registration")
        yield m, node


@pytest.fixture(scope="module")
def image2(cluster: tuple[Master, NodeAgent]) -> Iterator[str]:
    """A second tag of the test image, so `set image` really changes the image."""
    tag = f"kubelite/busybox:e2e-{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "tag", IMAGE, tag], check=True, capture_output=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "rmi", tag], capture_output=True)


@pytest.fixture()
def api(cluster: tuple[Master, NodeAgent]) -> Iterator[Client]:
    with Client(server=cluster[0].address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "d-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


@pytest.fixture()
def kl(cluster: tuple[Master, NodeAgent], ns: str) -> Kl:
    return Kl(cluster[0], ns)


def template(labels: dict[str, str], image: str = IMAGE, grace: int = 0,
             pull: str = "") -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": image, "command": ["sleep", "3600"],
                         "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}
    if pull:
        c["imagePullPolicy"] = pull
    return {"metadata": {"labels": labels},
            "spec": {"terminationGracePeriodSeconds": grace, "containers": [c]}}


def deployment(name: str, ns: str, replicas: int = 3, *, surge: Any = 1, unavailable: Any = 0,
               strategy: str = "RollingUpdate", tmpl: dict[str, Any] | None = None,
               **spec: Any) -> Any:
    labels = {"app": name}
    strat: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "strategy": strat, "template": tmpl or template(labels), **spec}},
        apps_pb2.Deployment)


def rolled_out(api: Client, ns: str, name: str) -> Any:
    """The Deployment once `rollout status` would call it done, else None."""
    d = api.get("deployments", name, ns)
    st, n = d.status, d.spec.replicas
    if (d.metadata.generation <= st.observedGeneration and st.updatedReplicas == n
            and st.replicas == n and st.availableReplicas == n):
        return d
    return None


def owned_rss(api: Client, ns: str, d: Any) -> list[Any]:
    rss, _ = api.list("replicasets", ns)
    return sorted((rs for rs in rss if any(r.uid == d.metadata.uid for r in
                                           rs.metadata.ownerReferences)),
                  key=lambda rs: rollout.revision(rs))


def condition(d: Any, ctype: str) -> Any:
    return next((c for c in d.status.conditions if c.type == ctype), None)


def live_pods(api: Client, ns: str, selector: str) -> list[Any]:
    items, _ = api.list("pods", ns, label_selector=selector)
    return [p for p in items if not p.metadata.deletionTimestamp]


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


class Watcher:
    """Follows a resource in a thread and calls `check(objects)` after every event
    (the state at each revision in order), collecting what `check` returns."""

    def __init__(self, address: str, resource: str, ns: str, selector: str,
                 check: Callable[[dict[str, Any]], str]) -> None:
        self.client = Client(server=address, timeout=15)
        self.resource, self.ns, self.selector, self.check = resource, ns, selector, check
        items, self.rv = self.client.list(resource, ns, label_selector=selector)
        self.objects = {o.metadata.name: o for o in items}
        self.violations: list[str] = []
        self.events = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                for typ, obj, rv in self.client.watch(self.resource, self.ns,
                                                      label_selector=self.selector,
                                                      resource_version=self.rv,
                                                      allow_bookmarks=True, timeout=1.0):
                    self.rv = rv or self.rv
                    if obj is None:
                        continue
                    self.events += 1
                    if typ == "DELETED":
                        self.objects.pop(obj.metadata.name, None)
                    else:
                        self.objects[obj.metadata.name] = obj
                    problem = self.check(self.objects)
                    if problem:
                        self.violations.append(problem)
        except Exception as e:  # noqa: BLE001 - a lost watch must fail the test
            if not self.stop.is_set():
                self.violations.append(f"watch failed: {e!r}")

    def finish(self) -> list[str]:
        time.sleep(0.5)  # the last events
        self.stop.set()
        self.thread.join(5)
        self.client.close()
        return self.violations


# ---- create, status, names -------------------------------------------------------------

def test_create_becomes_available_with_hash_named_replica_set(api: Client, ns: str,
                                                               kl: Kl) -> None:
    api.create(deployment("web", ns, 3))
    out = kl.ok("rollout", "status", "deploy/web", "--timeout=50s")
    assert out.strip().splitlines()[-1] == 'deployment "web" successfully rolled out'
    d = wait_for(lambda: rolled_out(api, ns, "web"), 30, "rolled out")
    assert d.metadata.annotations[rollout.REVISION] == "1"
    assert (condition(d, "Available").status, condition(d, "Available").reason) == (
        "True", "MinimumReplicasAvailable")
    prog = wait_for(lambda: (c := condition(api.get("deployments", "web", ns), "Progressing"))
                    and c.reason == "NewReplicaSetAvailable" and c, 10)
    assert prog.status == "True"
    (rs,) = owned_rss(api, ns, d)
    h = rollout.pod_template_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.matchLabels["pod-template-hash"] == h
    assert rs.spec.template.metadata.labels["pod-template-hash"] == h
    assert rs.metadata.annotations[rollout.REVISION] == "1"
    assert rs.metadata.annotations[rollout.DESIRED_REPLICAS] == "3"
    assert rs.metadata.annotations[rollout.MAX_REPLICAS] == "4"
    ref = rs.metadata.ownerReferences[0]
    assert (ref.kind, ref.name, ref.controller) == ("Deployment", "web", True)
    pods = live_pods(api, ns, "app=web")
    assert len(pods) == 3 and all(p.metadata.labels["pod-template-hash"] == h for p in pods)
    got = kl.ok("get", "deploy", "web")
    assert got.splitlines()[1].split()[:4] == ["web", "3/3", "3", "3"]


# ---- rolling update --------------------------------------------------------------------

def test_rolling_update_keeps_availability_and_surge_limits(
        api: Client, ns: str, kl: Kl, cluster: tuple[Master, NodeAgent], image2: str) -> None:
    replicas, surge, unavailable = 5, 2, 1
    api.create(deployment("roll", ns, replicas, surge=surge, unavailable=unavailable))
    wait_for(lambda: rolled_out(api, ns, "roll"), 60, "first rollout")
    seen = {"max_total": 0, "min_ready": replicas}

    def check_pods(pods: dict[str, Any]) -> str:
        live = [p for p in pods.values() if not p.metadata.deletionTimestamp
                and p.status.phase not in ("Succeeded", "Failed")]
        n_ready = sum(1 for p in live if ready(p))
        seen["max_total"] = max(seen["max_total"], len(live))
        seen["min_ready"] = min(seen["min_ready"], n_ready)
        if len(live) > replicas + surge:
            return f"{len(live)} pods > {replicas + surge}"
        if n_ready < replicas - unavailable:
            return f"{n_ready} ready pods < {replicas - unavailable}"
        return ""

    def check_rss(rss: dict[str, Any]) -> str:
        total = sum(rs.spec.replicas for rs in rss.values())
        return f"replica sets want {total} > {replicas + surge}" \
            if total > replicas + surge else ""

    pods = Watcher(cluster[0].address, "pods", ns, "app=roll", check_pods)
    rss = Watcher(cluster[0].address, "replicasets", ns, "app=roll", check_rss)
    assert kl.ok("set", "image", "deploy/roll", f"c={image2}") == \
        "deployment.apps/roll image updated\n"
    status = kl.ok("rollout", "status", "deploy/roll", "--timeout=50s")
    pod_problems, rs_problems = pods.finish(), rss.finish()
    assert pod_problems == [] and rs_problems == []
    assert pods.events > 10
    assert status.strip().splitlines()[-1] == 'deployment "roll" successfully rolled out'
    assert "Waiting for deployment \"roll\" rollout to finish" in status
    d = wait_for(lambda: rolled_out(api, ns, "roll"), 30)
    assert d.metadata.annotations[rollout.REVISION] == "2"
    assert seen["max_total"] == replicas + surge  # both limits were used, not exceeded
    assert seen["min_ready"] == replicas - unavailable
    old, new = owned_rss(api, ns, d)
    assert (old.spec.replicas, new.spec.replicas) == (0, replicas)
    assert all(p.spec.containers[0].image == image2 for p in live_pods(api, ns, "app=roll"))
    # The same image again: nothing to do, nothing printed (kubectl's empty patch).
    assert kl.ok("set", "image", "deploy/roll", f"c={image2}") == ""
    r = kl("set", "image", "deploy/roll", "nope=x")
    assert r.returncode == 1 and r.stderr.strip() == 'error: unable to find container named "nope"'


def test_rollback_restores_the_previous_template(api: Client, ns: str, kl: Kl,
                                                  image2: str) -> None:
    api.create(deployment("rb", ns, 2))
    wait_for(lambda: rolled_out(api, ns, "rb"), 60)
    kl.ok("set", "image", "deploy/rb", f"c={image2}", "--record")
    wait_for(lambda: (d := rolled_out(api, ns, "rb")) and
             d.metadata.annotations.get(rollout.REVISION) == "2", 60, "revision 2")
    hist = kl.ok("rollout", "history", "deploy/rb").splitlines()
    assert hist[0] == "deployment.apps/rb"
    assert hist[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert hist[2].split() == ["1", "<none>"]
    assert hist[3].split()[0] == "2" and f"set image deploy/rb c={image2}" in hist[3]
    assert kl.ok("rollout", "undo", "deploy/rb") == "deployment.apps/rb rolled back\n"
    d = wait_for(lambda: (d := rolled_out(api, ns, "rb")) and
                 d.metadata.annotations.get(rollout.REVISION) == "3" and d, 60, "revision 3")
    assert d.spec.template.spec.containers[0].image == IMAGE
    assert "pod-template-hash" not in d.spec.template.metadata.labels
    assert rollout.CHANGE_CAUSE not in d.metadata.annotations  # revision 1 had none
    first, second = _by_image(api, ns, d, image2)
    assert first.metadata.annotations[rollout.REVISION] == "3"  # moved, like Kubernetes
    assert first.metadata.annotations[rollout.REVISION_HISTORY] == "1"
    assert (first.spec.replicas, second.spec.replicas) == (2, 0)
    assert all(p.spec.containers[0].image == IMAGE for p in live_pods(api, ns, "app=rb"))
    revs = [line.split()[0] for line in kl.ok("rollout", "history", "deploy/rb").splitlines()[2:]
            if line.strip()]
    assert revs == ["2", "3"]
    shown = kl.ok("rollout", "history", "deploy/rb", "--revision=2")
    assert shown.startswith("deployment.apps/rb with revision #2\nPod Template:\n")
    assert image2 in shown
    r = kl("rollout", "undo", "deploy/rb", "--to-revision=9")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: unable to find specified revision 9 in history"
    assert kl.ok("rollout", "undo", "deploy/rb", "--to-revision=2") == \
        "deployment.apps/rb rolled back\n"
    d = wait_for(lambda: (d := rolled_out(api, ns, "rb")) and
                 d.metadata.annotations.get(rollout.REVISION) == "4" and d, 60, "revision 4")
    assert d.spec.template.spec.containers[0].image == image2
    assert f"set image deploy/rb c={image2}" in d.metadata.annotations[rollout.CHANGE_CAUSE]
    assert kl.ok("rollout", "undo", "deploy/rb", "--to-revision=4").endswith(
        "skipped rollback (current template already matches revision 4)\n")


def _by_image(api: Client, ns: str, d: Any, image2: str) -> tuple[Any, Any]:
    rss = owned_rss(api, ns, d)
    first = next(rs for rs in rss if rs.spec.template.spec.containers[0].image == IMAGE)
    second = next(rs for rs in rss if rs.spec.template.spec.containers[0].image == image2)
    return first, second


# ---- Recreate --------------------------------------------------------------------------

def test_recreate_never_runs_old_and_new_pods_together(
        api: Client, ns: str, kl: Kl, cluster: tuple[Master, NodeAgent], image2: str) -> None:
    # A grace period keeps old pods (terminating) until the node has stopped them.
    api.create(deployment("rec", ns, 3, strategy="Recreate",
                          tmpl=template({"app": "rec"}, grace=1)))
    wait_for(lambda: rolled_out(api, ns, "rec"), 60)
    old_hash = live_pods(api, ns, "app=rec")[0].metadata.labels["pod-template-hash"]
    seen = {"old_gone_before_new": False}

    def check(pods: dict[str, Any]) -> str:
        hashes = {p.metadata.labels.get("pod-template-hash") for p in pods.values()}
        if old_hash in hashes and len(hashes) > 1:
            return f"old and new pods together: {sorted(pods)}"
        if hashes and old_hash not in hashes:
            seen["old_gone_before_new"] = True
        return ""

    w = Watcher(cluster[0].address, "pods", ns, "app=rec", check)
    kl.ok("set", "image", "deploy/rec", f"c={image2}")
    kl.ok("rollout", "status", "deploy/rec", "--timeout=50s")
    assert w.finish() == []
    assert seen["old_gone_before_new"]
    d = wait_for(lambda: rolled_out(api, ns, "rec"), 30)
    assert condition(d, "Available").status == "True"


# ---- pause / resume / restart / scale -------------------------------------------------

def test_paused_deployment_rolls_out_only_when_resumed(api: Client, ns: str, kl: Kl,
                                                        image2: str) -> None:
    api.create(deployment("pz", ns, 2))
    wait_for(lambda: rolled_out(api, ns, "pz"), 60)
    assert kl.ok("rollout", "pause", "deploy/pz") == "deployment.apps/pz paused\n"
    r = kl("rollout", "pause", "deploy/pz")
    assert r.returncode == 1
    assert r.stderr.strip() == 'error: deployments.apps "pz" is already paused'
    kl.ok("set", "image", "deploy/pz", f"c={image2}")
    kl.ok("scale", "deploy/pz", "--replicas=3")  # scaling still applies
    wait_for(lambda: len([p for p in live_pods(api, ns, "app=pz") if ready(p)]) == 3, 60)
    time.sleep(1.5)
    d = api.get("deployments", "pz", ns)
    assert len(owned_rss(api, ns, d)) == 1  # no new ReplicaSet while paused
    assert all(p.spec.containers[0].image == IMAGE for p in live_pods(api, ns, "app=pz"))
    assert condition(d, "Progressing").reason == "DeploymentPaused"
    assert condition(d, "Progressing").status == "Unknown"
    r = kl("rollout", "restart", "deploy/pz")
    assert r.returncode == 1 and "can't restart paused deployment" in r.stderr
    r = kl("rollout", "undo", "deploy/pz")
    assert r.returncode == 1 and "you cannot rollback a paused deployment" in r.stderr
    assert kl.ok("rollout", "resume", "deploy/pz") == "deployment.apps/pz resumed\n"
    d = wait_for(lambda: rolled_out(api, ns, "pz"), 60, "rolled out after resume")
    assert d.metadata.annotations[rollout.REVISION] == "2"
    assert all(p.spec.containers[0].image == image2 for p in live_pods(api, ns, "app=pz"))
    r = kl("rollout", "resume", "deploy/pz")
    assert r.returncode == 1 and r.stderr.strip() == 'error: deployments.apps "pz" is not paused'
    # restart: a new template annotation, so every pod is replaced.
    before = {p.metadata.name for p in live_pods(api, ns, "app=pz")}
    assert kl.ok("rollout", "restart", "deploy/pz") == "deployment.apps/pz restarted\n"
    d = wait_for(lambda: (d := rolled_out(api, ns, "pz")) and
                 d.metadata.annotations.get(rollout.REVISION) == "3" and d, 60)
    assert rollout.RESTARTED_AT in d.spec.template.metadata.annotations
    assert not before & {p.metadata.name for p in live_pods(api, ns, "app=pz")}


def test_scale_with_and_without_current_replicas(api: Client, ns: str, kl: Kl) -> None:
    api.create(deployment("sc", ns, 2))
    wait_for(lambda: rolled_out(api, ns, "sc"), 60)
    assert kl.ok("scale", "deploy/sc", "--replicas=3") == "deployment.apps/sc scaled\n"
    wait_for(lambda: rolled_out(api, ns, "sc") and
             api.get("deployments", "sc", ns).status.availableReplicas == 3, 60)
    r = kl("scale", "deploy/sc", "--current-replicas=2", "--replicas=1")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: Expected replicas to be 2, was 3"
    assert api.get("deployments", "sc", ns).spec.replicas == 3
    assert kl.ok("scale", "deployment", "sc", "--current-replicas=3", "--replicas=1") == \
        "deployment.apps/sc scaled\n"
    wait_for(lambda: len(live_pods(api, ns, "app=sc")) == 1, 30)
    (rs,) = owned_rss(api, ns, api.get("deployments", "sc", ns))
    assert rs.spec.replicas == 1 and rs.metadata.annotations[rollout.DESIRED_REPLICAS] == "1"
    r = kl("scale", "deploy/sc")
    assert r.returncode == 1 and 'required flag(s) "replicas" not set' in r.stderr


def test_proportional_scaling_in_mid_rollout(api: Client, ns: str, kl: Kl) -> None:
    # maxSurge 2, maxUnavailable 0: a rollout to an image that never starts sticks with
    # 4 old pods and 2 new ones; scaling to 8 then spreads 10 (8 + surge) as 7 + 3.
    api.create(deployment("prop", ns, 4, surge=2, unavailable=0,
                          tmpl=template({"app": "prop"}, pull="Never")))
    wait_for(lambda: rolled_out(api, ns, "prop"), 60)
    kl.ok("set", "image", "deploy/prop", "c=kubelite/missing:nowhere")
    d = api.get("deployments", "prop", ns)

    def sizes() -> dict[int, int]:
        return {rollout.revision(rs): rs.spec.replicas for rs in owned_rss(api, ns, d)}

    wait_for(lambda: sizes() == {1: 4, 2: 2}, 30, "stuck rollout 4 + 2")
    kl.ok("scale", "deploy/prop", "--replicas=8")
    wait_for(lambda: sizes() == {1: 7, 2: 3}, 30, "proportional 7 + 3")
    for rs in owned_rss(api, ns, d):
        assert rs.metadata.annotations[rollout.DESIRED_REPLICAS] == "8"
        assert rs.metadata.annotations[rollout.MAX_REPLICAS] == "10"
    wait_for(lambda: len([p for p in live_pods(api, ns, "app=prop") if ready(p)]) == 7, 60)


# ---- progress deadline ------------------------------------------------------------------

def test_progress_deadline_exceeded_fails_rollout_status(api: Client, ns: str, kl: Kl) -> None:
    tmpl = template({"app": "stuck"}, image="kubelite/missing:nowhere", pull="Never")
    api.create(deployment("stuck", ns, 1, tmpl=tmpl, progressDeadlineSeconds=3))
    t = time.monotonic()
    r = kl("rollout", "status", "deploy/stuck", "--timeout=50s")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip() == 'error: deployment "stuck" exceeded its progress deadline'
    assert 'Waiting for deployment "stuck" rollout to finish: 0 of 1 updated replicas are ' \
           "available..." in r.stdout
    assert time.monotonic() - t >= 2.5
    d = api.get("deployments", "stuck", ns)
    prog = condition(d, "Progressing")
    assert (prog.status, prog.reason) == ("False", "ProgressDeadlineExceeded")
    assert prog.message == f'ReplicaSet "{owned_rss(api, ns, d)[0].metadata.name}" has timed ' \
                           "out progressing."
    assert condition(d, "Available").status == "False"
    assert condition(d, "Available").reason == "MinimumReplicasUnavailable"
    assert kl("rollout", "status", "deploy/stuck", "-w=false").returncode == 1


# ---- history limit, garbage collection ---------------------------------------------------

def test_revision_history_limit_deletes_the_oldest(api: Client, ns: str, kl: Kl) -> None:
    api.create(deployment("hist", ns, 1, revisionHistoryLimit=1))
    wait_for(lambda: rolled_out(api, ns, "hist"), 60)
    for rev in ("2", "3"):
        time.sleep(1.1)  # restartedAt has whole seconds: the same second changes nothing
        kl.ok("rollout", "restart", "deploy/hist")
        wait_for(lambda rev=rev: (d := rolled_out(api, ns, "hist")) and
                 d.metadata.annotations.get(rollout.REVISION) == rev, 60, f"revision {rev}")
    d = api.get("deployments", "hist", ns)
    wait_for(lambda: [rollout.revision(rs) for rs in owned_rss(api, ns, d)] == [2, 3], 30,
             "only the newest old ReplicaSet kept")


def test_deleting_a_deployment_removes_its_replica_sets_and_pods(api: Client, ns: str,
                                                                 kl: Kl) -> None:
    api.create(deployment("gone", ns, 2))
    wait_for(lambda: rolled_out(api, ns, "gone"), 60)
    kl.ok("rollout", "restart", "deploy/gone")
    d = wait_for(lambda: (d := rolled_out(api, ns, "gone")) and
                 d.metadata.annotations.get(rollout.REVISION) == "2" and d, 60)
    assert len(owned_rss(api, ns, d)) == 2
    kl.ok("delete", "deploy/gone")
    wait_for(lambda: not owned_rss(api, ns, d), 30, "ReplicaSets collected")
    wait_for(lambda: not api.list("pods", ns, label_selector="app=gone")[0], 30,
             "pods collected")


# ---- rolling-update of ReplicationControllers --------------------------------------------

def rc(name: str, ns: str, version: str, replicas: int = 3) -> dict[str, Any]:
    labels = {"app": name.rsplit("-", 1)[0], "version": version}
    return {"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": labels, "template": template(labels)}}


def create_rc(api: Client, manifest: dict[str, Any]) -> None:
    api.create(convert.from_dict(manifest, core_pb2.ReplicationController))
    md = manifest["metadata"]
    wait_for(lambda: api.get("replicationcontrollers", md["name"], md["namespace"])
             .status.readyReplicas == manifest["spec"]["replicas"], 60, f"{md['name']} ready")


def rc_ready(api: Client, ns: str, name: str, n: int) -> bool:
    r = api.get("replicationcontrollers", name, ns)
    return r.spec.replicas == n and r.status.readyReplicas == n


def gone(api: Client, resource: str, name: str, ns: str) -> bool:
    try:
        api.get(resource, name, ns)
        return False
    except APIStatusError as e:
        return e.not_found


def rc_file(tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return str(path)


def start_cli(kl: Kl, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KUBELITE_SERVER": kl.master.address,
           "KUBELITE_CONFIG": "/nonexistent-kubelite-config"}
    return subprocess.Popen([sys.executable, "-u", "-m", "kubelite.cli.main", *args,
                             "-n", kl.namespace], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


def run_until(proc: subprocess.Popen[str], line: str, timeout: float = 60) -> list[str]:
    """Read the CLI's output until `line`, then kill it (an interrupted update)."""
    out: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    try:
        while time.monotonic() < deadline:
            text = proc.stdout.readline()
            if not text:
                break
            out.append(text.rstrip("\n"))
            if out[-1] == line:
                return out
        raise AssertionError(f"never saw {line!r}: {out}")
    finally:
        proc.kill()
        proc.wait()


FLAGS = ("--update-period=300ms", "--poll-interval=100ms")


def test_rolling_update_of_replication_controllers(api: Client, ns: str, kl: Kl,
                                                    tmp_path: Path) -> None:
    create_rc(api, rc("fe-v1", ns, "v1"))
    new = rc_file(tmp_path, rc("fe-v2", ns, "v2"))
    out = kl.ok("rolling-update", "fe-v1", "-f", new, *FLAGS).splitlines()
    assert out == [
        "Created fe-v2",
        "Scaling up fe-v2 from 0 to 3, scaling down fe-v1 from 3 to 0 (keep 3 pods available, "
        "don't exceed 4 pods)",
        "Scaling fe-v2 up to 1", "Scaling fe-v1 down to 2",
        "Scaling fe-v2 up to 2", "Scaling fe-v1 down to 1",
        "Scaling fe-v2 up to 3", "Scaling fe-v1 down to 0",
        "Update succeeded. Deleting fe-v1",
        'replicationcontroller/fe-v1 rolling updated to "fe-v2"']
    assert gone(api, "replicationcontrollers", "fe-v1", ns)
    wait_for(lambda: rc_ready(api, ns, "fe-v2", 3), 30)
    annotations = api.get("replicationcontrollers", "fe-v2", ns).metadata.annotations
    assert not [k for k in annotations if k.startswith("kubectl.kubernetes.io/")]
    wait_for(lambda: all(p.metadata.labels["version"] == "v2"
                         for p in api.list("pods", ns, label_selector="app=fe")[0]), 30)
    r = kl("rolling-update", "fe-v2", "-f", new, *FLAGS)
    assert r.returncode == 1 and "cannot have the same name as the existing " \
        "ReplicationController fe-v2" in r.stderr


def test_rolling_update_resumes_after_interruption(api: Client, ns: str, kl: Kl,
                                                   tmp_path: Path) -> None:
    create_rc(api, rc("api-v1", ns, "v1"))
    new = rc_file(tmp_path, rc("api-v2", ns, "v2"))
    # Killed once api-v1 is at 2 (printed before the next step, which may or may not
    # have been written yet).
    first = run_until(start_cli(kl, "rolling-update", "api-v1", "-f", new, *FLAGS),
                      "Scaling api-v2 up to 2")
    assert first[:4] == ["Created api-v2", first[1], "Scaling api-v2 up to 1",
                         "Scaling api-v1 down to 2"]
    old = api.get("replicationcontrollers", "api-v1", ns)
    ann_new = api.get("replicationcontrollers", "api-v2", ns).metadata.annotations
    assert ann_new["kubectl.kubernetes.io/desired-replicas"] == "3"
    assert ann_new["kubectl.kubernetes.io/update-source-id"] == f"api-v1:{old.metadata.uid}"
    assert old.metadata.annotations["kubectl.kubernetes.io/original-replicas"] == "3"
    new_size = api.get("replicationcontrollers", "api-v2", ns).spec.replicas
    assert new_size in (1, 2)
    out = kl.ok("rolling-update", "api-v1", "-f", new, *FLAGS).splitlines()
    assert out[0] == "Continuing update with existing controller api-v2."
    assert out[1] == (f"Scaling up api-v2 from {new_size} to 3, scaling down api-v1 from 2 to "
                      "0 (keep 3 pods available, don't exceed 4 pods)")
    assert out[-2:] == ["Update succeeded. Deleting api-v1",
                        'replicationcontroller/api-v1 rolling updated to "api-v2"']
    assert gone(api, "replicationcontrollers", "api-v1", ns)
    wait_for(lambda: rc_ready(api, ns, "api-v2", 3), 30)


def test_rolling_update_rollback_of_an_interrupted_update(api: Client, ns: str, kl: Kl,
                                                          tmp_path: Path) -> None:
    create_rc(api, rc("db-v1", ns, "v1"))
    new = rc_file(tmp_path, rc("db-v2", ns, "v2"))
    run_until(start_cli(kl, "rolling-update", "db-v1", "-f", new, *FLAGS),
              "Scaling db-v2 up to 2")
    new_size = api.get("replicationcontrollers", "db-v2", ns).spec.replicas
    out = kl.ok("rolling-update", "db-v1", "--rollback", *FLAGS).splitlines()
    assert out[:2] == ['Setting "db-v1" replicas to 3',
                       "Continuing update with existing controller db-v1."]
    assert out[2] == (f"Scaling up db-v1 from 2 to 3, scaling down db-v2 from {new_size} to 0 "
                      "(keep 3 pods available, don't exceed 4 pods)")
    assert out[-2:] == ["Update succeeded. Deleting db-v2",
                        "replicationcontroller/db-v1 rolled back"]
    assert gone(api, "replicationcontrollers", "db-v2", ns)
    wait_for(lambda: rc_ready(api, ns, "db-v1", 3), 30)
    annotations = api.get("replicationcontrollers", "db-v1", ns).metadata.annotations
    assert not [k for k in annotations if k.startswith("kubectl.kubernetes.io/")]
    wait_for(lambda: all(p.metadata.labels["version"] == "v1"
                         for p in api.list("pods", ns, label_selector="app=db")[0]), 30)
    assert kl.ok("scale", "rc/db-v1", "--replicas=1") == "replicationcontroller/db-v1 scaled\n"
