"""Service discovery variables in containers, named as Kubernetes names them."""

from __future__ import annotations

import asyncio
from typing import Any

from kubelite.api import core_pb2, pod_pb2
from kubelite.objects import convert, defaults
from node.kubelet import env as envmod


def service(name: str, ns: str, ip: str, ports: list[dict[str, Any]], **spec: Any) -> Any:
    obj = convert.from_dict({"apiVersion": "v1", "kind": "Service",
                             "metadata": {"name": name, "namespace": ns},
                             "spec": {"clusterIP": ip, "ports": ports, **spec}},
                            core_pb2.Service)
    defaults.apply(obj)
    return obj


KUBERNETES = service("kubernetes", "default", "10.96.0.1",
                     [{"name": "https", "port": 443, "targetPort": 6443}])
REDIS = service("redis-primary", "shop", "10.96.7.8",
                [{"name": "redis", "port": 6379}, {"name": "metrics", "port": 9121,
                                                   "protocol": "UDP"}])
HEADLESS = service("db", "shop", "None", [{"port": 5432}])
EXTERNAL = service("mail", "shop", "", [], type="ExternalName", externalName="mail.example.com")
ELSEWHERE = service("web", "other", "10.96.9.9", [{"port": 80}])
ALL = [KUBERNETES, REDIS, HEADLESS, EXTERNAL, ELSEWHERE]


def test_variable_names_and_values() -> None:
    assert envmod.service_env([REDIS]) == {
        "REDIS_PRIMARY_SERVICE_HOST": "10.96.7.8",
        "REDIS_PRIMARY_SERVICE_PORT": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_REDIS": "6379",
        "REDIS_PRIMARY_SERVICE_PORT_METRICS": "9121",
        "REDIS_PRIMARY_PORT": "tcp://10.96.7.8:6379",
        "REDIS_PRIMARY_PORT_6379_TCP": "tcp://10.96.7.8:6379",
        "REDIS_PRIMARY_PORT_6379_TCP_PROTO": "tcp",
        "REDIS_PRIMARY_PORT_6379_TCP_PORT": "6379",
        "REDIS_PRIMARY_PORT_6379_TCP_ADDR": "10.96.7.8",
        "REDIS_PRIMARY_PORT_9121_UDP": "udp://10.96.7.8:9121",
        "REDIS_PRIMARY_PORT_9121_UDP_PROTO": "udp",
        "REDIS_PRIMARY_PORT_9121_UDP_PORT": "9121",
        "REDIS_PRIMARY_PORT_9121_UDP_ADDR": "10.96.7.8",
    }
    unnamed = service("x", "shop", "10.96.1.1", [{"port": 80}])
    assert "X_SERVICE_PORT" in envmod.service_env([unnamed])
    assert not [k for k in envmod.service_env([unnamed]) if k.startswith("X_SERVICE_PORT_")]


def test_which_services_a_pod_sees() -> None:
    seen = envmod.visible_services(ALL, "shop", enable_links=True)
    assert [s.metadata.name for s in seen] == ["kubernetes", "redis-primary"]
    # enableServiceLinks: false keeps only the master Service
    assert [s.metadata.name for s in envmod.visible_services(ALL, "shop", False)] == \
        ["kubernetes"]
    # a namespace's own `kubernetes` Service wins over default's
    own = service("kubernetes", "shop", "10.96.3.3", [{"port": 80}])
    seen = envmod.visible_services([KUBERNETES, own], "shop", True)
    assert [s.spec.clusterIP for s in seen] == ["10.96.3.3"]


def pod(env: list[dict[str, Any]] | None = None, **spec: Any) -> Any:
    obj = convert.from_dict({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "p", "namespace": "shop"},
                             "spec": {"containers": [{"name": "c", "image": "i",
                                                      "env": env or []}], **spec}},
                            pod_pb2.Pod)
    return obj


def build(p: Any) -> dict[str, str]:
    return asyncio.run(envmod.build(p, p.spec.containers[0], None, "10.0.0.1",  # type: ignore[arg-type]
                                    services=ALL))


def test_container_env_wins_and_may_refer_to_service_variables() -> None:
    env = build(pod([{"name": "REDIS_PRIMARY_SERVICE_HOST", "value": "redis.local"},
                     {"name": "URL", "value": "redis://$(REDIS_PRIMARY_SERVICE_HOST):"
                                              "$(REDIS_PRIMARY_SERVICE_PORT)"}]))
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "redis.local"
    assert env["URL"] == "redis://redis.local:6379"
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert "DB_SERVICE_HOST" not in env and "MAIL_SERVICE_HOST" not in env
    assert "WEB_SERVICE_HOST" not in env
    off = build(pod(enableServiceLinks=False))
    assert "REDIS_PRIMARY_SERVICE_HOST" not in off and "KUBERNETES_PORT" in off
