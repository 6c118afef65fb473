"""gRPC adapter: kubelite.v1.API requests -> Registry calls.

Objects arrive as google.protobuf.Any; the Any's type name picks the kind.
Create also takes the two pod subresources that are not stored kinds: a
kubelite.v1.Binding (pods/binding) and a kubelite.v1.Eviction
(pods/eviction); both answer with the affected Pod.
Get and Update with subresource "scale" read and write a workload's
autoscaling/v1 Scale (master/apiserver/scale.py).
Logs and Exec (pods/log, pods/exec) are proxied to the node agent running the
pod (see master/apiserver/proxy.py).
ApiError becomes a gRPC status with the Kubernetes reason in trailing
metadata; an etcd outage becomes UNAVAILABLE so clients retry elsewhere.
"""

from __future__ import annotations

import functools
import logging
import platform
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2

import kubelite
from kubelite.api import api_pb2, api_pb2_grpc, autoscaling_pb2, node_pb2, pod_pb2
from kubelite.objects import kinds
from master.apiserver import errors, proxy, scale
from master.apiserver.registry import Registry

log = logging.getLogger(__name__)

_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _pack(obj: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(obj)
    return a


def _unpack(a: any_pb2.Any) -> Any:
    if not a.type_url:
        raise errors.bad_request("object is required")
    try:
        kind = kinds.by_message(a.TypeName())
    except kinds.UnknownKind as e:
        raise errors.bad_request(str(e)) from None
    obj = kind.message()
    if not a.Unpack(obj):
        raise errors.bad_request(f"cannot decode {a.TypeName()}")
    return obj


# Messages Create accepts that are requests about a pod, not objects to store.
_BINDING = pod_pb2.Binding.DESCRIPTOR.full_name
_EVICTION = pod_pb2.Eviction.DESCRIPTOR.full_name


def _unpack_as(a: any_pb2.Any, message: type) -> Any:
    obj = message()
    if not a.Unpack(obj):
        raise errors.bad_request(f"cannot decode {a.TypeName()}")
    return obj


def _kind(resource: str) -> kinds.Kind:
    try:
        return kinds.by_resource(resource)
    except kinds.UnknownKind as e:
        raise errors.ApiError(grpc.StatusCode.NOT_FOUND, "NotFound", str(e)) from None


def _translate(exc: Exception) -> errors.ApiError:
    if isinstance(exc, errors.ApiError):
        return exc
    name = type(exc).__name__
    if "Connection" in name or isinstance(exc, (ConnectionError, TimeoutError)):
        log.warning("storage unavailable: %s", exc)
        return errors.ApiError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable",
                               f"storage unavailable: {exc}")
    if isinstance(exc, grpc.aio.AioRpcError):
        # No member reachable, the member in use gone (the next call reconnects to
        # another), or etcd without quorum: all for the client to retry.
        log.warning("etcd: %s %s", exc.code().name, exc.details())
        return errors.ApiError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable",
                               f"etcd is unavailable, retry later: {exc.details()}")
    log.exception("internal error")
    return errors.ApiError(grpc.StatusCode.INTERNAL, "InternalError", f"{name}: {exc}")


def _unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status
            err = _translate(exc)
            context.set_trailing_metadata(((errors.REASON_KEY, err.reason),))
            await context.abort(err.code, err.message)
    return wrapper


