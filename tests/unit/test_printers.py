"""kubectl get tables: cells per kind, column layout and ages, on realistic dicts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubelite.cli import printers
from kubelite.cli.age import age, human_duration, rfc1123z
from kubelite.cli.printers_tabwriter import align
from kubelite.objects import kinds

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def cells(kind: str, obj: Obj, *, wide: bool = False) -> list[str]:
    return printers.columns_for(kind).row(obj, wide, NOW)


# ---- ages --------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (-5, "<invalid>"), (-1, "0s"), (-0.5, "0s"), (0, "0s"), (5, "5s"), (119.9, "119s"),
    (120, "2m"), (184, "3m4s"), (599, "9m59s"), (600, "10m"), (179 * 60 + 59, "179m"),
    (3 * 3600, "3h"), (3 * 3600 + 5 * 60 + 30, "3h5m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
    (48 * 3600, "2d"), (51 * 3600, "2d3h"), (8 * 86400, "8d"), (729 * 86400, "729d"),
    (730 * 86400, "2y"), (775 * 86400, "2y45d"), (8 * 365 * 86400, "8y"),
    (20 * 365 * 86400, "20y"),
])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_and_timestamps() -> None:
    assert age("", NOW) == "<unknown>"
    assert age(None, NOW) == "<unknown>"
    assert age("2026-11-23T09:54:30Z", NOW) == "5m30s"
    assert age("2026-11-23T09:59:59.750000Z", NOW) == "0s"
    assert age("2026-11-23T10:00:05Z", NOW) == "<invalid>"
    assert rfc1123z("2026-11-23T09:20:25Z") == "Mon, 23 Nov 2026 09:20:25 +0000"
    assert rfc1123z("2026-01-02T03:04:05+05:30") == "Fri, 02 Jan 2026 03:04:05 +0530"


def test_tabwriter_blocks_and_minwidth() -> None:
    # Column widths are per run of lines; the last cell of a line is never padded.
    text = "a:\tx\nlonger:\ty\nno tabs\nb:\tz\n"
    assert align(text, minwidth=0, padding=2) == "a:       x\nlonger:  y\nno tabs\nb:  z\n"
    # kubectl get's minimum width 6 widens a short column.
    assert align("A\tB\nx\ty\n", minwidth=6, padding=3) == "A     B\nx     y\n"


# ---- pods --------------------------------------------------------------------

def running_pod() -> Obj:
    return {
        "metadata": {"name": "web-1", "namespace": "default",
                     "creationTimestamp": "2026-11-23T09:00:00Z",
                     "labels": {"app": "web", "pod-template-hash": "7d4b9c"}},
        "spec": {"nodeName": "node-1", "containers": [{"name": "nginx"}, {"name": "sidecar"}]},
        "status": {
            "phase": "Running", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "nginx", "ready": True, "restartCount": 2,
                 "state": {"running": {"startedAt": "2026-11-23T09:55:01Z"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": "2026-11-23T09:55:00Z"}}},
                {"name": "sidecar", "ready": True, "restartCount": 1,
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 137,
                                              "finishedAt": "2026-11-23T09:30:00Z"}}},
            ],
        },
    }


def crashing_pod() -> Obj:
    return {
        "metadata": {"name": "api-5c9f-x2", "namespace": "default",
                     "creationTimestamp": "2026-11-23T09:50:00Z"},
        "spec": {"containers": [{"name": "api"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "api", "ready": False, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff",
                                       "message": "back-off 2m40s restarting failed container"}},
                 "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                              "finishedAt": "2026-11-23T09:58:30Z"}}},
            ],
        },
    }


def terminating_pod() -> Obj:
    pod = running_pod()
    pod["metadata"]["name"] = "web-2"
    pod["metadata"]["deletionTimestamp"] = "2026-11-23T09:59:30Z"
    for cs in pod["status"]["containerStatuses"]:
        cs["restartCount"] = 0
        del cs["lastState"]
    return pod


def completed_job_pod() -> Obj:
    return {
        "metadata": {"name": "pi-8kq2d", "namespace": "default",
                     "creationTimestamp": "2026-11-23T07:00:00Z"},
        "spec": {"containers": [{"name": "pi"}], "restartPolicy": "Never"},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {"name": "pi", "ready": False, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "finishedAt": "2026-11-23T07:00:40Z"}}},
            ],
        },
    }


def test_running_pod_with_restarts() -> None:
    assert cells("Pod", running_pod()) == ["web-1", "2/2", "Running", "3 (5m ago)", "60m"]
    assert cells("Pod", running_pod(), wide=True)[5:] == [
        "10.244.1.5", "node-1", "<none>", "<none>"]


def test_crashloop_pod() -> None:
    assert cells("Pod", crashing_pod()) == [
        "api-5c9f-x2", "0/1", "CrashLoopBackOff", "5 (90s ago)", "10m"]


def test_terminating_pod() -> None:
    assert cells("Pod", terminating_pod())[1:4] == ["2/2", "Terminating", "0"]


def test_completed_job_pod() -> None:
    assert cells("Pod", completed_job_pod()) == ["pi-8kq2d", "0/1", "Completed", "0", "3h"]


def _pod(status: Obj, spec: Obj | None = None, **meta: Any) -> Obj:
    return {"metadata": {"name": "p", "creationTimestamp": "2026-11-23T09:59:00Z", **meta},
            "spec": spec or {"containers": [{"name": "c"}]}, "status": status}


@pytest.mark.parametrize(("status", "spec", "reason"), [
    ({"phase": "Pending"}, None, "Pending"),
    ({"phase": "Pending", "containerStatuses": [
        {"name": "c", "state": {"waiting": {"reason": "ContainerCreating"}}}]},
     None, "ContainerCreating"),
    ({"phase": "Pending", "containerStatuses": [
        {"name": "c", "state": {"waiting": {"reason": "ErrImagePull"}}}]}, None, "ErrImagePull"),
    ({"phase": "Failed", "containerStatuses": [
        {"name": "c", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]},
     None, "Error"),
    ({"phase": "Failed", "containerStatuses": [
        {"name": "c", "state": {"terminated": {"exitCode": 2}}}]}, None, "ExitCode:2"),
    ({"phase": "Failed", "containerStatuses": [
        {"name": "c", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]},
     None, "Signal:9"),
    ({"phase": "Failed", "reason": "Evicted",
      "message": "The node was low on resource: memory."}, None, "Evicted"),
    ({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]},
     None, "SchedulingGated"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}]},
     {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]}, "Init:0/1"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "b", "state": {"running": {}}}]},
     {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
     "Init:1/2"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "restartCount": 3,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
     {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]},
     "Init:CrashLoopBackOff"),
    ({"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"terminated": {"exitCode": 3}}}]},
     {"initContainers": [{"name": "init"}], "containers": [{"name": "c"}]}, "Init:ExitCode:3"),
    # One container completed, the other still runs: Running, not Completed.
    ({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
      "containerStatuses": [
          {"name": "a", "ready": False, "state": {"terminated": {"exitCode": 0,
                                                               "reason": "Completed"}}},
          {"name": "b", "ready": True, "state": {"running": {}}}]},
     {"containers": [{"name": "a"}, {"name": "b"}]}, "Running"),
])
def test_pod_status_reasons(status: Obj, spec: Obj | None, reason: str) -> None:
    assert cells("Pod", _pod(status, spec))[2] == reason


def test_sidecar_counts_as_a_container() -> None:
    spec = {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
            "containers": [{"name": "app"}]}
    status = {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
              "initContainerStatuses": [{"name": "proxy", "ready": True, "started": True,
                                         "restartCount": 1, "state": {"running": {}}}],
              "containerStatuses": [{"name": "app", "ready": True, "state": {"running": {}}}]}
    assert cells("Pod", _pod(status, spec))[1:4] == ["2/2", "Running", "1"]


def test_terminating_finished_and_lost_pods() -> None:
    done = completed_job_pod()
    done["metadata"]["deletionTimestamp"] = "2026-11-23T09:59:00Z"
    assert cells("Pod", done)[2] == "Completed"
    lost = _pod({"phase": "Running", "reason": "NodeLost"},
                deletionTimestamp="2026-11-23T09:59:00Z")
    assert cells("Pod", lost)[2] == "Unknown"


def test_pod_readiness_gates_wide() -> None:
    pod = _pod({"phase": "Running", "conditions": [
        {"type": "example.com/lb", "status": "True"}, {"type": "Ready", "status": "False"}]},
        {"containers": [{"name": "c"}],
         "readinessGates": [{"conditionType": "example.com/lb"},
                            {"conditionType": "example.com/dns"}]})
    assert cells("Pod", pod, wide=True)[5:] == ["<none>", "<none>", "<none>", "1/2"]


GOLDEN_PODS = """\
NAME          READY   STATUS             RESTARTS      AGE
web-1         2/2     Running            3 (5m ago)    60m
api-5c9f-x2   0/1     CrashLoopBackOff   5 (90s ago)   10m
web-2         2/2     Terminating        0             60m
pi-8kq2d      0/1     Completed          0             3h
"""


def test_golden_pod_table() -> None:
    pods = [running_pod(), crashing_pod(), terminating_pod(), completed_job_pod()]
    assert printers.table("Pod", pods, now=NOW) == GOLDEN_PODS


GOLDEN_PODS_ALL = (
    "NAMESPACE   NAME    READY   STATUS    RESTARTS     AGE   IP           NODE     "
    "NOMINATED NODE   READINESS GATES   LABELS\n"
    "default     web-1   2/2     Running   3 (5m ago)   60m   10.244.1.5   node-1   "
    "<none>           <none>            app=web,pod-template-hash=7d4b9c\n"
)


def test_namespace_wide_and_labels() -> None:
    text = printers.table("pods", [running_pod()], wide=True, with_namespace=True,
                          show_labels=True, now=NOW)
    assert text == GOLDEN_PODS_ALL
    no_headers = printers.table("Pod", [running_pod()], no_headers=True, now=NOW)
    assert no_headers == "web-1   2/2   Running   3 (5m ago)   60m\n"


def test_empty_list() -> None:
    assert printers.table("Pod", [], now=NOW) == ""
    assert printers.table("Service", [], wide=True, now=NOW) == ""


# ---- services and endpoints ----------------------------------------------------

def service(name: str, spec: Obj, status: Obj | None = None) -> Obj:
    return {"metadata": {"name": name, "namespace": "default",
                         "creationTimestamp": "2026-11-21T10:00:00Z"},
            "spec": spec, "status": status or {}}


def test_headless_service() -> None:
    svc = service("db", {"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"],
                         "selector": {"app": "db"},
                         "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]})
    assert cells("Service", svc, wide=True) == [
        "db", "ClusterIP", "None", "<none>", "5432/TCP", "2d", "app=db"]


def test_nodeport_service() -> None:
    svc = service("web", {"type": "NodePort", "clusterIP": "10.96.12.7",
                          "clusterIPs": ["10.96.12.7"],
                          "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                     "targetPort": 8080, "nodePort": 30080},
                                    {"name": "dns", "port": 53, "protocol": "UDP",
                                     "nodePort": 30053}]})
    assert cells("Service", svc) == [
        "web", "NodePort", "10.96.12.7", "<none>", "80:30080/TCP,53:30053/UDP", "2d"]


def test_other_service_types() -> None:
    lb = service("lb", {"type": "LoadBalancer", "clusterIPs": ["10.96.0.9"],
                        "ports": [{"port": 443, "protocol": "TCP", "nodePort": 31443}]})
    assert cells("Service", lb)[3] == "<pending>"
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"},
                                                 {"hostname": "lb.example.com"}]}}
    assert cells("Service", lb)[3] == "203.0.113.10,..."
    assert cells("Service", lb, wide=True)[3] == "203.0.113.10,lb.example.com"
    ext = service("db", {"type": "ExternalName", "externalName": "db.example.com"})
    assert cells("Service", ext) == ["db", "ExternalName", "<none>", "db.example.com",
                                     "<none>", "2d"]
    ips = service("x", {"type": "ClusterIP", "clusterIPs": ["10.96.0.3"],
                        "externalIPs": ["198.51.100.1", "198.51.100.2"],
                        "ports": [{"port": 80, "protocol": "TCP"}]})
    assert cells("Service", ips)[3] == "198.51.100.1,198.51.100.2"


def test_endpoints() -> None:
    ep = {"metadata": {"name": "web", "creationTimestamp": "2026-11-23T09:00:00Z"},
          "subsets": [{"addresses": [{"ip": f"10.244.1.{i}"} for i in range(1, 5)],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}
    assert cells("Endpoints", ep) == [
        "web", "10.244.1.1:8080,10.244.1.2:8080,10.244.1.3:8080 + 1 more...", "60m"]
    assert cells("Endpoints", {"metadata": {"name": "none"}}) == ["none", "<none>", "<unknown>"]


# ---- workloads ---------------------------------------------------------------

def deployment() -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1",
                     "creationTimestamp": "2026-11-23T09:00:00Z", "labels": {"app": "web"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "nginx", "image": "nginx:1.25"},
                                  {"name": "log", "image": "busybox:1.36"}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 2, "unavailableReplicas": 1},
    }


def test_deployment() -> None:
    assert cells("Deployment", deployment()) == ["web", "2/3", "3", "2", "60m"]
    assert cells("Deployment", deployment(), wide=True)[5:] == [
        "nginx,log", "nginx:1.25,busybox:1.36", "app=web"]


def test_replica_sets_and_controllers() -> None:
    rs = {"metadata": {"name": "web-7d4b9c"},
          "spec": {"replicas": 3, "selector": {
              "matchLabels": {"app": "web"},
              "matchExpressions": [{"key": "tier", "operator": "In",
                                    "values": ["front", "edge"]}]}},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert cells("ReplicaSet", rs, wide=True) == [
        "web-7d4b9c", "3", "3", "1", "<unknown>", "", "", "app=web,tier in (edge,front)"]
    rc = {"metadata": {"name": "old"}, "spec": {"replicas": 0, "selector": {"app": "old"}}}
    assert cells("ReplicationController", rc, wide=True) == [
        "old", "0", "0", "0", "<unknown>", "", "", "app=old"]


def test_statefulset_and_daemonset() -> None:
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 3},
           "status": {"replicas": 3, "readyReplicas": 3}}
    assert cells("StatefulSet", sts) == ["db", "3/3", "<unknown>"]
    ds = {"metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                         "containers": [{"name": "a", "image": "agent:1"}]}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                     "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}}
    assert cells("DaemonSet", ds, wide=True) == [
        "agent", "3", "3", "2", "3", "2", "kubernetes.io/os=linux", "<unknown>",
        "a", "agent:1", "app=agent"]


def test_jobs_and_cronjobs() -> None:
    done = {"metadata": {"name": "pi", "creationTimestamp": "2026-11-23T07:00:00Z"},
            "spec": {"completions": 1, "parallelism": 1},
            "status": {"succeeded": 1, "startTime": "2026-11-23T07:00:00Z",
                       "completionTime": "2026-11-23T07:00:42Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}}
    assert cells("Job", done) == ["pi", "Complete", "1/1", "42s", "3h"]
    queue = {"metadata": {"name": "q", "creationTimestamp": "2026-11-23T09:50:00Z"},
             "spec": {"parallelism": 3},
             "status": {"active": 3, "startTime": "2026-11-23T09:50:00Z"}}
    assert cells("Job", queue) == ["q", "Running", "0/1 of 3", "10m", "10m"]
    failed = {"metadata": {"name": "f"}, "spec": {"completions": 2},
              "status": {"failed": 7, "conditions": [{"type": "Failed", "status": "True"}]}}
    assert cells("Job", failed)[1:4] == ["Failed", "0/2", ""]
    suspended = {"metadata": {"name": "s"}, "spec": {"completions": 1, "suspend": True},
                 "status": {"conditions": [{"type": "Suspended", "status": "True"}]}}
    assert cells("Job", suspended)[1] == "Suspended"
    cj = {"metadata": {"name": "backup", "creationTimestamp": "2026-11-20T10:00:00Z"},
          "spec": {"schedule": "*/5 * * * *", "suspend": False,
                   "jobTemplate": {"spec": {"template": {"spec": {
                       "containers": [{"name": "b", "image": "backup:2"}]}}}}},
          "status": {"active": [{"name": "backup-2911"}],
                     "lastScheduleTime": "2026-11-23T09:58:00Z"}}
    assert cells("CronJob", cj, wide=True) == [
        "backup", "*/5 * * * *", "<none>", "False", "1", "2m", "3d", "b", "backup:2", "<none>"]


# ---- cluster kinds -----------------------------------------------------------

def test_node_not_ready_and_cordoned() -> None:
    node = {"metadata": {"name": "node-2", "creationTimestamp": "2026-11-13T10:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": "",
                                    "kubernetes.io/role": "etcd"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "Unknown"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.56.12"},
                                     {"type": "Hostname", "address": "node-2"}],
                       "nodeInfo": {"kubeletVersion": "v1.28.0-kubelite",
                                    "osImage": "CentOS Linux 7 (Core)",
                                    "kernelVersion": "3.10.0-1160.el7.x86_64"}}}
    assert cells("Node", node, wide=True) == [
        "node-2", "NotReady,SchedulingDisabled", "control-plane,etcd", "10d",
        "v1.28.0-kubelite", "192.168.56.12", "<none>", "CentOS Linux 7 (Core)",
        "3.10.0-1160.el7.x86_64", "<unknown>"]
    bare = {"metadata": {"name": "n"}}
    assert cells("Node", bare) == ["n", "Unknown", "<none>", "<unknown>", ""]


def test_hpa_targets() -> None:
    hpa: Obj = {"metadata": {"name": "php-apache", "creationTimestamp": "2026-11-23T09:00:00Z"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "php-apache"},
                    "minReplicas": 1, "maxReplicas": 10,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization",
                                                  "averageUtilization": 50}}}]},
           "status": {"currentReplicas": 3, "desiredReplicas": 5,
                      "currentMetrics": [{"type": "Resource", "resource": {
                          "name": "cpu", "current": {"averageUtilization": 85,
                                                     "averageValue": "850m"}}}]}}
    assert cells("HorizontalPodAutoscaler", hpa) == [
        "php-apache", "Deployment/php-apache", "cpu: 85%/50%", "1", "10", "3", "60m"]
    hpa["status"]["currentMetrics"] = []
    hpa["spec"]["metrics"] += [
        {"type": "Resource", "resource": {"name": "memory", "target": {
            "type": "AverageValue", "averageValue": "200Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {
            "type": "AverageValue", "averageValue": "1k"}}}]
    assert cells("hpa", hpa)[2] == "cpu: <unknown>/50%, memory: <unknown>/200Mi + 1 more..."
    hpa["spec"]["metrics"] = []
    assert cells("HorizontalPodAutoscaler", hpa)[2] == "<none>"


def test_namespace_configmap_secret() -> None:
    ns = {"metadata": {"name": "dev", "creationTimestamp": "2026-11-23T09:00:00Z"},
          "status": {"phase": "Active"}}
    assert cells("Namespace", ns) == ["dev", "Active", "60m"]
    cm = {"metadata": {"name": "cfg"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    assert cells("ConfigMap", cm) == ["cfg", "3", "<unknown>"]
    secret = {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
              "data": {"tls.crt": "Zm9v", "tls.key": "YmFy"}}
    assert cells("Secret", secret) == ["tls", "kubernetes.io/tls", "2", "<unknown>"]


def test_events() -> None:
    ev = {"metadata": {"name": "web-1.17a", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web-1",
                             "fieldPath": "spec.containers{nginx}"},
          "reason": "BackOff", "type": "Warning",
          "message": "Back-off restarting failed container\n",
          "source": {"component": "kubelet", "host": "node-1"},
          "firstTimestamp": "2026-11-23T09:50:00Z", "lastTimestamp": "2026-11-23T09:58:00Z",
          "count": 4}
    assert cells("Event", ev) == ["2m", "Warning", "BackOff", "pod/web-1",
                                  "Back-off restarting failed container"]
    assert cells("Event", ev, wide=True)[4:] == [
        "spec.containers{nginx}", "kubelet, node-1", "Back-off restarting failed container",
        "10m", "4", "web-1.17a"]
    new_api = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
               "eventTime": "2026-11-23T09:59:00Z", "reportingComponent": "node-controller"}
    assert cells("Event", new_api, wide=True) == [
        "60s", "", "", "node", "", "node-controller", "", "60s", "1", "e"]


def test_storage() -> None:
    pv = {"metadata": {"name": "pv-1", "creationTimestamp": "2026-11-23T09:00:00Z"},
          "spec": {"capacity": {"storage": "10Gi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                   "claimRef": {"namespace": "default", "name": "data"}},
          "status": {"phase": "Bound"}}
    assert cells("PersistentVolume", pv, wide=True) == [
        "pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "manual", "<unset>", "",
        "60m", "<unset>"]
    pvc = {"metadata": {"name": "data", "creationTimestamp": "2026-11-23T09:00:00Z"},
           "spec": {"accessModes": ["ReadWriteOncePod"], "volumeName": "pv-1",
                    "storageClassName": "manual", "volumeMode": "Filesystem",
                    "resources": {"requests": {"storage": "5Gi"}}},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                      "capacity": {"storage": "10Gi"}}}
    assert cells("PersistentVolumeClaim", pvc, wide=True) == [
        "data", "Bound", "pv-1", "10Gi", "RWO", "manual", "<unset>", "60m", "Filesystem"]
    pending = {"metadata": {"name": "p"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}},
               "status": {"phase": "Pending"}}
    assert cells("PersistentVolumeClaim", pending)[:6] == ["p", "Pending", "", "", "", ""]


def test_lease_controller_revision_and_generic() -> None:
    lease = {"metadata": {"name": "node-1", "creationTimestamp": "2026-11-23T09:00:00Z"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert cells("Lease", lease) == ["node-1", "node-1", "60m"]
    cr = {"metadata": {"name": "web-5d8f", "creationTimestamp": "2026-11-23T09:00:00Z",
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                                            "name": "web", "uid": "s-1", "controller": True}]},
          "revision": 2}
    assert cells("ControllerRevision", cr) == ["web-5d8f", "statefulset.apps/web", "2", "60m"]
    text = printers.table("Ingress", [{"metadata": {
        "name": "site", "creationTimestamp": "2026-11-23T09:59:30Z"}}], now=NOW)
    assert text == "NAME   AGE\nsite   30s\n"


def test_name_line() -> None:
    assert printers.name_line("deployment.apps", deployment()) == "deployment.apps/web"
    assert printers.name_line(kinds.by_resource("po"), running_pod()) == "pod/web-1"
    assert printers.name_line(kinds.by_resource("hpa"), deployment()) == \
        "horizontalpodautoscaler.autoscaling/web"
