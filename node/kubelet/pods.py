"""Pod workers: one asyncio task per pod, level-triggered like the kubelet's.

Each sync reads what Docker has for the pod (by labels) and moves it one
step toward the spec:

  volumes -> sandbox (pause: network, IPC, UTS; hostname = pod name)
          -> init containers, one at a time, each to completion
          -> app containers (image per imagePullPolicy, env, mounts, limits,
             postStart hook, probes), restarted per restartPolicy with
             exponential back-off (CrashLoopBackOff)
          -> status (phase, conditions, containerStatuses) written when it changed

A pod with a deletionTimestamp is stopped (preStop hooks, SIGTERM, SIGKILL
after its grace period), its containers and volumes removed, and the Pod
object deleted for good. A worker is woken by a pod change, a probe result
or its resync tick; Docker calls run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubelite.api import pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import quantity
from master.apiserver.strategy import now_rfc3339
from master.events import EventRecorder
from node.kubelet import env as envmod
from node.kubelet import volumes
from node.kubelet.dnsconfig import DNSSettings, pod_dns
from node.kubelet.probes import ProbeWorker, run_handler
from node.kubelet.runtime import SANDBOX, ContainerInfo, Runtime, RuntimeError_, container_name

if TYPE_CHECKING:
    from master.informers import Informer
    from node.network.pod_network import PodNetwork

log = logging.getLogger(__name__)

CPU_PERIOD = 100_000
SERVICES_SYNC_TIMEOUT = 10.0


@dataclass
class NodeContext:
    node_name: str
    node_ip: str
    root: Path
    runtime: Runtime
    client: AsyncClient
    recorder: EventRecorder
    initial_backoff: float = 10.0
    max_backoff: float = 300.0
    resync: float = 1.0
    pod_network: str = "bridge"  # Docker network of the sandboxes ("none" with `network`)
    dns: list[str] = field(default_factory=list)
    network: PodNetwork | None = None  # kubelite's pod network (cni0, veths, IPAM)
    dns_settings: DNSSettings | None = None  # pods' resolv.conf per dnsPolicy (dnsconfig.py)
    services: Informer | None = None  # every Service, for the containers' variables


def _latest(runs: list[ContainerInfo]) -> ContainerInfo | None:
    return max(runs, key=lambda r: r.attempt) if runs else None


def _previous(runs: list[ContainerInfo]) -> ContainerInfo | None:
    ordered = sorted(runs, key=lambda r: r.attempt, reverse=True)
    return ordered[1] if len(ordered) > 1 else None


def _should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def _terminated_reason(r: ContainerInfo) -> str:
    if r.oom_killed:
        return "OOMKilled"
    if r.status == "created":
        return "StartError"
    return "Completed" if r.exit_code == 0 else "Error"


def qos_class(pod: Any) -> str:
    requests = limits = 0
    guaranteed = True
    for c in pod.spec.containers:
        req, lim = c.resources.requests, c.resources.limits
        requests += len(req)
        limits += len(lim)
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r].string != lim[r].string):
                guaranteed = False
    if requests == 0 and limits == 0:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: Any) -> None:
        self.ctx = ctx
        self.pod = pod
        self.uid = pod.metadata.uid
        self.key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.wake = asyncio.Event()
        self.finished = asyncio.Event()
        self.start_time = pod.status.startTime or now_rfc3339()
        self.paths: dict[str, str] | None = None
        self.waiting: dict[str, tuple[str, str]] = {}  # container -> (reason, message)
        self.probes: dict[str, dict[str, ProbeWorker]] = {}  # container id -> kind -> worker
        self.image_failures: dict[str, tuple[int, float]] = {}
        self.last_status = b""
        self.sandbox_ip = ""
        self._said_network = False
        self.task: asyncio.Task[None] | None = None

    # ---- driving --------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run(), name=f"pod {self.key}")

    def update(self, pod: Any) -> None:
        self.pod = pod
        self.wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    if await self.sync():
                        return
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - log, retry on the next tick
                    log.exception("syncing pod %s failed", self.key)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.ctx.resync)
        finally:
            for kinds in self.probes.values():
                for w in kinds.values():
                    w.stop()
            self.finished.set()

    def _event(self, type_: str, reason: str, message: str) -> None:
        self.ctx.recorder.event(self.pod, type_, reason, message)

    async def _rt(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ---- one step ---------------------------------------------------------------

    async def sync(self) -> bool:
        """Move the pod one step; True when the worker is done (pod gone)."""
        pod = self.pod
        rt = self.ctx.runtime
        if pod.metadata.deletionTimestamp:
            grace = (pod.metadata.deletionGracePeriodSeconds
                     if pod.metadata.HasField("deletionGracePeriodSeconds")
                     else pod.spec.terminationGracePeriodSeconds)
            await self.terminate(int(grace))
            with contextlib.suppress(APIStatusError):
                await self.ctx.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                             grace_period_seconds=0, precondition_uid=self.uid)
            return True
        runs = self._group(await self._rt(rt.list, self.uid))
        if pod.status.phase in ("Succeeded", "Failed"):
            await self._stop_sandbox(runs)
            return False
        if self.paths is None:
            try:
                self.paths = await volumes.prepare(pod, self.ctx.root, self.ctx.client)
            except (volumes.MountError, OSError) as e:
                self._event("Warning", "FailedMount", str(e))
                await self.report(runs)
                return False
        sandbox = await self._ensure_sandbox(runs)
        if sandbox is None:
            await self.report(runs)
            return False
        runs = self._group(await self._rt(rt.list, self.uid))
        init_done, init_failed = await self._init_containers(runs, sandbox)
        if init_done:
            for c in pod.spec.containers:
                await self._app_container(c, runs.get(c.name, []), sandbox)
        runs = self._group(await self._rt(rt.list, self.uid))
        phase = await self.report(runs)
        if phase in ("Succeeded", "Failed"):
            await self._stop_sandbox(runs)
        return False

    def _group(self, containers: list[ContainerInfo]) -> dict[str, list[ContainerInfo]]:
        out: dict[str, list[ContainerInfo]] = {}
        for c in containers:
            out.setdefault(c.container, []).append(c)
        return out

    # ---- sandbox ----------------------------------------------------------------

    async def _ensure_sandbox(self, runs: dict[str, list[ContainerInfo]]) -> ContainerInfo | None:
        rt = self.ctx.runtime
        sandbox = _latest(runs.get(SANDBOX, []))
        net = self.ctx.network if not self.pod.spec.hostNetwork else None
        if net is not None and not net.ready.is_set():
            if not self._said_network:
                self._said_network = True
                self._event("Warning", "NetworkNotReady",
                            f"network is not ready: {net.error or 'starting'}")
            self._wake_later(1.0)
            return None
        if sandbox is not None and sandbox.running:
            if net is None:
                self.sandbox_ip = sandbox.ip if not self.pod.spec.hostNetwork else \
                    self.ctx.node_ip
                return sandbox
            self.sandbox_ip = await net.adopt(sandbox.id, self.pod)
            if self.sandbox_ip:
                return sandbox
            # Running without an address: the agent stopped half-way. Start afresh.
        attempt = 0
        if sandbox is not None:
            attempt = sandbox.attempt + 1
            self._event("Normal", "SandboxChanged",
                        "Pod sandbox changed, it will be killed and re-created.")
            for name, rs in runs.items():
                for r in rs:
                    if name != SANDBOX and r.running:
                        await self._rt(rt.stop, r.id, 0)
            for r in runs.get(SANDBOX, []):
                await self._teardown_network(r)
                await self._rt(rt.remove, r.id)
        pod = self.pod
        host_network = pod.spec.hostNetwork
        ports = []
        bindings: dict[str, Any] = {}
        if not host_network and net is None:  # (kubelite's network: hostports.py)
            for c in pod.spec.containers:
                for p in c.ports:
                    if p.hostPort:
                        key = f"{p.containerPort}/{(p.protocol or 'TCP').lower()}"
                        ports.append((p.containerPort, (p.protocol or "TCP").lower()))
                        bindings[key] = (p.hostIP or "", p.hostPort)
        host_config: dict[str, Any] = {
            "network_mode": "host" if host_network else self.ctx.pod_network,
            "ipc_mode": "host" if pod.spec.hostIPC else "shareable",
            "port_bindings": bindings or None,
        }
        if self.ctx.dns_settings is not None:
            dns = await self._rt(pod_dns, pod, self.ctx.dns_settings)
            host_config.update(dns.docker())
            for reason, message in dns.warnings:
                self._event("Warning", reason, message)
        elif self.ctx.dns and not host_network:
            host_config["dns"] = self.ctx.dns
        name = container_name(pod, SANDBOX, attempt)
        await self._rt(rt.remove, name)
        try:
            cid = await self._rt(
                rt.create, name, rt.pause_image, rt.labels(pod, SANDBOX, "sandbox", attempt),
                host_config=host_config,
                hostname=None if host_network else (pod.spec.hostname or pod.metadata.name)[:63],
                ports=ports)
            await self._rt(rt.start, cid)
        except RuntimeError_ as e:
            self._event("Warning", "FailedCreatePodSandBox",
                        f"Failed to create pod sandbox: {e.message}")
            return None
        info = await self._rt(rt.inspect, cid)
        if info is not None and net is not None:
            try:
                self.sandbox_ip = await net.setup_pod(info.id, info.pid, pod)
            except Exception as e:  # noqa: BLE001 - reported, retried on the next sync
                self._event("Warning", "FailedCreatePodSandBox",
                            f"Failed to create pod sandbox: network: {e}")
                await self._rt(rt.stop, cid, 0)
                await self._teardown_network(info)
                await self._rt(rt.remove, cid)
                return None
        elif info is not None:
            self.sandbox_ip = info.ip if not host_network else self.ctx.node_ip
        return info  # type: ignore[no-any-return]

    async def _teardown_network(self, sandbox: ContainerInfo) -> None:
        if self.ctx.network is not None and not self.pod.spec.hostNetwork:
            try:
                await self.ctx.network.teardown_pod(sandbox.id)
            except Exception as e:  # noqa: BLE001 - the agent's gc releases it later
                log.warning("pod %s: network teardown: %s", self.key, e)

    async def _stop_sandbox(self, runs: dict[str, list[ContainerInfo]]) -> None:
        for r in runs.get(SANDBOX, []):
            if r.running:
                await self._rt(self.ctx.runtime.stop, r.id, 0)
                await self._teardown_network(r)

    # ---- init and app containers -------------------------------------------------

    async def _init_containers(self, runs: dict[str, list[ContainerInfo]],
                               sandbox: ContainerInfo) -> tuple[bool, bool]:
        """(all init containers succeeded, one failed for good)."""
        policy = self.pod.spec.restartPolicy or "Always"
        for c in self.pod.spec.initContainers:
            r = _latest(runs.get(c.name, []))
            if r is not None and r.finished and r.exit_code == 0 and r.status != "created":
                continue
            if r is not None and r.running:
                return False, False
            if r is not None and r.finished:
                if policy == "Never":
                    return False, True
                if not self._backoff_over(c, r):
                    return False, False
            await self._start(c, 0 if r is None else r.attempt + 1, sandbox, "init", runs)
            return False, False
        return True, False

    async def _app_container(self, c: Any, runs: list[ContainerInfo],
                             sandbox: ContainerInfo) -> None:
        r = _latest(runs)
        if r is not None and r.running:
            live = self.probes.get(r.id, {}).get("liveness")
            if live is not None and not live.result:
                self._event("Normal", "Killing",
                            f"Container {c.name} failed liveness probe, will be restarted")
                await self._kill(r, c, self._grace(c))
            return
        if r is None:
            await self._start(c, 0, sandbox, "app", {c.name: runs})
            return
        if not _should_restart(self.pod.spec.restartPolicy or "Always", r.exit_code):
            return
        if self._backoff_over(c, r):
            await self._start(c, r.attempt + 1, sandbox, "app", {c.name: runs})

    def _grace(self, c: Any) -> int:
        return int(self.pod.spec.terminationGracePeriodSeconds)

    def _backoff_over(self, c: Any, r: ContainerInfo) -> bool:
        delay = min(self.ctx.max_backoff, self.ctx.initial_backoff * (2 ** r.attempt))
        finished = _parse_time(r.finished_at) or time.time()
        remaining = finished + delay - time.time()
        if remaining <= 0:
            return True
        md = self.pod.metadata
        message = (f"back-off {_seconds(delay)} restarting failed container={c.name} "
                   f"pod={md.name}_{md.namespace}({md.uid})")
        if self.waiting.get(c.name, ("",))[0] != "CrashLoopBackOff":
            self._event("Warning", "BackOff", f"Back-off restarting failed container {c.name} "
                                              f"in pod {md.name}_{md.namespace}({md.uid})")
        self.waiting[c.name] = ("CrashLoopBackOff", message)
        self._wake_later(remaining)
        return False

    def _wake_later(self, seconds: float) -> None:
        asyncio.get_running_loop().call_later(max(0.05, seconds), self.wake.set)

    async def _ensure_image(self, c: Any) -> bool:
        rt = self.ctx.runtime
        image, policy = c.image, c.imagePullPolicy or "IfNotPresent"
        present = await self._rt(rt.image_present, image)
        if policy == "Never":
            if present:
                return True
            msg = f'Container image "{image}" is not present with pull policy of Never'
            self.waiting[c.name] = ("ErrImageNeverPull", msg)
            self._event("Warning", "ErrImageNeverPull", msg)
            return False
        if present and policy != "Always":
            if c.name not in self.waiting:
                self._event("Normal", "Pulled",
                            f'Container image "{image}" already present on machine')
            return True
        failures, last = self.image_failures.get(image, (0, 0.0))
        if failures:
            delay = min(self.ctx.max_backoff, self.ctx.initial_backoff * 2 ** (failures - 1))
            if time.monotonic() - last < delay:
                msg = f'Back-off pulling image "{image}"'
                if self.waiting.get(c.name, ("",))[0] != "ImagePullBackOff":
                    self._event("Normal", "BackOff", msg)
                self.waiting[c.name] = ("ImagePullBackOff", msg)
                self._wake_later(delay - (time.monotonic() - last))
                return False
        self._event("Normal", "Pulling", f'Pulling image "{image}"')
        t = time.monotonic()
        try:
            await self._rt(rt.pull, image)
        except RuntimeError_ as e:
            self.image_failures[image] = (failures + 1, time.monotonic())
            self.waiting[c.name] = ("ErrImagePull", e.message)
            self._event("Warning", "Failed", f'Failed to pull image "{image}": {e.message}')
            return False
        self.image_failures.pop(image, None)
        self._event("Normal", "Pulled", f'Successfully pulled image "{image}" in '
                                        f"{time.monotonic() - t:.3f}s")
        return True

    async def _services(self) -> list[Any]:
        """The Services as the node's cache has them now (the kubelet's service lister).

        Waits for the first list, as the kubelet refuses to build variables
        from a cache that has never been filled.
        """
        inf = self.ctx.services
        if inf is None:
            return []
        try:
            await asyncio.wait_for(inf.synced.wait(), SERVICES_SYNC_TIMEOUT)
        except TimeoutError:
            raise envmod.ConfigError("services have not yet been read at least once, "
                                     "cannot construct envvars") from None
        return inf.items()

    async def _start(self, c: Any, attempt: int, sandbox: ContainerInfo, type_: str,
                     runs: dict[str, list[ContainerInfo]]) -> None:
        rt, pod = self.ctx.runtime, self.pod
        if not await self._ensure_image(c):
            return
        view = pod_pb2.Pod()
        view.CopyFrom(pod)
        view.status.podIP = self.sandbox_ip
        try:
            env = await envmod.build(view, c, self.ctx.client, self.ctx.node_ip,
                                     services=await self._services())
        except (envmod.ConfigError, APIStatusError) as e:
            msg = str(e)
            self.waiting[c.name] = ("CreateContainerConfigError", msg)
            self._event("Warning", "Failed", f"Error: {msg}")
            return
        command = [envmod.expand(x, env) for x in c.command] or None
        args = [envmod.expand(x, env) for x in c.args] or None
        host_config: dict[str, Any] = {
            "network_mode": f"container:{sandbox.id}",
            "ipc_mode": f"container:{sandbox.id}",
            "binds": volumes.binds(c, self.paths or {}),
            "privileged": bool(c.securityContext.privileged)
            if c.securityContext.HasField("privileged") else False,
        }
        host_config.update(_resources(c))
        name = container_name(pod, c.name, attempt)
        await self._rt(rt.remove, name)
        # Keep the latest finished run (for `logs -p` and lastState); drop older ones.
        for old in sorted(runs.get(c.name, []), key=lambda r: r.attempt)[:-1]:
            await self._rt(rt.remove, old.id)
        try:
            cid = await self._rt(
                rt.create, name, c.image, rt.labels(pod, c.name, type_, attempt),
                host_config=host_config, command=args, entrypoint=command,
                env=[f"{k}={v}" for k, v in env.items()], working_dir=c.workingDir or None,
                tty=c.tty, stdin_open=c.stdin)
        except RuntimeError_ as e:
            self.waiting[c.name] = (e.reason if e.reason != "ErrImageNeverPull"
                                    else "CreateContainerError", e.message)
            self._event("Warning", "Failed", f"Error: {e.message}")
            return
        self.waiting.pop(c.name, None)
        self._event("Normal", "Created", f"Created container {c.name}")
        try:
            await self._rt(rt.start, cid)
        except RuntimeError_ as e:
            self._event("Warning", "Failed", f"Error: failed to start container "
                                             f'"{c.name}": {e.message}')
            return
        self._event("Normal", "Started", f"Started container {c.name}")
        if type_ == "app":
            self._start_probes(c, cid)
            if c.lifecycle.HasField("postStart"):
                ok, msg = await run_handler(c.lifecycle.postStart, runtime=rt, container_id=cid,
                                            host=self._probe_host(), container=c, timeout=30)
                if not ok:
                    self._event("Warning", "FailedPostStartHook",
                                f"PostStartHook failed: {msg}")
                    info = await self._rt(rt.inspect, cid)
                    if info is not None:
                        await self._kill(info, c, self._grace(c))

    def _probe_host(self) -> str:
        return self.ctx.node_ip if self.pod.spec.hostNetwork else self.sandbox_ip

    def _start_probes(self, c: Any, cid: str) -> None:
        workers: dict[str, ProbeWorker] = {}

        def changed(w: ProbeWorker, message: str) -> None:
            if message:
                label = {"liveness": "Liveness", "readiness": "Readiness",
                         "startup": "Startup"}[w.kind]
                self._event("Warning", "Unhealthy", f"{label} probe failed: {message}")
            self.wake.set()

        startup = None
        if c.HasField("startupProbe"):
            startup = ProbeWorker("startup", c.startupProbe, runtime=self.ctx.runtime,
                                  container_id=cid, container=c, host=self._probe_host,
                                  on_change=changed)
            startup.result = False
            workers["startup"] = startup

        def gate() -> bool:
            return startup is None or startup.result

        for kind, field_name in (("liveness", "livenessProbe"), ("readiness", "readinessProbe")):
            if c.HasField(field_name):
                workers[kind] = ProbeWorker(kind, getattr(c, field_name),
                                            runtime=self.ctx.runtime, container_id=cid,
                                            container=c, host=self._probe_host,
                                            on_change=changed, gate=gate)
        for w in workers.values():
            w.start()
        self.probes[cid] = workers

    async def _kill(self, r: ContainerInfo, c: Any | None, grace: int) -> None:
        rt = self.ctx.runtime
        for w in self.probes.pop(r.id, {}).values():
            w.stop()
        if c is not None and c.lifecycle.HasField("preStop") and r.running:
            t = time.monotonic()
            ok, msg = await run_handler(c.lifecycle.preStop, runtime=rt, container_id=r.id,
                                        host=self._probe_host(), container=c,
                                        timeout=max(1, grace))
            if not ok:
                self._event("Warning", "FailedPreStopHook", f"PreStopHook failed: {msg}")
            grace = max(0, int(grace - (time.monotonic() - t)))
        await self._rt(rt.stop, r.id, grace)

    async def terminate(self, grace: int) -> None:
        """Stop everything of the pod (hooks, SIGTERM, SIGKILL after grace) and clean up."""
        rt = self.ctx.runtime
        runs = self._group(await self._rt(rt.list, self.uid))
        specs = {c.name: c for c in (*self.pod.spec.initContainers, *self.pod.spec.containers)}
        kills = []
        for name, rs in runs.items():
            for r in rs:
                if name != SANDBOX and r.running:
                    self._event("Normal", "Killing", f"Stopping container {name}")
                    kills.append(self._kill(r, specs.get(name), grace))
        await asyncio.gather(*kills)
        for r in runs.get(SANDBOX, []):
            await self._rt(rt.stop, r.id, 0)
            await self._teardown_network(r)
        for rs in runs.values():
            for r in rs:
                await self._rt(rt.remove, r.id)
        volumes.cleanup(self.ctx.root, self.uid)

    # ---- status -------------------------------------------------------------------

    def _container_status(self, c: Any, runs: list[ContainerInfo], *, init: bool,
                          init_done: bool) -> Any:
        cs = pod_pb2.ContainerStatus(name=c.name, image=c.image)
        r = _latest(runs)
        prev = _previous(runs)
        policy = self.pod.spec.restartPolicy or "Always"
        if r is None:
            reason, message = self.waiting.get(
                c.name, ("PodInitializing" if not init and not init_done
                         else "ContainerCreating", ""))
            cs.state.waiting.reason = reason
            if message:
                cs.state.waiting.message = message
            cs.ready = False
            cs.started = False
            return cs
        cs.containerID = f"docker://{r.id}"
        cs.imageID = f"docker://{r.image_id}" if r.image_id else ""
        cs.restartCount = r.attempt
        if prev is not None:
            _terminated(cs.lastState.terminated, prev)
        if r.running:
            cs.state.running.startedAt = r.started_at
            probes = self.probes.get(r.id, {})
            started = probes["startup"].result if "startup" in probes else True
            ready = probes["readiness"].result if "readiness" in probes else True
            cs.started = started
            cs.ready = bool(started and ready) and not init
            return cs
        cs.started = False
        cs.ready = False
        restarting = (r.exit_code != 0 or not init) and _should_restart(policy, r.exit_code)
        waiting = self.waiting.get(c.name)
        if restarting and waiting is not None:
            cs.state.waiting.reason, cs.state.waiting.message = waiting
            _terminated(cs.lastState.terminated, r)
        else:
            _terminated(cs.state.terminated, r)
        return cs

    async def report(self, runs: dict[str, list[ContainerInfo]]) -> str:
        pod = self.pod
        spec = pod.spec
        status = pod_pb2.PodStatus()
        status.hostIP = self.ctx.node_ip
        status.hostIPs.add().ip = self.ctx.node_ip
        if self.sandbox_ip:
            status.podIP = self.sandbox_ip
            status.podIPs.add().ip = self.sandbox_ip
        status.startTime = self.start_time
        status.qosClass = qos_class(pod)
        policy = spec.restartPolicy or "Always"

        init_done, init_failed = True, False
        for c in spec.initContainers:
            cs = self._container_status(c, runs.get(c.name, []), init=True, init_done=False)
            status.initContainerStatuses.append(cs)
            t = cs.state.terminated
            if not (cs.state.HasField("terminated") and t.exitCode == 0):
                init_done = False
                if cs.state.HasField("terminated") and policy == "Never":
                    init_failed = True
        waiting = running = succeeded = failed = 0
        for c in spec.containers:
            cs = self._container_status(c, runs.get(c.name, []), init=False,
                                        init_done=init_done)
            status.containerStatuses.append(cs)
            if cs.state.HasField("running"):
                running += 1
            elif cs.state.HasField("terminated"):
                if cs.state.terminated.exitCode == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif cs.lastState.HasField("terminated"):  # waiting to restart after a run
                if cs.lastState.terminated.exitCode == 0:
                    succeeded += 1
                else:
                    failed += 1
            else:
                waiting += 1
        if init_failed:
            phase = "Failed"
        elif not init_done or waiting:
            phase = "Pending"
        elif running or policy == "Always" or (policy == "OnFailure" and failed):
            phase = "Running"
        else:
            phase = "Failed" if failed else "Succeeded"
        status.phase = phase
        ready = (phase == "Running" and bool(status.containerStatuses)
                 and all(cs.ready for cs in status.containerStatuses))
        old = {c.type: c for c in pod.status.conditions}
        conds = [("PodScheduled", True, ""), ("Initialized", init_done, "ContainersNotInitialized"),
                 ("ContainersReady", ready, "ContainersNotReady"), ("Ready", ready,
                                                                      "ContainersNotReady")]
        for type_, ok, reason in conds:
            cond = status.conditions.add(type=type_, status="True" if ok else "False")
            prior = old.get(type_)
            if prior is not None and prior.status == cond.status:
                cond.lastTransitionTime = prior.lastTransitionTime
            else:
                cond.lastTransitionTime = now_rfc3339()
            if not ok:
                cond.reason = reason
                if type_ in ("ContainersReady", "Ready"):
                    names = [cs.name for cs in status.containerStatuses if not cs.ready]
                    cond.message = f"containers with unready status: [{' '.join(names)}]"
                elif type_ == "Initialized":
                    names = [cs.name for cs in status.initContainerStatuses
                             if not (cs.state.HasField("terminated")
                                     and cs.state.terminated.exitCode == 0)]
                    cond.message = ("containers with incomplete status: "
                                    f"[{' '.join(names)}]")
        encoded = status.SerializeToString(deterministic=True)
        if encoded == self.last_status:
            return phase
        update = pod_pb2.Pod()
        update.CopyFrom(pod)
        update.status.CopyFrom(status)
        update.metadata.resourceVersion = ""
        try:
            written = await self.ctx.client.update_status(update)
            self.pod = written
            self.last_status = encoded
        except APIStatusError as e:
            if e.not_found:
                return phase
            log.info("status of %s not written: %s", self.key, e.message)
        return phase


def _terminated(t: Any, r: ContainerInfo) -> None:
    t.exitCode = 128 if r.status == "created" and r.exit_code == 0 else r.exit_code
    t.reason = _terminated_reason(r)
    if r.error:
        t.message = r.error
    t.startedAt = r.started_at
    t.finishedAt = r.finished_at
    t.containerID = f"docker://{r.id}"


def _resources(c: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    req, lim = c.resources.requests, c.resources.limits
    cpu_req = quantity.milli(req["cpu"].string) if "cpu" in req else 0
    if "cpu" in lim:
        cpu_lim = quantity.milli(lim["cpu"].string)
        out["cpu_quota"] = max(1000, cpu_lim * CPU_PERIOD // 1000)
        out["cpu_period"] = CPU_PERIOD
        cpu_req = cpu_req or cpu_lim
    out["cpu_shares"] = max(2, cpu_req * 1024 // 1000) if cpu_req else 2
    if "memory" in lim:
        mem = quantity.value(lim["memory"].string)
        out["mem_limit"] = mem
        out["memswap_limit"] = mem  # no swap beyond the limit, as in Kubernetes
    return out


def _parse_time(text: str) -> float:
    if not text:
        return 0.0
    import datetime as dt

    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def _seconds(x: float) -> str:
    if x >= 60:
        m, s = divmod(int(x), 60)
        return f"{m}m{s}s"
    return f"{x:g}s"
