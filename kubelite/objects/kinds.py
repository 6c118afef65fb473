"""The registry of kinds: names, scope, message type and accepted versions.

Server and CLI share this table, so `kubelite get po`, a manifest's
`apiVersion: apps/v1` and the API server's etcd key all resolve the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from kubelite.api import (
    apps_pb2,
    autoscaling_pb2,
    batch_pb2,
    coordination_pb2,
    core_pb2,
    metrics_pb2,
    pod_pb2,
)

_COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    resource: str  # plural, lower case: the etcd key segment
    short_names: tuple[str, ...]
    namespaced: bool
    message: type[Message]
    # Other apiVersions a manifest may use; converted to this one on input.
    also_accepts: tuple[str, ...] = ()
    # Extra field selector paths beyond metadata.name/namespace.
    selectable: frozenset[str] = field(default_factory=frozenset)
    has_status: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def qualified(self) -> str:
        """Kubernetes' "Kind.group" used in messages: `Deployment.apps "web" is invalid`."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def resource_group(self) -> str:
        """`deployments.apps` as used in `Error from server (NotFound): deployments.apps "x"`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def selectable_fields(self) -> set[str]:
        return set(_COMMON_FIELDS | self.selectable)

    @property
    def type_url(self) -> str:
        return "type.googleapis.com/" + self.message.DESCRIPTOR.full_name


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "", "v1", "namespaces", ("ns",), False, core_pb2.Namespace,
         selectable=frozenset({"status.phase"})),
    Kind("Node", "", "v1", "nodes", ("no",), False, core_pb2.Node,
         selectable=frozenset({"spec.unschedulable"})),
    Kind("Pod", "", "v1", "pods", ("po",), True, pod_pb2.Pod,
         selectable=frozenset({"spec.nodeName", "status.phase", "spec.restartPolicy",
                               "spec.schedulerName", "spec.serviceAccountName",
                               "status.podIP", "status.nominatedNodeName"})),
    Kind("Service", "", "v1", "services", ("svc",), True, core_pb2.Service),
    Kind("Endpoints", "", "v1", "endpoints", ("ep",), True, core_pb2.Endpoints,
         has_status=False),
    Kind("ConfigMap", "", "v1", "configmaps", ("cm",), True, core_pb2.ConfigMap,
         has_status=False),
    Kind("Secret", "", "v1", "secrets", (), True, core_pb2.Secret, has_status=False,
         selectable=frozenset({"type"})),
    Kind("Event", "", "v1", "events", ("ev",), True, core_pb2.Event, has_status=False,
         selectable=frozenset({"involvedObject.kind", "involvedObject.name",
                               "involvedObject.namespace", "involvedObject.uid",
                               "reason", "type", "source.component"})),
    Kind("PersistentVolume", "", "v1", "persistentvolumes", ("pv",), False,
         core_pb2.PersistentVolume),
    Kind("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", ("pvc",), True,
         core_pb2.PersistentVolumeClaim),
    Kind("ReplicationController", "", "v1", "replicationcontrollers", ("rc",), True,
         core_pb2.ReplicationController),
    Kind("Deployment", "apps", "v1", "deployments", ("deploy",), True, apps_pb2.Deployment),
    Kind("ReplicaSet", "apps", "v1", "replicasets", ("rs",), True, apps_pb2.ReplicaSet),
    Kind("StatefulSet", "apps", "v1", "statefulsets", ("sts",), True, apps_pb2.StatefulSet),
    Kind("DaemonSet", "apps", "v1", "daemonsets", ("ds",), True, apps_pb2.DaemonSet),
    Kind("ControllerRevision", "apps", "v1", "controllerrevisions", (), True,
         apps_pb2.ControllerRevision, has_status=False),
    Kind("Job", "batch", "v1", "jobs", (), True, batch_pb2.Job,
         selectable=frozenset({"status.successful"})),
    Kind("CronJob", "batch", "v1", "cronjobs", ("cj",), True, batch_pb2.CronJob,
         also_accepts=("batch/v1beta1",)),
    Kind("HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", ("hpa",),
         True, autoscaling_pb2.HorizontalPodAutoscaler,
         also_accepts=("autoscaling/v1", "autoscaling/v2beta2")),
    Kind("Lease", "coordination.k8s.io", "v1", "leases", (), True, coordination_pb2.Lease,
         has_status=False),
    # Written by node agents, read by the HPA and `kubelite top` (Kubernetes serves
    # these as metrics.k8s.io "nodes" and "pods"; the names here must not clash).
    Kind("NodeMetrics", "metrics.k8s.io", "v1beta1", "nodemetrics", (), False,
         metrics_pb2.NodeMetrics, has_status=False),
    Kind("PodMetrics", "metrics.k8s.io", "v1beta1", "podmetrics", (), True,
         metrics_pb2.PodMetrics, has_status=False),
)

_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _n in (_k.resource, _k.singular, *_k.short_names, _k.resource_group,
               f"{_k.singular}.{_k.group}" if _k.group else _k.singular):
        _BY_NAME.setdefault(_n, _k)
_BY_MESSAGE = {k.message.DESCRIPTOR.full_name: k for k in KINDS}
_BY_KIND = {k.kind: k for k in KINDS}


class UnknownKind(LookupError):
    pass


def by_resource(name: str) -> Kind:
    """Resolve what a user types: `pods`, `pod`, `po`, `deployments.apps`, `Deployment`."""
    k = _BY_NAME.get(name.lower())
    if k is None:
        raise UnknownKind(f'the server doesn\'t have a resource type "{name}"')
    return k


def by_kind(api_version: str, kind: str) -> Kind:
    k = _BY_KIND.get(kind)
    if k is None or (api_version != k.api_version and api_version not in k.also_accepts):
        raise UnknownKind(
            f'no matches for kind "{kind}" in version "{api_version}"'
        )
    return k


def by_message(full_name: str) -> Kind:
    k = _BY_MESSAGE.get(full_name)
    if k is None:
        raise UnknownKind(f'no kind is registered for message "{full_name}"')
    return k


def of(obj: Any) -> Kind:
    return by_message(obj.DESCRIPTOR.full_name)
