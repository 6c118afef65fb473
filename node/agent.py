"""kubelite-node: the node agent (the kubelet and the pod network; the
Service proxy lands with its issue).

    kubelite-node --server 127.0.0.1:6443 --node-name node-1 [--node-ip 10.0.0.11]

- registers its Node: addresses, capacity/allocatable (cpu, memory, pods,
  ephemeral-storage from psutil), conditions (Ready, MemoryPressure,
  DiskPressure, PIDPressure), nodeInfo (versions), images, the kubelet port;
  `--register-with-taints` (e.g. the master's
  node-role.kubernetes.io/control-plane:NoSchedule) on first registration;
- renews its heartbeat Lease kube-node-lease/<node> every 10 s and writes
  the Node's status when a condition or figure changes (at least every 60 s);
- watches pods bound to it (spec.nodeName) and runs one PodWorker each;
- on start, adopts the containers it left running (by their labels) and
  removes those of pods that no longer exist;
- serves logs/exec on its own gRPC port for the master to proxy to, and
  reports usage (NodeMetrics/PodMetrics) for the HPA and `kubelite top`;
- with `--pod-network kubelite` (the default) wires pods into the cluster's
  pod network (node/network/): an address from the Node's pod CIDR on the
  bridge cni0, routes to the other nodes (host-gw or vxlan, as the cluster's
  kube-system/kubelite-network ConfigMap says), masquerade to the outside,
  hostPorts. `--pod-network docker:<network>` leaves pods on a Docker network
  instead (no cross-node pod network; for hosts the agent must not re-plumb);
- serves the cluster DNS (node/dns/) on the node's address, port 53, UDP and
  TCP, and gives each pod the resolv.conf its dnsPolicy asks for
  (node/kubelet/dnsconfig.py; flags in node/dns/flags.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import psutil

from kubelite import __version__ as KUBELITE_VERSION
from kubelite.api import coordination_pb2, core_pb2, node_pb2_grpc
from kubelite.client import APIStatusError, AsyncClient
from kubelite.client.config import load_config
from master.apiserver.strategy import now_rfc3339
from master.events import EventRecorder
from master.informers import Informer
from node.dns import ClusterDNS
from node.dns import flags as dns_flags
from node.kubelet.pods import NodeContext, PodWorker
from node.kubelet.runtime import SANDBOX, Runtime
from node.kubelet.server import NodeAgentService
from node.metrics import MetricsReporter
from node.network.pod_network import PodNetwork
from node.proxy.ipvs import available as ipvs_available
from node.proxy.proxier import ServiceProxy, make_mode
from node.stats import StatsCollector

log = logging.getLogger("kubelite-node")

LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40
HEARTBEAT = 10.0
STATUS_MAX_AGE = 60.0
MEMORY_PRESSURE_BYTES = 100 * 1024 * 1024
DISK_PRESSURE_FRACTION = 0.10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubelite-node", description=__doc__.split("\n")[0])
    p.add_argument("--server", default="", help="API server address (default: client config)")
    p.add_argument("--kubeconfig", default=None, help="client config file")
    p.add_argument("--token", default=None, help="bearer token for the API")
    p.add_argument("--node-name", default=socket.gethostname().lower())
    p.add_argument("--node-ip", default="", help="the node's InternalIP (default: detected)")
    p.add_argument("--port", type=int, default=10250, help="the agent's gRPC port (logs, exec)")
    p.add_argument("--address", default="0.0.0.0", help="address the gRPC port listens on")
    p.add_argument("--root-dir", default="", help="state directory "
                   "(default /var/lib/kubelite/<node-name>)")
    p.add_argument("--register-with-taints", default="",
                   help="comma-separated key=value:Effect taints set at first registration")
    p.add_argument("--node-labels", default="", help="comma-separated key=value labels")
    p.add_argument("--max-pods", type=int, default=110)
    p.add_argument("--pause-image", default="kubelite/pause:latest")
    p.add_argument("--pod-network", default="kubelite",
                   help="`kubelite` (cni0, veths, routes to the other nodes) or "
                   "`docker:<network>` (default %(default)s)")
    p.add_argument("--proxy-mode", default="",
                   help="Service proxy: iptables, ipvs, userspace or none (default iptables "
                   "on kubelite's pod network, none otherwise)")
    p.add_argument("--ipvs-scheduler", default="rr",
                   help="ipvs mode's scheduler: rr, wrr, lc, sh, ... (default %(default)s)")
    p.add_argument("--proxy-min-sync-period", "--iptables-min-sync-period", type=float,
                   default=1.0, dest="proxy_min_sync",
                   help="at most one proxy sync per this many seconds (default %(default)s)")
    p.add_argument("--proxy-sync-period", "--iptables-sync-period", type=float, default=30.0,
                   dest="proxy_sync",
                   help="full proxy resync every this many seconds (default %(default)s)")
    p.add_argument("--restart-backoff", type=float, default=10.0,
                   help="first container restart back-off in seconds (default %(default)s)")
    p.add_argument("--max-restart-backoff", type=float, default=300.0)
    p.add_argument("--metrics-interval", type=float, default=10.0,
                   help="seconds between usage reports (0: none)")
    p.add_argument("-v", "--verbose", action="store_true")
    dns_flags.add_flags(p)
    args = p.parse_args(argv)
    dns_flags.check(args)
    return args


def detect_ip() -> str:
    """The first non-loopback IPv4 address of an interface that is up."""
    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if not stats.get(name) or not stats[name].isup or name.startswith(("docker", "veth")):
            continue
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return "127.0.0.1"


def parse_taints(text: str) -> list[dict[str, str]]:
    out = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        kv, _, effect = item.rpartition(":")
        key, _, value = kv.partition("=")
        if not key or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise SystemExit(f"kubelite-node: --register-with-taints: invalid taint {item!r}")
        out.append({"key": key, "value": value, "effect": effect})
    return out


def _os_image() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text().strip()
    return ""


class Agent:
    def __init__(self, args: argparse.Namespace, client: AsyncClient) -> None:
        self.args = args
        self.client = client
        self.name = args.node_name
        self.ip = args.node_ip or detect_ip()
        self.root = Path(args.root_dir or f"/var/lib/kubelite/{self.name}")
        self.runtime = Runtime(self.name, pause_image=args.pause_image)
        self.recorder = EventRecorder(client, "kubelet", host=self.name)
        mode = args.pod_network
        if mode != "kubelite" and not mode.startswith("docker:"):
            raise SystemExit(f"kubelite-node: --pod-network: {mode!r} is neither `kubelite` "
                             "nor `docker:<network>`")
        self.network = PodNetwork(client, self.name, self.ip, self.root) \
            if mode == "kubelite" else None
        self.proxy_mode = args.proxy_mode or ("iptables" if self.network else "none")
        if self.proxy_mode not in ("iptables", "ipvs", "userspace", "none"):
            raise SystemExit(f"kubelite-node: --proxy-mode: {self.proxy_mode!r} is not one of "
                             "iptables, ipvs, userspace, none")
        if self.proxy_mode != "none" and self.network is None:
            raise SystemExit("kubelite-node: --proxy-mode needs --pod-network kubelite (the "
                             "proxy programs this node's network)")
        if self.proxy_mode == "ipvs" and not ipvs_available():
            raise SystemExit("kubelite-node: --proxy-mode ipvs: this kernel has no IPVS "
                             "(/proc/net/ip_vs is missing; modprobe ip_vs ip_vs_rr ip_vs_wrr "
                             "ip_vs_sh, or use --proxy-mode iptables)")
        self.proxy: ServiceProxy | None = None
        # Every Service: the containers' discovery variables read this cache.
        self.services = Informer(client, "services")
        self.ctx = NodeContext(self.name, self.ip, self.root, self.runtime, client,
                               self.recorder, initial_backoff=args.restart_backoff,
                               max_backoff=args.max_restart_backoff,
                               pod_network="none" if self.network else mode.split(":", 1)[1],
                               network=self.network, services=self.services)
        self.ctx.dns_settings = dns_flags.pod_settings(args)
        dns_opts = dns_flags.server_options(args, self.ip)
        self.dns = ClusterDNS(client, dns_opts) if dns_opts is not None else None
        self.workers: dict[str, PodWorker] = {}
        self.pods = Informer(client, "pods", field_selector=f"spec.nodeName={self.name}",
                             on_add=self._pod_changed, on_update=lambda _o, n:
                             self._pod_changed(n), on_delete=self._pod_deleted)
        self._status_written = 0.0
        self._last_view: Any = None

    # ---- node object --------------------------------------------------------

    def _node_status(self) -> Any:
        vm = psutil.virtual_memory()
        disk = psutil.disk_usage(str(self.root) if self.root.exists() else "/")
        cpus = psutil.cpu_count() or 1
        status = core_pb2.NodeStatus()
        res = {"cpu": str(cpus), "memory": f"{vm.total // 1024}Ki",
               "pods": str(self.args.max_pods), "ephemeral-storage": f"{disk.total // 1024}Ki"}
        for k, v in res.items():
            status.capacity[k].string = v
            status.allocatable[k].string = v
        now = now_rfc3339()
        mem_pressure = vm.available < MEMORY_PRESSURE_BYTES
        disk_pressure = disk.free < disk.total * DISK_PRESSURE_FRACTION
        conds = [
            ("MemoryPressure", mem_pressure, "KubeletHasInsufficientMemory" if mem_pressure
             else "KubeletHasSufficientMemory", "kubelet has insufficient memory available"
             if mem_pressure else "kubelet has sufficient memory available"),
            ("DiskPressure", disk_pressure, "KubeletHasDiskPressure" if disk_pressure
             else "KubeletHasNoDiskPressure", "kubelet has disk pressure" if disk_pressure
             else "kubelet has no disk pressure"),
            ("PIDPressure", False, "KubeletHasSufficientPID",
             "kubelet has sufficient PID available"),
            ("Ready", True, "KubeletReady", "kubelet is posting ready status"),
        ]
        if self.network is not None and not self.network.ready.is_set():
            conds[-1] = ("Ready", False, "KubeletNotReady",
                         "container runtime network not ready: NetworkReady=false "
                         f"reason:NetworkPluginNotReady message:{self.network.error}")
        for type_, value, reason, message in conds:
            c = status.conditions.add(type=type_, status="True" if value else "False",
                                      reason=reason, message=message)
            c.lastHeartbeatTime = now
            c.lastTransitionTime = now
        status.addresses.add(type="InternalIP", address=self.ip)
        status.addresses.add(type="Hostname", address=self.name)
        status.daemonEndpoints.kubeletEndpoint.Port = self.args.port
        info = status.nodeInfo
        info.kubeletVersion = f"v{KUBELITE_VERSION}"
        info.containerRuntimeVersion = self.runtime.version()
        info.osImage = _os_image()
        info.kernelVersion = platform.release()
        info.operatingSystem = "linux"
        info.architecture = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                                         platform.machine())
        info.machineID = _read("/etc/machine-id")
        info.bootID = _read("/proc/sys/kernel/random/boot_id")
        for tags, size in self.runtime.images():
            if tags:
                status.images.add(names=tags, sizeBytes=size)
        return status

    async def register(self) -> None:
        status = await asyncio.to_thread(self._node_status)
        try:
            node = await self.client.get("nodes", self.name)
        except APIStatusError as e:
            if not e.not_found:
                raise
            node = core_pb2.Node(apiVersion="v1", kind="Node")
            node.metadata.name = self.name
            node.metadata.labels.update(self._labels())
            for t in parse_taints(self.args.register_with_taints):
                node.spec.taints.add(**t)
            node.status.CopyFrom(status)
            await self.client.create(node)
            log.info("registered node %s (%s)", self.name, self.ip)
            self._status_written = time.monotonic()
            return
        changed = False
        for k, v in self._labels().items():
            if node.metadata.labels.get(k) != v:
                node.metadata.labels[k] = v
                changed = True
        if changed:
            node = await self.client.update(node)
        await self._write_status(node, status, force=True)

    def _labels(self) -> dict[str, str]:
        labels = {"kubernetes.io/hostname": self.name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": {"x86_64": "amd64", "aarch64": "arm64"}.get(
                      platform.machine(), platform.machine())}
        for item in filter(None, self.args.node_labels.split(",")):
            k, _, v = item.partition("=")
            labels[k.strip()] = v.strip()
        return labels

    async def _write_status(self, node: Any, status: Any, *, force: bool = False) -> None:
        """Write the Node status when it changed (or is old), keeping transition times."""
        old = {c.type: c for c in node.status.conditions}
        ours = {c.type for c in status.conditions}
        for c in node.status.conditions:  # others' (NetworkUnavailable: the pod network's)
            if c.type not in ours:
                status.conditions.add().CopyFrom(c)
        for c in status.conditions:
            prior = old.get(c.type)
            if prior is not None and prior.status == c.status:
                c.lastTransitionTime = prior.lastTransitionTime
        view = (
            [(c.type, c.status) for c in status.conditions],
            {k: v.string for k, v in status.allocatable.items()},
            [tuple(i.names) for i in status.images],
            [(a.type, a.address) for a in status.addresses],
        )
        stale = time.monotonic() - self._status_written >= STATUS_MAX_AGE
        # Someone else changed one of ours (the master marks an unheard node Unknown).
        overwritten = any(c.type in ours and (prior := old.get(c.type)) is not None
                          and prior.status != c.status for c in status.conditions)
        if not force and not stale and not overwritten and view == self._last_view:
            return
        node.status.CopyFrom(status)
        await self.client.update_status(node)
        self._status_written = time.monotonic()
        self._last_view = view

    async def heartbeat(self) -> None:
        while True:
            try:
                await self._renew_lease()
                node = await self.client.get("nodes", self.name)
                status = await asyncio.to_thread(self._node_status)
                await self._write_status(node, status)
            except asyncio.CancelledError:
                raise
            except APIStatusError as e:
                if e.not_found:  # the Node was deleted: register again
                    with contextlib.suppress(Exception):
                        await self.register()
                log.warning("heartbeat failed: %s", e.message)
            except Exception as e:  # noqa: BLE001 - keep beating
                log.warning("heartbeat failed: %s", e)
            await asyncio.sleep(HEARTBEAT)

    async def _renew_lease(self) -> None:
        now = now_rfc3339()
        try:
            lease = await self.client.get("leases", self.name, LEASE_NAMESPACE)
        except APIStatusError as e:
            if not e.not_found:
                raise
            lease = coordination_pb2.Lease(apiVersion="coordination.k8s.io/v1", kind="Lease")
            lease.metadata.name, lease.metadata.namespace = self.name, LEASE_NAMESPACE
            lease.spec.holderIdentity = self.name
            lease.spec.leaseDurationSeconds = LEASE_SECONDS
            lease.spec.renewTime = now
            await self.client.create(lease)
            return
        lease.spec.holderIdentity = self.name
        lease.spec.leaseDurationSeconds = LEASE_SECONDS
        lease.spec.renewTime = now
        await self.client.update(lease)

    # ---- pods ---------------------------------------------------------------

    def _pod_changed(self, pod: Any) -> None:
        uid = pod.metadata.uid
        worker = self.workers.get(uid)
        if worker is None:
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
            worker.start()
            worker.task.add_done_callback(lambda _t, u=uid: self.workers.pop(u, None))  # type: ignore[union-attr]
        else:
            worker.update(pod)

    def _pod_deleted(self, pod: Any) -> None:
        """Gone from the API (deleted at once, or after our own final delete)."""
        worker = self.workers.get(pod.metadata.uid)
        if worker is not None and not pod.metadata.deletionTimestamp:
            # Removed without a graceful phase: stop what runs, right away.
            gone = type(pod)()
            gone.CopyFrom(pod)
            gone.metadata.deletionTimestamp = now_rfc3339()
            gone.metadata.deletionGracePeriodSeconds = 0
            worker.update(gone)
        elif worker is None:
            asyncio.get_running_loop().create_task(self._remove_orphans({}))

    async def _remove_orphans(self, live: dict[str, Any]) -> None:
        """Remove containers of pods this node no longer has (never touching others)."""
        containers = await asyncio.to_thread(self.runtime.list)
        for c in containers:
            if c.pod_uid and c.pod_uid not in live and c.pod_uid not in self.workers:
                log.info("removing container %s of a pod that no longer exists", c.name)
                await asyncio.to_thread(self.runtime.stop, c.id, 2)
                await asyncio.to_thread(self.runtime.remove, c.id)

    async def run(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        await self.register()
        tasks = [asyncio.create_task(self.heartbeat(), name="heartbeat"),
                 asyncio.create_task(self.pods.run(), name="pods"),
                 asyncio.create_task(self.services.run(), name="services")]
        server = await self._serve()
        if self.args.metrics_interval > 0:
            tasks.append(asyncio.create_task(self._metrics(), name="metrics"))
        if self.network is not None:
            tasks.append(asyncio.create_task(self._network(), name="network"))
        if self.dns is not None:
            tasks.append(asyncio.create_task(self.dns.run(), name="dns"))
        await self.pods.synced.wait()
        live = {p.metadata.uid: p for p in self.pods.items()}
        await self._remove_orphans(live)
        log.info("node %s ready: %d pods", self.name, len(live))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            if server is not None:
                await server.stop(grace=1)

    async def _network(self) -> None:
        """Start the pod network (retrying while it cannot), then keep it right."""
        net = self.network
        assert net is not None
        while True:
            try:
                await net.start()
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - said on the Node, retried
                net.error = str(e)
                log.error("pod network: %s", e)
                with contextlib.suppress(Exception):
                    await net.set_condition(True, "NetworkPluginNotReady", str(e))
                await asyncio.sleep(10)
        with contextlib.suppress(Exception):  # Ready now: say so without waiting a beat
            node = await self.client.get("nodes", self.name)
            await self._write_status(node, await asyncio.to_thread(self._node_status),
                                     force=True)
        for w in list(self.workers.values()):
            w.wake.set()
        parts = [net.run(), self._network_gc()]
        if self.proxy_mode != "none":
            mode = make_mode(self.proxy_mode, node_ips=[self.ip],
                             ipvs_scheduler=self.args.ipvs_scheduler)
            assert net.conf is not None
            conf = net.conf
            self.proxy = ServiceProxy(self.client, mode, lambda: conf.network,
                                      min_sync=self.args.proxy_min_sync,
                                      sync_period=self.args.proxy_sync)
            parts.append(self.proxy.run())
        await asyncio.gather(*parts)

    async def _network_gc(self) -> None:
        """Every minute, free what sandboxes that are gone left behind."""
        async def live() -> set[str]:
            containers = await asyncio.to_thread(self.runtime.list)
            return {c.id for c in containers if c.container == SANDBOX and c.running}

        assert self.network is not None
        while True:
            try:
                await self.network.gc(live)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - next round
                log.warning("pod network gc: %s", e)
            await asyncio.sleep(60)

    async def _serve(self) -> Any:
        def lookup(namespace: str, name: str) -> Any:
            return self.pods.get(f"{namespace}/{name}")

        server = grpc.aio.server()
        node_pb2_grpc.add_NodeAgentServicer_to_server(
            NodeAgentService(self.runtime, lookup), server)
        if server.add_insecure_port(f"{self.args.address}:{self.args.port}") == 0:
            raise SystemExit(f"kubelite-node: cannot listen on port {self.args.port}")
        await server.start()
        return server

    async def _metrics(self) -> None:
        collector = StatsCollector(self.runtime, self.name)
        await MetricsReporter(self.client, self.name, collector,
                              interval=self.args.metrics_interval).run()


async def amain(args: argparse.Namespace) -> None:
    cfg = load_config(args.kubeconfig, server=args.server or None, token=args.token)
    client = AsyncClient(cfg, timeout=30)
    agent = Agent(args, client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    main = asyncio.create_task(agent.run())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([main, stopper], return_when=asyncio.FIRST_COMPLETED)
    if main in done and main.exception():
        raise main.exception()  # type: ignore[misc]
    # Leave pods running: a restarted agent adopts them.
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await main
    await client.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        log.warning("not running as root: Docker access and hostPath volumes may fail")
    try:
        asyncio.run(amain(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
