"""The generic registry: create, read, update, patch, delete and watch any kind.

This is the API server's logic with no gRPC in it (service.py adapts it), so
tests and in-process controllers can drive it directly. Every write is a
compare-and-swap on the key's mod_revision: a client that sends a
resourceVersion gets Conflict if someone wrote in between; a client that
sends none gets a read-modify-write retried until it lands on the latest.

Deletion follows Kubernetes:
- an object with finalizers is only marked (deletionTimestamp) and goes when
  an update empties its finalizers;
- propagationPolicy Foreground / Orphan is recorded as the finalizer
  "foregroundDeletion" / "orphan" for the garbage collector;
- a pod bound to a node is deleted gracefully: marked with a grace period,
  and removed when its node agent confirms (a delete with grace period 0);
- a namespace becomes Terminating and the namespace controller empties it.

Two pod subresources are verbs here too: bind (pods/binding, how a pod gets
its node) and evict (pods/eviction, a delete on behalf of `drain`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from kubelite.objects import convert, defaults, names, selectors, validation, versions
from kubelite.objects.errors import FieldError, Invalid, required, unsupported
from kubelite.objects.kinds import Kind
from kubelite.objects.kinds import by_resource as kind_by_resource
from kubelite.objects.kinds import of as kind_of
from master.apiserver import admission, errors, strategy
from master.apiserver.admission import TolerationDefaults
from master.apiserver import services as service_strategy
from master.apiserver.services import Plan, ServiceAllocator
from master.apiserver.storage import (
    Compacted,
    Conflict,
    Extra,
    ExtraConflict,
    KeyExists,
    KeyNotFound,
    Storage,
)

PREFIX = "/registry"
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
FINALIZER_ORPHAN = "orphan"
FINALIZER_FOREGROUND = "foregroundDeletion"
_GENERATE_RETRIES = 8
_UPDATE_RETRIES = 16
_PLAN_RETRIES = 16


@dataclass(frozen=True)
class Event:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Message | None
    resource_version: str


def key_for(kind: Kind, namespace: str, name: str) -> str:
    if kind.namespaced:
        return f"{PREFIX}/{kind.resource}/{namespace}/{name}"
    return f"{PREFIX}/{kind.resource}/{name}"


def prefix_for(kind: Kind, namespace: str) -> str:
    if kind.namespaced and namespace:
        return f"{PREFIX}/{kind.resource}/{namespace}/"
    return f"{PREFIX}/{kind.resource}/"


def _rv(value: str) -> int:
    try:
        rv = int(value)
        if rv < 0:
            raise ValueError
        return rv
    except ValueError:
        raise errors.bad_request(f'invalid resourceVersion "{value}"') from None


class Registry:
    def __init__(self, storage: Storage, *, bookmark_interval: float = 5.0,
                 services: ServiceAllocator | None = None,
                 tolerations: TolerationDefaults | None = admission.DEFAULTS) -> None:
        self.storage = storage
        # DefaultTolerationSeconds admission for pods (None: off).
        self.tolerations = tolerations
        self.bookmark_interval = bookmark_interval
        # Services' cluster IPs and NodePorts (None: stored as given, nothing allocated).
        self.services = services

    # ---- encoding -----------------------------------------------------------

    def _decode(self, kind: Kind, value: bytes, revision: int) -> Any:
        obj = kind.message()
        obj.ParseFromString(value)
        obj.metadata.resourceVersion = str(revision)
        return obj

    @staticmethod
    def _encode(obj: Any) -> bytes:
        clone = type(obj)()
        clone.CopyFrom(obj)
        clone.metadata.resourceVersion = ""  # etcd's revision is the truth
        return clone.SerializeToString(deterministic=True)

    def _namespace_of(self, kind: Kind, namespace: str) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"

    # ---- reads --------------------------------------------------------------

    async def get(self, kind: Kind, namespace: str, name: str) -> Any:
        namespace = self._namespace_of(kind, namespace)
        if not name:
            raise errors.bad_request("resource name may not be empty")
        kv = await self.storage.get(key_for(kind, namespace, name))
        if kv is None:
            raise errors.not_found(kind.resource_group, name)
        return self._decode(kind, kv.value, kv.mod_revision)

    def _filters(
        self, kind: Kind, label_selector: str, field_selector: str
    ) -> tuple[selectors.Selector, list[selectors.FieldRequirement]]:
        try:
            labels = selectors.parse(label_selector) if label_selector else []
            fields = (selectors.parse_fields(field_selector, kind.selectable_fields)
                      if field_selector else [])
        except selectors.SelectorError as e:
            raise errors.bad_request(str(e)) from None
        return labels, fields

    @staticmethod
    def _matches(obj: Any, labels: selectors.Selector,
                 fields: list[selectors.FieldRequirement], name: str = "") -> bool:
        if name and obj.metadata.name != name:
            return False
        if labels and not selectors.matches(labels, obj.metadata.labels):
            return False
        return not fields or selectors.fields_match(fields, convert.to_dict(obj))

    async def list(
        self, kind: Kind, namespace: str = "", label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[Any], str]:
        labels, fields = self._filters(kind, label_selector, field_selector)
        kvs, revision = await self.storage.list(prefix_for(kind, namespace))
        items = []
        for kv in kvs:
            obj = self._decode(kind, kv.value, kv.mod_revision)
            if self._matches(obj, labels, fields):
                items.append(obj)
        return items, str(revision)

    # ---- create -------------------------------------------------------------

    async def _check_namespace(self, kind: Kind, namespace: str, name: str) -> None:
        if not kind.namespaced:
            return
        nskind = kind_by_resource("namespaces")
        kv = await self.storage.get(key_for(nskind, "", namespace))
        if kv is None:
            raise errors.not_found("namespaces", namespace)
        ns = self._decode(nskind, kv.value, kv.mod_revision)
        if ns.metadata.deletionTimestamp:
            raise errors.forbidden(
                kind.resource_group, name,
                f"unable to create new content in namespace {namespace} "
                "because it is being terminated")

    def _validate(self, kind: Kind, obj: Any, old: Any = None) -> None:
        errs: list[FieldError] = validation.validate(obj, old)
        if kind.kind == "Service" and self.services is not None:
            errs += self.services.validate(obj, old)
        if errs:
            raise errors.invalid(Invalid(errs, kind=kind.qualified,
                                         name=obj.metadata.name).message())

    async def create(self, obj: Any, *, dry_run: bool = False) -> Any:
        kind = kind_of(obj)
        obj = _copy(obj)
        obj.apiVersion, obj.kind = kind.api_version, kind.kind
        md = obj.metadata
        md.namespace = self._namespace_of(kind, md.namespace)
        generate = not md.name and bool(md.generateName)
        if generate:
            md.name = strategy.generated_name(md.generateName)
        strategy.prepare_for_create(obj)
        _reset_status_on_create(kind, obj)
        defaults.apply(obj)
        if kind.kind == "Job":
            defaults.apply_job_selector(obj, md.uid)
        if kind.kind == "Pod" and self.tolerations is not None:
            admission.default_toleration_seconds(obj.spec, self.tolerations)
        if kind.kind == "Service":
            service_strategy.prepare_create(obj)
        self._validate(kind, obj)
        await self._check_namespace(kind, md.namespace, md.name)
        for _ in range(_GENERATE_RETRIES + _PLAN_RETRIES):
            plan = await self._plan(kind, obj, None)
            if dry_run:
                await self._check_requested(kind, plan)
                return plan.obj
            new = plan.obj
            try:
                rev = await self.storage.create(key_for(kind, new.metadata.namespace,
                                                        new.metadata.name),
                                                self._encode(new), plan.extra)
            except ExtraConflict as e:
                self._taken(kind, plan, e.key)
                continue  # a random pick was taken meanwhile: pick again
            except KeyExists:
                if not generate:
                    raise errors.already_exists(kind.resource_group, md.name) from None
                md.name = strategy.generated_name(md.generateName)
                continue
            new.metadata.resourceVersion = str(rev)
            return new
        if not generate:
            raise errors.conflict(kind.resource_group, md.name, "too many concurrent allocations")
        raise errors.ApiError(errors.grpc.StatusCode.ALREADY_EXISTS, "AlreadyExists",
                              f"could not generate a unique name from {md.generateName!r}")

    # ---- allocations written with the object (Services) ------------------------

    async def _plan(self, kind: Kind, obj: Any, old: Any | None) -> Plan:
        if kind.kind != "Service" or self.services is None:
            return Plan(obj)
        try:
            return await self.services.plan(obj, old)
        except Invalid as e:
            raise errors.invalid(Invalid(e.errors, kind=kind.qualified,
                                         name=obj.metadata.name).message()) from None

    def _taken(self, kind: Kind, plan: Plan, key: str) -> None:
        """A record `plan` wanted exists: refuse a requested value, else return to re-plan."""
        err = plan.requested.get(key)
        if err is not None:
            raise errors.invalid(Invalid([err], kind=kind.qualified,
                                         name=plan.obj.metadata.name).message())

    async def _check_requested(self, kind: Kind, plan: Plan) -> None:
        """Dry run: what the write would have refused, without writing."""
        for key in plan.extra.create:
            if await self.storage.get(key) is not None:
                self._taken(kind, plan, key)

    async def _released(self, kind: Kind, old: Any) -> Extra | None:
        if kind.kind != "Service" or self.services is None:
            return None
        return await self.services.release(old)

    # ---- update -------------------------------------------------------------

    async def update(self, obj: Any, *, dry_run: bool = False) -> Any:
        """Replace spec and metadata (status is kept)."""
        return await self._update(obj, status=False, dry_run=dry_run)

    async def update_status(self, obj: Any, *, dry_run: bool = False) -> Any:
        return await self._update(obj, status=True, dry_run=dry_run)

    async def _update(self, obj: Any, *, status: bool, dry_run: bool) -> Any:
        kind = kind_of(obj)
        if status and not kind.has_status:
            raise errors.bad_request(f"{kind.resource} have no status subresource")
        namespace = self._namespace_of(kind, obj.metadata.namespace)
        name = obj.metadata.name
        wanted_rv = obj.metadata.resourceVersion
        key = key_for(kind, namespace, name)
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(key)
            if kv is None:
                raise errors.not_found(kind.resource_group, name)
            old = self._decode(kind, kv.value, kv.mod_revision)
            if wanted_rv and _rv(wanted_rv) != kv.mod_revision:
                raise errors.conflict(kind.resource_group, name)
            new = self._next(kind, obj, old, status=status)
            try:
                return await self._write(kind, key, new, old, kv.mod_revision, dry_run)
            except Conflict:
                if wanted_rv:
                    raise errors.conflict(kind.resource_group, name) from None
        raise errors.conflict(kind.resource_group, name, "too many concurrent writers")

    def _next(self, kind: Kind, obj: Any, old: Any, *, status: bool) -> Any:
        if status:
            new = strategy.prepare_for_status_update(obj, old)
        else:
            new = _copy(obj)
            new.apiVersion, new.kind = kind.api_version, kind.kind
            defaults.apply(new)  # first: a spec that differs only by defaults is unchanged
            strategy.prepare_for_update(new, old)
            if kind.kind == "Service":
                service_strategy.prepare_update(new, old)
            self._validate(kind, new, old)
        return new

    async def _write(self, kind: Kind, key: str, new: Any, old: Any, rev: int,
                     dry_run: bool) -> Any:
        """CAS-write `new` over `old` (at `rev`); finish a deletion whose finalizers are gone."""
        if old.metadata.deletionTimestamp and not new.metadata.finalizers and not _graceful(new):
            if not dry_run:
                try:
                    await self.storage.delete(key, rev, await self._released(kind, old))
                except KeyNotFound:
                    raise errors.not_found(kind.resource_group, new.metadata.name) from None
                except ExtraConflict:
                    raise Conflict(key) from None  # a record moved under us: start over
            return new
        if self._encode(new) == self._encode(old):
            return old  # a no-op write keeps the resourceVersion, as in Kubernetes
        for _ in range(_PLAN_RETRIES):
            plan = await self._plan(kind, new, old)
            if dry_run:
                await self._check_requested(kind, plan)
                return plan.obj
            try:
                new_rev = await self.storage.update(key, self._encode(plan.obj), rev,
                                                    plan.extra)
            except KeyNotFound:
                raise errors.not_found(kind.resource_group, new.metadata.name) from None
            except ExtraConflict as e:
                self._taken(kind, plan, e.key)
                continue
            plan.obj.metadata.resourceVersion = str(new_rev)
            return plan.obj
        raise errors.conflict(kind.resource_group, new.metadata.name,
                              "too many concurrent allocations")

    # ---- patch --------------------------------------------------------------

    async def patch(
        self, kind: Kind, namespace: str, name: str, patch: str, *,
        subresource: str = "", dry_run: bool = False,
    ) -> Any:
        """Apply a JSON merge patch (RFC 7386) to the object's manifest form."""
        try:
            doc = json.loads(patch)
        except json.JSONDecodeError as e:
            raise errors.bad_request(f"invalid JSON patch: {e}") from None
        if not isinstance(doc, dict):
            raise errors.bad_request("a merge patch must be a JSON object")
        if subresource not in ("", "status"):
            raise errors.bad_request(f"unsupported subresource {subresource!r}")
        namespace = self._namespace_of(kind, namespace)
        key = key_for(kind, namespace, name)
        wanted_rv = str(doc.get("metadata", {}).get("resourceVersion") or "") \
            if isinstance(doc.get("metadata"), dict) else ""
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(key)
            if kv is None:
                raise errors.not_found(kind.resource_group, name)
            old = self._decode(kind, kv.value, kv.mod_revision)
            if wanted_rv and _rv(wanted_rv) != kv.mod_revision:
                raise errors.conflict(kind.resource_group, name)
            merged = merge_patch(convert.to_dict(old), doc)
            if not isinstance(merged, dict):
                raise errors.bad_request("patch result is not an object")
            merged = versions.to_internal(merged)
            try:
                target = convert.from_dict(merged, kind.message)
            except Invalid as e:
                raise errors.invalid(Invalid(e.errors, kind=kind.qualified, name=name).message()
                                     ) from None
            target.metadata.resourceVersion = ""
            new = self._next(kind, target, old, status=subresource == "status")
            try:
                return await self._write(kind, key, new, old, kv.mod_revision, dry_run)
            except Conflict:
                if wanted_rv:
                    raise errors.conflict(kind.resource_group, name) from None
        raise errors.conflict(kind.resource_group, name, "too many concurrent writers")

    # ---- delete -------------------------------------------------------------

    async def delete(
        self, kind: Kind, namespace: str, name: str, *, propagation_policy: str = "",
        grace_period_seconds: int | None = None, precondition_uid: str = "",
        precondition_resource_version: str = "", dry_run: bool = False,
    ) -> Any:
        if propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.bad_request(
                f'unsupported propagationPolicy "{propagation_policy}": '
                'supported values: "Background", "Foreground", "Orphan"')
        if grace_period_seconds is not None and grace_period_seconds < 0:
            raise errors.bad_request("gracePeriodSeconds must be >= 0")
        namespace = self._namespace_of(kind, namespace)
        key = key_for(kind, namespace, name)
        if kind.kind == "Namespace" and name in IMMORTAL_NAMESPACES:
            raise errors.forbidden("namespaces", name, "this namespace may not be deleted")
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(key)
            if kv is None:
                raise errors.not_found(kind.resource_group, name)
            old = self._decode(kind, kv.value, kv.mod_revision)
            _check_preconditions(kind, old, kv.mod_revision, precondition_uid,
                                 precondition_resource_version)
            marked = self._mark_deleted(kind, old, propagation_policy, grace_period_seconds)
            try:
                if marked is None:
                    if not dry_run:
                        await self.storage.delete(key, kv.mod_revision,
                                                  await self._released(kind, old))
                    return old
                if self._encode(marked) == self._encode(old):
                    return old
                if dry_run:
                    return marked
                rev = await self.storage.update(key, self._encode(marked), kv.mod_revision)
                marked.metadata.resourceVersion = str(rev)
                return marked
            except (Conflict, ExtraConflict):
                continue
            except KeyNotFound:
                raise errors.not_found(kind.resource_group, name) from None
        raise errors.conflict(kind.resource_group, name, "too many concurrent writers")

    def _mark_deleted(self, kind: Kind, old: Any, policy: str, grace: int | None) -> Any | None:
        """The object marked for deletion, or None when it can go from storage now."""
        new = _copy(old)
        md = new.metadata
        if kind.kind == "Namespace":
            if not md.deletionTimestamp:
                md.deletionTimestamp = strategy.now_rfc3339()
            new.status.phase = "Terminating"
            return new
        if kind.kind == "Pod" and md.deletionTimestamp and grace == 0:
            return None if not md.finalizers else _with_grace(new, 0)
        finalizer = {"Orphan": FINALIZER_ORPHAN, "Foreground": FINALIZER_FOREGROUND}.get(policy)
        if finalizer and not md.deletionTimestamp:
            other = FINALIZER_FOREGROUND if finalizer == FINALIZER_ORPHAN else FINALIZER_ORPHAN
            kept = [f for f in md.finalizers if f != other]
            del md.finalizers[:]
            md.finalizers.extend(kept)
            if finalizer not in md.finalizers:
                md.finalizers.append(finalizer)
        graceful = False
        if kind.kind == "Pod" and new.spec.nodeName and grace != 0 and \
                new.status.phase not in ("Succeeded", "Failed"):
            seconds = grace if grace is not None else (
                new.spec.terminationGracePeriodSeconds
                if new.spec.HasField("terminationGracePeriodSeconds") else 30)
            if seconds > 0:
                graceful = True
                if not md.HasField("deletionGracePeriodSeconds") or \
                        seconds < md.deletionGracePeriodSeconds:
                    md.deletionGracePeriodSeconds = seconds
        if not md.finalizers and not graceful:
            return None
        if not md.deletionTimestamp:
            md.deletionTimestamp = strategy.now_rfc3339()
        return new

    # ---- pod subresources: binding and eviction -------------------------------

    async def bind(self, binding: Any, *, dry_run: bool = False) -> Any:
        """pods/binding: assign an unbound pod to a node; returns the bound Pod.

        What the scheduler calls. Only spec.nodeName and the PodScheduled
        condition change (no general spec update, generation unchanged), in a
        compare-and-swap on the pod that re-checks everything when it loses a
        race. As in Kubernetes, binding a pod that is already assigned, being
        deleted or still gated is a Conflict on pods/binding, and
        metadata.uid / metadata.resourceVersion of the Binding, when given, are
        preconditions on the pod.
        """
        kind = kind_by_resource("pods")
        md = binding.metadata
        namespace, name, node = md.namespace or "default", md.name, binding.target.name
        errs: list[FieldError] = []
        if not name:
            errs.append(required("metadata.name"))
        if binding.target.kind not in ("", "Node"):
            errs.append(unsupported("target.kind", binding.target.kind, ["Node", "<empty>"]))
        if not node:
            errs.append(required("target.name"))
        else:
            errs += [FieldError("target.name", f'Invalid value: "{node}": {m}')
                     for m in names.dns1123_subdomain(node)]
        if errs:
            raise errors.invalid(Invalid(errs, kind="Binding", name=name).message())
        key = key_for(kind, namespace, name)
        for _ in range(_UPDATE_RETRIES):
            kv = await self.storage.get(key)
            if kv is None:
                raise errors.not_found(kind.resource_group, name)
            pod = self._decode(kind, kv.value, kv.mod_revision)
            _check_preconditions(kind, pod, kv.mod_revision, md.uid, md.resourceVersion)
            problem = _unbindable(pod)
            if problem:
                raise errors.conflict("pods/binding", name, problem)
            new = _copy(pod)
            new.spec.nodeName = node
            _set_condition(new.status.conditions, "PodScheduled", "True")
            if dry_run:
                return new
            try:
                rev = await self.storage.update(key, self._encode(new), kv.mod_revision)
            except Conflict:
                continue  # someone wrote in between: re-read and re-check
            except KeyNotFound:
                raise errors.not_found(kind.resource_group, name) from None
            new.metadata.resourceVersion = str(rev)
            return new
        raise errors.conflict("pods/binding", name, "too many concurrent writers")

    async def evict(self, eviction: Any, *, dry_run: bool = False) -> Any:
        """pods/eviction: delete a pod the way `drain` asks; returns the Pod.

        Kubernetes first checks the PodDisruptionBudgets covering the pod and
        refuses (429) an eviction that would break one. kubelite has no
        PodDisruptionBudgets, so an eviction is the ordinary pod deletion
        (Registry.delete): a pod on a node is marked for graceful termination
        with deleteOptions.gracePeriodSeconds (else the pod's own grace), an
        unbound or finished pod goes at once. deleteOptions.propagationPolicy
        and dryRun ["All"] are honoured; PodDeleteOptions has no preconditions.
        """
        kind = kind_by_resource("pods")
        md, opts = eviction.metadata, eviction.deleteOptions
        if not md.name:
            raise errors.invalid(Invalid([required("metadata.name")], kind="Eviction",
                                         name="").message())
        for value in opts.dryRun:
            if value != "All":
                raise errors.invalid(Invalid(
                    [unsupported("deleteOptions.dryRun", value, ["All"])],
                    kind="Eviction", name=md.name).message())
        return await self.delete(
            kind, md.namespace, md.name,
            propagation_policy=(opts.propagationPolicy
                                if opts.HasField("propagationPolicy") else ""),
            grace_period_seconds=(opts.gracePeriodSeconds
                                  if opts.HasField("gracePeriodSeconds") else None),
            dry_run=dry_run or bool(opts.dryRun))

    # ---- watch --------------------------------------------------------------

    async def watch(
        self, kind: Kind, namespace: str = "", *, name: str = "", label_selector: str = "",
        field_selector: str = "", resource_version: str = "", allow_bookmarks: bool = False,
    ) -> AsyncIterator[Event]:
        labels, fields = self._filters(kind, label_selector, field_selector)
        namespace = namespace if kind.namespaced else ""
        prefix = prefix_for(kind, namespace)
        if resource_version in ("", "0"):
            kvs, start = await self.storage.list(prefix)
            for kv in kvs:
                obj = self._decode(kind, kv.value, kv.mod_revision)
                if self._matches(obj, labels, fields, name):
                    yield Event("ADDED", obj, str(kv.mod_revision))
        else:
            start = _rv(resource_version)
        interval = self.bookmark_interval if allow_bookmarks else 0.0
        try:
            async for item in self.storage.watch(prefix, start, progress_every=interval):
                if item.type == "PROGRESS":
                    if allow_bookmarks:
                        yield Event("BOOKMARK", None, str(item.revision))
                    continue
                obj = self._decode(kind, item.value, item.revision)
                now = self._matches(obj, labels, fields, name)
                if item.type == "DELETE":
                    if now:
                        yield Event("DELETED", obj, str(item.revision))
                    continue
                before = False
                if item.prev is not None and not item.created:
                    prev = self._decode(kind, item.prev, item.revision)
                    before = self._matches(prev, labels, fields, name)
                if now and before:
                    yield Event("MODIFIED", obj, str(item.revision))
                elif now:
                    yield Event("ADDED", obj, str(item.revision))
                elif before:
                    yield Event("DELETED", obj, str(item.revision))
        except Compacted as e:
            raise errors.expired(
                f"too old resource version: {e.requested} ({e.compacted})") from None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _copy(obj: Any) -> Any:
    clone = type(obj)()
    clone.CopyFrom(obj)
    return clone


