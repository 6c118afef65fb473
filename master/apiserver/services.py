"""The Service strategy: cluster IPs and NodePorts, allocated in etcd.

Every allocated value has one record in etcd, `/registry/ranges/serviceips/<ip>`
or `/registry/ranges/servicenodeports/<port>`, whose value names its owner
Service. A record is created in the same transaction as the Service write
that takes the value (the transaction also requires the record to be absent)
and deleted in the same transaction as the write that gives it up (requiring
it to be at the revision read). So:

- two concurrent creates, on one master or several, can never both get an
  address: the second transaction fails on the record, and a random pick is
  simply retried with a fresh one, while a requested value is refused with
  Kubernetes' `provided IP is already allocated`;
- a failed create (invalid, name taken, etcd down) allocates nothing, and a
  deleted Service (or one whose type no longer needs the value) frees it in
  the write that removes it: there is nothing to leak or to release later;
- `repair` at master start rebuilds records from the Services (data written
  before this existed, a restored etcd) and removes records no Service holds.

Update follows Kubernetes' PrepareForUpdate: values a client left out of a
replace (clusterIP, nodePorts) are carried over from the stored Service; a
type change that no longer needs a value drops it unless the client changed
it; clusterIPs may not change once set (except to or from ExternalName).
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from kubelite.objects.errors import FieldError, Invalid, invalid
from master.apiserver import errors
from master.apiserver.allocators import IPRange, PortRange, RangeFull
from master.apiserver.storage import Extra, Storage

log = logging.getLogger(__name__)

IP_RECORDS = "/registry/ranges/serviceips/"
PORT_RECORDS = "/registry/ranges/servicenodeports/"
SERVICES = "/registry/services/"
PLAN_RETRIES = 16


# ---- what a Service needs -------------------------------------------------------

def needs_cluster_ip(svc: Any) -> bool:
    """Kubernetes' needsClusterIP: everything but ExternalName has a clusterIP (or None)."""
    return svc.spec.type != "ExternalName"


def allocates_ip(svc: Any) -> bool:
    return needs_cluster_ip(svc) and svc.spec.clusterIP != "None"


def needs_node_port(svc: Any) -> bool:
    s = svc.spec
    if s.type == "NodePort":
        return True
    return s.type == "LoadBalancer" and (not s.HasField("allocateLoadBalancerNodePorts")
                                         or s.allocateLoadBalancerNodePorts)


def _set_ips(svc: Any, ips: list[str]) -> None:
    del svc.spec.clusterIPs[:]
    svc.spec.clusterIPs.extend(ips)


def _node_ports(svc: Any) -> list[int]:
    return [p.nodePort for p in svc.spec.ports]


# ---- PrepareForCreate / PrepareForUpdate -----------------------------------------

def prepare_create(svc: Any) -> None:
    """An old client's clusterIP alone becomes clusterIPs too; single-stack IP families."""
    s = svc.spec
    if s.clusterIP and not s.clusterIPs:
        _set_ips(svc, [s.clusterIP])
    _default_families(svc)


def _default_families(svc: Any) -> None:
    s = svc.spec
    if not needs_cluster_ip(svc):
        return
    if not s.ipFamilies:
        s.ipFamilies.append("IPv4")
    if not s.HasField("ipFamilyPolicy"):
        s.ipFamilyPolicy = "SingleStack"


