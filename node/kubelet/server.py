"""The node agent's own gRPC endpoint (service kubelite.v1.NodeAgent): container
logs and exec, what the kubelet's streaming server does for `kubectl logs` and
`kubectl exec`. The master proxies the API's Logs and Exec calls here, filling
in the pod's uid; a direct caller may leave it empty and name the pod only.

A pod is resolved from the request's uid, else from the agent's pod cache
(`pod_lookup`), else from the namespace/name labels of this node's containers.
Which container: the one named, or the pod's only app container when none is
named (with several, an error listing them, worded as Kubernetes does).

The docker SDK blocks, so docker's streams are read by a thread feeding an
asyncio queue; when the caller hangs up, the stream's socket is closed, which
ends the thread.

Errors are gRPC statuses (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION)
with Kubernetes' reason in trailing metadata (`kubelite-reason`), which the
master passes on, so the CLI prints them as kubectl would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import docker.errors
import grpc

from kubelite.api import node_pb2, node_pb2_grpc
from kubelite.client.errors import REASON_KEY
from kubelite.objects import containers
from node.kubelet.runtime import SANDBOX, ContainerInfo, Runtime

log = logging.getLogger(__name__)

PodLookup = Callable[[str, str], Any]

_CHUNK = 1 << 20  # the most bytes one LogChunk carries
_QUEUE_SIZE = 64  # chunks a stream reader may run ahead of a slow caller
_EOF = object()
# Docker writes an exec that could not start (no such executable, permission
# denied) to the exec's output and exits 126 or 127.
_START_FAILED = b"OCI runtime"


class StreamError(Exception):
    """Ends a call with a gRPC status; `reason` is Kubernetes' status reason."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message


def _not_found(message: str, reason: str = "NotFound") -> StreamError:
    return StreamError(grpc.StatusCode.NOT_FOUND, reason, message)


def _bad_request(message: str) -> StreamError:
    return StreamError(grpc.StatusCode.INVALID_ARGUMENT, "BadRequest", message)


async def _abort(context: grpc.aio.ServicerContext, err: StreamError) -> None:
    context.set_trailing_metadata(((REASON_KEY, err.reason),))
    await context.abort(err.code, err.message)


@dataclass
class Target:
    """A resolved container request: whose, which, and the pod spec if known."""

    namespace: str
    pod_name: str
    pod_uid: str
    container: str
    pod: Any = None  # the Pod from the agent's cache, when it is this incarnation


class _ThreadFeed:
    """Runs a blocking producer in a thread, handing its items to an asyncio queue
    (bounded: the thread waits for a slow consumer). `stop()` asks the thread to
    end; the producer's blocking read is ended by its owner (closing a socket)."""

    def __init__(self, name: str, produce: Callable[[Callable[[Any], bool]], None],
                 registry: set[threading.Thread]) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_SIZE)
        self.stopped = threading.Event()
        self._produce = produce
        self._registry = registry
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._registry.add(self.thread)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        """Hand one item over; False once the consumer has gone."""
        if self.stopped.is_set():
            return False
        try:
            fut = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        except RuntimeError:  # the loop is closed
            return False
        while True:
            try:
                fut.result(timeout=0.25)
                return True
            except concurrent.futures.TimeoutError:
                if self.stopped.is_set():
                    fut.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    def _run(self) -> None:
        try:
            self._produce(self._put)
        except Exception as e:  # noqa: BLE001 - handed to the consumer
            if not self.stopped.is_set():
                self._put(e)
        finally:
            self._put(_EOF)
            self._registry.discard(self.thread)

    async def get(self) -> Any:
        return await self.queue.get()

    def stop(self) -> None:
        self.stopped.set()


def _shutdown(sock: socket.socket | None, how: int = socket.SHUT_RDWR) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(how)


def _demux(read: Callable[[], bytes], put: Callable[[Any], bool]) -> None:
    """Docker's multiplexed stream (no tty): frames of an 8-byte header (stream
    type, 3 zero bytes, big-endian payload length) and the payload."""
    buf = b""
    while True:
        data = read()
        if not data:
            break
        buf += data
        while len(buf) >= 8:
            kind, size = struct.unpack(">BxxxL", buf[:8])
            if len(buf) < 8 + size:
                break
            payload, buf = buf[8:8 + size], buf[8 + size:]
            out = (node_pb2.ExecOutput(stderr=payload) if kind in (2, 3)
                   else node_pb2.ExecOutput(stdout=payload))
            if payload and not put(out):
                return
    if buf[8:]:  # a truncated last frame: deliver what there is
        put(node_pb2.ExecOutput(stdout=buf[8:]))


