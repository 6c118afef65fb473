"""Probes (liveness, readiness, startup) and lifecycle hooks.

One ProbeWorker per probe per container run, as in the kubelet: it waits
initialDelaySeconds, then probes every periodSeconds with timeoutSeconds,
and flips its result after successThreshold successes / failureThreshold
failures in a row. Until the startup probe succeeds, liveness and readiness
are not run. A readiness result starts as failure; liveness and startup as
success (so a container is not killed before its first probe).

Handlers: exec (in the container), httpGet (2xx and 3xx succeed), tcpSocket
(a connection is made). The pod worker reads `result` and is woken through
`on_change` when a result flips.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kubelite.objects.convert import int_or_string_value

log = logging.getLogger(__name__)


def resolve_port(port: Any, container: Any) -> int:
    value = int_or_string_value(port)
    if isinstance(value, int):
        return value
    for p in container.ports:
        if p.name == value:
            return int(p.containerPort)
    raise ValueError(f'port "{value}" is not a named port of container "{container.name}"')


async def http_get(action: Any, host: str, container: Any, timeout: float) -> tuple[bool, str]:
    port = resolve_port(action.port, container)
    host = action.host or host
    path = action.path or "/"
    headers = "".join(f"{h.name}: {h.value}\r\n" for h in action.httpHeaders)
    if action.scheme.upper() == "HTTPS":
        return False, "HTTPS probes are not supported"
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return False, f'Get "http://{host}:{port}{path}": {_describe(e)}'
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kubelite-probe"
                     f"\r\nAccept: */*\r\nConnection: close\r\n{headers}\r\n".encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as e:
        return False, f'Get "http://{host}:{port}{path}": {_describe(e)}'
    finally:
        writer.close()
    parts = line.decode(errors="replace").split()
    if len(parts) < 2 or not parts[1].isdigit():
        return False, f'Get "http://{host}:{port}{path}": malformed HTTP response'
    code = int(parts[1])
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def tcp_socket(action: Any, host: str, container: Any, timeout: float) -> tuple[bool, str]:
    port = resolve_port(action.port, container)
    host = action.host or host
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return False, f"dial tcp {host}:{port}: {_describe(e)}"
    writer.close()
    return True, ""


def _describe(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return "i/o timeout"
    if isinstance(e, ConnectionRefusedError):
        return "connect: connection refused"
    return str(e) or type(e).__name__


async def run_handler(handler: Any, *, runtime: Any, container_id: str, host: str,
                      container: Any, timeout: float) -> tuple[bool, str]:
    """Run an exec/httpGet/tcpSocket handler once: (succeeded, message)."""
    try:
        if handler.HasField("exec"):
            cmd = list(handler.exec.command)
            try:
                code, out = await asyncio.wait_for(
                    asyncio.to_thread(runtime.exec_run, container_id, cmd), timeout)
            except TimeoutError:
                return False, f"command {cmd!r} timed out"
            if code != 0:
                text = out.decode(errors="replace").strip()
                return False, text or f"command {cmd!r} exited with {code}"
            return True, ""
        if handler.HasField("httpGet"):
            return await http_get(handler.httpGet, host, container, timeout)
        if handler.HasField("tcpSocket"):
            return await tcp_socket(handler.tcpSocket, host, container, timeout)
        if handler.DESCRIPTOR.fields_by_name.get("sleep") and handler.HasField("sleep"):
            await asyncio.sleep(handler.sleep.seconds)
            return True, ""
    except Exception as e:  # noqa: BLE001 - a probe error is a probe failure
        return False, str(e)
    return False, "no handler"


class ProbeWorker:
    def __init__(self, kind: str, probe: Any, *, runtime: Any, container_id: str,
                 container: Any, host: Callable[[], str],
                 on_change: Callable[[ProbeWorker, str], None],
                 gate: Callable[[], bool] | None = None) -> None:
        self.kind = kind  # "liveness", "readiness" or "startup"
        self.probe = probe
        self.runtime = runtime
        self.container_id = container_id
        self.container = container
        self.host = host
        self.on_change = on_change
        self.gate = gate  # liveness/readiness wait for the startup probe
        self.result = kind != "readiness"
        self.failures = 0
        self.successes = 0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _run(self) -> None:
        p = self.probe
        await asyncio.sleep(p.initialDelaySeconds)
        period = max(1, p.periodSeconds or 10)
        while True:
            if self.gate is None or self.gate():
                ok, message = await run_handler(
                    p, runtime=self.runtime, container_id=self.container_id,
                    host=self.host(), container=self.container,
                    timeout=max(1, p.timeoutSeconds or 1))
                self._record(ok, message)
                if self.kind == "startup" and self.result:
                    return  # a startup probe stops once it has succeeded
            await asyncio.sleep(period)

    def _record(self, ok: bool, message: str) -> None:
        p = self.probe
        if ok:
            self.successes += 1
            self.failures = 0
            if not self.result and self.successes >= max(1, p.successThreshold or 1):
                self.result = True
                self.on_change(self, "")
        else:
            self.failures += 1
            self.successes = 0
            if self.result and self.failures >= max(1, p.failureThreshold or 3):
                self.result = False
            self.on_change(self, message)  # every failure is an Unhealthy event