class APIService(api_pb2_grpc.APIServicer):
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    @_unary
    async def Create(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        a = request.object
        type_name = a.TypeName() if a.type_url else ""
        if type_name == _BINDING:
            obj = await self.registry.bind(_unpack_as(a, pod_pb2.Binding),
                                           dry_run=request.dry_run)
        elif type_name == _EVICTION:
            obj = await self.registry.evict(_unpack_as(a, pod_pb2.Eviction),
                                            dry_run=request.dry_run)
        else:
            obj = await self.registry.create(_unpack(a), dry_run=request.dry_run)
        return api_pb2.ObjectResponse(object=_pack(obj))

    @_unary
    async def Get(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        kind = _kind(request.resource)
        if request.subresource == "scale":
            obj = await scale.get_scale(self.registry, kind, request.namespace, request.name)
        elif request.subresource:
            raise errors.bad_request(f"unsupported subresource {request.subresource!r}")
        else:
            obj = await self.registry.get(kind, request.namespace, request.name)
        return api_pb2.ObjectResponse(object=_pack(obj))

    @_unary
    async def List(self, request: Any, context: Any) -> api_pb2.ListResponse:
        items, rv = await self.registry.list(
            _kind(request.resource), request.namespace, request.label_selector,
            request.field_selector)
        return api_pb2.ListResponse(items=[_pack(o) for o in items], resource_version=rv)

    @_unary
    async def Update(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        if request.subresource == "scale":
            body = _unpack_as(request.object, autoscaling_pb2.Scale)
            obj = await scale.update_scale(self.registry, _kind(request.resource), body,
                                           dry_run=request.dry_run)
        elif request.subresource:
            raise errors.bad_request(f"unsupported subresource {request.subresource!r}")
        else:
            obj = await self.registry.update(_unpack(request.object), dry_run=request.dry_run)
        return api_pb2.ObjectResponse(object=_pack(obj))

    @_unary
    async def UpdateStatus(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        obj = await self.registry.update_status(_unpack(request.object), dry_run=request.dry_run)
        return api_pb2.ObjectResponse(object=_pack(obj))

    @_unary
    async def Patch(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        if request.patch_type not in ("", "merge"):
            raise errors.bad_request(f'unsupported patch type "{request.patch_type}"')
        obj = await self.registry.patch(
            _kind(request.resource), request.namespace, request.name, request.patch,
            subresource=request.subresource, dry_run=request.dry_run)
        return api_pb2.ObjectResponse(object=_pack(obj))

    @_unary
    async def Delete(self, request: Any, context: Any) -> api_pb2.ObjectResponse:
        obj = await self.registry.delete(
            _kind(request.resource), request.namespace, request.name,
            propagation_policy=request.propagation_policy,
            grace_period_seconds=(request.grace_period_seconds
                                  if request.HasField("grace_period_seconds") else None),
            precondition_uid=request.precondition_uid,
            precondition_resource_version=request.precondition_resource_version,
            dry_run=request.dry_run)
        return api_pb2.ObjectResponse(object=_pack(obj))

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext
                    ) -> AsyncIterator[api_pb2.WatchEvent]:
        try:
            kind = _kind(request.resource)
            async for ev in self.registry.watch(
                kind, request.namespace, name=request.name,
                label_selector=request.label_selector, field_selector=request.field_selector,
                resource_version=request.resource_version,
                allow_bookmarks=request.allow_bookmarks,
            ):
                out = api_pb2.WatchEvent(type=ev.type, resource_version=ev.resource_version)
                if ev.object is not None:
                    out.object.Pack(ev.object)
                yield out
        except Exception as exc:  # noqa: BLE001
            err = _translate(exc)
            context.set_trailing_metadata(((errors.REASON_KEY, err.reason),))
            await context.abort(err.code, err.message)

    async def Logs(self, request: node_pb2.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[node_pb2.LogChunk]:
        try:
            async for chunk in proxy.logs(self.registry, request):
                yield chunk
        except Exception as exc:  # noqa: BLE001
            err = _translate(exc)
            context.set_trailing_metadata(((errors.REASON_KEY, err.reason),))
            await context.abort(err.code, err.message)

    async def Exec(self, request_iterator: AsyncIterator[node_pb2.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[node_pb2.ExecOutput]:
        try:
            async for out in proxy.exec_(self.registry, request_iterator):
                yield out
        except Exception as exc:  # noqa: BLE001
            err = _translate(exc)
            context.set_trailing_metadata(((errors.REASON_KEY, err.reason),))
            await context.abort(err.code, err.message)

    async def Discovery(self, request: Any, context: Any) -> api_pb2.DiscoveryResponse:
        resources = [
            api_pb2.APIResource(
                name=k.resource, singular_name=k.singular, short_names=list(k.short_names),
                kind=k.kind, group=k.group, version=k.version, namespaced=k.namespaced,
                verbs=_VERBS, message=k.message.DESCRIPTOR.full_name,
                also_accepts=list(k.also_accepts))
            for k in kinds.KINDS
        ]
        return api_pb2.DiscoveryResponse(
            resources=resources, server_version=f"v{kubelite.__version__}",
            platform=f"{platform.system().lower()}/{platform.machine()}")
