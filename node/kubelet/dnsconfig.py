"""A pod's resolv.conf, as the kubelet forms it (pkg/kubelet/network/dns),
handed to Docker as the sandbox's dns / dns_search / dns_opt (the app
containers share the sandbox's /etc/resolv.conf).

    dnsPolicy                 nameservers        search                          options
    ClusterFirst (default)    --cluster-dns      <ns>.svc.<domain> svc.<domain>  ndots:5
                                                 <domain> + the node's search
    ClusterFirstWithHostNet   as ClusterFirst, also for hostNetwork pods
    ClusterFirst + hostNetwork, Default
                              the node's resolv.conf (--resolv-conf; "" means
                              nameserver 127.0.0.1, search .)
    None                      only dnsConfig

Then dnsConfig is merged in for every policy: nameservers and searches
appended without duplicates, options overriding those of the same name.
ClusterFirst without --cluster-dns falls back to Default (event
MissingClusterDNS); more than 3 nameservers or 32 search domains (2048
characters) are cut, with a DNSConfigForming event, as the kubelet does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.dns import resolvconf

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
NDOTS = "ndots:5"


@dataclass
class DNSSettings:
    """The agent's flags that shape pods' DNS."""

    cluster_dns: list[str] = field(default_factory=lambda: ["10.96.0.10"])
    domain: str = "cluster.local"
    resolv_conf: str = resolvconf.DEFAULT_PATH


@dataclass
class PodDNS:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (event reason, message)

    def docker(self) -> dict[str, Any]:
        """create_host_config arguments (none when empty: Docker's own default)."""
        out: dict[str, Any] = {}
        if self.nameservers:
            out["dns"] = self.nameservers
        if self.searches:
            out["dns_search"] = self.searches
        if self.options:
            out["dns_opt"] = self.options
        return out


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _host(settings: DNSSettings, host: resolvconf.ResolvConf) -> PodDNS:
    if not settings.resolv_conf:
        return PodDNS(["127.0.0.1"], ["."], [])
    return PodDNS(list(host.nameservers), [s.rstrip(".") or "." for s in host.searches],
                  list(host.options))


def _merge_options(existing: list[str], extra: Any) -> list[str]:
    merged: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        merged[name] = value
    for op in extra:
        merged[op.name] = op.value if op.HasField("value") else ""
    return [f"{k}:{v}" if v else k for k, v in merged.items()]


def pod_dns(pod: Any, settings: DNSSettings,
            host: resolvconf.ResolvConf | None = None) -> PodDNS:
    spec = pod.spec
    if host is None:
        host = resolvconf.load(settings.resolv_conf)
    policy = spec.dnsPolicy or "ClusterFirst"
    if policy == "ClusterFirst" and spec.hostNetwork:
        policy = "Default"
    out = PodDNS()
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not settings.cluster_dns:
        out.warnings.append(("MissingClusterDNS", (
            f'pod: "{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})". '
            f'kubelet does not have ClusterDNS IP configured and cannot create Pod using '
            f'"{policy}" policy. Falling back to "Default" policy.')))
        policy = "Default"
    if policy == "Default":
        base = _host(settings, host)
        out.nameservers, out.searches, out.options = base.nameservers, base.searches, \
            base.options
    elif policy != "None":
        domain = settings.domain.rstrip(".")
        ns = pod.metadata.namespace
        cluster = [f"{ns}.svc.{domain}", f"svc.{domain}", domain] if domain else []
        host_search = [s.rstrip(".") for s in host.searches if s.rstrip(".")]
        out.nameservers = list(settings.cluster_dns)
        out.searches = _unique(cluster + host_search)
        out.options = [NDOTS]
    if spec.HasField("dnsConfig"):
        cfg = spec.dnsConfig
        out.nameservers = _unique(out.nameservers + list(cfg.nameservers))
        out.searches = _unique(out.searches + list(cfg.searches))
        out.options = _merge_options(out.options, cfg.options)
    _fit_limits(out)
    return out


def _fit_limits(d: PodDNS) -> None:
    if len(d.nameservers) > MAX_NAMESERVERS:
        d.nameservers = d.nameservers[:MAX_NAMESERVERS]
        d.warnings.append(("DNSConfigForming", (
            "Nameserver limits were exceeded, some nameservers have been omitted, "
            f"the applied nameserver line is: {' '.join(d.nameservers)}")))
    searches = d.searches[:MAX_SEARCHES]
    while len(" ".join(searches)) > MAX_SEARCH_CHARS:
        searches.pop()
    if searches != d.searches:
        d.searches = searches
        d.warnings.append(("DNSConfigForming", (
            "Search Line limits were exceeded, some search paths have been omitted, "
            f"the applied search line is: {' '.join(searches)}")))
