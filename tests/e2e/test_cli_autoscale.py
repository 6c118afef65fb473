"""`kubelite autoscale` and `get hpa` against the session's real master."""

from __future__ import annotations

import yaml

from kubelite.api import apps_pb2
from kubelite.client import Client
from kubelite.objects import convert
from tests.e2e.conftest import Kl


def _deployment(client: Client, ns: str, name: str) -> None:
    client.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
        apps_pb2.Deployment))


def test_autoscale_creates_a_v1_hpa_and_get_shows_it(kl: Kl, client: Client,
                                                     namespace: str) -> None:
    _deployment(client, namespace, "web")
    out = kl.ok("autoscale", "deploy/web", "--min=2", "--max=5", "--cpu-percent=50")
    assert out == "horizontalpodautoscaler.autoscaling/web autoscaled\n"
    hpa = client.get("hpa", "web", namespace)
    assert (hpa.spec.minReplicas, hpa.spec.maxReplicas) == (2, 5)
    assert hpa.spec.scaleTargetRef.kind == "Deployment"
    assert hpa.spec.metrics[0].resource.target.averageUtilization == 50
    table = kl.ok("get", "hpa").splitlines()
    assert table[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]
    assert table[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/50%", "2", "5",
                                    "0"]

    # defaults: min 1 and 80% cpu; another name; the v1 shape on output
    out = kl.ok("autoscale", "deployment", "web", "--max=3", "--name=web2", "-o", "yaml")
    doc = yaml.safe_load(out)
    assert doc["apiVersion"] == "autoscaling/v1"
    assert doc["spec"]["targetCPUUtilizationPercentage"] == 80
    assert doc["spec"]["minReplicas"] == 1 and doc["metadata"]["name"] == "web2"
    assert kl.ok("autoscale", "deploy/web", "--max=3", "--name=dry", "--dry-run=client") == \
        "horizontalpodautoscaler.autoscaling/dry autoscaled (dry run)\n"
    assert kl("get", "hpa", "dry").returncode == 1


def test_autoscale_errors(kl: Kl, client: Client, namespace: str) -> None:
    _deployment(client, namespace, "web")
    r = kl("autoscale", "deploy/web")
    assert r.returncode == 1
    assert r.stderr == "error: --max=MAXPODS is required and must be at least 1, max: -1\n"
    r = kl("autoscale", "deploy/web", "--min=4", "--max=3")
    assert r.stderr == ("error: --max=MAXPODS must be larger or equal to --min=MINPODS, "
                        "max: 3, min: 4\n")
    r = kl("autoscale", "deploy/nope", "--max=3")
    assert r.stderr == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    r = kl("autoscale", "svc/web", "--max=3")
    assert r.returncode == 1 and r.stderr.startswith("error: cannot autoscale a Service: ")
    r = kl("autoscale", "deploy/web", "--max=3", "--cpu-percent=0")
    assert r.returncode == 1
    assert r.stderr == ("error: HorizontalPodAutoscaler.autoscaling \"web\" is invalid: "
                        "spec.targetCPUUtilizationPercentage: Invalid value: 0: must be greater "
                        "than 0\n")
    kl.ok("autoscale", "deploy/web", "--max=3")
    r = kl("autoscale", "deploy/web", "--max=3")
    assert r.stderr == ('Error from server (AlreadyExists): horizontalpodautoscalers.autoscaling '
                        '"web" already exists\n')
