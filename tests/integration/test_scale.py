"""The scale subresource over gRPC, against a real etcd and master."""

from __future__ import annotations

from typing import Any

import pytest

from kubelite.api import apps_pb2, autoscaling_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert


def _template(labels: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


def _deployment(ns: str, name: str, replicas: int | None = 2) -> Any:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name},
                                         "matchExpressions": [{"key": "tier", "operator": "In",
                                                               "values": ["fe", "be"]}]},
                            "template": _template({"app": name, "tier": "fe"})}
    if replicas is not None:
        spec["replicas"] = replicas
    return convert.from_dict({"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": name, "namespace": ns}, "spec": spec},
                             apps_pb2.Deployment)


def test_get_scale_of_each_scalable_kind(client: Client, namespace: str) -> None:
    d = client.create(_deployment(namespace, "web"))
    s = client.get_scale("deploy", "web", namespace)
    assert (s.apiVersion, s.kind) == ("autoscaling/v1", "Scale")
    assert (s.metadata.name, s.metadata.namespace, s.metadata.uid) == \
        ("web", namespace, d.metadata.uid)
    assert s.metadata.resourceVersion == d.metadata.resourceVersion
    assert s.spec.replicas == 2 and s.status.replicas == 0
    assert s.status.selector == "app=web,tier in (fe,be)"

    client.create(_deployment(namespace, "dflt", replicas=None))
    assert client.get_scale("deployments", "dflt", namespace).spec.replicas == 1

    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc", "namespace": namespace},
        "spec": {"replicas": 3, "selector": {"b": "2", "a": "1"},
                 "template": _template({"a": "1", "b": "2"})}}, core_pb2.ReplicationController))
    rc = client.get_scale("rc", "rc", namespace)
    assert (rc.spec.replicas, rc.status.selector) == (3, "a=1,b=2")

    client.create(convert.from_dict({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": namespace},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": _template({"app": "db"})}}, apps_pb2.StatefulSet))
    assert client.get_scale("sts", "db", namespace).status.selector == "app=db"


def test_update_scale_writes_only_replicas(client: Client, namespace: str) -> None:
    d = client.create(_deployment(namespace, "web"))
    s = client.get_scale("deployments", "web", namespace)
    s.spec.replicas = 5
    s.status.selector = "ignored=yes"
    out = client.update_scale("deployments", s)
    assert out.spec.replicas == 5 and out.status.selector == "app=web,tier in (fe,be)"
    after = client.get("deployments", "web", namespace)
    assert after.spec.replicas == 5
    assert after.metadata.generation == d.metadata.generation + 1
    assert after.spec.template == d.spec.template
    assert out.metadata.resourceVersion == after.metadata.resourceVersion

    # The old resourceVersion is a compare-and-swap that now fails...
    s.spec.replicas = 1
    with pytest.raises(APIStatusError) as e:
        client.update_scale("deployments", s)
    assert e.value.conflict
    # ...and a Scale without one lands on the latest version.
    s.metadata.resourceVersion = ""
    assert client.update_scale("deployments", s).spec.replicas == 1

    dry = client.get_scale("deployments", "web", namespace)
    dry.spec.replicas = 7
    assert client.update_scale("deployments", dry, dry_run=True).spec.replicas == 7
    assert client.get("deployments", "web", namespace).spec.replicas == 1


def test_scale_errors_name_the_problem(client: Client, namespace: str) -> None:
    client.create(_deployment(namespace, "web"))
    bad = autoscaling_pb2.Scale()
    bad.metadata.name, bad.metadata.namespace = "web", namespace
    bad.spec.replicas = -1
    with pytest.raises(APIStatusError) as e:
        client.update_scale("deployments", bad)
    assert e.value.reason == "Invalid"
    assert e.value.message == ('Scale.autoscaling "web" is invalid: spec.replicas: '
                               'Invalid value: -1: must be greater than or equal to 0')

    with pytest.raises(APIStatusError) as e:
        client.get_scale("deployments", "nope", namespace)
    assert e.value.not_found and 'deployments.apps "nope" not found' in e.value.message

    client.create(convert.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cm", "namespace": namespace}},
                                    core_pb2.ConfigMap))
    with pytest.raises(APIStatusError) as e:
        client.get_scale("configmaps", "cm", namespace)
    assert e.value.not_found and "configmaps have no scale subresource" in e.value.message
