"""Typed API clients. Objects in and out are kind messages (kubelite.api.*_pb2).

`Client` is synchronous (the CLI, tests); `AsyncClient` is for asyncio code
(controllers, the node agent). Both turn gRPC failures into APIStatusError
and, given several servers, move to the next one when a server is
unreachable.
"""

from __future__ import annotations

import asyncio
import json
import queue
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2

from kubelite.api import api_pb2, api_pb2_grpc, autoscaling_pb2, node_pb2, pod_pb2
from kubelite.client.config import ClientConfig
from kubelite.client.errors import APIStatusError
from kubelite.objects import kinds

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.max_send_message_length", 64 << 20),
    # A client cut off for a while (a partitioned node agent) retries its
    # connection at least every 5 s once the network is back, not up to 2 min.
    ("grpc.max_reconnect_backoff_ms", 5000),
]


def _pack(obj: Any) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(obj)
    return a


def unpack(a: any_pb2.Any) -> Any:
    if a.TypeName() == autoscaling_pb2.Scale.DESCRIPTOR.full_name:  # not a stored kind
        scale = autoscaling_pb2.Scale()
        a.Unpack(scale)
        return scale
    kind = kinds.by_message(a.TypeName())
    obj = kind.message()
    a.Unpack(obj)
    return obj


def _resource(resource: str) -> str:
    return kinds.by_resource(resource).resource


def _patch_text(patch: dict[str, Any] | str) -> str:
    return patch if isinstance(patch, str) else json.dumps(patch)


def _delete_request(resource: str, namespace: str, name: str, propagation_policy: str,
                    grace_period_seconds: int | None, precondition_uid: str,
                    dry_run: bool) -> api_pb2.DeleteRequest:
    req = api_pb2.DeleteRequest(resource=_resource(resource), namespace=namespace, name=name,
                                propagation_policy=propagation_policy,
                                precondition_uid=precondition_uid, dry_run=dry_run)
    if grace_period_seconds is not None:
        req.grace_period_seconds = grace_period_seconds
    return req


def _binding(namespace: str, name: str, node: str, uid: str) -> pod_pb2.Binding:
    b = pod_pb2.Binding(apiVersion="v1", kind="Binding")
    b.metadata.namespace, b.metadata.name, b.metadata.uid = namespace, name, uid
    b.target.kind, b.target.name = "Node", node
    return b


def _eviction(namespace: str, name: str, grace_period_seconds: int | None
              ) -> pod_pb2.Eviction:
    e = pod_pb2.Eviction(apiVersion="policy/v1", kind="Eviction")
    e.metadata.namespace, e.metadata.name = namespace, name
    if grace_period_seconds is not None:
        e.deleteOptions.gracePeriodSeconds = grace_period_seconds
    return e


def _logs_request(namespace: str, name: str, container: str, follow: bool, previous: bool,
                  tail_lines: int | None, timestamps: bool, since_seconds: int | None,
                  limit_bytes: int | None) -> node_pb2.LogsRequest:
    req = node_pb2.LogsRequest(namespace=namespace, name=name, container=container,
                               follow=follow, previous=previous, timestamps=timestamps)
    if tail_lines is not None:
        req.tail_lines = tail_lines
    if since_seconds is not None:
        req.since_seconds = since_seconds
    if limit_bytes is not None:
        req.limit_bytes = limit_bytes
    return req


