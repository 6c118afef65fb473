"""Pure parts of the StatefulSet and volume controllers, and VolumeBinding."""

from __future__ import annotations

from typing import Any

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.objects import convert
from master.controllers.statefulset import ordinal_of, template_hash
from master.controllers.volume import fits
from master.scheduler.framework import Code, Snapshot, schedule
from master.scheduler.plugins import default_profile


def pv(name: str, size: str, cls: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",),
       labels: dict[str, str] | None = None, node: str = "") -> Any:
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": list(modes),
                            "storageClassName": cls, "hostPath": {"path": "/x"}}
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return convert.from_dict({"metadata": {"name": name, "labels": labels or {}},
                              "spec": spec}, core_pb2.PersistentVolume)


def pvc(size: str, cls: str = "", modes: tuple[str, ...] = ("ReadWriteOnce",),
        selector: dict[str, str] | None = None, volume: str = "") -> Any:
    spec: dict[str, Any] = {"accessModes": list(modes), "storageClassName": cls,
                            "resources": {"requests": {"storage": size}}, "volumeName": volume}
    if selector:
        spec["selector"] = {"matchLabels": selector}
    return convert.from_dict({"metadata": {"name": "c", "namespace": "default"}, "spec": spec},
                             core_pb2.PersistentVolumeClaim)


def test_volume_fits_claim() -> None:
    assert fits(pv("a", "2Gi"), pvc("1Gi"))
    assert not fits(pv("a", "512Mi"), pvc("1Gi"))
    assert not fits(pv("a", "2Gi", cls="fast"), pvc("1Gi"))
    assert not fits(pv("a", "2Gi"), pvc("1Gi", modes=("ReadWriteMany",)))
    assert fits(pv("a", "2Gi", labels={"tier": "db"}), pvc("1Gi", selector={"tier": "db"}))
    assert not fits(pv("a", "2Gi"), pvc("1Gi", selector={"tier": "db"}))


def test_ordinals_and_revision_hash() -> None:
    p = pod_pb2.Pod()
    p.metadata.name = "web-12"
    assert ordinal_of(p, "web") == 12
    p.metadata.name = "web-x"
    assert ordinal_of(p, "web") is None
    p.metadata.name = "webby-1"
    assert ordinal_of(p, "web") is None
    a, b = apps_pb2.StatefulSet(), apps_pb2.StatefulSet()
    a.spec.template.metadata.labels["app"] = "x"
    b.spec.template.metadata.labels["app"] = "x"
    assert template_hash(a.spec.template) == template_hash(b.spec.template)
    b.spec.template.metadata.labels["v"] = "2"
    assert template_hash(a.spec.template) != template_hash(b.spec.template)


def _node(name: str) -> Any:
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return convert.from_dict({"metadata": {"name": name,
                                           "labels": {"kubernetes.io/hostname": name}},
                              "status": {"allocatable": alloc}}, core_pb2.Node)


def _pod_with_claim(claim: str) -> Any:
    return convert.from_dict({"metadata": {"name": "p", "namespace": "default"}, "spec": {
        "containers": [{"name": "c", "image": "i"}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}},
        pod_pb2.Pod)


def test_volume_binding_plugin() -> None:
    claims = {"bound": (pvc("1Gi", volume="v1"), pv("v1", "1Gi", node="n2")),
              "waiting": (pvc("1Gi", cls="local-path"), None),
              "immediate": (pvc("1Gi", cls="manual"), None)}
    snap = Snapshot.build([_node("n1"), _node("n2"), _node("n3")], [])
    snap.volume_lookup = lambda ns, name: claims.get(name)  # type: ignore[attr-defined]
    for _ in range(5):
        assert schedule(_pod_with_claim("bound"), snap, default_profile()).node == "n2"
    assert schedule(_pod_with_claim("waiting"), snap, default_profile()).node
    r = schedule(_pod_with_claim("immediate"), snap, default_profile())
    assert r.pre_filter_status is not None and r.pre_filter_status.code == Code.UNSCHEDULABLE
    assert r.message() == ("0/3 nodes are available: pod has unbound immediate "
                           "PersistentVolumeClaims.")
    r = schedule(_pod_with_claim("absent"), snap, default_profile())
    assert r.message() == '0/3 nodes are available: persistentvolumeclaim "absent" not found.'
