"""kubelite-master: the API server over etcd plus the controllers.

    kubelite-master --etcd-servers http://127.0.0.1:2379 --listen 127.0.0.1:6443

Stops cleanly on SIGTERM/SIGINT: the gRPC server drains for a few seconds,
then the controllers are cancelled and the etcd connection closed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from urllib.parse import urlparse

import grpc

from kubelite.api import api_pb2_grpc
from master.apiserver.registry import IMMORTAL_NAMESPACES, Registry
from master.apiserver.service import APIService
from master.apiserver.storage import Storage
from master.auth import TokenAuthInterceptor, load_tokens
from master.controllers.namespace import NamespaceController, ensure_namespaces

log = logging.getLogger("kubelite-master")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubelite-master", description=__doc__.split("\n")[0])
    p.add_argument("--etcd-servers", default="http://127.0.0.1:2379",
                   help="comma-separated etcd client URLs (default %(default)s)")
    p.add_argument("--listen", default="127.0.0.1:6443",
                   help="address:port for the gRPC API (default %(default)s)")
    p.add_argument("--token-file", default="",
                   help="file of bearer tokens; without it the API is unauthenticated")
    p.add_argument("--bookmark-interval", type=float, default=5.0,
                   help="seconds of watch idleness before a BOOKMARK (default %(default)s)")
    p.add_argument("--etcd-connect-timeout", type=float, default=30.0,
                   help="seconds to wait for etcd at start (default %(default)s)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _etcd_endpoint(servers: str) -> tuple[str, int]:
    first = servers.split(",")[0].strip()
    u = urlparse(first if "://" in first else "http://" + first)
    if not u.hostname:
        raise SystemExit(f"kubelite-master: --etcd-servers: invalid URL {first!r}")
    return u.hostname, u.port or 2379


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


async def serve(args: argparse.Namespace) -> None:
    host, port = _etcd_endpoint(args.etcd_servers)
    storage = Storage(host, port)
    await _wait_for_etcd(storage, args.etcd_connect_timeout)
    registry = Registry(storage, bookmark_interval=args.bookmark_interval)
    await ensure_namespaces(registry, IMMORTAL_NAMESPACES)

    interceptors = []
    if args.token_file:
        interceptors.append(TokenAuthInterceptor(load_tokens(args.token_file)))
    server = grpc.aio.server(interceptors=interceptors, options=[
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ])
    api_pb2_grpc.add_APIServicer_to_server(APIService(registry), server)
    if server.add_insecure_port(args.listen) == 0:
        raise SystemExit(f"kubelite-master: cannot listen on {args.listen}")
    await server.start()
    log.info("serving the API on %s (etcd %s:%d)", args.listen, host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(NamespaceController(registry).run(), name="namespaces")]
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for t in done:
        if t is not stopper and t.exception():
            log.error("task %s failed: %s", t.get_name(), t.exception())
    log.info("shutting down")
    await server.stop(grace=3)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
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
