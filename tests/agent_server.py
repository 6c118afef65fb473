"""A node agent's gRPC server (logs, exec) in this process, and Docker containers
shaped like a pod's, for tests that need real containers but no full agent.

Every container made here carries the node-name label of its `Runtime` (a
unique name per test), and `containers_removed` removes all of them, whatever
happened in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from kubelite.api import pod_pb2
from node.kubelet.runtime import (
    LABEL_NODE,
    LABEL_POD_UID,
    PAUSE_IMAGE,
    SANDBOX,
    Runtime,
    container_name,
)
from node.kubelet.server import NodeAgentService, serve

BUSYBOX = "kubelite/busybox:latest"


def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"docker is not available: {e}")
    for image in (BUSYBOX, PAUSE_IMAGE):
        try:
            client.api.inspect_image(image)
        except docker.errors.ImageNotFound:
            pytest.skip(f"image {image} is missing: run hack/build-images.sh")
    return client


@contextlib.contextmanager
def node_runtime() -> Iterator[Runtime]:
    """A Runtime for a node name of its own; every container labelled with it is
    removed at the end."""
    client = docker_client()
    runtime = Runtime("test-node-" + uuid.uuid4().hex[:10], client)
    try:
        yield runtime
    finally:
        remove_node_containers(client, runtime.node_name)
        client.close()


def remove_node_containers(client: docker.DockerClient, node_name: str,
                           pod_uid: str = "") -> None:
    """Remove the containers labelled with node_name (and pod_uid, if given)."""
    labels = [f"{LABEL_NODE}={node_name}"] + ([f"{LABEL_POD_UID}={pod_uid}"] if pod_uid else [])
    for c in client.api.containers(all=True, filters={"label": labels}):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(c["Id"], force=True)


class FakePod:
    """Creates a pod's containers the way the node agent lays them out: a pause
    sandbox, then app (or init) containers joined to its namespaces."""

    def __init__(self, runtime: Runtime, name: str = "", namespace: str = "default",
                 uid: str = "") -> None:
        self.runtime = runtime
        self.pod = pod_pb2.Pod()
        self.pod.metadata.name = name or "pod-" + uuid.uuid4().hex[:6]
        self.pod.metadata.namespace = namespace
        self.pod.metadata.uid = uid or str(uuid.uuid4())
        self.sandbox = ""

    @property
    def name(self) -> str:
        return self.pod.metadata.name

    @property
    def uid(self) -> str:
        return self.pod.metadata.uid

    def start_sandbox(self) -> str:
        labels = self.runtime.labels(self.pod, SANDBOX, "sandbox", 0)
        cid = self.runtime.create(container_name(self.pod, SANDBOX, 0),
                                  self.runtime.pause_image, labels,
                                  host_config={"ipc_mode": "shareable"})
        self.runtime.start(cid)
        self.sandbox = cid
        return cid

    def run(self, container: str, script: str, *, attempt: int = 0, type_: str = "app",
            tty: bool = False, start: bool = True) -> str:
        """An app container running `sh -c script` (started unless start=False)."""
        if not self.sandbox:
            self.start_sandbox()
        if type_ == "app" and container not in [c.name for c in self.pod.spec.containers]:
            self.pod.spec.containers.add(name=container, image=BUSYBOX)
        ns = f"container:{self.sandbox}"
        labels = self.runtime.labels(self.pod, container, type_, attempt)
        cid = self.runtime.create(
            container_name(self.pod, container, attempt), BUSYBOX, labels,
            host_config={"network_mode": ns, "ipc_mode": ns}, command=["sh", "-c", script],
            tty=tty)
        if start:
            self.runtime.start(cid)
        return cid

    def remove(self) -> None:
        """Remove every container of this pod."""
        remove_node_containers(self.runtime.docker, self.runtime.node_name, self.uid)

    def wait_exited(self, container_id: str, timeout: float = 20) -> None:
        self.runtime.api.wait(container_id, timeout=timeout)

    def wait_logs(self, container_id: str, text: bytes, timeout: float = 10) -> None:
        """Until the container has written `text` (it is up and talking)."""
        deadline = time.monotonic() + timeout
        while text not in self.runtime.api.logs(container_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"container never wrote {text!r}")
            time.sleep(0.05)


@contextlib.contextmanager
def fake_pods(runtime: Runtime) -> Iterator[Callable[..., FakePod]]:
    """A FakePod factory; the pods' containers are removed on the way out."""
    made: list[FakePod] = []

    def make(name: str = "", namespace: str = "default", uid: str = "") -> FakePod:
        pod = FakePod(runtime, name, namespace, uid)
        made.append(pod)
        return pod

    try:
        yield make
    finally:
        for pod in made:
            pod.remove()


class NodeAgentServer:
    """NodeAgentService on a free loopback port, served by an asyncio loop in a
    thread of its own so synchronous tests (and the CLI in subprocesses) call it."""

    def __init__(self, runtime: Runtime, pod_lookup: Callable[[str, str], Any] | None = None
                 ) -> None:
        self.service = NodeAgentService(runtime, pod_lookup)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="node-agent-server", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            server, self.port = await serve(self.service, "127.0.0.1:0")
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await server.stop(0)

        try:
            self._loop.run_until_complete(main())
        except BaseException as e:  # noqa: BLE001 - reported by start()
            self._error = e
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> NodeAgentServer:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"node agent server failed: {self._error}")
        return self

    def stop(self) -> None:
        if self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def __enter__(self) -> NodeAgentServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
