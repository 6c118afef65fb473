"""kubelite-master: the API server over etcd plus the controllers.

    kubelite-master --etcd-servers http://127.0.0.1:2379 --listen 127.0.0.1:6443

Stops cleanly on SIGTERM/SIGINT: the gRPC server drains for a few seconds,
then the controllers are cancelled and the etcd connection closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import socket
import sys

import grpc

from kubelite.api import api_pb2_grpc
from kubelite.client import AsyncClient
from kubelite.objects import netconf
from kubelite.objects.netconf import NetConf
from master.apiserver import masterservices
from master.apiserver.admission import TolerationDefaults
from master.apiserver.allocators import IPRange, PortRange
from master.apiserver.registry import IMMORTAL_NAMESPACES, Registry
from master.apiserver.services import ServiceAllocator
from master.apiserver.service import APIService
from master.apiserver.storage import Storage, parse_endpoints
from master.auth import TokenAuthInterceptor, load_tokens
from master.controllers import manager as controller_manager
from master.controllers.hpa import Options as HPAOptions
from master.controllers.nodeipam import NodeIPAMController
from master.controllers.nodelifecycle import Options as NodeLifecycleOptions
from master.controllers.namespace import NamespaceController, ensure_namespaces
from master.leader import LeaderElector
from master.scheduler.scheduler import Scheduler

log = logging.getLogger("kubelite-master")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubelite-master", description=__doc__.split("\n")[0])
    p.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                   help="comma-separated etcd client URLs (default %(default)s)")
    p.add_argument("--listen", default="127.0.0.1:6443",
                   help="address:port for the gRPC API, comma-separated for several "
                   "(default %(default)s)")
    p.add_argument("--token-file", default="",
                   help="file of bearer tokens; without it the API is unauthenticated")
    p.add_argument("--bookmark-interval", type=float, default=5.0,
                   help="seconds of watch idleness before a BOOKMARK (default %(default)s)")
    p.add_argument("--etcd-connect-timeout", type=float, default=30.0,
                   help="seconds to wait for etcd at start (default %(default)s)")
    p.add_argument("--no-scheduler", dest="scheduler", action="store_false",
                   help="do not run the scheduler in this master")
    p.add_argument("--no-controllers", dest="controllers", action="store_false",
                   help="do not run the controller manager in this master")
    p.add_argument("--job-backoff", type=float, default=10.0,
                   help="first back-off before a failed Job pod is replaced (default %(default)s)")
    p.add_argument("--local-path-root", default="/var/lib/kubelite/local-path",
                   help="where local-path volumes are made on the nodes (default %(default)s)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the pods' addresses; each node gets a range of it (default %(default)s)")
    p.add_argument("--node-cidr-mask-size", type=int, default=24,
                   help="prefix length of each node's pod CIDR (default %(default)s)")
    p.add_argument("--no-allocate-node-cidrs", dest="allocate_node_cidrs",
                   action="store_false", help="do not hand nodes pod CIDRs")
    p.add_argument("--network-backend", default="vxlan", choices=("vxlan", "host-gw"),
                   help="how pod traffic crosses nodes (default %(default)s)")
    p.add_argument("--vxlan-vni", type=int, default=1, help="(default %(default)s)")
    p.add_argument("--vxlan-port", type=int, default=8472, help="(default %(default)s)")
    svc = p.add_argument_group("services (kube-apiserver's flags)")
    svc.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                     help="CIDR the Services' cluster IPs come from (default %(default)s)")
    svc.add_argument("--service-node-port-range", default="30000-32767",
                     help="ports NodePort Services may use (default %(default)s)")
    svc.add_argument("--advertise-address", default="",
                     help="this master's address in the `kubernetes` Service's Endpoints "
                          "(default: the first non-loopback --listen address, else the "
                          "host's)")
    svc.add_argument("--cluster-dns", default="10.96.0.10",
                     help="cluster IP of the kube-system/kube-dns Service (default "
                          "%(default)s)")
    hpa = p.add_argument_group("horizontal pod autoscaler (kube-controller-manager's flags)")
    hpa.add_argument("--horizontal-pod-autoscaler-sync-period", "--hpa-sync-period",
                     dest="hpa_sync_period", type=float, default=15.0, metavar="SECONDS",
                     help="how often each HPA is evaluated (default %(default)s)")
    hpa.add_argument("--horizontal-pod-autoscaler-downscale-stabilization",
                     "--hpa-downscale-stabilization", dest="hpa_downscale_stabilization",
                     type=float, default=300.0, metavar="SECONDS",
                     help="scale-down window where spec.behavior does not set one "
                          "(default %(default)s)")
    hpa.add_argument("--horizontal-pod-autoscaler-tolerance", "--hpa-tolerance",
                     dest="hpa_tolerance", type=float, default=0.1,
                     help="usage/target ratio deviation ignored (default %(default)s)")
    hpa.add_argument("--horizontal-pod-autoscaler-cpu-initialization-period",
                     dest="hpa_cpu_initialization_period", type=float, default=300.0,
                     metavar="SECONDS", help="after a pod starts, cpu samples count only "
                     "from a ready pod measured for a whole window (default %(default)s)")
    hpa.add_argument("--horizontal-pod-autoscaler-initial-readiness-delay",
                     dest="hpa_initial_readiness_delay", type=float, default=30.0,
                     metavar="SECONDS", help="after a pod starts, readiness changes are "
                     "taken as its initial readiness (default %(default)s)")
    nl = p.add_argument_group("node lifecycle (kube-controller-manager's and "
                              "kube-apiserver's flags)")
    nl.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="SECONDS",
                    help="heartbeat age after which a node is Ready Unknown (default "
                         "%(default)s)")
    nl.add_argument("--node-monitor-period", type=float, default=5.0, metavar="SECONDS",
                    help="how often every node's heartbeat is checked (default %(default)s)")
    nl.add_argument("--node-eviction-rate", type=float, default=0.1,
                    help="nodes per second that may get a NoExecute taint; 0: none "
                         "(default %(default)s)")
    nl.add_argument("--unhealthy-zone-threshold", type=float, default=0.55,
                    help="share of unhealthy nodes (of at least 3) at which evictions stop "
                         "(default %(default)s)")
    nl.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                    help="tolerationSeconds of the not-ready toleration every pod gets "
                         "(default %(default)s)")
    nl.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                    help="tolerationSeconds of the unreachable toleration every pod gets "
                         "(default %(default)s)")
    p.add_argument("--identity", default="",
                   help="this master's name in leader leases (default host:port)")
    p.add_argument("--leader-elect-lease-duration", type=float, default=15.0,
                   help="seconds a leader lease lasts unrenewed (default %(default)s)")
    p.add_argument("--leader-elect-renew-deadline", type=float, default=10.0,
                   help="seconds a leader keeps trying to renew (default %(default)s)")
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0,
                   help="seconds between lease attempts (default %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.hpa_sync_period <= 0:
        p.error("--horizontal-pod-autoscaler-sync-period must be positive")
    for flag in ("downscale_stabilization", "tolerance", "cpu_initialization_period",
                 "initial_readiness_delay"):
        if getattr(args, f"hpa_{flag}") < 0:
            p.error(f"--horizontal-pod-autoscaler-{flag.replace('_', '-')} must not be "
                    "negative")
    if args.node_monitor_grace_period <= 0 or args.node_monitor_period <= 0:
        p.error("--node-monitor-grace-period and --node-monitor-period must be positive")
    return args


def node_lifecycle_options(args: argparse.Namespace) -> NodeLifecycleOptions:
    return NodeLifecycleOptions(grace_period=args.node_monitor_grace_period,
                                monitor_period=args.node_monitor_period,
                                eviction_rate=args.node_eviction_rate,
                                unhealthy_threshold=args.unhealthy_zone_threshold)


def hpa_options(args: argparse.Namespace) -> HPAOptions:
    return HPAOptions(sync_period=args.hpa_sync_period,
                      downscale_stabilization=args.hpa_downscale_stabilization,
                      tolerance=args.hpa_tolerance,
                      cpu_initialization_period=args.hpa_cpu_initialization_period,
                      initial_readiness_delay=args.hpa_initial_readiness_delay)


def service_ranges(args: argparse.Namespace) -> tuple[IPRange, PortRange]:
    """The Service ranges from the flags; a bad one stops the master, naming the flag."""
    try:
        ips = IPRange.parse(args.service_cluster_ip_range)
    except ValueError as e:
        raise SystemExit(f"kubelite-master: --service-cluster-ip-range: {e}") from None
    try:
        ports = PortRange.parse(args.service_node_port_range)
    except ValueError as e:
        raise SystemExit(f"kubelite-master: --service-node-port-range: {e}") from None
    if not ips.contains(args.cluster_dns):
        raise SystemExit(f"kubelite-master: --cluster-dns: {args.cluster_dns!r} is not an "
                         f"address of --service-cluster-ip-range {ips.cidr}")
    if args.cluster_dns == ips.first():
        raise SystemExit(f"kubelite-master: --cluster-dns: {args.cluster_dns} is the "
                         "`kubernetes` Service's address (the range's first)")
    return ips, ports


def advertise_address(args: argparse.Namespace, listens: list[str]) -> tuple[str, int]:
    """(address, API port) this master puts in the `kubernetes` Endpoints."""
    port = int(listens[0].rpartition(":")[2])
    if args.advertise_address:
        try:
            ipaddress.ip_address(args.advertise_address)
        except ValueError:
            raise SystemExit(f"kubelite-master: --advertise-address: "
                             f"{args.advertise_address!r} is not an IP address") from None
        return args.advertise_address, port
    for listen in listens:
        host, _, p = listen.rpartition(":")
        host = host.strip("[]")
        with contextlib.suppress(ValueError):
            addr = ipaddress.ip_address(host)
            if not addr.is_loopback and not addr.is_unspecified:
                return host, int(p)
    return _host_ip(), port


def _host_ip() -> str:
    """The first IPv4 address of an interface that is up, other than loopback and Docker's."""
    import psutil

    stats = psutil.net_if_stats()
    for name, addrs in psutil.net_if_addrs().items():
        if not stats.get(name) or not stats[name].isup or \
                name.startswith(("docker", "veth", "br-", "cni", "flannel", "kl")):
            continue
        for a in addrs:
            if a.family == socket.AF_INET and not a.address.startswith("127."):
                return str(a.address)
    return "127.0.0.1"


