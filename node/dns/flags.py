"""The node agent's DNS flags (kubelet's names where it has them), checked
with errors naming the flag, and what they turn into: the pods' resolv.conf
settings and the node's DNS server options."""

from __future__ import annotations

import argparse
import ipaddress

from kubelite.objects import names
from node.dns import DNSOptions
from node.kubelet.dnsconfig import DNSSettings


def add_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster-dns", default="10.96.0.10",
                   help="comma-separated DNS server IPs for ClusterFirst pods: the kube-dns "
                   "Service (default %(default)s; \"\" = pods fall back to Default)")
    p.add_argument("--cluster-domain", default="cluster.local",
                   help="the cluster's DNS domain (default %(default)s)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf",
                   help="the node's resolver config: pods with dnsPolicy Default and the "
                   "DNS's upstreams (\"\": none)")
    p.add_argument("--dns-bind-address", default="",
                   help="address the cluster DNS listens on (default: the node IP; "
                   "`none`: no DNS server on this node)")
    p.add_argument("--cluster-dns-port", type=int, default=53,
                   help="UDP and TCP port of the cluster DNS (default %(default)s)")
    p.add_argument("--dns-upstream", default="",
                   help="servers for names outside the cluster domain: ip[:port],... "
                   "(default: the nameservers of --resolv-conf; `none`: refuse them)")


def check(args: argparse.Namespace) -> None:
    for ip in filter(None, args.cluster_dns.split(",")):
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SystemExit(f"kubelite-node: --cluster-dns: {ip!r} is not an IP address") \
                from None
    domain = args.cluster_domain.rstrip(".")
    if not domain or names.dns1123_subdomain(domain):
        raise SystemExit(f"kubelite-node: --cluster-domain: {args.cluster_domain!r} is not a "
                         "DNS subdomain (e.g. cluster.local)")
    if not 0 < args.cluster_dns_port < 65536:
        raise SystemExit(f"kubelite-node: --cluster-dns-port: {args.cluster_dns_port} is not "
                         "a port (1-65535)")
    if args.dns_bind_address not in ("", "none"):
        try:
            ipaddress.ip_address(args.dns_bind_address)
        except ValueError:
            raise SystemExit(f"kubelite-node: --dns-bind-address: {args.dns_bind_address!r} "
                             "is not an IP address (or `none`)") from None


def pod_settings(args: argparse.Namespace) -> DNSSettings:
    return DNSSettings(cluster_dns=[ip for ip in args.cluster_dns.split(",") if ip],
                       domain=args.cluster_domain.rstrip("."), resolv_conf=args.resolv_conf)


def server_options(args: argparse.Namespace, node_ip: str) -> DNSOptions | None:
    """None with --dns-bind-address none."""
    if args.dns_bind_address == "none":
        return None
    return DNSOptions(domain=args.cluster_domain, cluster_dns=args.cluster_dns,
                      host=args.dns_bind_address or node_ip, port=args.cluster_dns_port,
                      upstream=args.dns_upstream, resolv_conf=args.resolv_conf)
