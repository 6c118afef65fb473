"""Pod volumes on the node: directories under <root>/pods/<uid>/volumes/.

- emptyDir: a directory shared by the pod's containers, removed with the pod
  (medium Memory is a directory too: no tmpfs mount of our own).
- hostPath: the node's path, with Kubernetes' type checks (DirectoryOrCreate,
  Directory, FileOrCreate, File, Socket, CharDevice, BlockDevice; "" checks
  nothing).
- configMap / secret: the object's keys (or the listed items) written as
  files with defaultMode/mode, read-only in the container. Written when the
  pod starts; later changes of the object are not propagated.
- persistentVolumeClaim with a hostPath PersistentVolume bound to it.

`prepare(pod)` returns {volume name: host path} or raises MountError, which
the pod worker reports as a FailedMount event while the pod waits in
ContainerCreating, as the kubelet does.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from kubelite.client import APIStatusError, AsyncClient


class MountError(Exception):
    pass


def pod_dir(root: Path, uid: str) -> Path:
    return root / "pods" / uid


def _check_host_path(path: str, type_: str, volume: str) -> None:
    p = Path(path)

    def fail(what: str) -> MountError:
        return MountError(f'MountVolume.SetUp failed for volume "{volume}" : '
                          f"hostPath type check failed: {path} is not {what}")

    if type_ == "DirectoryOrCreate":
        p.mkdir(mode=0o755, parents=True, exist_ok=True)
    elif type_ == "FileOrCreate":
        p.parent.mkdir(parents=True, exist_ok=True)
        p.touch(mode=0o644, exist_ok=True)
    elif type_ == "Directory" and not p.is_dir():
        raise fail("a directory")
    elif type_ == "File" and not p.is_file():
        raise fail("a file")
    elif type_ == "Socket" and not (p.exists() and stat.S_ISSOCK(p.stat().st_mode)):
        raise fail("a socket file")
    elif type_ == "CharDevice" and not (p.exists() and stat.S_ISCHR(p.stat().st_mode)):
        raise fail("a character device")
    elif type_ == "BlockDevice" and not (p.exists() and stat.S_ISBLK(p.stat().st_mode)):
        raise fail("a block device")


def _write_files(target: Path, data: dict[str, bytes], items: Any, default_mode: int,
                 volume: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    chosen: list[tuple[str, str, int]] = []
    if items:
        for it in items:
            if it.key not in data:
                raise MountError(f'MountVolume.SetUp failed for volume "{volume}" : '
                                 f'configmap references non-existent config key: {it.key}')
            mode = it.mode if it.HasField("mode") else default_mode
            chosen.append((it.key, it.path, mode))
    else:
        chosen = [(k, k, default_mode) for k in data]
    for key, rel, mode in chosen:
        f = tmp / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data[key])
        os.chmod(f, mode)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


async def prepare(pod: Any, root: Path, client: AsyncClient) -> dict[str, str]:
    """Create the pod's volumes; {volume name: path on the host}."""
    base = pod_dir(root, pod.metadata.uid) / "volumes"
    ns = pod.metadata.namespace
    paths: dict[str, str] = {}
    for vol in pod.spec.volumes:
        name = vol.name
        if vol.HasField("hostPath"):
            _check_host_path(vol.hostPath.path, vol.hostPath.type, name)
            paths[name] = vol.hostPath.path
        elif vol.HasField("configMap"):
            src = vol.configMap
            target = base / "configmap" / name
            try:
                cm = await client.get("configmaps", src.name, ns)
                data = {k: v.encode() for k, v in cm.data.items()}
                data.update(dict(cm.binaryData))
            except APIStatusError as e:
                if not (e.not_found and src.HasField("optional") and src.optional):
                    raise MountError(f'MountVolume.SetUp failed for volume "{name}" : '
                                     f'configmap "{src.name}" not found') from None
                data = {}
            mode = src.defaultMode if src.HasField("defaultMode") else 0o644
            _write_files(target, data, src.items, mode, name)
            paths[name] = str(target)
        elif vol.HasField("secret"):
            src = vol.secret
            target = base / "secret" / name
            try:
                secret = await client.get("secrets", src.secretName, ns)
                data = dict(secret.data)
            except APIStatusError as e:
                if not (e.not_found and src.HasField("optional") and src.optional):
                    raise MountError(f'MountVolume.SetUp failed for volume "{name}" : '
                                     f'secret "{src.secretName}" not found') from None
                data = {}
            mode = src.defaultMode if src.HasField("defaultMode") else 0o644
            _write_files(target, data, src.items, mode, name)
            paths[name] = str(target)
        elif vol.HasField("persistentVolumeClaim"):
            paths[name] = await _claim_path(client, ns, vol.persistentVolumeClaim.claimName,
                                            name)
        else:  # emptyDir, and any source we do not implement, is a plain directory
            target = base / "empty-dir" / name
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o777)
            paths[name] = str(target)
    return paths


async def _claim_path(client: AsyncClient, ns: str, claim: str, volume: str) -> str:
    try:
        pvc = await client.get("persistentvolumeclaims", claim, ns)
    except APIStatusError:
        raise MountError(f'persistentvolumeclaim "{claim}" not found') from None
    if not pvc.spec.volumeName:
        raise MountError(f'persistentvolumeclaim "{claim}" is not bound')
    pv = await client.get("persistentvolumes", pvc.spec.volumeName)
    if not pv.spec.HasField("hostPath"):
        raise MountError(f'volume "{volume}": only hostPath PersistentVolumes are supported')
    _check_host_path(pv.spec.hostPath.path, "DirectoryOrCreate", volume)
    return str(pv.spec.hostPath.path)


def binds(container: Any, paths: dict[str, str]) -> list[str]:
    """Docker bind specs for a container's volumeMounts."""
    out = []
    for m in container.volumeMounts:
        host = paths.get(m.name)
        if host is None:
            continue
        if m.subPath:
            host = os.path.join(host, m.subPath)
            Path(host).mkdir(parents=True, exist_ok=True)
        out.append(f"{host}:{m.mountPath}:{'ro' if m.readOnly else 'rw'}")
    return out


def read_only_sources(pod: Any) -> set[str]:
    return {v.name for v in pod.spec.volumes if v.HasField("configMap") or v.HasField("secret")}


def cleanup(root: Path, uid: str) -> None:
    shutil.rmtree(pod_dir(root, uid), ignore_errors=True)
