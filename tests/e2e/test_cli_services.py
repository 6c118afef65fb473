"""`kubelite expose`, `get svc`, `get endpoints`, `describe svc` against the session's
real master (no controllers: the Endpoints here are written by hand)."""

from __future__ import annotations

import yaml

from kubelite.api import apps_pb2
from kubelite.client import Client
from kubelite.objects import convert
from tests.e2e.conftest import Kl


def _deployment(client: Client, ns: str, name: str, ports: list[int]) -> None:
    client.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"tier": "front"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox",
                                                       "ports": [{"containerPort": p}
                                                                 for p in ports]}]}}}},
        apps_pb2.Deployment))


def test_expose_and_show_services(kl: Kl, client: Client, namespace: str) -> None:
    _deployment(client, namespace, "web", [8080])
    assert kl.ok("expose", "deploy/web", "--port=80", "--target-port=8080",
                 "--type=NodePort") == "service/web exposed\n"
    svc = client.get("services", "web", namespace)
    assert dict(svc.spec.selector) == {"app": "web"} and dict(svc.metadata.labels) == \
        {"tier": "front"}
    assert (svc.spec.ports[0].port, svc.spec.ports[0].targetPort.intVal) == (80, 8080)
    node_port = svc.spec.ports[0].nodePort
    assert 30000 <= node_port <= 32767
    rows = [r.split() for r in kl.ok("get", "svc").splitlines()]
    assert rows[0] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert rows[1][:5] == ["web", "NodePort", svc.spec.clusterIP, "<none>",
                           f"80:{node_port}/TCP"]
    # without --port: the container ports; a second name; headless
    _deployment(client, namespace, "api", [8080, 9090])
    kl.ok("expose", "deployment", "api", "--name=api-internal", "--cluster-ip=None")
    api = client.get("services", "api-internal", namespace)
    assert [(p.name, p.port) for p in api.spec.ports] == [("port-1", 8080), ("port-2", 9090)]
    assert kl.ok("get", "svc", "api-internal").splitlines()[1].split()[:5] == [
        "api-internal", "ClusterIP", "None", "<none>", "8080/TCP,9090/TCP"]
    doc = yaml.safe_load(kl.ok("expose", "deploy/web", "--port=81", "--name=dry",
                               "--dry-run=server", "-o", "yaml"))
    assert doc["spec"]["clusterIP"] and doc["spec"]["ports"][0]["port"] == 81
    # endpoints, by hand (no controller runs here), and describe
    kl.ok("apply", "-f", "-", input="""
apiVersion: v1
kind: Endpoints
metadata: {name: web}
subsets:
- addresses: [{ip: 10.244.1.5}, {ip: 10.244.2.6}]
  ports: [{port: 8080}]
""")
    assert kl.ok("get", "endpoints", "web").splitlines()[1].split()[:2] == [
        "web", "10.244.1.5:8080,10.244.2.6:8080"]
    text = kl.ok("describe", "svc", "web")
    assert f"IP:                       {svc.spec.clusterIP}" in text
    assert f"NodePort:                 <unset>  {node_port}/TCP" in text
    assert "Endpoints:                10.244.1.5:8080,10.244.2.6:8080" in text


def test_expose_errors(kl: Kl, client: Client, namespace: str) -> None:
    r = kl("expose", "deploy/missing", "--port=80")
    assert r.returncode == 1 and 'deployments.apps "missing" not found' in r.stderr
    _deployment(client, namespace, "noports", [])
    r = kl("expose", "deploy/noports")
    assert r.stderr == "error: couldn't find port via --port flag or introspection\n"
    r = kl("expose", "deploy/noports", "--port=80", "--type=Magic")
    assert r.returncode == 1 and "--type" in r.stderr
    r = kl("expose", "deploy/noports", "--port=80", "--cluster-ip=10.200.0.1")
    assert r.stderr == (
        'Error from server (Invalid): Service "noports" is invalid: spec.clusterIPs: Invalid '
        'value: "10.200.0.1": provided IP is not in the valid range. The range of valid IPs '
        "is 10.96.0.0/12\n")
    r = kl("expose", "node/x", "--port=80")
    assert r.stderr == "error: cannot expose a Node\n"
