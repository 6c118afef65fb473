"""Manifest dict <-> message conversion: strict decoding with field paths."""

from __future__ import annotations

import pytest

from kubelite.api import apps_pb2, core_pb2, pod_pb2
from kubelite.objects import convert
from kubelite.objects.errors import Invalid


def test_round_trip_keeps_kubernetes_shape() -> None:
    doc = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                "name": "c", "image": "nginx",
                "resources": {"limits": {"cpu": 1, "memory": "128Mi"},
                              "requests": {"cpu": 0.5}},
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
                "volumes": [{"name": "d", "emptyDir": {}}]}},
        },
    }
    msg = convert.from_dict(doc, apps_pb2.Deployment)
    assert msg.spec.HasField("replicas") and msg.spec.replicas == 0
    assert msg.spec.strategy.rollingUpdate.maxSurge.strVal == "25%"
    assert msg.spec.strategy.rollingUpdate.maxUnavailable.intVal == 1
    back = convert.to_dict(msg)
    c = back["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"] == {"limits": {"cpu": "1", "memory": "128Mi"},
                              "requests": {"cpu": "0.5"}}
    assert c["readinessProbe"]["httpGet"]["port"] == "http"
    assert back["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": "25%",
                                                         "maxUnavailable": 1}
    assert back["spec"]["replicas"] == 0
    assert back["spec"]["template"]["spec"]["volumes"] == [{"name": "d", "emptyDir": {}}]


def test_unknown_field_named_by_path() -> None:
    doc = {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "x", "imagePullPolcy": "Always"}]}}}}
    with pytest.raises(Invalid) as e:
        convert.from_dict(doc, apps_pb2.Deployment)
    assert str(e.value) == "spec.template.spec.containers[0].imagePullPolcy: unknown field"


def test_every_error_reported_at_once() -> None:
    doc = {"metadata": {"name": 5, "labels": ["a"]}, "spec": {"replicas": "three", "bogus": 1}}
    with pytest.raises(Invalid) as e:
        convert.from_dict(doc, apps_pb2.Deployment)
    assert [str(x) for x in e.value.errors] == [
        "metadata.name: expected string, got number",
        "metadata.labels: expected object, got array",
        "spec.replicas: expected integer, got string",
        "spec.bogus: unknown field",
    ]


def test_quantities_checked_while_decoding() -> None:
    doc = {"spec": {"containers": [{"name": "c", "image": "x",
                                    "resources": {"limits": {"memory": "12 parsecs"}}}]}}
    with pytest.raises(Invalid) as e:
        convert.from_dict(doc, pod_pb2.Pod)
    assert str(e.value).startswith(
        'spec.containers[0].resources.limits[memory]: Invalid value: "12 parsecs": '
        "quantities must match the regular expression")


def test_int_or_string_rejects_other_types() -> None:
    doc = {"spec": {"ports": [{"port": 80, "targetPort": 1.5}]}}
    with pytest.raises(Invalid) as e:
        convert.from_dict(doc, core_pb2.Service)
    assert "spec.ports[0].targetPort: expected integer or string" in str(e.value)


def test_bytes_are_base64_and_null_is_unset() -> None:
    s = convert.from_dict({"data": {"k": "aGk="}, "type": None}, core_pb2.Secret)
    assert s.data["k"] == b"hi" and s.type == ""
    assert convert.to_dict(s) == {"data": {"k": "aGk="}}
    with pytest.raises(Invalid) as e:
        convert.from_dict({"data": {"k": "not base64!"}}, core_pb2.Secret)
    assert str(e.value) == "data[k]: illegal base64 data"


def test_int32_range_and_bool_strictness() -> None:
    with pytest.raises(Invalid):
        convert.from_dict({"spec": {"replicas": 2**40}}, apps_pb2.Deployment)
    with pytest.raises(Invalid):
        convert.from_dict({"spec": {"paused": "yes"}}, apps_pb2.Deployment)
    with pytest.raises(Invalid):
        convert.from_dict({"spec": {"replicas": True}}, apps_pb2.Deployment)
