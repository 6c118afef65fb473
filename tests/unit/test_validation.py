"""Validation: every error at once, worded as Kubernetes words it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite.objects import convert, defaults, kinds, validation, versions
from kubelite.objects.errors import Invalid

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def decode(d: dict[str, Any]) -> Any:
    kind = kinds.by_kind(d["apiVersion"], d["kind"])
    obj = convert.from_dict(versions.to_internal(d), kind.message)
    defaults.apply(obj)
    return obj


def errors(d: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    return [str(e) for e in validation.validate(decode(d), decode(old) if old else None)]


def pod(**spec: Any) -> dict[str, Any]:
    body = {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body}


def template(labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}], **spec}}


def deployment(**spec: Any) -> dict[str, Any]:
    body = {"selector": {"matchLabels": {"app": "web"}}, "template": template({"app": "web"}),
            **spec}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": body}


def test_valid_objects_have_no_errors() -> None:
    assert errors(pod()) == []
    assert errors(deployment()) == []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert errors(doc) == [], path.name


def test_pod_reports_every_problem_at_once() -> None:
    d = pod(restartPolicy="Sometimes",
            containers=[{"name": "c"}, {"name": "c", "image": "x"}])
    d["metadata"] = {"name": "Bad_Name", "labels": {"a b": "x"}}
    errs = errors(d)
    assert errs[0].startswith('metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 '
                              "subdomain must consist of lower case alphanumeric characters")
    assert any(e.startswith('metadata.labels: Invalid value: "a b": name part must consist')
               for e in errs)
    assert "spec.containers[0].image: Required value" in errs
    assert 'spec.containers[1].name: Duplicate value: "c"' in errs
    assert ('spec.restartPolicy: Unsupported value: "Sometimes": supported values: '
            '"Always", "OnFailure", "Never"') in errs


def test_invalid_message_like_kubectl() -> None:
    d = pod(containers=[{"name": "c"}])
    d["metadata"]["name"] = "Bad_Name"
    msg = Invalid(validation.validate(decode(d)), kind="Pod", name="Bad_Name").message()
    assert msg.startswith('Pod "Bad_Name" is invalid: [metadata.name: Invalid value: "Bad_Name"')
    assert msg.endswith("spec.containers[0].image: Required value]")


@pytest.mark.parametrize("meta, expected", [
    ({}, "metadata.name: Required value: name or generateName is required"),
    ({"name": "x" * 254}, "metadata.name: Invalid value"),
    ({"name": "ok", "labels": {"app": "-bad"}}, 'metadata.labels: Invalid value: "-bad"'),
    ({"name": "ok", "labels": {"a/b/c": "v"}}, 'metadata.labels: Invalid value: "a/b/c"'),
    ({"name": "ok", "annotations": {"not valid": "x"}}, "metadata.annotations: Invalid value"),
    ({"name": "ok", "finalizers": ["custom"]},
     'metadata.finalizers[0]: Invalid value: "custom": name is neither a standard finalizer'),
    ({"name": "ok", "finalizers": ["orphan", "foregroundDeletion"]},
     "finalizer orphan and foregroundDeletion cannot be both set"),
])
def test_metadata(meta: dict[str, Any], expected: str) -> None:
    d = pod()
    d["metadata"] = meta
    assert any(expected in e for e in errors(d)), errors(d)


def test_generate_name_is_validated_without_its_trailing_dash() -> None:
    d = pod()
    d["metadata"] = {"generateName": "web-"}
    assert errors(d) == ["metadata.name: Required value: name or generateName is required"]
    d["metadata"] = {"generateName": "Web-", "name": "web-abcde"}
    assert any(e.startswith('metadata.generateName: Invalid value: "Web-"') for e in errors(d))


def test_resources() -> None:
    d = pod(containers=[{"name": "c", "image": "i", "resources": {
        "requests": {"cpu": "2", "memory": "64Mi"}, "limits": {"cpu": "1"}}}])
    assert errors(d) == [
        'spec.containers[0].resources.requests: Invalid value: "2": '
        "must be less than or equal to cpu limit of 1"]
    with pytest.raises(Invalid, match=r"limits\[memory\]: Invalid value: \"12XB\""):
        decode(pod(containers=[{"name": "c", "image": "i",
                                "resources": {"limits": {"memory": "12XB"}}}]))


def test_host_ports_and_container_ports() -> None:
    d = pod(containers=[{"name": "c", "image": "i", "ports": [
        {"containerPort": 0}, {"containerPort": 80, "hostPort": 70000}]}])
    errs = errors(d)
    assert any(e.startswith("spec.containers[0].ports[0].containerPort: ") for e in errs), errs
    assert any(e.startswith("spec.containers[0].ports[1].hostPort: Invalid value: 70000")
               for e in errs), errs


def test_deployment_replicas_and_selector() -> None:
    assert errors(deployment(replicas=-1)) == [
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"]
    d = deployment()
    del d["spec"]["selector"]
    assert errors(d) == [
        "spec.selector: Required value",
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]
    d = deployment(selector={"matchLabels": {"app": "other"}})
    assert errors(d) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"]


def test_set_based_selector_errors() -> None:
    d = deployment(selector={"matchExpressions": [{"key": "app", "operator": "In"}]})
    assert any("values: Required value" in e for e in errors(d)), errors(d)
    d = deployment(selector={"matchExpressions": [
        {"key": "app", "operator": "Exists", "values": ["x"]}]})
    assert any("may not be specified when `operator` is 'Exists'" in e
               for e in errors(d)), errors(d)
    d = deployment(selector={"matchExpressions": [
        {"key": "app", "operator": "Near", "values": ["x"]}]})
    assert any('Invalid value: "Near"' in e or 'Unsupported value: "Near"' in e
               for e in errors(d)), errors(d)


def test_deployment_template_restart_policy_must_be_always() -> None:
    d = deployment(template=template({"app": "web"}, restartPolicy="Never"))
    assert errors(d) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Never": '
        'supported values: "Always"']


def test_selector_is_immutable_on_update() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web", "tier": "f"}},
                     template=template({"app": "web", "tier": "f"}))
    errs = errors(new, old)
    assert any(e.startswith("spec.selector: Invalid value") and "field is immutable" in e
               for e in errs), errs


def test_service_ports() -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "1svc"},
           "spec": {"ports": [{"port": 0}, {"port": 80}]}}
    errs = errors(svc)
    assert errs[0].startswith('metadata.name: Invalid value: "1svc": a DNS-1035 label')
    assert "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive" in errs
    assert "spec.ports[1].name: Required value" in errs
    ok = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
          "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}
    assert errors(ok) == []


def test_cron_schedule_and_job_restart_policy() -> None:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
          "spec": {"schedule": "61 * * * *", "jobTemplate": {"spec": {
              "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}}}
    errs = errors(cj)
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' \
        in errs
    assert ('spec.jobTemplate.spec.template.spec.restartPolicy: Required value: '
            'valid values: "OnFailure", "Never"') in errs
    cj["spec"]["schedule"] = "*/5 * * * *"
    cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert errors(cj) == []


def test_hpa_min_max() -> None:
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x", "apiVersion": "apps/v1"},
                    "minReplicas": 5, "maxReplicas": 2}}
    assert errors(hpa) == [
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]


def test_unknown_fields_named_by_path() -> None:
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(Invalid) as e:
        decode(d)
    assert str(e.value) == "spec.template.spec.containers[0].imagePullPolcy: unknown field"


def test_pod_update_may_not_change_node_name_once_set() -> None:
    bound = pod(nodeName="n1")
    moved = errors(pod(nodeName="n2"), bound)
    assert moved == ['spec.nodeName: Forbidden: pod updates may not change spec.nodeName '
                     'once it is set (the pod is bound to node "n1")']
    assert errors(pod(), bound) == moved  # clearing it is a change too
    assert errors(pod(nodeName="n1"), bound) == []
    relabeled = pod(nodeName="n1")
    relabeled["metadata"]["labels"] = {"x": "y"}
    assert errors(relabeled, bound) == []
    # an unbound pod is bound through pods/binding, never by an update
    assert errors(pod(nodeName="n1"), pod()) == [
        "spec.nodeName: Forbidden: pod updates may not set spec.nodeName "
        "(bind the pod through the pods/binding subresource)"]
