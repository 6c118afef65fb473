"""Endpoints of real pods: a master running the controllers, a node agent, a
readiness probe deciding where an address is listed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import Client
from kubelite.objects import convert
from tests.cluster import Etcd, Master, run_master
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"


@pytest.fixture(scope="module")
def controllers(etcd: Etcd, master: Master) -> Iterator[Master]:
    with run_master(etcd.endpoint, "--no-scheduler", "--leader-elect-retry-period", "0.5") as m:
        yield m


@pytest.fixture(scope="module")
def agent(master: Master) -> Iterator[NodeAgent]:
    ensure_docker()
    with run_node(master.address, "--metrics-interval", "0") as a:
        with Client(server=master.address) as c:
            wait_for(lambda: c.get("nodes", a.name), 30, "node registration")
        yield a


def addresses(client: Client, ns: str, name: str) -> tuple[list[str], list[str]]:
    ep = client.get("endpoints", name, ns)
    return ([a.ip for s in ep.subsets for a in s.addresses],
            [a.ip for s in ep.subsets for a in s.notReadyAddresses])


def test_readiness_moves_an_address(controllers: Master, agent: NodeAgent, client: Client,
                                    namespace: str) -> None:
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": namespace},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": "http"}]}}, core_pb2.Service))
    probe: dict[str, Any] = {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                             "periodSeconds": 1, "failureThreshold": 1}
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": agent.name, "terminationGracePeriodSeconds": 1, "containers": [
            {"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
             "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}]}},
        pod_pb2.Pod))
    ip = wait_for(lambda: client.get("pods", "web", namespace).status.podIP, 60, "pod IP")
    wait_for(lambda: addresses(client, namespace, "web") == ([], [ip]), 30, "not ready")
    ep = client.get("endpoints", "web", namespace)
    assert ep.subsets[0].ports[0].port == 8080  # the named port, resolved
    assert ep.subsets[0].notReadyAddresses[0].nodeName == agent.name
    cid = client.get("pods", "web", namespace).status.containerStatuses[0].containerID
    subprocess.run(["docker", "exec", cid.removeprefix("docker://"), "touch", "/tmp/ready"],
                   check=True)
    wait_for(lambda: addresses(client, namespace, "web") == ([ip], []), 30, "ready")
    client.delete("pods", "web", namespace)  # terminating: out at once
    wait_for(lambda: addresses(client, namespace, "web") == ([], []), 30, "removed")