def prepare_update(new: Any, old: Any) -> None:
    """Kubernetes' patchAllocatedValues, NormalizeClusterIPs, dropTypeDependentFields."""
    ns, os_ = new.spec, old.spec
    # 1. values a replace left out are the stored ones (idempotent `apply`)
    if needs_cluster_ip(old) and needs_cluster_ip(new):
        if not ns.clusterIP:
            ns.clusterIP = os_.clusterIP
        if not ns.clusterIPs and os_.clusterIPs:
            _set_ips(new, list(os_.clusterIPs))
    if needs_node_port(old) and needs_node_port(new):
        used = {p for p in _node_ports(old) if p} & {p for p in _node_ports(new) if p}
        by_name = {p.name: p.nodePort for p in os_.ports}
        for p in ns.ports:
            if not p.nodePort and by_name.get(p.name, 0) not in used:
                p.nodePort = by_name.get(p.name, 0)
    # 2. clusterIP and clusterIPs in step
    if os_.clusterIPs and not ns.clusterIPs and os_.clusterIP == ns.clusterIP:
        _set_ips(new, list(os_.clusterIPs))
    if os_.clusterIP != ns.clusterIP:
        same = list(os_.clusterIPs) == list(ns.clusterIPs)
        if os_.clusterIP and not ns.clusterIP:
            if same:
                _set_ips(new, [])
        elif same:
            _set_ips(new, [ns.clusterIP])
    # 3. a type that no longer needs a value loses it, unless the client changed it
    if needs_cluster_ip(old) and not needs_cluster_ip(new):
        if os_.clusterIP == ns.clusterIP and list(os_.clusterIPs) == list(ns.clusterIPs):
            ns.clusterIP = ""
            _set_ips(new, [])
        if list(os_.ipFamilies) == list(ns.ipFamilies):
            del ns.ipFamilies[:]
        if os_.HasField("ipFamilyPolicy") == ns.HasField("ipFamilyPolicy") and \
                os_.ipFamilyPolicy == ns.ipFamilyPolicy:
            ns.ClearField("ipFamilyPolicy")
    if needs_node_port(old) and not needs_node_port(new) and \
            _node_ports(old) == _node_ports(new):
        for p in ns.ports:
            p.nodePort = 0
    if new.spec.type not in ("NodePort", "LoadBalancer") and \
            old.spec.type in ("NodePort", "LoadBalancer") and \
            os_.externalTrafficPolicy == ns.externalTrafficPolicy:
        ns.externalTrafficPolicy = ""
    if not needs_cluster_ip(old) and needs_cluster_ip(new):
        prepare_create(new)


# ---- allocation --------------------------------------------------------------------

@dataclass
class Plan:
    """A Service write with its allocations: the object to store and the records to write.

    `requested` maps a record key to the error a taken record means (a value the
    client asked for); a taken record not listed there was a random pick, and
    the write is planned again.
    """

    obj: Any
    extra: Extra = field(default_factory=Extra)
    requested: dict[str, FieldError] = field(default_factory=dict)


def _owner(svc: Any) -> bytes:
    md = svc.metadata
    return json.dumps({"namespace": md.namespace, "name": md.name, "uid": md.uid},
                      sort_keys=True).encode()


def _owner_of(value: bytes) -> dict[str, str]:
    try:
        doc = json.loads(value)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _copy(obj: Any) -> Any:
    clone = type(obj)()
    clone.CopyFrom(obj)
    return clone


