"""What the scheduler knows of one node: the Node and the pods on it, summed.

Resources are integers: cpu in millicores, everything else (memory,
ephemeral-storage, pods, extended resources) in units.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from kubelite.objects import quantity

CPU, MEMORY, PODS = "cpu", "memory", "pods"
# Kubernetes' scoring pretends a container without requests asks for this much,
# so best-effort pods still spread (pkg/scheduler/util/pod_resources.go).
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


def amount(name: str, q: Any) -> int:
    text = q.string if hasattr(q, "string") else str(q)
    return quantity.milli(text) if name == CPU else quantity.value(text)


def resource_list(m: Any) -> dict[str, int]:
    return {name: amount(name, q) for name, q in m.items()}


def pod_requests(pod: Any, *, non_zero: bool = False) -> dict[str, int]:
    """Sum of the containers' requests, at least each init container's, plus overhead.

    non_zero: a container that requests no cpu/memory counts the defaults
    above (used for scoring only, never for fit).
    """
    total: Counter[str] = Counter()
    for c in pod.spec.containers:
        req = resource_list(c.resources.requests)
        if non_zero:
            req.setdefault(CPU, DEFAULT_MILLI_CPU_REQUEST)
            req.setdefault(MEMORY, DEFAULT_MEMORY_REQUEST)
        total.update(req)
    out = dict(total)
    for c in pod.spec.initContainers:
        req = resource_list(c.resources.requests)
        for name, v in req.items():
            if v > out.get(name, 0):
                out[name] = v
    for name, v in resource_list(pod.spec.overhead).items():
        out[name] = out.get(name, 0) + v
    return out


def host_ports(pod: Any) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port that asks for one."""
    out = []
    for c in (*pod.spec.initContainers, *pod.spec.containers):
        for p in c.ports:
            if p.hostPort > 0:
                out.append((p.hostIP or "0.0.0.0", p.protocol or "TCP", p.hostPort))
    return out


def controller_uid(pod: Any) -> str:
    for ref in pod.metadata.ownerReferences:
        if ref.HasField("controller") and ref.controller:
            return str(ref.uid)
    return ""


def has_pod_affinity(pod: Any) -> bool:
    if not pod.spec.HasField("affinity"):
        return False
    aff = pod.spec.affinity
    return aff.HasField("podAffinity") or aff.HasField("podAntiAffinity")


@dataclass
class PodInfo:
    pod: Any
    requests: dict[str, int]
    non_zero: dict[str, int]
    ports: list[tuple[str, str, int]]
    owner: str  # uid of the controller ownerReference, "" when none
    affinity: bool  # has pod (anti-)affinity terms

    @classmethod
    def of(cls, pod: Any) -> PodInfo:
        return cls(pod, pod_requests(pod), pod_requests(pod, non_zero=True), host_ports(pod),
                   controller_uid(pod), has_pod_affinity(pod))

    @property
    def key(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"


class NodeInfo:
    def __init__(self, node: Any) -> None:
        self.pods: dict[str, PodInfo] = {}
        self.requested: Counter[str] = Counter()
        self.non_zero_requested: Counter[str] = Counter()
        self.used_ports: Counter[tuple[str, str, int]] = Counter()
        self.owners: Counter[str] = Counter()  # controller uid -> live pods here
        self.with_affinity = 0
        self.set_node(node)

    def set_node(self, node: Any) -> None:
        self.node = node
        self.name: str = node.metadata.name
        self.labels: dict[str, str] = dict(node.metadata.labels)
        taints = list(node.spec.taints)
        self.hard_taints = [t for t in taints if t.effect in ("NoSchedule", "NoExecute")]
        self.soft_taints = [t for t in taints if t.effect == "PreferNoSchedule"]
        status = node.status
        self.allocatable = resource_list(status.allocatable or status.capacity)
        images: dict[str, int] = {}
        for img in status.images:
            for n in img.names:
                images[normalize_image(n)] = img.sizeBytes
        self.images = images

    def add_pod(self, pod: Any) -> None:
        info = PodInfo.of(pod)
        if info.key in self.pods:
            self.remove_pod(pod)
        self.pods[info.key] = info
        self.requested.update(info.requests)
        self.non_zero_requested.update(info.non_zero)
        self.used_ports.update(info.ports)
        if info.owner and not pod.metadata.deletionTimestamp:
            self.owners[info.owner] += 1
        self.with_affinity += info.affinity

    def remove_pod(self, pod: Any) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        info = self.pods.pop(key, None)
        if info is None:
            return
        self.requested.subtract(info.requests)
        self.non_zero_requested.subtract(info.non_zero)
        self.used_ports.subtract(info.ports)
        self.used_ports = +self.used_ports
        if info.owner and not info.pod.metadata.deletionTimestamp:
            self.owners[info.owner] -= 1
        self.with_affinity -= info.affinity

    def port_in_use(self, host_ip: str, protocol: str, port: int) -> bool:
        """A wildcard address conflicts with every address, as in Kubernetes."""
        for (ip, proto, p), n in self.used_ports.items():
            if n > 0 and p == port and proto == protocol and (
                    ip == host_ip or ip == "0.0.0.0" or host_ip == "0.0.0.0"):
                return True
        return False


def normalize_image(name: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest`, so names compare equal."""
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + name
    return name
