"""Endpoints: for each Service with a selector, the addresses of its pods.

What Kubernetes' endpoints controller does, in two parts:

- `endpoint_subsets(service, pods)` is the pure computation. A pod counts
  when it has an IP, has not finished (Succeeded/Failed) and is not being
  deleted (unless the Service sets publishNotReadyAddresses, which also puts
  not-ready pods among the ready ones). Each pod gives an address (ip,
  nodeName, targetRef, and hostname when spec.hostname is set and
  spec.subdomain names this Service: StatefulSet pods' DNS names) under
  `addresses` if Ready, else `notReadyAddresses`. A targetPort that is a
  name is looked up in each pod's container ports (same name and protocol),
  so pods of two versions may serve one Service port on different numbers;
  a pod without such a port is left out of that port. Addresses are then
  grouped into subsets by the exact set of ports they serve, sorted so the
  same pods always give the same object.
- `EndpointsController` keeps `Endpoints/<service>` equal to it, woken by
  Service changes and by pods whose labels match (before or after a change).
  A Service without a selector is left alone, so a hand-written Endpoints
  object of the same name (a database outside the cluster) is what the
  proxies and DNS use. When a Service is deleted, its Endpoints go too, and
  at start Endpoints whose Service is gone are removed (as Kubernetes' check
  for leftovers does).

Worked example: Service port "http" (targetPort "web", TCP) and port 9090
(targetPort 9090). Pod a (10.244.1.2, ready) names container port 8080
"web"; pod b (10.244.2.3, not ready) names 8081 "web"; pod c (ready) has no
port named "web". Per pod and port: a -> {http:8080, 9090}; b -> {http:8081,
9090}; c -> {9090}. Grouped by identical port sets: {http:8080, 9090}:
[a]; {http:8081, 9090}: notReady [b]; {9090}: [c]: three subsets.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert
from master.controllers.base import Controller, split_key
from master.informers import key_of

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"

Port = tuple[str, int, str, str]  # name, port, protocol, appProtocol


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def selects(svc: Any, pod: Any) -> bool:
    sel = svc.spec.selector
    return bool(sel) and pod.metadata.namespace == svc.metadata.namespace and \
        all(pod.metadata.labels.get(k) == v for k, v in sel.items())


def should_include(pod: Any, publish_not_ready: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    if not pod.status.podIP:
        return False
    return publish_not_ready or not pod.metadata.deletionTimestamp


def find_port(pod: Any, sp: Any) -> int | None:
    """The pod's port number for a Service port (Kubernetes' FindPort)."""
    tp = sp.targetPort
    if tp.type != 1:  # a number
        return tp.intVal or sp.port
    for c in pod.spec.containers:
        for cp in c.ports:
            if cp.name == tp.strVal and (cp.protocol or "TCP") == sp.protocol:
                return int(cp.containerPort)
    return None


def _address(svc: Any, pod: Any) -> dict[str, Any]:
    md = pod.metadata
    addr: dict[str, Any] = {"ip": pod.status.podIP}
    if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
        addr["hostname"] = pod.spec.hostname
    if pod.spec.nodeName:
        addr["nodeName"] = pod.spec.nodeName
    addr["targetRef"] = {"kind": "Pod", "namespace": md.namespace, "name": md.name,
                         "uid": md.uid}
    return addr


def _port_dict(p: Port) -> dict[str, Any]:
    name, number, protocol, app = p
    out: dict[str, Any] = {"name": name, "port": number, "protocol": protocol}
    if app:
        out["appProtocol"] = app
    if not name:
        del out["name"]
    return out


def endpoint_subsets(svc: Any, pods: list[Any]) -> list[dict[str, Any]]:
    """The Endpoints subsets (manifest form) for a Service and candidate pods."""
    publish = svc.spec.publishNotReadyAddresses
    headless = svc.spec.clusterIP == "None"
    # ports served -> {ip+uid: (address, ready)}
    groups: dict[tuple[Port, ...], dict[tuple[str, str], tuple[dict[str, Any], bool]]] = \
        defaultdict(dict)
    for pod in pods:
        if not selects(svc, pod) or not should_include(pod, publish):
            continue
        addr = _address(svc, pod)
        ready = publish or pod_ready(pod)
        if not svc.spec.ports:
            if headless:  # a headless Service may list addresses alone
                groups[()][(addr["ip"], pod.metadata.uid)] = (addr, ready)
            continue
        ports: list[Port] = []
        for sp in svc.spec.ports:
            number = find_port(pod, sp)
            if number is None:
                log.debug("service %s/%s: pod %s has no port %s", svc.metadata.namespace,
                          svc.metadata.name, pod.metadata.name, sp.targetPort.strVal)
                continue
            ports.append((sp.name, number, sp.protocol or "TCP",
                          sp.appProtocol if sp.HasField("appProtocol") else ""))
        if ports:
            groups[tuple(sorted(set(ports)))][(addr["ip"], pod.metadata.uid)] = (addr, ready)
    subsets = []
    for ports_key in sorted(groups):
        members = [groups[ports_key][k] for k in sorted(groups[ports_key])]
        subset: dict[str, Any] = {}
        ready = [a for a, r in members if r]
        not_ready = [a for a, r in members if not r]
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        if ports_key:
            subset["ports"] = [_port_dict(p) for p in ports_key]
        subsets.append(subset)
    return subsets


def endpoints_labels(svc: Any) -> dict[str, str]:
    labels = dict(svc.metadata.labels)
    if svc.spec.clusterIP == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


class EndpointsController(Controller):
    name = "endpoints"
    workers = 2

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.services = self.informer("services", on_change=self.enqueue,
                                      on_delete=self._service_deleted)
        self.pods = self.informer("pods", on_change=self._pod_changed,
                                  on_update=self._pod_updated)
        self.endpoints = self.informer("endpoints", on_change=lambda _e: None,
                                       on_delete=self.enqueue)
        self._gone: set[str] = set()  # Services deleted: their Endpoints go

    def _service_deleted(self, svc: Any) -> None:
        self._gone.add(key_of(svc))
        self.enqueue(svc)

    def _pod_changed(self, pod: Any) -> None:
        for svc in self.services.items():
            if selects(svc, pod):
                self.enqueue(svc)

    def _pod_updated(self, old: Any, new: Any) -> None:
        for svc in self.services.items():
            if selects(svc, old) or selects(svc, new):
                self.enqueue(svc)

    async def run(self) -> None:
        await self.services_and_leftovers()
        await super().run()

    async def services_and_leftovers(self) -> None:
        """Endpoints left without a Service (deleted while no controller ran) go at start."""
        try:
            items, _ = await self.client.list("endpoints")
            services, _ = await self.client.list("services")
        except APIStatusError as e:
            log.warning("endpoints: leftover check failed: %s", e.message)
            return
        have = {key_of(s) for s in services}
        for ep in items:
            key = key_of(ep)
            if key not in have and LEADER_ANNOTATION not in ep.metadata.annotations:
                self._gone.add(key)
                self.queue.add(key)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            if key in self._gone:
                try:
                    await self.client.delete("endpoints", name, ns)
                except APIStatusError as e:
                    if not e.not_found:
                        raise
                self._gone.discard(key)
            return
        self._gone.discard(key)
        if not svc.spec.selector or svc.metadata.deletionTimestamp:
            return  # selectorless: the Endpoints are someone else's
        pods = [p for p in self.pods.items() if p.metadata.namespace == ns]
        labels = endpoints_labels(svc)
        want = convert.from_dict({"apiVersion": "v1", "kind": "Endpoints",
                                  "metadata": {"name": name, "namespace": ns, "labels": labels},
                                  "subsets": endpoint_subsets(svc, pods)}, core_pb2.Endpoints)
        current = self.endpoints.get(key)
        if current is not None and _same(current, want):
            return
        if current is None:
            try:
                await self.client.create(want)
                return
            except APIStatusError as e:
                if not e.already_exists:
                    raise
                current = await self.client.get("endpoints", name, ns)
        new = core_pb2.Endpoints()
        new.CopyFrom(current)  # keeps resourceVersion: a conflict requeues
        new.metadata.labels.clear()
        new.metadata.labels.update(labels)
        del new.subsets[:]
        new.subsets.extend(want.subsets)
        await self.client.update(new)


def _same(current: Any, want: Any) -> bool:
    return list(current.subsets) == list(want.subsets) and \
        dict(current.metadata.labels) == dict(want.metadata.labels)