class NodeAgentService(node_pb2_grpc.NodeAgentServicer):
    def __init__(self, runtime: Runtime, pod_lookup: PodLookup | None = None) -> None:
        self.runtime = runtime
        self.pod_lookup = pod_lookup
        # Threads reading docker streams for calls in progress.
        self.stream_threads: set[threading.Thread] = set()

    # ---- resolving pods and containers ---------------------------------------

    async def _target(self, namespace: str, name: str, pod_uid: str, container: str
                      ) -> Target:
        namespace = namespace or "default"
        if not name:
            raise _bad_request("pod name is required")
        pod = None
        if self.pod_lookup is not None:
            pod = self.pod_lookup(namespace, name)
            if pod is not None and pod_uid and pod.metadata.uid != pod_uid:
                pod = None  # the cache holds another incarnation of the name
        uid = pod_uid or (pod.metadata.uid if pod is not None else "")
        return await asyncio.to_thread(self._resolve, namespace, name, uid, container, pod)

    def _resolve(self, namespace: str, name: str, uid: str, container: str, pod: Any
                 ) -> Target:
        if uid:
            runs = self.runtime.list(uid)
        else:
            runs = self._by_labels(namespace, name)
            uid = runs[0].pod_uid if runs else ""
        if pod is None and not runs:
            raise _not_found(f'pod "{name}" not found on node "{self.runtime.node_name}"')
        if pod is not None:
            apps = [c.name for c in pod.spec.containers]
            inits = [c.name for c in pod.spec.initContainers]
            others = [c.name for c in pod.spec.ephemeralContainers]
        else:
            apps = sorted({c.container for c in runs if c.type == "app"})
            inits = sorted({c.container for c in runs if c.type == "init"})
            others = sorted({c.container for c in runs
                             if c.type not in ("app", "init", "sandbox")
                             and c.container != SANDBOX})
        try:
            chosen = containers.choose(name, apps, inits, others, container)
        except containers.ContainerChoiceError as e:
            raise _bad_request(str(e)) from None
        return Target(namespace, name, uid, chosen, pod)

    def _by_labels(self, namespace: str, name: str) -> list[ContainerInfo]:
        """This node's containers of the pod namespace/name, of one incarnation:
        the one with something running, else any."""
        runs = [c for c in self.runtime.list()
                if c.pod_namespace == namespace and c.pod_name == name]
        uids = sorted({c.pod_uid for c in runs},
                      key=lambda u: not any(c.running for c in runs if c.pod_uid == u))
        return [c for c in runs if uids and c.pod_uid == uids[0]]

    async def _container(self, target: Target, *, previous: bool = False) -> ContainerInfo:
        info = await asyncio.to_thread(self.runtime.find, target.pod_uid, target.container,
                                       previous=previous)
        if info is not None:
            return info
        if previous:
            raise _not_found(f'previous terminated container "{target.container}" in pod '
                             f'"{target.pod_name}" not found', "BadRequest")
        if target.pod is not None:
            raise StreamError(grpc.StatusCode.NOT_FOUND, "BadRequest",
                              f'container "{target.container}" in pod "{target.pod_name}" '
                              "is waiting to start: ContainerCreating")
        raise _not_found(f'container "{target.container}" in pod "{target.pod_name}" '
                         "not found")

    # ---- Logs ---------------------------------------------------------------------

    async def Logs(self, request: node_pb2.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[node_pb2.LogChunk]:
        try:
            kwargs = _log_options(request)
            target = await self._target(request.namespace, request.name, request.pod_uid,
                                        request.container)
            info = await self._container(target, previous=request.previous)
        except StreamError as err:
            await _abort(context, err)
            return
        except Exception as e:  # noqa: BLE001 - docker unreachable, ...
            await _abort(context, _internal("logs", e))
            return
        limit = request.limit_bytes if request.HasField("limit_bytes") else None
        sent = 0
        chunks: AsyncGenerator[bytes, None] | None = None
        try:
            if request.follow:
                chunks = self._follow(info.id, kwargs)
            else:
                chunks = _once(await asyncio.to_thread(
                    self.runtime.api.logs, info.id, stream=False, **kwargs))
            async for data in chunks:
                if limit is not None:
                    data = data[:limit - sent]
                for i in range(0, len(data), _CHUNK):
                    yield node_pb2.LogChunk(data=data[i:i + _CHUNK])
                sent += len(data)
                if limit is not None and sent >= limit:
                    break
        except docker.errors.NotFound:  # removed while we read
            await _abort(context, _not_found(
                f'container "{target.container}" in pod "{target.pod_name}" not found'))
        except (docker.errors.DockerException, OSError) as e:
            await _abort(context, _internal("logs", e))
        finally:
            if chunks is not None:
                await chunks.aclose()  # ends a follow's thread

    async def _follow(self, container_id: str, kwargs: dict[str, Any]
                      ) -> AsyncGenerator[bytes, None]:
        stream = await asyncio.to_thread(self.runtime.api.logs, container_id, stream=True,
                                         follow=True, **kwargs)

        def produce(put: Callable[[Any], bool]) -> None:
            for chunk in stream:
                if not put(chunk):
                    return

        feed = _ThreadFeed(f"logs-{container_id[:12]}", produce, self.stream_threads)
        feed.start()
        try:
            while True:
                item = await feed.get()
                if item is _EOF:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            feed.stop()
            with contextlib.suppress(Exception):
                stream.close()  # shuts the socket down: the reading thread ends

    # ---- Exec ---------------------------------------------------------------------

    async def Exec(self, request_iterator: AsyncIterator[node_pb2.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[node_pb2.ExecOutput]:
        requests = request_iterator.__aiter__()
        try:
            first = await anext(requests, None)
            if first is None or not first.HasField("start"):
                raise _bad_request("exec: the first message must carry start")
            start = first.start
            if not start.command:
                raise _bad_request("you must specify at least one command for the container")
            target = await self._target(start.namespace, start.name, start.pod_uid,
                                        start.container)
            info = await self._container(target)
            if not info.running:
                raise _not_running(target.container)
            exec_id, sock = await asyncio.to_thread(self._exec_start, info.id, start,
                                                    target.container)
        except StreamError as err:
            await _abort(context, err)
            return
        except Exception as e:  # noqa: BLE001 - docker unreachable, ...
            await _abort(context, _internal("exec", e))
            return
        api = self.runtime.api
        tty, stdin = start.tty, start.stdin
        stdin_closed = False

        async def close_stdin() -> None:
            nonlocal stdin_closed
            if not stdin or stdin_closed:
                return
            stdin_closed = True
            if tty:
                # Docker detaches a terminal's output when its input ends: send the
                # terminal's end-of-file character instead, as a keyboard would.
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(sock.sendall, b"\x04")
            else:
                _shutdown(sock, socket.SHUT_WR)

        async def handle(msg: node_pb2.ExecInput) -> None:
            if msg.stdin and stdin and not stdin_closed:
                try:
                    await asyncio.to_thread(sock.sendall, msg.stdin)
                except OSError:  # the command has gone
                    await close_stdin()
            if msg.HasField("resize") and tty and msg.resize.width and msg.resize.height:
                with contextlib.suppress(docker.errors.APIError):
                    await asyncio.to_thread(api.exec_resize, exec_id,
                                            height=msg.resize.height, width=msg.resize.width)
            if msg.stdin_close:
                await close_stdin()

        async def pump_input() -> None:
            await handle(first)
            async for msg in requests:
                await handle(msg)
            await close_stdin()  # the caller sends no more

        def produce(put: Callable[[Any], bool]) -> None:
            def read() -> bytes:
                try:
                    return sock.recv(65536)
                except OSError:
                    return b""
            if tty:
                while data := read():
                    if not put(node_pb2.ExecOutput(stdout=data)):
                        return
            else:
                _demux(read, put)

        feed = _ThreadFeed(f"exec-{exec_id[:12]}", produce, self.stream_threads)
        feed.start()
        pump = asyncio.create_task(pump_input())
        try:
            held = b""  # what may be docker's "could not start" message
            first_output = True
            while (item := await feed.get()) is not _EOF:
                if isinstance(item, Exception):
                    raise item
                if first_output and item.stdout.startswith(_START_FAILED):
                    held, first_output = item.stdout, False
                    continue
                first_output = False
                if held:
                    yield node_pb2.ExecOutput(stdout=held)
                    held = b""
                yield item
            state = await self._exec_finished(exec_id)
            code = int(state.get("ExitCode") or 0)
            if held and not state.get("Pid"):
                yield node_pb2.ExecOutput(error=held.decode(errors="replace").strip(),
                                          exit_code=code or 126)
                return
            if held:
                yield node_pb2.ExecOutput(stdout=held)
            yield node_pb2.ExecOutput(exit_code=code)
        except (docker.errors.DockerException, OSError) as e:
            await _abort(context, _internal("exec", e))
        finally:
            feed.stop()
            pump.cancel()
            _shutdown(sock)
            with contextlib.suppress(OSError):
                sock.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    def _exec_start(self, container_id: str, start: node_pb2.ExecStart, name: str
                    ) -> tuple[str, socket.socket]:
        api = self.runtime.api
        try:
            exec_id = api.exec_create(container_id, list(start.command), stdout=True,
                                      stderr=True, stdin=start.stdin, tty=start.tty)["Id"]
            conn = api.exec_start(exec_id, tty=start.tty, socket=True)
        except docker.errors.NotFound:
            raise _not_found(f'container "{name}" not found') from None
        except docker.errors.APIError as e:
            if e.status_code == 409:  # not running, or paused
                raise _not_running(name) from None
            raise _internal("exec", e) from None
        sock = getattr(conn, "_sock", conn)  # the SDK hands back a SocketIO
        return str(exec_id), sock

    async def _exec_finished(self, exec_id: str) -> dict[str, Any]:
        """exec_inspect once the command has ended (its output can end first)."""
        delay = 0.01
        while True:
            state = await asyncio.to_thread(self.runtime.api.exec_inspect, exec_id)
            if not state.get("Running"):
                return dict(state)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


def _internal(what: str, e: Exception) -> StreamError:
    log.warning("%s failed: %s", what, e)
    detail = getattr(e, "explanation", None) or str(e) or type(e).__name__
    return StreamError(grpc.StatusCode.INTERNAL, "InternalError", f"{what}: {detail}")


def _not_running(container: str) -> StreamError:
    return StreamError(grpc.StatusCode.FAILED_PRECONDITION, "BadRequest",
                       f"container {container} is not running")


def _log_options(request: node_pb2.LogsRequest) -> dict[str, Any]:
    """The docker SDK's logs() arguments for a request (validated as Kubernetes does)."""
    kwargs: dict[str, Any] = {"stdout": True, "stderr": True,
                              "timestamps": request.timestamps, "tail": "all"}
    if request.HasField("tail_lines"):
        if request.tail_lines < 0:
            raise _bad_request("tailLines: Invalid value: "
                               f"{request.tail_lines}: must be greater than or equal to 0")
        kwargs["tail"] = request.tail_lines
    if request.HasField("since_seconds"):
        if request.since_seconds < 1:
            raise _bad_request(f"sinceSeconds: Invalid value: {request.since_seconds}: "
                               "must be greater than 0")
        kwargs["since"] = max(1, int(time.time()) - request.since_seconds)
    if request.HasField("limit_bytes") and request.limit_bytes < 1:
        raise _bad_request(f"limitBytes: Invalid value: {request.limit_bytes}: "
                           "must be greater than 0")
    return kwargs


async def _once(data: bytes) -> AsyncGenerator[bytes, None]:
    if data:
        yield data


async def serve(service: NodeAgentService, address: str) -> tuple[grpc.aio.Server, int]:
    """Start a gRPC server for `service` on address ("host:port", port 0: any);
    returns it, started, and the port it listens on."""
    server = grpc.aio.server(options=[("grpc.max_send_message_length", 64 << 20),
                                      ("grpc.max_receive_message_length", 64 << 20)])
    node_pb2_grpc.add_NodeAgentServicer_to_server(service, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    return server, port