class ServiceAllocator:
    """What the registry asks about Services: prepare, validate, plan, release, repair."""

    def __init__(self, storage: Storage, ip_range: IPRange, port_range: PortRange, *,
                 rng: random.Random | None = None) -> None:
        self.storage = storage
        self.ips = ip_range
        self.ports = port_range
        self.rng = rng or random.Random()

    def validate(self, svc: Any, old: Any | None) -> list[FieldError]:
        """What this cluster cannot serve: another IP family, dual-stack."""
        errs: list[FieldError] = []
        if not needs_cluster_ip(svc):
            return errs
        s = svc.spec
        family = "IPv4" if self.ips.network.version == 4 else "IPv6"
        for i, fam in enumerate(s.ipFamilies):
            if fam != family:
                errs.append(invalid(f"spec.ipFamilies[{i}]", fam, "not configured on this cluster"))
        if s.HasField("ipFamilyPolicy") and s.ipFamilyPolicy == "RequireDualStack":
            errs.append(invalid("spec.ipFamilyPolicy", s.ipFamilyPolicy,
                                "this cluster is not configured for dual-stack services"))
        if len(s.clusterIPs) > 1:
            errs.append(invalid("spec.clusterIPs[1]", s.clusterIPs[1],
                                "this cluster is not configured for dual-stack services"))
        return errs

    # ---- planning a write ----------------------------------------------------------

    def _ip_key(self, ip: str) -> str:
        return IP_RECORDS + ip

    def _port_key(self, port: int) -> str:
        return PORT_RECORDS + str(port)

    def _range_errors(self, svc: Any, old: Any | None) -> list[FieldError]:
        """Requested values outside the ranges (values the Service already holds are kept)."""
        errs: list[FieldError] = []
        held_ips = set(old.spec.clusterIPs) if old is not None else set()
        if allocates_ip(svc) and svc.spec.clusterIP and svc.spec.clusterIP not in held_ips \
                and not self.ips.contains(svc.spec.clusterIP):
            errs.append(invalid("spec.clusterIPs", svc.spec.clusterIP,
                                "provided IP is not in the valid range. The range of valid "
                                f"IPs is {self.ips.cidr}"))
        held_ports = set(_node_ports(old)) if old is not None else set()
        if needs_node_port(svc):
            for i, p in enumerate(svc.spec.ports):
                if p.nodePort and p.nodePort not in held_ports and \
                        not self.ports.contains(p.nodePort):
                    errs.append(invalid(f"spec.ports[{i}].nodePort", p.nodePort,
                                        "provided port is not in the valid range. The range "
                                        f"of valid ports is {self.ports}"))
        return errs

    async def plan(self, svc: Any, old: Any | None) -> Plan:
        """The Service with its values filled in, and the records its write creates/deletes."""
        errs = self._range_errors(svc, old)
        if errs:
            raise Invalid(errs, kind="Service", name=svc.metadata.name)
        plan = Plan(_copy(svc))
        obj, owner = plan.obj, _owner(svc)
        held_ips = {ip for ip in (old.spec.clusterIPs if old is not None and allocates_ip(old)
                                  else []) if ip != "None"}
        held_ports = {p for p in (_node_ports(old) if old is not None and needs_node_port(old)
                                  else []) if p}
        want_ips: set[str] = set()
        if allocates_ip(obj):
            if not obj.spec.clusterIP:
                ip = await self._pick_ip()
                obj.spec.clusterIP = ip
                _set_ips(obj, [ip])
            want_ips = {obj.spec.clusterIP}
            for ip in want_ips - held_ips:
                key = self._ip_key(ip)
                plan.extra.create[key] = owner
                if ip == svc.spec.clusterIP:
                    plan.requested[key] = invalid("spec.clusterIPs", ip,
                                                  "provided IP is already allocated")
        want_ports: set[int] = set()
        if needs_node_port(obj):
            taken: set[int] | None = None
            for i, p in enumerate(obj.spec.ports):
                if p.nodePort:
                    if p.nodePort not in held_ports and p.nodePort not in want_ports:
                        plan.requested[self._port_key(p.nodePort)] = invalid(
                            f"spec.ports[{i}].nodePort", p.nodePort,
                            "provided port is already allocated")
                    want_ports.add(p.nodePort)
            for p in obj.spec.ports:
                if not p.nodePort:
                    if taken is None:
                        taken = await self._taken_ports()
                    p.nodePort = self._pick_port(taken | want_ports | held_ports)
                    want_ports.add(p.nodePort)
            for port in want_ports - held_ports:
                plan.extra.create[self._port_key(port)] = owner
        release = [self._ip_key(ip) for ip in held_ips - want_ips] + \
                  [self._port_key(p) for p in held_ports - want_ports]
        if release and old is not None:
            plan.extra.delete.update(await self._owned(old, release))
        return plan

    async def release(self, old: Any) -> Extra:
        """The record deletions that go with removing `old` from storage."""
        keys = [self._ip_key(ip) for ip in old.spec.clusterIPs if ip and ip != "None"] + \
               [self._port_key(p) for p in _node_ports(old) if p]
        return Extra(delete=await self._owned(old, keys))

    async def _owned(self, svc: Any, keys: list[str]) -> dict[str, int]:
        """Those of `keys` whose record belongs to svc, at their revisions."""
        out: dict[str, int] = {}
        for key in keys:
            kv = await self.storage.get(key)
            if kv is not None and _owner_of(kv.value).get("uid") == svc.metadata.uid:
                out[key] = kv.mod_revision
        return out

    async def _pick_ip(self) -> str:
        taken = [k.removeprefix(IP_RECORDS) for k in await self.storage.keys(IP_RECORDS)]
        try:
            return self.ips.pick(taken, self.rng)
        except RangeFull:
            raise errors.internal("failed to allocate a serviceIP: range is full") from None

    async def _taken_ports(self) -> set[int]:
        out = set()
        for k in await self.storage.keys(PORT_RECORDS):
            tail = k.removeprefix(PORT_RECORDS)
            if tail.isdigit():
                out.add(int(tail))
        return out

    def _pick_port(self, taken: set[int]) -> int:
        try:
            return self.ports.pick(taken, self.rng)
        except RangeFull:
            raise errors.internal("failed to allocate a nodePort: range is full") from None

    # ---- repair at start -------------------------------------------------------------

    async def repair(self) -> None:
        """Make the records match the Services (see the module docstring).

        Records are read before Services: a record whose owner is missing
        from the later Service listing was not written with a Service that
        is still there, and its deletion is guarded on its revision.
        """
        from kubelite.api import core_pb2

        records = {}
        for prefix in (IP_RECORDS, PORT_RECORDS):
            kvs, _ = await self.storage.list(prefix)
            records.update({kv.key: kv for kv in kvs})
        kvs, _ = await self.storage.list(SERVICES)
        holds: set[str] = set()
        for kv in kvs:
            svc = core_pb2.Service()
            svc.ParseFromString(kv.value)
            keys = self._held_keys(svc)
            holds.update(k for k in keys
                         if k in records and _owner_of(records[k].value).get("uid") ==
                         svc.metadata.uid)
            await self._repair_service(kv.key, kv.mod_revision, svc, keys, records)
        for key, kv in records.items():
            if key in holds:
                continue
            owner = _owner_of(kv.value)
            if await self._still_held(key, owner):
                continue
            log.warning("service allocation %s was held by no Service (%s/%s): released",
                        key.removeprefix("/registry/ranges/"), owner.get("namespace"),
                        owner.get("name"))
            await self.storage.delete(key, kv.mod_revision)

    def _held_keys(self, svc: Any) -> list[str]:
        keys = [self._ip_key(ip) for ip in svc.spec.clusterIPs if ip and ip != "None"] \
            if allocates_ip(svc) else []
        if needs_node_port(svc):
            keys += [self._port_key(p) for p in set(_node_ports(svc)) if p]
        return keys

    async def _still_held(self, key: str, owner: dict[str, str]) -> bool:
        from kubelite.api import core_pb2

        kv = await self.storage.get(f"{SERVICES}{owner.get('namespace')}/{owner.get('name')}")
        if kv is None:
            return False
        svc = core_pb2.Service()
        svc.ParseFromString(kv.value)
        return svc.metadata.uid == owner.get("uid") and key in self._held_keys(svc)

    async def _repair_service(self, key: str, rev: int, svc: Any, keys: list[str],
                              records: dict[str, Any]) -> None:
        name = f"{svc.metadata.namespace}/{svc.metadata.name}"
        missing_ip = allocates_ip(svc) and not svc.spec.clusterIP
        missing_port = needs_node_port(svc) and not all(_node_ports(svc))
        extra = Extra()
        for k in keys:
            rec = records.get(k)
            if rec is None:
                extra.create[k] = _owner(svc)
            elif _owner_of(rec.value).get("uid") != svc.metadata.uid:
                other = _owner_of(rec.value)
                log.warning("service %s: %s is also allocated to %s/%s", name,
                            k.removeprefix("/registry/ranges/"), other.get("namespace"),
                            other.get("name"))
        if not extra and not missing_ip and not missing_port:
            return
        try:
            if missing_ip or missing_port:  # written before allocation existed: allocate now
                plan = await self.plan(svc, None)
                plan.extra.create.update(extra.create)
                value = _copy(plan.obj)
                value.metadata.resourceVersion = ""
                await self.storage.update(key, value.SerializeToString(deterministic=True), rev,
                                          plan.extra)
                log.info("service %s: allocated %s", name, plan.obj.spec.clusterIP)
            else:
                await self.storage.guarded(key, rev, extra)
                log.info("service %s: recorded %s", name, ", ".join(extra.create))
        except Exception as e:  # noqa: BLE001 - one Service must not stop the master
            log.warning("service %s: repair failed: %s", name, e)
