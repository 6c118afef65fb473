"""The node's resolv.conf: read for the upstream resolvers of the cluster
DNS and for pods with dnsPolicy Default (and the host search domains that
ClusterFirst appends).

A host running systemd-resolved has only its loopback stub (127.0.0.53) in
/etc/resolv.conf, useless inside a pod's network namespace and a loop for a
forwarder; as kubeadm does for the kubelet, /run/systemd/resolve/resolv.conf
(the real upstreams) is read instead in that case.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PATH = "/etc/resolv.conf"
SYSTEMD_RESOLVED = "/run/systemd/resolve/resolv.conf"


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse(text: str) -> ResolvConf:
    """resolv.conf(5): the last `search` or `domain` line wins; `options` accumulate."""
    conf = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        key, values = words[0], words[1:]
        if key == "nameserver":
            conf.nameservers.append(values[0])
        elif key == "search":
            conf.searches = values
        elif key == "domain":
            conf.searches = values[:1]
        elif key == "options":
            conf.options += values
    return conf


def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def load(path: str = DEFAULT_PATH, *, resolved: str = SYSTEMD_RESOLVED) -> ResolvConf:
    """The file at `path` (empty when missing or `path` is "")."""
    if not path:
        return ResolvConf()
    try:
        conf = parse(Path(path).read_text())
    except OSError:
        return ResolvConf()
    if (path == DEFAULT_PATH and conf.nameservers
            and all(is_loopback(ns) for ns in conf.nameservers)):
        try:
            real = parse(Path(resolved).read_text())
        except OSError:
            return conf
        if real.nameservers:
            return ResolvConf(real.nameservers, conf.searches or real.searches, conf.options)
    return conf
