"""Defaults (what Kubernetes fills in) and the conversion of older apiVersions."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kubelite.objects import convert, defaults, kinds, versions
from kubelite.objects.errors import Invalid


def decode(d: dict[str, Any]) -> Any:
    kind = kinds.by_kind(d["apiVersion"], d["kind"])
    obj = convert.from_dict(versions.to_internal(d), kind.message)
    defaults.apply(obj)
    return obj


def as_dict(d: dict[str, Any]) -> dict[str, Any]:
    return convert.to_dict(decode(d))


CONTAINER = {"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}],
             "livenessProbe": {"httpGet": {"port": 80}}}


@pytest.mark.parametrize("image, policy", [
    ("busybox:1.36", "IfNotPresent"), ("busybox", "Always"), ("busybox:latest", "Always"),
    ("localhost:5000/busybox", "Always"), ("localhost:5000/busybox:1", "IfNotPresent"),
    ("busybox@sha256:" + "a" * 64, "IfNotPresent"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert defaults.image_pull_policy(image) == policy


def test_pod_defaults() -> None:
    pod = as_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [dict(CONTAINER, resources={"limits": {"cpu": "1"}})]}})
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    probe = c["livenessProbe"]
    assert (probe["timeoutSeconds"], probe["periodSeconds"], probe["successThreshold"],
            probe["failureThreshold"]) == (1, 10, 1, 3)
    assert probe["httpGet"]["path"] == "/" and probe["httpGet"]["scheme"] == "HTTP"
    # A pod's limit without a request sets the request.
    assert c["resources"]["requests"]["cpu"] == "1"


def test_defaults_are_idempotent_and_keep_what_is_set() -> None:
    d = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
         "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                  "containers": [dict(CONTAINER, imagePullPolicy="Never")]}}
    once = decode(d)
    twice = decode(convert.to_dict(once))
    assert once == twice
    assert once.spec.restartPolicy == "Never"
    assert once.spec.terminationGracePeriodSeconds == 0  # explicitly zero stays zero
    assert once.spec.containers[0].imagePullPolicy == "Never"


def test_deployment_defaults() -> None:
    d = as_dict({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                 "spec": {"selector": {"matchLabels": {"a": "b"}},
                          "template": {"metadata": {"labels": {"a": "b"}},
                                       "spec": {"containers": [CONTAINER]}}}})["spec"]
    assert d["replicas"] == 1 and d["revisionHistoryLimit"] == 10
    assert d["progressDeadlineSeconds"] == 600
    assert d["strategy"] == {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}


def test_replication_controller_takes_selector_and_labels_from_template() -> None:
    rc = decode({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"},
                 "spec": {"template": {"metadata": {"labels": {"app": "y"}},
                                       "spec": {"containers": [CONTAINER]}}}})
    assert dict(rc.spec.selector) == {"app": "y"} and dict(rc.metadata.labels) == {"app": "y"}
    assert rc.spec.replicas == 1


def test_job_and_cronjob_defaults() -> None:
    job = decode({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi"},
                  "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                 "containers": [CONTAINER]}}}})
    assert (job.spec.completions, job.spec.parallelism, job.spec.backoffLimit) == (1, 1, 6)
    defaults.apply_job_selector(job, "uid-1")
    assert dict(job.spec.selector.matchLabels) == {"batch.kubernetes.io/controller-uid": "uid-1"}
    labels = job.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == "pi" and labels["controller-uid"] == "uid-1"
    cj = decode({"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "c"},
                 "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {
                     "spec": {"restartPolicy": "OnFailure", "containers": [CONTAINER]}}}}}})
    assert cj.apiVersion == "batch/v1"
    assert (cj.spec.concurrencyPolicy, cj.spec.successfulJobsHistoryLimit,
            cj.spec.failedJobsHistoryLimit) == ("Allow", 3, 1)


def test_service_namespace_secret_defaults() -> None:
    svc = as_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                   "spec": {"ports": [{"port": 80}]}})["spec"]
    assert svc["type"] == "ClusterIP" and svc["sessionAffinity"] == "None"
    assert svc["ports"][0]["protocol"] == "TCP" and svc["ports"][0]["targetPort"] == 80
    ns = decode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
    assert list(ns.spec.finalizers) == ["kubernetes"] and ns.status.phase == "Active"
    secret = decode({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                     "stringData": {"password": "hunter2"}})
    assert secret.type == "Opaque" and not secret.stringData
    assert secret.data["password"] == b"hunter2"
    assert convert.to_dict(secret)["data"]["password"] == base64.b64encode(b"hunter2").decode()


def test_hpa_v1_converts_to_v2() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "php-apache"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "php-apache"},
                   "maxReplicas": 10, "targetCPUUtilizationPercentage": 50},
          "status": {"currentReplicas": 1, "desiredReplicas": 1,
                     "currentCPUUtilizationPercentage": 12}}
    out = versions.to_internal(v1)
    assert out is not v1 and v1["spec"]["targetCPUUtilizationPercentage"] == 50  # a copy
    hpa = decode(v1)
    assert hpa.apiVersion == "autoscaling/v2"
    assert hpa.spec.minReplicas == 1  # defaulted
    d = convert.to_dict(hpa)
    assert d["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]
    assert d["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 12}}}]
    back = versions.hpa_v2_to_v1(d)
    assert back["apiVersion"] == "autoscaling/v1"
    assert back["spec"]["targetCPUUtilizationPercentage"] == 50
    assert back["status"]["currentCPUUtilizationPercentage"] == 12


def test_hpa_v2_without_metrics_defaults_to_cpu_80() -> None:
    hpa = as_dict({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "h"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "x"},
                            "maxReplicas": 3}})
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80


def test_hpa_v1_bad_input_is_named() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "h"},
          "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": "fifty",
                   "targetMemory": 3}}
    with pytest.raises(Invalid) as e:
        versions.to_internal(v1)
    assert str(e.value) == ('HorizontalPodAutoscaler.autoscaling "h" is invalid: '
                            'spec.targetCPUUtilizationPercentage: Invalid value: "fifty": '
                            "must be an integer")
    del v1["spec"]["targetCPUUtilizationPercentage"]
    with pytest.raises(Invalid, match=r"spec.targetMemory: unknown field"):
        decode(v1)


def test_versions_leave_current_and_unknown_alone() -> None:
    d = {"apiVersion": "apps/v1", "kind": "Deployment"}
    assert versions.to_internal(d) is d
    odd = {"apiVersion": "extensions/v1beta1", "kind": "Deployment"}
    assert versions.to_internal(odd) is odd
