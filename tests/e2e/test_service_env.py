"""Service variables in real containers: a node agent against the session master."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import Client
from kubelite.objects import convert
from tests.cluster import Master
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"


@pytest.fixture(scope="module")
def agent(master: Master) -> Iterator[NodeAgent]:
    ensure_docker()
    with run_node(master.address, "--metrics-interval", "0") as a:
        with Client(server=master.address) as c:
            try:
                wait_for(lambda: c.get("nodes", a.name), 30, "node registration")
            except AssertionError:
                raise AssertionError(a.logs()) from None
        yield a


def service(client: Client, ns: str, name: str, **spec: Any) -> Any:
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080}])
    return client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": spec}, core_pb2.Service))


def env_of(client: Client, ns: str, name: str, node: str, **spec: Any) -> dict[str, str]:
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
             "env": [{"name": "WEB_SERVICE_PORT", "value": "mine"}]}], **spec}},
        pod_pb2.Pod))
    wait_for(lambda: client.get("pods", name, ns).status.containerStatuses[0].ready, 60, name)
    return container_env(client, ns, name)


def container_env(client: Client, ns: str, name: str) -> dict[str, str]:
    cid = client.get("pods", name, ns).status.containerStatuses[0].containerID
    out = subprocess.run(["docker", "exec", cid.removeprefix("docker://"), "env"],
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_service_variables(agent: NodeAgent, client: Client, namespace: str) -> None:
    web = service(client, namespace, "web", selector={"app": "web"})
    service(client, namespace, "db", clusterIP="None", selector={"app": "db"})
    ip = web.spec.clusterIP
    env = env_of(client, namespace, "early", agent.name)
    assert env["WEB_SERVICE_HOST"] == ip and env["WEB_SERVICE_PORT_HTTP"] == "80"
    assert env["WEB_SERVICE_PORT"] == "mine"  # the container's own env wins
    assert env["WEB_PORT"] == f"tcp://{ip}:80" and env["WEB_PORT_80_TCP_ADDR"] == ip
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert not [k for k in env if k.startswith("DB_")]  # headless: none
    # set at creation only: a later Service is not in the running pod
    late = service(client, namespace, "late")
    after = env_of(client, namespace, "after", agent.name)
    assert after["LATE_SERVICE_HOST"] == late.spec.clusterIP
    assert "LATE_SERVICE_HOST" not in container_env(client, namespace, "early")
    off = env_of(client, namespace, "nolinks", agent.name, enableServiceLinks=False)
    assert "WEB_SERVICE_HOST" not in off and "KUBERNETES_SERVICE_HOST" in off
