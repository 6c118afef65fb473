"""StatefulSets and persistent volumes on a real cluster: etcd, a master
(scheduler, controllers, local-path volumes under a temporary root) and a
node agent running the pods in Docker.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.api import apps_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import Master, run_etcd, run_master
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Master, NodeAgent, Path]]:
    ensure_docker()
    root = Path(tempfile.mkdtemp(prefix="kubelite-local-path-"))
    try:
        with run_etcd() as etcd, run_master(etcd.endpoint, "--local-path-root", str(root),
                                            "--leader-elect-retry-period", "0.3") as m, \
                run_node(m.address, "--metrics-interval", "0") as node:
            with Client(server=m.address) as c:
                wait_for(lambda: c.get("nodes", node.name), 30, "node registration")
            yield m, node, root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def api(cluster: tuple[Master, NodeAgent, Path]) -> Iterator[Client]:
    with Client(server=cluster[0].address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "s-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


def statefulset(name: str, ns: str, replicas: int, *, claims: bool = False,
                **spec: Any) -> Any:
    container: dict[str, Any] = {
        "name": "c", "image": IMAGE, "command": ["sleep", "3600"],
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}
    body: dict[str, Any] = {
        "replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}},
        **spec}
    if claims:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        body["volumeClaimTemplates"] = [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "1Gi"}}}}]
    return convert.from_dict({"apiVersion": "apps/v1", "kind": "StatefulSet",
                              "metadata": {"name": name, "namespace": ns}, "spec": body},
                             apps_pb2.StatefulSet)


def ready(p: Any) -> bool:
    return p.status.phase == "Running" and any(
        c.type == "Ready" and c.status == "True" for c in p.status.conditions)


def pod_or_none(api: Client, ns: str, name: str) -> Any:
    try:
        return api.get("pods", name, ns)
    except APIStatusError as e:
        if e.not_found:
            return None
        raise


def docker_exec(p: Any, *cmd: str) -> subprocess.CompletedProcess[str]:
    cid = p.status.containerStatuses[0].containerID.removeprefix("docker://")
    return subprocess.run(["docker", "exec", cid, *cmd], capture_output=True, text=True)


def test_ordered_creation_stable_names_and_scale_down(api: Client, ns: str) -> None:
    api.create(statefulset("web", ns, 3))
    created: dict[str, float] = {}
    ready_at: dict[str, float] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(ready_at) < 3:
        for i in range(3):
            p = pod_or_none(api, ns, f"web-{i}")
            if p is not None:
                created.setdefault(p.metadata.name, time.monotonic())
                if ready(p):
                    ready_at.setdefault(p.metadata.name, time.monotonic())
        time.sleep(0.05)
    assert len(ready_at) == 3, (created, ready_at)
    # OrderedReady: web-n appears only once web-(n-1) is Running and Ready.
    assert created["web-1"] >= ready_at["web-0"] and created["web-2"] >= ready_at["web-1"]
    p = api.get("pods", "web-0", ns)
    assert p.spec.hostname == "web-0" and p.spec.subdomain == "web"
    assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert docker_exec(p, "hostname").stdout.strip() == "web-0"
    st = wait_for(lambda: (s := api.get("statefulsets", "web", ns).status).readyReplicas == 3
                  and s, 30)
    assert st.replicas == 3 and st.currentRevision == st.updateRevision
    # Scale down: the highest ordinal goes first.
    api.patch("statefulsets", "web", {"spec": {"replicas": 1}}, ns)
    gone: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(gone) < 2:
        for name in ("web-1", "web-2"):
            if name not in gone and pod_or_none(api, ns, name) is None:
                gone[name] = time.monotonic()
        time.sleep(0.05)
    assert set(gone) == {"web-1", "web-2"} and gone["web-2"] <= gone["web-1"]
    assert ready(api.get("pods", "web-0", ns))


def test_claim_per_replica_survives_pod_deletion(api: Client, ns: str,
                                                 cluster: tuple[Master, NodeAgent, Path]
                                                 ) -> None:
    api.create(statefulset("db", ns, 2, claims=True))
    wait_for(lambda: (p := pod_or_none(api, ns, "db-1")) is not None and ready(p), 90,
             "db-1 ready")
    pvc = api.get("persistentvolumeclaims", "data-db-1", ns)
    assert pvc.status.phase == "Bound" and pvc.spec.volumeName
    pv = api.get("persistentvolumes", pvc.spec.volumeName)
    assert pv.spec.hostPath.path.startswith(str(cluster[2]))
    assert pv.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values == [
        cluster[1].name]
    old = api.get("pods", "db-1", ns)
    assert docker_exec(old, "sh", "-c", "echo hello-from-db-1 > /data/file").returncode == 0
    api.delete("pods", "db-1", ns)
    new = wait_for(lambda: (p := pod_or_none(api, ns, "db-1")) is not None
                   and p.metadata.uid != old.metadata.uid and ready(p) and p, 60,
                   "db-1 recreated")
    assert docker_exec(new, "cat", "/data/file").stdout == "hello-from-db-1\n"
    assert api.get("persistentvolumeclaims", "data-db-0", ns).spec.volumeName != \
        pvc.spec.volumeName  # each ordinal its own volume


def test_rolling_update_in_reverse_with_partition(api: Client, ns: str) -> None:
    api.create(statefulset("roll", ns, 3))
    wait_for(lambda: api.get("statefulsets", "roll", ns).status.readyReplicas == 3, 90)
    first = api.get("statefulsets", "roll", ns).status.updateRevision
    api.patch("statefulsets", "roll", {"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
        "template": {"metadata": {"labels": {"app": "roll", "v": "2"}}}}}, ns)

    def revision(i: int) -> str:
        p = pod_or_none(api, ns, f"roll-{i}")
        return p.metadata.labels.get("controller-revision-hash", "") if p is not None else ""

    wait_for(lambda: revision(1) not in ("", first) and revision(2) not in ("", first)
             and ready(api.get("pods", "roll-1", ns)), 90, "ordinals 1 and 2 updated")
    assert revision(0) == first  # below the partition: untouched
    st = api.get("statefulsets", "roll", ns).status
    assert st.updateRevision != first and st.updatedReplicas == 2


def test_local_path_volume_deleted_with_its_claim_static_volume_released(
        api: Client, ns: str, cluster: tuple[Master, NodeAgent, Path]) -> None:
    pv = convert.from_dict({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"static-{ns}"},
        "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                 "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                 "hostPath": {"path": f"/tmp/kubelite-static-{ns}"}}},
        core_pb2.PersistentVolume)
    api.create(pv)
    try:
        claim = convert.from_dict({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "manual", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                     "resources": {"requests": {"storage": "1Gi"}}}},
            core_pb2.PersistentVolumeClaim)
        api.create(claim)
        wait_for(lambda: api.get("persistentvolumeclaims", "manual", ns).status.phase
                 == "Bound", 30, "static binding")
        assert api.get("persistentvolumes", f"static-{ns}").status.phase == "Bound"
        api.delete("persistentvolumeclaims", "manual", ns)
        wait_for(lambda: api.get("persistentvolumes", f"static-{ns}").status.phase
                 == "Released", 30, "Retain: Released")
    finally:
        api.delete("persistentvolumes", f"static-{ns}")
        shutil.rmtree(f"/tmp/kubelite-static-{ns}", ignore_errors=True)
    # local-path (Delete): the volume goes with its claim.
    api.create(statefulset("tmp", ns, 1, claims=True))
    wait_for(lambda: (p := pod_or_none(api, ns, "tmp-0")) is not None and ready(p), 90)
    volume = api.get("persistentvolumeclaims", "data-tmp-0", ns).spec.volumeName
    api.delete("statefulsets", "tmp", ns)
    wait_for(lambda: pod_or_none(api, ns, "tmp-0") is None, 30)
    api.delete("persistentvolumeclaims", "data-tmp-0", ns)

    def volume_gone() -> bool:
        try:
            api.get("persistentvolumes", volume)
            return False
        except APIStatusError as e:
            return e.not_found

    directory = cluster[2] / f"{ns}_data-tmp-0"
    assert directory.is_dir()  # the pod's data, on the node
    wait_for(volume_gone, 60, "the provisioned volume deleted")
    assert not directory.exists(), "a helper pod removes the directory before the volume goes"
    wait_for(lambda: not [h for h in api.list("pods", "kube-system",
                                              label_selector="app=local-path-helper")[0]
                          if volume in h.metadata.name], 30, "the helper pod removed")
