"""The container runtime: Docker, through the docker SDK (blocking calls;
async callers run them with asyncio.to_thread).

A pod is a sandbox ("pause") container holding the network, IPC and UTS
namespaces, plus one Docker container per run of each app or init
container, joined to the sandbox with `container:<sandbox>` modes. Every
container carries labels saying whose it is, so a restarted agent finds and
adopts what it left running, and each agent touches only containers labelled
with its own node name:

    io.kubelite.node            node name
    io.kubelite.pod.uid         pod uid
    io.kubelite.pod.name        pod name
    io.kubelite.pod.namespace   pod namespace
    io.kubelite.container.name  the container's name in the pod spec ("POD": the sandbox)
    io.kubelite.container.type  "sandbox", "init" or "app"
    io.kubelite.container.attempt  0 for the first run, +1 per restart

Docker names follow dockershim's scheme, readable in `docker ps`:
`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

LABEL_NODE = "io.kubelite.node"
LABEL_POD_UID = "io.kubelite.pod.uid"
LABEL_POD_NAME = "io.kubelite.pod.name"
LABEL_POD_NAMESPACE = "io.kubelite.pod.namespace"
LABEL_CONTAINER = "io.kubelite.container.name"
LABEL_TYPE = "io.kubelite.container.type"
LABEL_ATTEMPT = "io.kubelite.container.attempt"
SANDBOX = "POD"
PAUSE_IMAGE = "kubelite/pause:latest"


class RuntimeError_(Exception):
    """A runtime operation failed; `reason` is Kubernetes' status reason for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class ContainerInfo:
    id: str
    name: str  # the Docker name
    pod_uid: str
    pod_name: str
    pod_namespace: str
    container: str  # name in the pod spec, SANDBOX for the pause container
    type: str
    attempt: int
    status: str  # created, running, exited, dead, ...
    exit_code: int
    started_at: str
    finished_at: str
    oom_killed: bool
    error: str
    image: str
    image_id: str
    labels: dict[str, str]
    ip: str = ""
    pid: int = 0  # of its main process, while it runs

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def finished(self) -> bool:
        """Ran and stopped, or never could start (created, with Docker's error)."""
        return self.status in ("exited", "dead") or (self.status == "created"
                                                     and bool(self.error))


def docker_time(value: str) -> str:
    """Docker's nanosecond RFC 3339 to Kubernetes' seconds ("" for the zero time)."""
    if not value or value.startswith("0001-"):
        return ""
    return value.split(".")[0].rstrip("Z") + "Z"


def container_name(pod: Any, container: str, attempt: int) -> str:
    md = pod.metadata
    return f"k8s_{container}_{md.name}_{md.namespace}_{md.uid}_{attempt}"