class ExecSession:
    """A command running in a container (Client.exec). Iterate it for ExecOutput
    messages (stdout / stderr chunks; the last one carries exit_code, or error
    when the command could not run); meanwhile, from any thread, send stdin,
    close it, resize the terminal. `close()` ends the call.

    What is sent is a queue the gRPC call drains; the request stream stays open
    (for stdin and resizes) until `end_input()` or `close()`.
    """

    _END = object()

    def __init__(self, stub: api_pb2_grpc.APIStub, start: node_pb2.ExecStart,
                 metadata: list[tuple[str, str]]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._queue.put(node_pb2.ExecInput(start=start))
        self._call = stub.Exec(self._requests(), metadata=metadata)
        self._closed = False

    def _requests(self) -> Iterator[node_pb2.ExecInput]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item

    def send_stdin(self, data: bytes) -> None:
        if data:
            self._queue.put(node_pb2.ExecInput(stdin=data))

    def close_stdin(self) -> None:
        self._queue.put(node_pb2.ExecInput(stdin_close=True))

    def resize(self, width: int, height: int) -> None:
        self._queue.put(node_pb2.ExecInput(
            resize=node_pb2.TerminalSize(width=width, height=height)))

    def end_input(self) -> None:
        """Nothing more will be sent (no stdin, no resizes)."""
        self._queue.put(self._END)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.end_input()
            self._call.cancel()

    def __iter__(self) -> Iterator[node_pb2.ExecOutput]:
        try:
            yield from self._call
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.CANCELLED and self._closed:
                return
            raise APIStatusError.from_rpc(e) from None

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    def __init__(self, config: ClientConfig | None = None, *, server: str = "",
                 token: str = "", timeout: float = 30.0) -> None:
        cfg = config or ClientConfig()
        self.servers = [server] if server else list(cfg.servers)
        self.token = token or cfg.token
        self.timeout = timeout
        self._index = 0
        self._channel: grpc.Channel | None = None
        self._stub: api_pb2_grpc.APIStub | None = None

    @property
    def server(self) -> str:
        return self.servers[self._index]

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def _get_stub(self) -> api_pb2_grpc.APIStub:
        if self._stub is None:
            self._channel = grpc.insecure_channel(self.server, options=_OPTIONS)
            self._stub = api_pb2_grpc.APIStub(self._channel)
        return self._stub

    def _failover(self) -> bool:
        if len(self.servers) < 2:
            return False
        self.close()
        self._index = (self._index + 1) % len(self.servers)
        return True

    def _call(self, method: str, request: Any) -> Any:
        for attempt in range(len(self.servers)):
            try:
                return getattr(self._get_stub(), method)(
                    request, timeout=self.timeout, metadata=self._metadata())
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < len(self.servers) \
                        and self._failover():
                    continue
                raise APIStatusError.from_rpc(e) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- verbs --------------------------------------------------------------

    def create(self, obj: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.CreateRequest(object=_pack(obj), dry_run=dry_run)
        return unpack(self._call("Create", req).object)

    def get(self, resource: str, name: str, namespace: str = "") -> Any:
        req = api_pb2.GetRequest(resource=_resource(resource), namespace=namespace, name=name)
        return unpack(self._call("Get", req).object)

    def get_scale(self, resource: str, name: str, namespace: str = "") -> Any:
        """The autoscaling/v1 Scale of a Deployment, ReplicaSet, RC or StatefulSet."""
        req = api_pb2.GetRequest(resource=_resource(resource), namespace=namespace, name=name,
                                 subresource="scale")
        return unpack(self._call("Get", req).object)

    def update_scale(self, resource: str, scale: Any, *, dry_run: bool = False) -> Any:
        """Write scale.spec.replicas (compare-and-swap when it has a resourceVersion)."""
        req = api_pb2.UpdateRequest(object=_pack(scale), dry_run=dry_run, subresource="scale",
                                    resource=_resource(resource))
        return unpack(self._call("Update", req).object)

    def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
             field_selector: str = "") -> tuple[list[Any], str]:
        req = api_pb2.ListRequest(resource=_resource(resource), namespace=namespace,
                                  label_selector=label_selector, field_selector=field_selector)
        resp = self._call("List", req)
        return [unpack(a) for a in resp.items], resp.resource_version

    def update(self, obj: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.UpdateRequest(object=_pack(obj), dry_run=dry_run)
        return unpack(self._call("Update", req).object)

    def update_status(self, obj: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.UpdateRequest(object=_pack(obj), dry_run=dry_run)
        return unpack(self._call("UpdateStatus", req).object)

    def patch(self, resource: str, name: str, patch: dict[str, Any] | str, namespace: str = "",
              *, subresource: str = "", dry_run: bool = False) -> Any:
        req = api_pb2.PatchRequest(resource=_resource(resource), namespace=namespace, name=name,
                                   patch=_patch_text(patch), subresource=subresource,
                                   dry_run=dry_run)
        return unpack(self._call("Patch", req).object)

    def delete(self, resource: str, name: str, namespace: str = "", *,
               propagation_policy: str = "", grace_period_seconds: int | None = None,
               precondition_uid: str = "", dry_run: bool = False) -> Any:
        req = _delete_request(resource, namespace, name, propagation_policy,
                              grace_period_seconds, precondition_uid, dry_run)
        return unpack(self._call("Delete", req).object)

    def bind(self, namespace: str, name: str, node: str, *, uid: str = "",
             dry_run: bool = False) -> Any:
        """pods/binding: assign pod `name` to `node`; the bound Pod. `uid`: precondition."""
        return self.create(_binding(namespace, name, node, uid), dry_run=dry_run)

    def evict(self, namespace: str, name: str, *, grace_period_seconds: int | None = None,
              dry_run: bool = False) -> Any:
        """pods/eviction: the Pod, removed or marked for graceful deletion."""
        return self.create(_eviction(namespace, name, grace_period_seconds), dry_run=dry_run)

    def watch(self, resource: str, namespace: str = "", *, name: str = "",
              label_selector: str = "", field_selector: str = "", resource_version: str = "",
              allow_bookmarks: bool = False, timeout: float | None = None,
              ) -> Iterator[tuple[str, Any, str]]:
        """(type, object or None, resourceVersion) until the stream ends or times out."""
        req = api_pb2.WatchRequest(resource=_resource(resource), namespace=namespace, name=name,
                                   label_selector=label_selector, field_selector=field_selector,
                                   resource_version=resource_version,
                                   allow_bookmarks=allow_bookmarks)
        stream = self._get_stub().Watch(req, timeout=timeout, metadata=self._metadata())
        try:
            for ev in stream:
                obj = unpack(ev.object) if ev.object.type_url else None
                yield ev.type, obj, ev.resource_version
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and timeout is not None:
                return
            if e.code() == grpc.StatusCode.CANCELLED:
                return
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                # the caller resumes from its last resourceVersion: on the next server
                self._failover()
            raise APIStatusError.from_rpc(e) from None
        finally:
            stream.cancel()

    def discovery(self) -> api_pb2.DiscoveryResponse:
        return self._call("Discovery", api_pb2.DiscoveryRequest())

    def logs(self, namespace: str, name: str, container: str = "", *, follow: bool = False,
             previous: bool = False, tail_lines: int | None = None, timestamps: bool = False,
             since_seconds: int | None = None, limit_bytes: int | None = None
             ) -> Iterator[bytes]:
        """pods/log: a container's output, as it arrives with `follow` (until the
        container stops or the iterator is closed)."""
        req = _logs_request(namespace, name, container, follow, previous, tail_lines,
                            timestamps, since_seconds, limit_bytes)
        for attempt in range(len(self.servers)):
            stream = self._get_stub().Logs(req, timeout=None if follow else self.timeout,
                                           metadata=self._metadata())
            received = False
            try:
                for chunk in stream:
                    received = True
                    yield chunk.data
                return
            except grpc.RpcError as e:
                err = APIStatusError.from_rpc(e)
                if not received and not err.from_server and attempt + 1 < len(self.servers) \
                        and e.code() == grpc.StatusCode.UNAVAILABLE and self._failover():
                    continue
                raise err from None
            finally:
                stream.cancel()

    def exec(self, namespace: str, name: str, command: Sequence[str], container: str = "", *,
             stdin: bool = False, tty: bool = False) -> ExecSession:
        """pods/exec: run `command` in a container; see ExecSession."""
        start = node_pb2.ExecStart(namespace=namespace, name=name, container=container,
                                   command=command, stdin=stdin, tty=tty)
        return ExecSession(self._get_stub(), start, self._metadata())


class AsyncClient:
    def __init__(self, config: ClientConfig | None = None, *, server: str = "",
                 token: str = "", timeout: float = 30.0) -> None:
        cfg = config or ClientConfig()
        self.servers = [server] if server else list(cfg.servers)
        self.token = token or cfg.token
        self.timeout = timeout
        self._index = 0
        self._channel: grpc.aio.Channel | None = None
        self._stub: api_pb2_grpc.APIStub | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._retired: set[grpc.aio.Channel] = set()

    def _metadata(self) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {self.token}")] if self.token else []

    def _get_stub(self) -> api_pb2_grpc.APIStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.servers[self._index], options=_OPTIONS)
            self._stub = api_pb2_grpc.APIStub(self._channel)
        return self._stub

    def _failover(self, stub: api_pb2_grpc.APIStub) -> None:
        """Move to the next server after `stub` failed with UNAVAILABLE.

        Calls run concurrently on one channel: only the first failure of the
        current stub moves on (others that failed on it retry the new one),
        and the old channel is closed after a grace period rather than at
        once, so calls still working on it are not cut short.
        """
        if len(self.servers) < 2 or stub is not self._stub:
            return
        old = self._channel
        self._channel, self._stub = None, None
        self._index = (self._index + 1) % len(self.servers)
        if old is not None:
            self._retired.add(old)
            task = asyncio.get_running_loop().create_task(self._retire(old))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _retire(self, channel: grpc.aio.Channel) -> None:
        await channel.close(grace=60)
        self._retired.discard(channel)

    async def _call(self, method: str, request: Any) -> Any:
        for attempt in range(len(self.servers)):
            stub = self._get_stub()
            try:
                return await getattr(stub, method)(
                    request, timeout=self.timeout, metadata=self._metadata())
            except grpc.aio.AioRpcError as e:
                if e.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < len(self.servers):
                    self._failover(stub)
                    continue
                raise APIStatusError.from_rpc(e) from None
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        for channel in list(self._retired):
            await channel.close()
        self._retired.clear()
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None

    async def create(self, obj: Any, *, dry_run: bool = False) -> Any:
        resp = await self._call("Create", api_pb2.CreateRequest(object=_pack(obj),
                                                                dry_run=dry_run))
        return unpack(resp.object)

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        req = api_pb2.GetRequest(resource=_resource(resource), namespace=namespace, name=name)
        return unpack((await self._call("Get", req)).object)

    async def get_scale(self, resource: str, name: str, namespace: str = "") -> Any:
        req = api_pb2.GetRequest(resource=_resource(resource), namespace=namespace, name=name,
                                 subresource="scale")
        return unpack((await self._call("Get", req)).object)

    async def update_scale(self, resource: str, scale: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.UpdateRequest(object=_pack(scale), dry_run=dry_run, subresource="scale",
                                    resource=_resource(resource))
        return unpack((await self._call("Update", req)).object)

    async def list(self, resource: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Any], str]:
        req = api_pb2.ListRequest(resource=_resource(resource), namespace=namespace,
                                  label_selector=label_selector, field_selector=field_selector)
        resp = await self._call("List", req)
        return [unpack(a) for a in resp.items], resp.resource_version

    async def update(self, obj: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.UpdateRequest(object=_pack(obj), dry_run=dry_run)
        return unpack((await self._call("Update", req)).object)

    async def update_status(self, obj: Any, *, dry_run: bool = False) -> Any:
        req = api_pb2.UpdateRequest(object=_pack(obj), dry_run=dry_run)
        return unpack((await self._call("UpdateStatus", req)).object)

    async def patch(self, resource: str, name: str, patch: dict[str, Any] | str,
                    namespace: str = "", *, subresource: str = "") -> Any:
        req = api_pb2.PatchRequest(resource=_resource(resource), namespace=namespace, name=name,
                                   patch=_patch_text(patch), subresource=subresource)
        return unpack((await self._call("Patch", req)).object)

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     propagation_policy: str = "", grace_period_seconds: int | None = None,
                     precondition_uid: str = "", dry_run: bool = False) -> Any:
        req = _delete_request(resource, namespace, name, propagation_policy,
                              grace_period_seconds, precondition_uid, dry_run)
        return unpack((await self._call("Delete", req)).object)

    async def bind(self, namespace: str, name: str, node: str, *, uid: str = "",
                   dry_run: bool = False) -> Any:
        """pods/binding: assign pod `name` to `node`; the bound Pod. `uid`: precondition."""
        return await self.create(_binding(namespace, name, node, uid), dry_run=dry_run)

    async def evict(self, namespace: str, name: str, *,
                    grace_period_seconds: int | None = None, dry_run: bool = False) -> Any:
        """pods/eviction: the Pod, removed or marked for graceful deletion."""
        return await self.create(_eviction(namespace, name, grace_period_seconds),
                                 dry_run=dry_run)

    async def watch(self, resource: str, namespace: str = "", *, name: str = "",
                    label_selector: str = "", field_selector: str = "",
                    resource_version: str = "", allow_bookmarks: bool = False,
                    ) -> AsyncIterator[tuple[str, Any, str]]:
        req = api_pb2.WatchRequest(resource=_resource(resource), namespace=namespace, name=name,
                                   label_selector=label_selector, field_selector=field_selector,
                                   resource_version=resource_version,
                                   allow_bookmarks=allow_bookmarks)
        stub = self._get_stub()
        call = stub.Watch(req, metadata=self._metadata())
        try:
            async for ev in call:
                obj = unpack(ev.object) if ev.object.type_url else None
                yield ev.type, obj, ev.resource_version
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                # the caller resumes from its last resourceVersion: on the next server
                self._failover(stub)
            raise APIStatusError.from_rpc(e) from None
        finally:
            call.cancel()
