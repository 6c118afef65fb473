"""pods/log and pods/exec: the API server proxies them to the node agent that
runs the pod, as Kubernetes' API server does to the kubelet.

The pod is read from the registry and must be assigned to a node; the
container is checked against (or defaulted from) its spec; the node is dialled
at its InternalIP (else Hostname) on status.daemonEndpoints.kubeletEndpoint.Port.
The request goes on with the pod's uid filled in, both directions of an exec
are relayed, and the call to the node is cancelled when the caller goes away.
A node that cannot be reached is UNAVAILABLE naming it; the node agent's own
errors come back with their code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kubelite.api import node_pb2, node_pb2_grpc
from kubelite.objects import containers
from kubelite.objects.kinds import by_resource
from master.apiserver import errors
from master.apiserver.registry import Registry

CONNECT_TIMEOUT = 10.0  # seconds to reach a node agent before giving up
_OPTIONS = [("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)]
_REASONS = {
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.INVALID_ARGUMENT: "BadRequest",
    grpc.StatusCode.FAILED_PRECONDITION: "BadRequest",
    grpc.StatusCode.UNAVAILABLE: "ServiceUnavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "Timeout",
}


def node_address(node: Any) -> str:
    """host:port of a node's agent: InternalIP, else Hostname, and the kubelet port."""
    name = node.metadata.name
    by_type: dict[str, str] = {}
    for a in node.status.addresses:
        by_type.setdefault(a.type, a.address)
    host = by_type.get("InternalIP") or by_type.get("Hostname")
    if not host:
        known = [f"{a.type}:{a.address}" for a in node.status.addresses]
        raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable",
                              f'node "{name}": no preferred addresses found; '
                              f"known addresses: [{' '.join(known)}]")
    port = node.status.daemonEndpoints.kubeletEndpoint.Port
    if port <= 0:
        raise errors.ApiError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable",
                              f'node "{name}" reports no kubelet port')
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    return f"{host}:{port}"


async def _target(registry: Registry, namespace: str, name: str, container: str
                  ) -> tuple[Any, str, str, str]:
    """(pod, container, node name, node address) for a request about a pod."""
    pod = await registry.get(by_resource("pods"), namespace, name)
    node_name = pod.spec.nodeName
    if not node_name:
        raise errors.bad_request(f"pod {pod.metadata.name} does not have a host assigned")
    try:
        chosen = containers.choose_in_pod(pod, container)
    except containers.ContainerChoiceError as e:
        raise errors.bad_request(str(e)) from None
    node = await registry.get(by_resource("nodes"), "", node_name)
    return pod, chosen, node_name, node_address(node)


def _unreachable(node: str, address: str, detail: str) -> errors.ApiError:
    return errors.ApiError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable",
                           f'error dialing backend: node "{node}" at {address} is '
                           f"unreachable: {detail}")


async def _connect(channel: grpc.aio.Channel, node: str, address: str) -> None:
    """Wait until the channel is connected; fail fast when the node refuses."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state in (grpc.ChannelConnectivity.TRANSIENT_FAILURE,
                     grpc.ChannelConnectivity.SHUTDOWN):
            raise _unreachable(node, address, "connection refused")
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except TimeoutError:
            raise _unreachable(node, address,
                               f"no connection in {CONNECT_TIMEOUT:g}s") from None
        state = channel.get_state(try_to_connect=True)


def _upstream_error(e: grpc.aio.AioRpcError, node: str, address: str) -> errors.ApiError:
    """The node agent's status, passed on (its reason too)."""
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return _unreachable(node, address, e.details() or "unavailable")
    reason = ""
    for key, value in e.trailing_metadata() or ():
        if key == errors.REASON_KEY:
            reason = str(value)
    return errors.ApiError(e.code(), reason or _REASONS.get(e.code(), "InternalError"),
                           e.details() or "")


async def logs(registry: Registry, request: node_pb2.LogsRequest
               ) -> AsyncIterator[node_pb2.LogChunk]:
    pod, container, node, address = await _target(registry, request.namespace, request.name,
                                                   request.container)
    forward = node_pb2.LogsRequest()
    forward.CopyFrom(request)
    forward.namespace, forward.container = pod.metadata.namespace, container
    forward.pod_uid = pod.metadata.uid
    async with grpc.aio.insecure_channel(address, options=_OPTIONS) as channel:
        await _connect(channel, node, address)
        call = node_pb2_grpc.NodeAgentStub(channel).Logs(forward)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise _upstream_error(e, node, address) from None
        finally:
            call.cancel()


async def exec_(registry: Registry, requests: AsyncIterator[node_pb2.ExecInput]
                ) -> AsyncIterator[node_pb2.ExecOutput]:
    it = requests.__aiter__()
    first = await anext(it, None)
    if first is None or not first.HasField("start"):
        raise errors.bad_request("exec: the first message must carry start")
    start = first.start
    if not start.command:
        raise errors.bad_request("you must specify at least one command for the container")
    pod, container, node, address = await _target(registry, start.namespace, start.name,
                                                   start.container)
    forward = node_pb2.ExecInput()
    forward.CopyFrom(first)
    forward.start.namespace, forward.start.container = pod.metadata.namespace, container
    forward.start.pod_uid = pod.metadata.uid

    async def upstream_requests() -> AsyncIterator[node_pb2.ExecInput]:
        yield forward
        async for msg in it:
            yield msg

    async with grpc.aio.insecure_channel(address, options=_OPTIONS) as channel:
        await _connect(channel, node, address)
        call = node_pb2_grpc.NodeAgentStub(channel).Exec(upstream_requests())
        try:
            async for out in call:
                yield out
        except grpc.aio.AioRpcError as e:
            raise _upstream_error(e, node, address) from None
        finally:
            call.cancel()
