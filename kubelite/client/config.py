"""The client config file: where the API is and how to authenticate.

    # ~/.kubelite/config (YAML)
    server: 127.0.0.1:6443       # or servers: [a:6443, b:6443] to fail over
    token: 3f9c...               # bearer token, if the master requires one
    namespace: default           # default namespace for the CLI

Precedence, highest first: command-line flags (--server, --token,
--namespace), environment (KUBELITE_SERVER, KUBELITE_TOKEN), the file named by
--kubeconfig or KUBELITE_CONFIG, then ~/.kubelite/config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEFAULT_SERVER = "127.0.0.1:6443"


def default_path() -> Path:
    return Path(os.environ.get("KUBELITE_CONFIG") or Path.home() / ".kubelite" / "config")


class ConfigError(ValueError):
    pass


@dataclass
class ClientConfig:
    servers: list[str] = field(default_factory=lambda: [DEFAULT_SERVER])
    token: str = ""
    namespace: str = "default"
    path: str = ""

    @property
    def server(self) -> str:
        return self.servers[0]

    def dump(self) -> str:
        data: dict[str, object] = {"servers": self.servers, "namespace": self.namespace}
        if self.token:
            data["token"] = self.token
        return yaml.safe_dump(data, sort_keys=False)

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.dump())
        tmp.chmod(0o600)
        tmp.replace(path)


def load_config(path: str | None = None, *, server: str | None = None,
                token: str | None = None, namespace: str | None = None) -> ClientConfig:
    cfg = ClientConfig()
    p = Path(path) if path else default_path()
    if p.exists():
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"error loading config file \"{p}\": {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"error loading config file \"{p}\": not a mapping")
        unknown = set(data) - {"server", "servers", "token", "namespace"}
        if unknown:
            raise ConfigError(f"error loading config file \"{p}\": unknown field "
                              f"{sorted(unknown)[0]!r}")
        servers = data.get("servers") or ([data["server"]] if data.get("server") else None)
        if servers is not None:
            if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
                raise ConfigError(f"error loading config file \"{p}\": servers must be a list")
            cfg.servers = servers
        cfg.token = str(data.get("token") or "")
        cfg.namespace = str(data.get("namespace") or "default")
        cfg.path = str(p)
    elif path:
        raise ConfigError(f"config file \"{p}\" does not exist")
    env_server = os.environ.get("KUBELITE_SERVER")
    if server or env_server:
        cfg.servers = [s.strip() for s in (server or env_server or "").split(",") if s.strip()]
    if token or os.environ.get("KUBELITE_TOKEN"):
        cfg.token = token or os.environ.get("KUBELITE_TOKEN", "")
    if namespace:
        cfg.namespace = namespace
    return cfg
