"""Reclaiming a local-path volume: its directory is removed on its node by a
helper pod before the volume object goes; a failing helper leaves the volume
Failed with the reason."""

from __future__ import annotations

from typing import Any

import grpc

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError
from master.controllers.volume import HELPER_VOLUME, PROVISIONER, PersistentVolumeController


class FakeClient:
    def __init__(self) -> None:
        self.created: list[Any] = []
        self.deleted: list[tuple[str, str, str]] = []
        self.statuses: list[Any] = []

    async def create(self, obj: Any) -> Any:
        self.created.append(obj)
        return obj

    async def delete(self, resource: str, name: str, namespace: str = "", **_kw: Any) -> None:
        self.deleted.append((resource, namespace, name))

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        raise APIStatusError(grpc.StatusCode.NOT_FOUND, "NotFound", f"{name} not found")

    async def update_status(self, obj: Any) -> Any:
        self.statuses.append(obj)
        return obj


def _volume() -> Any:
    pv = core_pb2.PersistentVolume()
    pv.metadata.name = "pvc-1234"
    pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] = PROVISIONER
    pv.spec.hostPath.path = "/var/lib/kubelite/local-path/default_data-web-0"
    term = pv.spec.nodeAffinity.required.nodeSelectorTerms.add()
    term.matchExpressions.add(key="kubernetes.io/hostname", operator="In", values=["node-2"])
    pv.spec.persistentVolumeReclaimPolicy = "Delete"
    pv.spec.claimRef.namespace, pv.spec.claimRef.name = "default", "data-web-0"
    pv.status.phase = "Released"
    return pv


def _helper(phase: str, message: str = "") -> Any:
    pod = pod_pb2.Pod()
    pod.metadata.name, pod.metadata.namespace = "helper-pod-delete-pvc-1234", "kube-system"
    pod.metadata.uid = "u1"
    pod.metadata.annotations[HELPER_VOLUME] = "pvc-1234"
    pod.status.phase = phase
    if message:
        pod.status.containerStatuses.add(name="helper").state.terminated.message = message
    return pod


async def test_a_helper_pod_removes_the_directory_on_the_volume_node() -> None:
    api = FakeClient()
    ctl = PersistentVolumeController(api)  # type: ignore[arg-type]
    pv = _volume()
    assert not await ctl._remove_directory(pv)
    (pod,) = api.created
    assert pod.metadata.namespace == "kube-system" and pod.spec.nodeName == "node-2"
    assert pod.spec.restartPolicy == "Never" and pod.spec.tolerations[0].operator == "Exists"
    assert list(pod.spec.containers[0].command) == ["rm", "-rf", "/data/default_data-web-0"]
    assert pod.spec.volumes[0].hostPath.path == "/var/lib/kubelite/local-path"
    # its updates wake the volume up
    ctl._pod_changed(pod)
    assert len(ctl.queue) == 1
    # still running: wait; succeeded: the helper goes and the volume may go
    ctl.pods._cache["kube-system/helper-pod-delete-pvc-1234"] = _helper("Running")
    assert not await ctl._remove_directory(pv)
    ctl.pods._cache["kube-system/helper-pod-delete-pvc-1234"] = _helper("Succeeded")
    assert await ctl._remove_directory(pv)
    assert not api.deleted  # the helper goes after the volume, never before
    await ctl._sync_volume(pv)  # Released + Delete: the volume, then its helper
    assert api.deleted == [("persistentvolumes", "", "pvc-1234"),
                           ("pods", "kube-system", "helper-pod-delete-pvc-1234")]
    # a reconcile still seeing the volume makes no second helper
    del ctl.pods._cache["kube-system/helper-pod-delete-pvc-1234"]
    assert await ctl._remove_directory(pv) and len(api.created) == 1


async def test_a_failing_helper_leaves_the_volume_failed_with_the_reason() -> None:
    api = FakeClient()
    ctl = PersistentVolumeController(api)  # type: ignore[arg-type]
    pv = _volume()
    ctl.pods._cache["kube-system/helper-pod-delete-pvc-1234"] = _helper(
        "Failed", "rm: can't remove '/data/default_data-web-0': Read-only file system")
    assert not await ctl._remove_directory(pv)
    (status,) = api.statuses
    assert status.status.phase == "Failed" and status.status.reason == "VolumeFailedDelete"
    assert "Read-only file system" in status.status.message
    assert "kube-system/helper-pod-delete-pvc-1234" in status.status.message
    assert not api.deleted  # kept for an administrator
