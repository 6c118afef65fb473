"""The scale subresource: `<resource>/scale` of Deployments, ReplicaSets,
ReplicationControllers and StatefulSets, as an autoscaling/v1 Scale.

    GET    deployments/web/scale  -> Scale{spec.replicas, status.replicas, status.selector}
    UPDATE deployments/web/scale  <- Scale{spec.replicas}  (only that field is written)

This is how the HPA (and anything else that only wants to resize) changes a
workload without knowing its kind: it reads a Scale, which carries the
workload's name, namespace, uid and resourceVersion plus its pod selector in
string form ("app=web,tier in (fe)"), and writes spec.replicas back. A Scale
with a resourceVersion is a compare-and-swap on the workload; without one the
write lands on whatever the latest version is.
"""

from __future__ import annotations

from typing import Any

import grpc

from kubelite.api import autoscaling_pb2, core_pb2
from kubelite.objects import selectors
from kubelite.objects.errors import Invalid, invalid, required
from kubelite.objects.kinds import Kind
from master.apiserver import errors

SCALABLE = ("deployments", "replicasets", "replicationcontrollers", "statefulsets")
_RETRIES = 16


def check_scalable(kind: Kind) -> None:
    if kind.resource not in SCALABLE:
        raise errors.ApiError(grpc.StatusCode.NOT_FOUND, "NotFound",
                              "the server could not find the requested resource: "
                              f"{kind.resource_group} have no scale subresource")


def selector_string(obj: Any) -> str:
    """The workload's pod selector as text; "" when it has none."""
    sel = obj.spec.selector
    if isinstance(obj, core_pb2.ReplicationController):
        return selectors.to_string(selectors.from_map(sel))
    if not obj.spec.HasField("selector"):
        return ""
    return selectors.to_string(selectors.from_message(sel))


def scale_of(obj: Any) -> autoscaling_pb2.Scale:
    out = autoscaling_pb2.Scale(apiVersion="autoscaling/v1", kind="Scale")
    md, omd = out.metadata, obj.metadata
    md.name, md.namespace, md.uid = omd.name, omd.namespace, omd.uid
    md.resourceVersion, md.creationTimestamp = omd.resourceVersion, omd.creationTimestamp
    out.spec.replicas = obj.spec.replicas if obj.spec.HasField("replicas") else 1
    out.status.replicas = obj.status.replicas
    out.status.selector = selector_string(obj)
    return out


def _validate(scale: Any) -> None:
    errs = []
    if not scale.metadata.name:
        errs.append(required("metadata.name", "name or generateName is required"))
    if scale.spec.replicas < 0:
        errs.append(invalid("spec.replicas", scale.spec.replicas,
                            "must be greater than or equal to 0"))
    if errs:
        raise errors.invalid(Invalid(errs, kind="Scale.autoscaling",
                                     name=scale.metadata.name).message())


async def get_scale(registry: Any, kind: Kind, namespace: str, name: str) -> Any:
    check_scalable(kind)
    return scale_of(await registry.get(kind, namespace, name))


async def update_scale(registry: Any, kind: Kind, scale: Any, *, dry_run: bool = False) -> Any:
    """Write scale.spec.replicas into the workload; the workload's new Scale."""
    check_scalable(kind)
    _validate(scale)
    md = scale.metadata
    wanted_rv = md.resourceVersion
    for _ in range(_RETRIES):
        obj = await registry.get(kind, md.namespace, md.name)
        if md.uid and md.uid != obj.metadata.uid:
            raise errors.conflict(kind.resource_group, md.name,
                                  f"Precondition failed: UID in precondition: {md.uid}, "
                                  f"UID in object meta: {obj.metadata.uid}")
        if wanted_rv and wanted_rv != obj.metadata.resourceVersion:
            raise errors.conflict(kind.resource_group, md.name)
        obj.spec.replicas = scale.spec.replicas
        try:
            return scale_of(await registry.update(obj, dry_run=dry_run))
        except errors.ApiError as e:
            if e.code != grpc.StatusCode.ABORTED or wanted_rv:
                raise
    raise errors.conflict(kind.resource_group, md.name, "too many concurrent writers")