def _check_preconditions(kind: Kind, obj: Any, rev: int, uid: str, resource_version: str
                         ) -> None:
    """Conflict unless the stored object has the given uid / resourceVersion (when given)."""
    name = obj.metadata.name
    if uid and uid != obj.metadata.uid:
        raise errors.conflict(kind.resource_group, name,
                              f"Precondition failed: UID in precondition: {uid}, "
                              f"UID in object meta: {obj.metadata.uid}")
    if resource_version and _rv(resource_version) != rev:
        raise errors.conflict(kind.resource_group, name,
                              "Precondition failed: ResourceVersion in precondition: "
                              f"{resource_version}, ResourceVersion in object meta: {rev}")


def _unbindable(pod: Any) -> str:
    """Why `pod` cannot be bound to a node (Kubernetes' wording), or ""."""
    name = pod.metadata.name
    if pod.metadata.deletionTimestamp:
        return f"pod {name} is being deleted, cannot be assigned to a host"
    if pod.spec.nodeName:
        return f'pod {name} is already assigned to node "{pod.spec.nodeName}"'
    if len(pod.spec.schedulingGates):
        return f"pod {name} has non-empty .spec.schedulingGates"
    return ""


def _set_condition(conditions: Any, ctype: str, status: str) -> None:
    """Set condition `ctype` to `status`; lastTransitionTime moves only when status does."""
    now = strategy.now_rfc3339()
    for c in conditions:
        if c.type == ctype:
            if c.status != status:
                c.lastTransitionTime = now
            c.status = status
            c.reason = c.message = c.lastProbeTime = ""
            return
    conditions.add(type=ctype, status=status, lastTransitionTime=now)


def _graceful(obj: Any) -> bool:
    """A pod still waiting for its node agent to confirm termination."""
    return (obj.DESCRIPTOR.name == "Pod" and obj.metadata.HasField("deletionGracePeriodSeconds")
            and obj.metadata.deletionGracePeriodSeconds > 0)


def _with_grace(obj: Any, seconds: int) -> Any:
    obj.metadata.deletionGracePeriodSeconds = seconds
    return obj


# Kinds whose creator reports status at creation (the node agent registers its
# Node with capacity and conditions); every other kind starts with empty status.
_KEEP_STATUS_ON_CREATE = {"Node"}


def _reset_status_on_create(kind: Kind, obj: Any) -> None:
    if kind.has_status and kind.kind not in _KEEP_STATUS_ON_CREATE and obj.HasField("status"):
        obj.ClearField("status")
    if kind.kind == "Pod":
        obj.status.phase = "Pending"
