"""The kubelite CLI as a user runs it: a real process against a real master."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubelite.client import APIStatusError, Client
from tests.cluster import ROOT, Master
from tests.e2e.conftest import Kl

EXAMPLES = ROOT / "examples"


def test_apply_is_idempotent_and_reports(kl: Kl) -> None:
    f = str(EXAMPLES / "nginx-deployment.yaml")
    assert kl.ok("apply", "-f", f) == "deployment.apps/nginx-deployment created\n"
    assert kl.ok("apply", "-f", f) == "deployment.apps/nginx-deployment unchanged\n"
    changed = (EXAMPLES / "nginx-deployment.yaml").read_text().replace("replicas: 3",
                                                                      "replicas: 5")
    assert kl.ok("apply", "-f", "-", input=changed) == \
        "deployment.apps/nginx-deployment configured\n"
    out = kl.ok("get", "deploy", "nginx-deployment", "-o", "json")
    d = json.loads(out)
    assert d["spec"]["replicas"] == 5
    assert d["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in d["metadata"]["annotations"]


def test_apply_removes_fields_dropped_from_the_manifest(kl: Kl) -> None:
    doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg",
           "labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}}
    kl.ok("apply", "-f", "-", input=json.dumps(doc))
    kl.ok("label", "configmap", "cfg", "added-by-hand=yes")
    del doc["metadata"]["labels"]["b"]
    del doc["data"]["y"]
    assert kl.ok("apply", "-f", "-", input=json.dumps(doc)) == "configmap/cfg configured\n"
    live = json.loads(kl.ok("get", "cm", "cfg", "-o", "json"))
    assert live["data"] == {"x": "1"}
    # dropped from the manifest: removed; added by someone else: kept
    assert live["metadata"]["labels"] == {"a": "1", "added-by-hand": "yes"}


def test_documentation_manifests_apply_unmodified(kl: Kl) -> None:
    out = kl.ok("apply", "-f", str(EXAMPLES))
    for line in ("deployment.apps/nginx-deployment created",
                 "replicaset.apps/frontend created",
                 "service/nginx created", "statefulset.apps/web created",
                 "job.batch/pi created", "cronjob.batch/hello created",
                 "horizontalpodautoscaler.autoscaling/php-apache created",
                 "service/php-apache created", "deployment.apps/php-apache created",
                 "service/mysql-external created", "endpoints/mysql-external created"):
        assert line in out
    job = json.loads(kl.ok("get", "job", "pi", "-o", "json"))
    assert job["spec"]["backoffLimit"] == 4
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][1] == "-Mbignum=bpi"
    hpa = yaml.safe_load(kl.ok("get", "hpa", "php-apache", "-o", "yaml"))
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 50


def test_autoscaling_v1_manifest_is_converted(kl: Kl) -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "old"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "web"},
                   "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60}}
    kl.ok("apply", "-f", "-", input=json.dumps(v1))
    got = json.loads(kl.ok("get", "hpa", "old", "-o", "json"))
    assert got["apiVersion"] == "autoscaling/v2"
    assert got["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


def test_multi_document_and_list_kinds(kl: Kl) -> None:
    docs = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n"
            "apiVersion: v1\nkind: List\nitems:\n"
            "- {apiVersion: v1, kind: ConfigMap, metadata: {name: two}}\n"
            "- {apiVersion: v1, kind: Secret, metadata: {name: three}, "
            "stringData: {password: hunter2}}\n")
    out = kl.ok("create", "-f", "-", input=docs)
    assert out.splitlines() == ["configmap/one created", "configmap/two created",
                                "secret/three created"]
    secret = json.loads(kl.ok("get", "secret", "three", "-o", "json"))
    assert secret["data"] == {"password": "aHVudGVyMg=="} and secret["type"] == "Opaque"
    r = kl("create", "-f", "-", input=docs)
    assert r.returncode == 1
    assert 'Error from server (AlreadyExists): error when creating "STDIN": ' \
           'configmaps "one" already exists' in r.stderr


def test_unknown_field_is_named_and_nothing_written(kl: Kl) -> None:
    bad = (EXAMPLES / "nginx-deployment.yaml").read_text().replace(
        "image: nginx:1.14.2", "image: nginx:1.14.2\n        imagePullPolcy: Always")
    r = kl("apply", "-f", "-", input=bad)
    assert r.returncode == 1
    assert "spec.template.spec.containers[0].imagePullPolcy: unknown field" in r.stderr
    r = kl("get", "deploy", "nginx-deployment")
    assert r.returncode == 1
    assert r.stderr.strip() == \
        'Error from server (NotFound): deployments.apps "nginx-deployment" not found'


def test_server_validation_error_like_kubectl(kl: Kl) -> None:
    bad = (EXAMPLES / "nginx-deployment.yaml").read_text().replace("replicas: 3",
                                                                  "replicas: -1")
    r = kl("apply", "-f", "-", input=bad)
    assert r.returncode == 1
    assert r.stderr.startswith('The Deployment "nginx-deployment" is invalid: ')
    assert "spec.replicas: Invalid value: -1" in r.stderr


def test_get_tables_and_output_formats(kl: Kl) -> None:
    kl.ok("apply", "-f", str(EXAMPLES / "nginx-deployment.yaml"))
    table = kl.ok("get", "deployments")
    lines = table.splitlines()
    assert lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert lines[1].split()[:4] == ["nginx-deployment", "0/3", "0", "0"]
    assert kl.ok("get", "deploy", "-o", "name") == "deployment.apps/nginx-deployment\n"
    wide = kl.ok("get", "deploy", "-o", "wide").splitlines()[0].split()
    assert wide[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    listed = yaml.safe_load(kl.ok("get", "deploy", "-o", "yaml"))
    assert listed["kind"] == "List" and len(listed["items"]) == 1
    assert kl.ok("get", "deploy", "-l", "app=nginx", "-o", "name").strip()
    assert kl.ok("get", "deploy", "-l", "app=other", "-o", "name") == ""
    r = kl("get", "pods")
    assert r.returncode == 0 and r.stderr.strip() == \
        f"No resources found in {kl.namespace} namespace."
    everywhere = kl.ok("get", "deploy", "-A", ns=False).splitlines()
    assert everywhere[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [kl.namespace, "nginx-deployment"] for line in everywhere)
    r = kl("get", "widgets")
    assert r.returncode == 1
    assert r.stderr.strip() == 'error: the server doesn\'t have a resource type "widgets"'


def test_short_names_resolve(kl: Kl) -> None:
    for short in ("po", "svc", "deploy", "rs", "rc", "sts", "ds", "cj", "hpa", "ep"):
        assert kl("get", short).returncode == 0, short
    assert "default" in kl.ok("get", "ns", ns=False)
    assert kl("get", "no", ns=False).returncode == 0


def test_field_selector_and_resource_slash_name(kl: Kl) -> None:
    kl.ok("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
    assert kl.ok("get", "pods", "--field-selector", "status.phase=Pending", "-o", "name") == \
        "pod/solo\n"
    assert kl.ok("get", "pod/solo", "-o", "name") == "pod/solo\n"
    table = kl.ok("get", "pods").splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["solo", "0/1", "Pending", "0"]


def test_label_and_annotate(kl: Kl) -> None:
    kl.ok("apply", "-f", str(EXAMPLES / "frontend-replicaset.yaml"))
    assert kl.ok("label", "rs", "frontend", "env=prod") == "replicaset.apps/frontend labeled\n"
    r = kl("label", "rs", "frontend", "env=dev")
    assert r.returncode == 1
    assert "'env' already has a value (prod), and --overwrite is false" in r.stderr
    kl.ok("label", "rs", "frontend", "env=dev", "--overwrite")
    kl.ok("label", "rs", "frontend", "tier-")
    labels = json.loads(kl.ok("get", "rs", "frontend", "-o", "json"))["metadata"]["labels"]
    assert labels == {"app": "guestbook", "env": "dev"}
    assert kl.ok("annotate", "rs", "frontend", "note=hello") == \
        "replicaset.apps/frontend annotated\n"
    r = kl("label", "rs", "frontend", "bad key=x")
    assert r.returncode == 1


def test_delete_by_name_file_and_selector(kl: Kl) -> None:
    f = str(EXAMPLES / "nginx-deployment.yaml")
    kl.ok("apply", "-f", f)
    assert kl.ok("delete", "-f", f) == 'deployment.apps "nginx-deployment" deleted\n'
    r = kl("delete", "deploy", "nginx-deployment")
    assert r.returncode == 1
    assert "NotFound" in r.stderr
    assert kl("delete", "deploy", "nginx-deployment", "--ignore-not-found").returncode == 0
    for n in ("a", "b"):
        kl.ok("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": n, "labels": {"grp": "x"}}}))
    out = kl.ok("delete", "cm", "-l", "grp=x")
    assert sorted(out.splitlines()) == ['configmap "a" deleted', 'configmap "b" deleted']


def test_delete_cascade_orphan_is_recorded(kl: Kl, client: Client) -> None:
    kl.ok("apply", "-f", str(EXAMPLES / "nginx-deployment.yaml"))
    out = kl.ok("delete", "deploy", "nginx-deployment", "--cascade=orphan", "--wait=false")
    assert out == 'deployment.apps "nginx-deployment" deleted\n'
    d = client.get("deployments", "nginx-deployment", kl.namespace)
    assert list(d.metadata.finalizers) == ["orphan"]
    r = kl("delete", "deploy", "x", "--cascade=sideways")
    assert r.returncode == 1 and "invalid cascade value" in r.stderr


def test_force_delete_warns(kl: Kl) -> None:
    kl.ok("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck"},
        "spec": {"nodeName": "gone-node", "containers": [{"name": "c", "image": "busybox"}]}}))
    r = kl("delete", "pod", "stuck", "--force", "--grace-period=0")
    assert r.returncode == 0
    assert "Immediate deletion does not wait for confirmation" in r.stderr
    assert r.stdout == 'pod "stuck" force deleted\n'


def test_describe_shows_events(kl: Kl, client: Client) -> None:
    kl.ok("apply", "-f", str(EXAMPLES / "nginx-deployment.yaml"))
    d = client.get("deployments", "nginx-deployment", kl.namespace)
    kl.ok("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "nginx-deployment.1"},
        "involvedObject": {"kind": "Deployment", "name": "nginx-deployment",
                           "namespace": kl.namespace, "uid": d.metadata.uid},
        "reason": "ScalingReplicaSet", "message": "Scaled up replica set x to 3",
        "type": "Normal", "source": {"component": "deployment-controller"},
        "count": 1}))
    out = kl.ok("describe", "deploy", "nginx-deployment")
    assert "Name:" in out and "nginx-deployment" in out
    assert "Scaled up replica set x to 3" in out
    assert "ScalingReplicaSet" in out


def test_edit_with_editor(kl: Kl, tmp_path: Path) -> None:
    kl.ok("apply", "-f", str(EXAMPLES / "nginx-deployment.yaml"))
    script = tmp_path / "ed.sh"
    script.write_text("#!/bin/sh\nsed -i 's/replicas: 3/replicas: 4/' \"$1\"\n")
    script.chmod(0o755)
    out = kl.ok("edit", "deploy", "nginx-deployment", env={"EDITOR": str(script)})
    assert out == "deployment.apps/nginx-deployment edited\n"
    d = json.loads(kl.ok("get", "deploy", "nginx-deployment", "-o", "json"))
    assert d["spec"]["replicas"] == 4
    out = kl.ok("edit", "deploy", "nginx-deployment", env={"EDITOR": "true"})
    assert out == "Edit cancelled, no changes made.\n"


def test_watch_prints_changes(kl: Kl, master: Master) -> None:
    cmd = [sys.executable, "-m", "kubelite.cli.main", "get", "cm", "-w", "-n", kl.namespace,
           "-o", "name"]
    env = {**os.environ, "KUBELITE_SERVER": master.address,
           "KUBELITE_CONFIG": "/nonexistent-kubelite-config"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    try:
        time.sleep(1.5)
        kl.ok("create", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}}))
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "configmap/watched"
    finally:
        proc.terminate()
        proc.wait(10)


def test_api_resources_explain_version_cluster_info(kl: Kl) -> None:
    res = kl.ok("api-resources", ns=False).splitlines()
    assert res[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert any(r.split()[:2] == ["deployments", "deploy"] for r in res)
    ex = kl.ok("explain", "pods.spec.containers.imagePullPolicy", ns=False)
    assert "KIND:       Pod" in ex and "FIELD: imagePullPolicy <string>" in ex
    ex = kl.ok("explain", "deploy.spec", ns=False)
    assert "replicas\t<integer>" in ex and "strategy\t<DeploymentStrategy>" in ex
    assert kl("explain", "pods.spec.nope", ns=False).returncode == 1
    v = kl.ok("version", ns=False)
    assert v.startswith("Client Version: v") and "Server Version: v" in v
    assert "running at" in kl.ok("cluster-info", ns=False)


def test_unreachable_server_message(kl: Kl) -> None:
    r = kl("get", "pods", env={"KUBELITE_SERVER": "127.0.0.1:1"})
    assert r.returncode == 1
    assert "The connection to the server 127.0.0.1:1 was refused" in r.stderr


def test_config_file_and_flags(kl: Kl, master: Master, tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(f"server: {master.address}\nnamespace: kube-system\n")
    env = {"KUBELITE_SERVER": ""}
    r = kl("get", "ns", "kube-system", "-o", "name", "--kubeconfig", str(cfg), ns=False, env=env)
    assert r.returncode == 0, r.stderr
    r = kl("get", "ns", "--kubeconfig", str(tmp_path / "missing"), ns=False, env=env)
    assert r.returncode == 1 and "does not exist" in r.stderr
    cfg.write_text("server: [oops\n")
    r = kl("get", "ns", "--kubeconfig", str(cfg), ns=False, env=env)
    assert r.returncode == 1 and "error loading config file" in r.stderr


def test_namespace_flag_conflict(kl: Kl) -> None:
    doc = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "namespace": "elsewhere"}}
    r = kl("apply", "-f", "-", input=json.dumps(doc))
    assert r.returncode == 1 and "does not match the namespace" in r.stderr


@pytest.fixture()
def unique() -> Iterator[str]:
    yield uuid.uuid4().hex[:6]


def test_create_namespace_and_delete_it(kl: Kl, unique: str, client: Client) -> None:
    name = f"cli-{unique}"
    assert kl.ok("create", "namespace", name, ns=False) == f"namespace/{name} created\n"
    kl.ok("delete", "ns", name, "--wait=true", "--timeout=30", ns=False)
    with pytest.raises(APIStatusError):
        client.get("namespaces", name)
