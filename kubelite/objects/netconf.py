"""The cluster's network configuration: ConfigMap kube-system/kubelite-network.

Like flannel's kube-flannel-cfg, key `net-conf.json`:

    {"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}

The master writes it from its flags (--cluster-cidr, --network-backend); every
node agent reads it, so the backend is chosen once per cluster.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from typing import Any

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "kubelite-network"
KEY = "net-conf.json"
BACKENDS = ("vxlan", "host-gw")
VXLAN_OVERHEAD = 50  # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14

# Node annotations a node agent publishes for the others (flannel's, renamed).
ANN_BACKEND_TYPE = "network.kubelite.io/backend-type"
ANN_BACKEND_DATA = "network.kubelite.io/backend-data"
ANN_PUBLIC_IP = "network.kubelite.io/public-ip"


class ConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class NetConf:
    network: str = "10.244.0.0/16"
    backend: str = "vxlan"
    vni: int = 1
    port: int = 8472

    def to_json(self) -> str:
        backend: dict[str, Any] = {"Type": self.backend}
        if self.backend == "vxlan":
            backend.update(VNI=self.vni, Port=self.port)
        return json.dumps({"Network": self.network, "Backend": backend}, sort_keys=True)


def parse(text: str) -> NetConf:
    """net-conf.json -> NetConf; a ConfigError names the bad field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{KEY}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{KEY}: must be a JSON object")
    network = doc.get("Network")
    if not isinstance(network, str):
        raise ConfigError(f"{KEY}: Network: required, a CIDR like 10.244.0.0/16")
    try:
        net = ipaddress.ip_network(network, strict=True)
    except ValueError as e:
        raise ConfigError(f"{KEY}: Network: {e}") from None
    if net.version != 4:
        raise ConfigError(f"{KEY}: Network: only IPv4 is supported")
    backend = doc.get("Backend") or {"Type": "vxlan"}
    if not isinstance(backend, dict):
        raise ConfigError(f"{KEY}: Backend: must be an object")
    kind = backend.get("Type", "vxlan")
    if kind not in BACKENDS:
        raise ConfigError(f"{KEY}: Backend.Type: {kind!r} is not one of {', '.join(BACKENDS)}")
    vni, port = backend.get("VNI", 1), backend.get("Port", 8472)
    if not isinstance(vni, int) or not 1 <= vni <= 0xFFFFFF:
        raise ConfigError(f"{KEY}: Backend.VNI: {vni!r} is not in 1..16777215")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{KEY}: Backend.Port: {port!r} is not in 1..65535")
    return NetConf(str(net), kind, vni, port)