class Runtime:
    def __init__(self, node_name: str, client: docker.DockerClient | None = None, *,
                 pause_image: str = PAUSE_IMAGE) -> None:
        self.node_name = node_name
        self.docker = client or docker.from_env(timeout=120)
        self.api = self.docker.api
        self.pause_image = pause_image

    # ---- facts --------------------------------------------------------------

    def version(self) -> str:
        return "docker://" + str(self.docker.version().get("Version", "unknown"))

    def _info(self, c: dict[str, Any]) -> ContainerInfo:
        """From `docker inspect` output."""
        labels = c["Config"].get("Labels") or {}
        state = c.get("State") or {}
        nets = (c.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
        return ContainerInfo(
            id=c["Id"], name=c["Name"].lstrip("/"),
            pod_uid=labels.get(LABEL_POD_UID, ""), pod_name=labels.get(LABEL_POD_NAME, ""),
            pod_namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            container=labels.get(LABEL_CONTAINER, ""), type=labels.get(LABEL_TYPE, ""),
            attempt=int(labels.get(LABEL_ATTEMPT, "0") or 0),
            status=state.get("Status", ""), exit_code=int(state.get("ExitCode", 0) or 0),
            started_at=docker_time(state.get("StartedAt", "")),
            finished_at=docker_time(state.get("FinishedAt", "")),
            oom_killed=bool(state.get("OOMKilled")), error=state.get("Error", "") or "",
            image=c["Config"].get("Image", ""), image_id=c.get("Image", ""),
            labels=labels, ip=ip, pid=int(state.get("Pid", 0) or 0))

    def list(self, pod_uid: str = "") -> list[ContainerInfo]:
        """Every container of this node (of one pod when pod_uid is given), any state."""
        filters = [f"{LABEL_NODE}={self.node_name}"]
        if pod_uid:
            filters.append(f"{LABEL_POD_UID}={pod_uid}")
        out = []
        for summary in self.api.containers(all=True, filters={"label": filters}):
            with contextlib.suppress(docker.errors.NotFound):
                out.append(self._info(self.api.inspect_container(summary["Id"])))
        return out

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            return self._info(self.api.inspect_container(container_id))
        except docker.errors.NotFound:
            return None

    def find(self, pod_uid: str, container: str, *, previous: bool = False
             ) -> ContainerInfo | None:
        """The latest run of a pod's container, or the one before it (`previous`)."""
        runs = sorted((c for c in self.list(pod_uid) if c.container == container),
                      key=lambda c: c.attempt, reverse=True)
        index = 1 if previous else 0
        return runs[index] if len(runs) > index else None

    # ---- images -------------------------------------------------------------

    def image_present(self, image: str) -> bool:
        try:
            self.api.inspect_image(image)
            return True
        except docker.errors.ImageNotFound:
            return False

    def image_id(self, image: str) -> str:
        try:
            return str(self.api.inspect_image(image)["Id"])
        except docker.errors.ImageNotFound:
            return ""

    def pull(self, image: str) -> None:
        repo, tag = _split_image(image)
        try:
            self.api.pull(repo, tag=tag)
        except docker.errors.APIError as e:
            raise RuntimeError_("ErrImagePull", f'failed to pull image "{image}": '
                                                f"{e.explanation or e}") from None

    def images(self) -> list[tuple[list[str], int]]:
        return [(list(i.get("RepoTags") or []), int(i.get("Size", 0)))
                for i in self.api.images()]

    # ---- lifecycle ----------------------------------------------------------

    def labels(self, pod: Any, container: str, type_: str, attempt: int) -> dict[str, str]:
        md = pod.metadata
        return {LABEL_NODE: self.node_name, LABEL_POD_UID: md.uid, LABEL_POD_NAME: md.name,
                LABEL_POD_NAMESPACE: md.namespace, LABEL_CONTAINER: container,
                LABEL_TYPE: type_, LABEL_ATTEMPT: str(attempt)}

    def create(self, name: str, image: str, labels: dict[str, str], *,
               host_config: dict[str, Any], command: list[str] | None = None,
               entrypoint: list[str] | None = None, env: list[str] | None = None,
               working_dir: str | None = None, hostname: str | None = None,
               tty: bool = False, stdin_open: bool = False,
               ports: list[tuple[int, str]] | None = None) -> str:
        hc = self.api.create_host_config(**host_config)
        try:
            c = self.api.create_container(
                image, command=command, entrypoint=entrypoint, environment=env,
                working_dir=working_dir or None, hostname=hostname, labels=labels,
                name=name, host_config=hc, tty=tty, stdin_open=stdin_open,
                ports=ports or None, detach=True)
        except docker.errors.ImageNotFound:
            raise RuntimeError_("ErrImageNeverPull",
                                f'image "{image}" is not present on the node') from None
        except docker.errors.APIError as e:
            raise RuntimeError_("CreateContainerError", str(e.explanation or e)) from None
        return str(c["Id"])

    def start(self, container_id: str) -> None:
        try:
            self.api.start(container_id)
        except docker.errors.APIError as e:
            raise RuntimeError_("RunContainerError", str(e.explanation or e)) from None

    def stop(self, container_id: str, grace: int) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds (Docker's stop)."""
        with contextlib.suppress(docker.errors.NotFound):
            self.api.stop(container_id, timeout=max(0, grace))

    def remove(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self.api.remove_container(container_id, force=True)

    # ---- logs and exec ------------------------------------------------------

    def logs(self, container_id: str, *, follow: bool = False, tail: int | None = None,
             timestamps: bool = False, since: int | None = None) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"stdout": True, "stderr": True, "timestamps": timestamps,
                                  "tail": "all" if tail is None else tail}
        if since is not None:
            kwargs["since"] = since
        if follow:
            yield from self.api.logs(container_id, stream=True, follow=True, **kwargs)
        else:
            yield self.api.logs(container_id, stream=False, **kwargs)

    def exec_run(self, container_id: str, command: list[str], *, timeout: float | None = None
                 ) -> tuple[int, bytes]:
        """Run a command to completion (probes, hooks): (exit code, output)."""
        exec_id = self.api.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
        output = self.api.exec_start(exec_id, stream=False)
        code = self.api.exec_inspect(exec_id).get("ExitCode")
        return (int(code) if code is not None else -1), output


def _split_image(image: str) -> tuple[str, str]:
    if "@" in image:
        return image, ""
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"