def _loopback(listen: str) -> str:
    """Where this process reaches its own API (a wildcard listen address -> loopback)."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


def _etcd_endpoints(servers: str) -> list[tuple[str, int]]:
    try:
        return parse_endpoints(servers)
    except ValueError as e:
        raise SystemExit(f"kubelite-master: --etcd-servers: {e}") from None


async def _wait_for_etcd(storage: Storage, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await storage.connect()
            await storage.revision()
            return
        except Exception as e:  # noqa: BLE001 - etcd may still be starting
            if loop.time() > deadline:
                raise SystemExit(f"kubelite-master: etcd is not reachable: {e}") from None
            await asyncio.sleep(0.5)


def network_config(args: argparse.Namespace) -> NetConf | None:
    """The cluster's pod network from the flags (None: nodes get no CIDRs)."""
    if not args.allocate_node_cidrs:
        return None
    conf = NetConf(args.cluster_cidr, args.network_backend, args.vxlan_vni, args.vxlan_port)
    try:
        parsed = netconf.parse(conf.to_json())
        NodeIPAMController.check(parsed, args.node_cidr_mask_size)
    except ValueError as e:
        flag = {"Network": "--cluster-cidr", "Backend.VNI": "--vxlan-vni",
                "Backend.Port": "--vxlan-port"}
        msg = str(e)
        for field, name in flag.items():
            msg = msg.replace(f"{netconf.KEY}: {field}:", f"{name}:")
        raise SystemExit(f"kubelite-master: {msg}") from None
    return parsed


