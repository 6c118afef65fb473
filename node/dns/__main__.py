"""The cluster DNS alone, without the rest of the node agent (benchmarks, debugging):

    python -m node.dns --server 127.0.0.1:6443 --dns-bind-address 127.0.0.1 --port 5353
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from kubelite.client import AsyncClient
from kubelite.client.config import load_config
from node.dns import ClusterDNS, DNSOptions


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m node.dns", description=__doc__.split("\n")[0])
    p.add_argument("--server", default="")
    p.add_argument("--token", default=None)
    p.add_argument("--cluster-domain", default="cluster.local")
    p.add_argument("--cluster-dns", default="10.96.0.10")
    p.add_argument("--dns-bind-address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--dns-upstream", default="")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def run() -> None:
        client = AsyncClient(load_config(None, server=args.server or None, token=args.token),
                             timeout=30)
        dns = ClusterDNS(client, DNSOptions(
            domain=args.cluster_domain, cluster_dns=args.cluster_dns,
            host=args.dns_bind_address, port=args.port, upstream=args.dns_upstream,
            resolv_conf=args.resolv_conf))
        try:
            await dns.run()
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