async def serve(args: argparse.Namespace) -> None:
    network = network_config(args)
    mask = args.node_cidr_mask_size
    ip_range, port_range = service_ranges(args)
    listens = [a.strip() for a in args.listen.split(",") if a.strip()]
    advertise = advertise_address(args, listens)
    endpoints = _etcd_endpoints(args.etcd_servers)
    storage = Storage(endpoints=endpoints)
    await _wait_for_etcd(storage, args.etcd_connect_timeout)
    allocator = ServiceAllocator(storage, ip_range, port_range)
    registry = Registry(storage, bookmark_interval=args.bookmark_interval, services=allocator,
                        tolerations=TolerationDefaults(
                            args.default_not_ready_toleration_seconds,
                            args.default_unreachable_toleration_seconds))
    await ensure_namespaces(registry, IMMORTAL_NAMESPACES)
    await allocator.repair()
    await masterservices.ensure_service(
        registry, masterservices.kubernetes_service(ip_range.first(), advertise[1]))
    await masterservices.ensure_service(registry,
                                        masterservices.kube_dns_service(args.cluster_dns))

    interceptors = []
    if args.token_file:
        interceptors.append(TokenAuthInterceptor(load_tokens(args.token_file)))
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ])
    api_pb2_grpc.add_APIServicer_to_server(APIService(registry), server)
    for address in listens:
        if server.add_insecure_port(address) == 0:
            raise SystemExit(f"kubelite-master: cannot listen on {address}")
    await server.start()
    log.info("serving the API on %s (etcd %s)", args.listen,
             ",".join(f"{h}:{p}" for h, p in endpoints))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(NamespaceController(registry).run(), name="namespaces"),
             asyncio.create_task(masterservices.MasterEndpoints(registry, storage,
                                                                *advertise).run(),
                                 name="kubernetes-endpoints")]
    client: AsyncClient | None = None
    if args.scheduler or args.controllers:
        client = AsyncClient(server=_loopback(listens[0]),
                             token=sorted(load_tokens(args.token_file))[0]
                             if args.token_file else "")
        api = client
        identity = args.identity or f"{socket.gethostname()}_{listens[0]}"

        def elector(name: str) -> LeaderElector:
            return LeaderElector(api, name, identity=identity,
                                 lease_duration=args.leader_elect_lease_duration,
                                 renew_deadline=args.leader_elect_renew_deadline,
                                 retry_period=args.leader_elect_retry_period)

        if args.scheduler:
            tasks.append(asyncio.create_task(
                elector("kube-scheduler").run(lambda: Scheduler(api).run()), name="scheduler"))
        if args.controllers:
            tasks.append(asyncio.create_task(
                elector("kube-controller-manager").run(
                    lambda: controller_manager.run(api, job_backoff=args.job_backoff,
                                                   local_path_root=args.local_path_root,
                                                   network=network,
                                                   node_cidr_mask_size=mask,
                                                   hpa=hpa_options(args),
                                                   nodes=node_lifecycle_options(args))),
                name="controllers"))
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        if t is not stopper and t.exception():
            log.error("task %s failed: %s", t.get_name(), t.exception())
    log.info("shutting down")
    for t in tasks:  # first, while the API still serves: leaders release their leases
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
    if client is not None:
        await client.close()
    await server.stop(grace=3)
    await storage.close()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
