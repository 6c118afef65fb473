"""kubectl describe text for realistic object dicts: layout, alignment and sections."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from kubelite.cli.describe import describe, smart_label
from kubelite.cli.describe_pods import describe_probe, qos_class

NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def web_pod() -> Obj:
    return {
        "metadata": {
            "name": "web-1", "namespace": "default", "uid": "p-1",
            "creationTimestamp": "2026-11-23T09:00:00Z",
            "labels": {"app": "web", "pod-template-hash": "abc"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "web-abc", "uid": "rs-1", "controller": True}],
        },
        "spec": {
            "nodeName": "node-1", "serviceAccountName": "default", "priority": 0,
            "containers": [{
                "name": "nginx", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "500m", "memory": "128Mi"},
                              "requests": {"cpu": "250m", "memory": "64Mi"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}},
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "POD", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}],
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.5", "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}], "startTime": "2026-11-23T09:00:01Z",
            "conditions": [{"type": t, "status": "True"} for t in
                           ("Initialized", "Ready", "ContainersReady", "PodScheduled")],
            "containerStatuses": [{
                "name": "nginx", "ready": True, "restartCount": 0, "image": "nginx:1.25",
                "imageID": "docker-pullable://nginx@sha256:abc", "containerID": "docker://123",
                "state": {"running": {"startedAt": "2026-11-23T09:00:05Z"}},
            }],
        },
    }


def pod_events() -> list[Obj]:
    # Given newest first: describe sorts them oldest first.
    return [
        {"type": "Warning", "reason": "BackOff", "message": "Back-off pulling image",
         "source": {"component": "kubelet"}, "firstTimestamp": "2026-11-23T09:55:00Z",
         "lastTimestamp": "2026-11-23T09:58:00Z", "count": 3},
        {"type": "Normal", "reason": "Scheduled",
         "message": "Successfully assigned default/web-1 to node-1",
         "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-11-23T09:00:00Z",
         "lastTimestamp": "2026-11-23T09:00:00Z", "count": 1},
    ]


GOLDEN_POD = _lines(
    "Name:             web-1",
    "Namespace:        default",
    "Priority:         0",
    "Service Account:  default",
    "Node:             node-1/10.0.0.5",
    "Start Time:       Mon, 23 Nov 2026 09:00:01 +0000",
    "Labels:           app=web",
    "                  pod-template-hash=abc",
    "Annotations:      <none>",
    "Status:           Running",
    "IP:               10.244.1.5",
    "IPs:",
    "  IP:           10.244.1.5",
    "Controlled By:  ReplicaSet/web-abc",
    "Containers:",
    "  nginx:",
    "    Container ID:   docker://123",
    "    Image:          nginx:1.25",
    "    Image ID:       docker-pullable://nginx@sha256:abc",
    "    Port:           80/TCP",
    "    Host Port:      0/TCP",
    "    State:          Running",
    "      Started:      Mon, 23 Nov 2026 09:00:05 +0000",
    "    Ready:          True",
    "    Restart Count:  0",
    "    Limits:",
    "      cpu:     500m",
    "      memory:  128Mi",
    "    Requests:",
    "      cpu:     250m",
    "      memory:  64Mi",
    "    Liveness:  http-get http://:8080/healthz delay=0s timeout=1s period=10s "
    "#success=1 #failure=3",
    "    Environment:",
    "      MODE:  prod",
    "      POD:   web-1 (v1:metadata.name)",
    "    Mounts:",
    "      /data from data (rw)",
    "Conditions:",
    "  Type              Status",
    "  Initialized       True ",
    "  Ready             True ",
    "  ContainersReady   True ",
    "  PodScheduled      True ",
    "Volumes:",
    "  data:",
    "    Type:        EmptyDir (a temporary directory that shares a pod's lifetime)",
    "    Medium:      ",
    "    SizeLimit:   <unset>",
    "QoS Class:       Burstable",
    "Node-Selectors:  <none>",
    "Tolerations:     node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
    "Events:",
    "  Type     Reason     Age              From               Message",
    "  ----     ------     ----             ----               -------",
    "  Normal   Scheduled  60m              default-scheduler  "
    "Successfully assigned default/web-1 to node-1",
    "  Warning  BackOff    2m (x3 over 5m)  kubelet            Back-off pulling image",
)


def test_golden_pod() -> None:
    assert describe("Pod", web_pod(), pod_events(), now=NOW) == GOLDEN_POD


def test_pod_states_and_terminating() -> None:
    pod = web_pod()
    pod["metadata"]["deletionTimestamp"] = "2026-11-23T09:59:30Z"
    pod["metadata"]["deletionGracePeriodSeconds"] = 30
    pod["status"]["containerStatuses"][0].update({
        "ready": False, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled", "signal": 9,
                                     "startedAt": "2026-11-23T09:57:00Z",
                                     "finishedAt": "2026-11-23T09:58:00Z"}}})
    text = describe("po", pod, [], now=NOW)
    # The longer "Termination Grace Period:" key widens the whole first block.
    assert "Status:                    Terminating (lasts 30s)\n" in text
    assert "Termination Grace Period:  30s\n" in text
    assert _lines(
        "    State:          Waiting",
        "      Reason:       CrashLoopBackOff",
        "    Last State:     Terminated",
        "      Reason:       OOMKilled",
        "      Exit Code:    137",
        "      Signal:       9",
        "      Started:      Mon, 23 Nov 2026 09:57:00 +0000",
        "      Finished:     Mon, 23 Nov 2026 09:58:00 +0000",
        "    Ready:          False",
        "    Restart Count:  4",
    ) in text
    assert text.endswith("Events:          <none>\n")


def test_pod_without_node_or_ips() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"containers": []}, "status": {"phase": "Pending"}}
    text = describe("Pod", pod, [], now=NOW)
    assert "Node:         <none>\n" in text
    assert "IPs:          <none>\n" in text
    assert "Containers: <none>\n" in text
    assert "QoS Class:       BestEffort\n" in text


def test_probes_and_qos() -> None:
    assert describe_probe({"exec": {"command": ["cat", "/tmp/healthy"]},
                           "initialDelaySeconds": 5, "periodSeconds": 5}) == \
        "exec [cat /tmp/healthy] delay=5s timeout=1s period=5s #success=1 #failure=3"
    assert describe_probe({"tcpSocket": {"port": "http"}, "failureThreshold": 1}) == \
        "tcp-socket :http delay=0s timeout=1s period=10s #success=1 #failure=1"
    assert describe_probe({"httpGet": {"scheme": "HTTPS", "host": "::1", "port": 443}}) \
        .startswith("http-get https://[::1]:443 ")
    guaranteed = {"spec": {"containers": [{"resources": {
        "limits": {"cpu": "1", "memory": "1Gi"}}}]}}
    assert qos_class(guaranteed) == "Guaranteed"
    assert qos_class({"spec": {"containers": [{}]}}) == "BestEffort"
    assert qos_class(web_pod()) == "Burstable"
    assert qos_class({"status": {"qosClass": "Guaranteed"}}) == "Guaranteed"


def deployment() -> Obj:
    return {
        "metadata": {"name": "web", "namespace": "default", "uid": "d-1",
                     "creationTimestamp": "2026-11-23T09:00:00Z", "labels": {"app": "web"},
                     "annotations": {"deployment.kubernetes.io/revision": "1",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{
                                  "name": "nginx", "image": "nginx:1.25",
                                  "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
        "status": {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3,
                   "availableReplicas": 3,
                   "conditions": [{"type": "Available", "status": "True",
                                   "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetAvailable"}]},
    }


def replica_set(name: str, image: str, replicas: int, created: str) -> Obj:
    d = deployment()
    template = copy.deepcopy(d["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = name.rsplit("-", 1)[1]
    template["spec"]["containers"][0]["image"] = image
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": "d-1", "controller": True}]},
            "spec": {"replicas": replicas, "template": template},
            "status": {"replicas": replicas}}


GOLDEN_DEPLOYMENT = _lines(
    "Name:                   web",
    "Namespace:              default",
    "CreationTimestamp:      Mon, 23 Nov 2026 09:00:00 +0000",
    "Labels:                 app=web",
    "Annotations:            deployment.kubernetes.io/revision: 1",
    "Selector:               app=web",
    "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable",
    "StrategyType:           RollingUpdate",
    "MinReadySeconds:        0",
    "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
    "Pod Template:",
    "  Labels:  app=web",
    "  Containers:",
    "   nginx:",
    "    Image:         nginx:1.25",
    "    Port:          80/TCP",
    "    Host Port:     0/TCP",
    "    Environment:   <none>",
    "    Mounts:        <none>",
    "  Volumes:         <none>",
    "  Node-Selectors:  <none>",
    "  Tolerations:     <none>",
    "Conditions:",
    "  Type           Status  Reason",
    "  ----           ------  ------",
    "  Available      True    MinimumReplicasAvailable",
    "  Progressing    True    NewReplicaSetAvailable",
    "OldReplicaSets:  web-5f7b (0/0 replicas created)",
    "NewReplicaSet:   web-7d4b (3/3 replicas created)",
    "Events:          <none>",
)


def test_golden_deployment() -> None:
    rss = [replica_set("web-5f7b", "nginx:1.24", 0, "2026-11-22T09:00:00Z"),
           replica_set("web-7d4b", "nginx:1.25", 3, "2026-11-23T09:00:00Z")]
    assert describe("Deployment", deployment(), [], now=NOW, replica_sets=rss) == \
        GOLDEN_DEPLOYMENT
    plain = describe("deployments.apps", deployment(), [], now=NOW)
    # Without the ReplicaSet lines "Events:" joins the conditions table's tab block.
    assert "OldReplicaSets" not in plain and plain.endswith(
        "  Progressing   True    NewReplicaSetAvailable\nEvents:         <none>\n")


def test_replica_set_and_pod_counts() -> None:
    rs = replica_set("web-7d4b", "nginx:1.25", 3, "2026-11-23T09:00:00Z")
    rs["metadata"]["uid"] = "rs-1"
    rs["spec"]["selector"] = {"matchLabels": {"app": "web", "pod-template-hash": "7d4b"}}
    rs["status"] = {"replicas": 3, "readyReplicas": 2}
    text = describe("ReplicaSet", rs, [], now=NOW)
    assert _lines(
        "Name:           web-7d4b",
        "Namespace:      default",
        "Selector:       app=web,pod-template-hash=7d4b",
        "Labels:         <none>",
        "Annotations:    <none>",
        "Controlled By:  Deployment/web",
        "Replicas:       3 current / 3 desired",
        "Pods Status:    2 Running / 1 Waiting / 0 Succeeded / 0 Failed",
        "Pod Template:",
    ) in text
    pods = [web_pod(), web_pod(), web_pod(), web_pod()]
    pods[0]["metadata"]["ownerReferences"][0]["uid"] = "rs-1"
    pods[1]["metadata"]["ownerReferences"][0]["uid"] = "rs-1"
    pods[1]["status"]["phase"] = "Failed"
    pods[2]["metadata"]["ownerReferences"][0]["uid"] = "rs-1"
    pods[2]["status"]["phase"] = "Pending"
    pods[3]["metadata"]["ownerReferences"][0]["uid"] = "another-rs"
    text = describe("rs", rs, [], now=NOW, pods=pods)
    assert "Pods Status:    1 Running / 1 Waiting / 0 Succeeded / 1 Failed\n" in text


GOLDEN_HPA = _lines(
    "Name:                                                  php-apache",
    "Namespace:                                             default",
    "Labels:                                                <none>",
    "Annotations:                                           <none>",
    "CreationTimestamp:                                     Mon, 23 Nov 2026 09:00:00 +0000",
    "Reference:                                             Deployment/php-apache",
    "Metrics:                                               ( current / target )",
    "  resource cpu on pods  (as a percentage of request):  85% (850m) / 50%",
    "  resource memory on pods:                             100Mi / 200Mi",
    "Min replicas:                                          1",
    "Max replicas:                                          10",
    "Deployment pods:                                       3 current / 5 desired",
    "Conditions:",
    "  Type         Status  Reason            Message",
    "  ----         ------  ------            -------",
    "  AbleToScale  True    SucceededRescale  the HPA controller was able to update the "
    "target scale to 5",
    "Events:        <none>",
)


def test_golden_hpa() -> None:
    hpa: Obj = {"metadata": {"name": "php-apache", "namespace": "default",
                        "creationTimestamp": "2026-11-23T09:00:00Z"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                       "name": "php-apache"},
                    "minReplicas": 1, "maxReplicas": 10,
                    "metrics": [
                        {"type": "Resource", "resource": {"name": "cpu", "target": {
                            "type": "Utilization", "averageUtilization": 50}}},
                        {"type": "Resource", "resource": {"name": "memory", "target": {
                            "type": "AverageValue", "averageValue": "200Mi"}}}]},
           "status": {"currentReplicas": 3, "desiredReplicas": 5,
                      "currentMetrics": [
                          {"type": "Resource", "resource": {"name": "cpu", "current": {
                              "averageUtilization": 85, "averageValue": "850m"}}},
                          {"type": "Resource", "resource": {"name": "memory", "current": {
                              "averageValue": "100Mi"}}}],
                      "conditions": [{"type": "AbleToScale", "status": "True",
                                      "reason": "SucceededRescale",
                                      "message": "the HPA controller was able to update "
                                                 "the target scale to 5"}]}}
    assert describe("HorizontalPodAutoscaler", hpa, [], now=NOW) == GOLDEN_HPA
    hpa["status"]["currentMetrics"] = []
    assert "(as a percentage of request):  <unknown> / 50%\n" in describe("hpa", hpa, [], now=NOW)


def test_service() -> None:
    svc = {"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
           "spec": {"type": "NodePort", "selector": {"app": "web"}, "clusterIP": "10.96.12.7",
                    "clusterIPs": ["10.96.12.7"], "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack", "sessionAffinity": "None",
                    "externalTrafficPolicy": "Cluster",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                               "targetPort": 8080, "nodePort": 30080},
                              {"port": 9090, "protocol": "TCP", "targetPort": "metrics"}]}}
    ep = {"metadata": {"name": "web"},
          "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.7"}],
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                                 {"port": 9090, "protocol": "TCP"}]}]}
    assert describe("svc", svc, [], now=NOW, endpoints=ep) == _lines(
        "Name:                     web",
        "Namespace:                default",
        "Labels:                   app=web",
        "Annotations:              <none>",
        "Selector:                 app=web",
        "Type:                     NodePort",
        "IP Family Policy:         SingleStack",
        "IP Families:              IPv4",
        "IP:                       10.96.12.7",
        "IPs:                      10.96.12.7",
        "Port:                     http  80/TCP",
        "TargetPort:               8080/TCP",
        "NodePort:                 http  30080/TCP",
        "Endpoints:                10.244.1.5:8080,10.244.2.7:8080",
        "Port:                     <unset>  9090/TCP",
        "TargetPort:               metrics/TCP",
        "Endpoints:                10.244.1.5:9090,10.244.2.7:9090",
        "Session Affinity:         None",
        "External Traffic Policy:  Cluster",
        "Events:                   <none>",
    )
    headless = {"metadata": {"name": "db", "namespace": "default"},
                "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                         "ports": [{"port": 5432, "protocol": "TCP"}]}}
    text = describe("Service", headless, [], now=NOW)
    assert "IP:                None\n" in text and "Endpoints:         <none>\n" in text
    assert "TargetPort:        5432/TCP\n" in text


def test_node_not_ready_cordoned() -> None:
    node = {"metadata": {"name": "node-2", "creationTimestamp": "2026-11-13T10:00:00Z",
                         "labels": {"kubernetes.io/hostname": "node-2",
                                    "node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": True, "podCIDR": "10.244.2.0/24",
                     "taints": [{"key": "node.kubernetes.io/unschedulable",
                                 "effect": "NoSchedule"},
                                {"key": "node.kubernetes.io/unreachable",
                                 "effect": "NoExecute"}]},
            "status": {"capacity": {"cpu": "2", "memory": "4030392Ki", "pods": "110"},
                       "allocatable": {"cpu": "2", "memory": "3927992Ki", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": "Unknown",
                                       "lastHeartbeatTime": "2026-11-23T09:40:00Z",
                                       "lastTransitionTime": "2026-11-23T09:41:00Z",
                                       "reason": "NodeStatusUnknown",
                                       "message": "Kubelet stopped posting node status."}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.56.12"},
                                     {"type": "Hostname", "address": "node-2"}],
                       "nodeInfo": {"kubeletVersion": "v1.28.0", "operatingSystem": "linux"}}}
    pods: list[Obj] = [{"metadata": {"name": "web-1", "namespace": "default",
                          "creationTimestamp": "2026-11-23T09:00:00Z"},
             "spec": {"nodeName": "node-2", "containers": [{"resources": {
                 "requests": {"cpu": "100m", "memory": "64Mi"},
                 "limits": {"cpu": "500m", "memory": "128Mi"}}}]},
             "status": {"phase": "Running"}},
            {"metadata": {"name": "done"}, "spec": {"nodeName": "node-2"},
             "status": {"phase": "Succeeded"}}]
    text = describe("Node", node, [], now=NOW, pods=pods)
    assert text.startswith(_lines(
        "Name:               node-2",
        "Roles:              worker",
        "Labels:             kubernetes.io/hostname=node-2",
        "                    node-role.kubernetes.io/worker=",
        "Annotations:        <none>",
        "CreationTimestamp:  Fri, 13 Nov 2026 10:00:00 +0000",
        "Taints:             node.kubernetes.io/unreachable:NoExecute",
        "                    node.kubernetes.io/unschedulable:NoSchedule",
        "Unschedulable:      true",
        "Conditions:",
        "  Type    Status    LastHeartbeatTime                 LastTransitionTime"
        "                Reason              Message",
        "  ----    ------    -----------------                 ------------------"
        "                ------              -------",
        "  Ready   Unknown   Mon, 23 Nov 2026 09:40:00 +0000   Mon, 23 Nov 2026 09:41:00 +0000"
        "   NodeStatusUnknown   Kubelet stopped posting node status.",
        "Addresses:",
        "  InternalIP:  192.168.56.12",
        "  Hostname:    node-2",
        "Capacity:",
        "  cpu:     2",
        "  memory:  4030392Ki",
        "  pods:    110",
    ))
    assert "  Kubelet Version:            v1.28.0\n" in text
    assert "Non-terminated Pods:          (1 in total)\n" in text
    assert "  default                     web-1    100m (5%)     500m (25%)  64Mi (1%)" in text
    assert _lines(
        "  Resource           Requests   Limits",
        "  --------           --------   ------",
        "  cpu                100m (5%)  500m (25%)",
        "  memory             64Mi (1%)  128Mi (3%)",
        "  ephemeral-storage  0 (0%)     0 (0%)",
        "Events:              <none>",
    ) in text


def test_namespace_configmap_secret() -> None:
    ns = {"metadata": {"name": "dev", "labels": {"kubernetes.io/metadata.name": "dev"}},
          "status": {"phase": "Active"}}
    assert describe("Namespace", ns, pod_events(), now=NOW) == _lines(
        "Name:         dev",
        "Labels:       kubernetes.io/metadata.name=dev",
        "Annotations:  <none>",
        "Status:       Active",
        "",
        "No resource quota.",
        "",
        "No LimitRange resource.",
    )
    cm = {"metadata": {"name": "game", "namespace": "default"},
          "data": {"ui.properties": "color=blue\nmode=dark", "a": "1"},
          "binaryData": {"logo.png": "iVBORw0KGgo="}}
    assert describe("cm", cm, [], now=NOW) == _lines(
        "Name:         game",
        "Namespace:    default",
        "Labels:       <none>",
        "Annotations:  <none>",
        "",
        "Data",
        "====",
        "a:",
        "----",
        "1",
        "",
        "ui.properties:",
        "----",
        "color=blue",
        "mode=dark",
        "",
        "",
        "BinaryData",
        "====",
        "logo.png: 8 bytes",
        "",
        "Events:  <none>",
    )
    secret = {"metadata": {"name": "db", "namespace": "default"}, "type": "Opaque",
              "data": {"password": "c2VjcmV0IQ==", "user": "YWRtaW4="}}
    text = describe("Secret", secret, [], now=NOW)
    assert text == _lines(
        "Name:         db",
        "Namespace:    default",
        "Labels:       <none>",
        "Annotations:  <none>",
        "",
        "Type:  Opaque",
        "",
        "Data",
        "====",
        "password:  7 bytes",
        "user:      5 bytes",
    )
    assert "secret!" not in text and "admin" not in text


def test_job_and_cronjob() -> None:
    template = {"metadata": {"labels": {"job-name": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "pi", "image": "perl:5.34", "command": ["perl", "-wle", "print 1"]}]}}
    job = {"metadata": {"name": "pi", "namespace": "default", "labels": {"job-name": "pi"}},
           "spec": {"parallelism": 1, "completions": 1, "backoffLimit": 4,
                    "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "j1"}},
                    "template": template},
           "status": {"startTime": "2026-11-23T09:00:00Z",
                      "completionTime": "2026-11-23T09:00:42Z", "succeeded": 1, "ready": 0}}
    text = describe("Job", job, [], now=NOW)
    assert text.startswith(_lines(
        "Name:           pi",
        "Namespace:      default",
        "Selector:       batch.kubernetes.io/controller-uid=j1",
        "Labels:         job-name=pi",
        "Annotations:    <none>",
        "Parallelism:    1",
        "Completions:    1",
        "Backoff Limit:  4",
        "Start Time:     Mon, 23 Nov 2026 09:00:00 +0000",
        "Completed At:   Mon, 23 Nov 2026 09:00:42 +0000",
        "Duration:       42s",
        "Pods Statuses:  0 Active (0 Ready) / 1 Succeeded / 0 Failed",
        "Pod Template:",
        "  Labels:  job-name=pi",
        "  Containers:",
        "   pi:",
        "    Image:      perl:5.34",
        "    Port:       <none>",
        "    Host Port:  <none>",
        "    Command:",
        "      perl",
        "      -wle",
        "      print 1",
    ))
    del job["status"]["ready"]
    job["status"].update({"active": 1, "succeeded": 0})
    text = describe("job", job, [], now=NOW)
    assert "Pods Statuses:  1 Active / 0 Succeeded / 0 Failed\n" in text
    cj = {"metadata": {"name": "backup", "namespace": "default"},
          "spec": {"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid",
                   "successfulJobsHistoryLimit": 3,
                   "jobTemplate": {"spec": {"template": template}}},
          "status": {"active": [{"name": "backup-1"}, {"name": "backup-2"}],
                     "lastScheduleTime": "2026-11-23T09:55:00Z"}}
    text = describe("CronJob", cj, [], now=NOW)
    assert "Concurrency Policy:            Forbid\n" in text
    assert "Suspend:                       <unset>\n" in text
    assert "Failed Job History Limit:      <unset>\n" in text
    assert _lines(
        "Last Schedule Time:  Mon, 23 Nov 2026 09:55:00 +0000",
        "Active Jobs:         backup-1, backup-2",
        "Events:              <none>",
    ) in text


def test_statefulset_and_daemonset() -> None:
    sts = {"metadata": {"name": "db", "namespace": "default",
                        "creationTimestamp": "2026-11-23T09:00:00Z"},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]},
           "status": {"replicas": 3, "readyReplicas": 3}}
    text = describe("StatefulSet", sts, [], now=NOW)
    assert "Replicas:           3 desired | 3 total\n" in text
    assert "Pods Status:        3 Running / 0 Waiting / 0 Succeeded / 0 Failed\n" in text
    assert "  Capacity:      1Gi\n  Access Modes:  [ReadWriteOnce]\n" in text
    ds = {"metadata": {"name": "agent", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}},
          "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                     "numberReady": 2, "numberAvailable": 2, "updatedNumberScheduled": 2}}
    text = describe("ds", ds, [], now=NOW)
    assert _lines(
        "Selector:       app=agent",
        "Node-Selector:  <none>",
        "Labels:         <none>",
        "Annotations:    <none>",
        "Desired Number of Nodes Scheduled: 2",
        "Current Number of Nodes Scheduled: 2",
        "Number of Nodes Scheduled with Up-to-date Pods: 2",
        "Number of Nodes Scheduled with Available Pods: 2",
        "Number of Nodes Misscheduled: 0",
        "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed",
    ) in text


def test_generic_describe_and_labels() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-1", "namespace": "kube-node-lease", "uid": "abc",
                          "creationTimestamp": "2026-11-23T09:00:00Z", "resourceVersion": "42"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert describe("Lease", lease, [], now=NOW) == _lines(
        "Name:         node-1",
        "Namespace:    kube-node-lease",
        "Labels:       <none>",
        "Annotations:  <none>",
        "API Version:  coordination.k8s.io/v1",
        "Kind:         Lease",
        "Metadata:",
        "  Creation Timestamp:  2026-11-23T09:00:00Z",
        "  Resource Version:    42",
        "  UID:                 abc",
        "Spec:",
        "  Holder Identity:         node-1",
        "  Lease Duration Seconds:  40",
        "Events:                    <none>",
    )
    assert smart_label("podCIDRs") == "Pod CID Rs"  # kubectl's camelcase split, warts and all
    assert smart_label("x509") == "x509"


def test_long_annotations_and_event_series() -> None:
    pod = web_pod()
    pod["metadata"]["annotations"] = {"note": "line one\nline two", "short": "yes"}
    events = [{"type": "Normal", "reason": "Pulled", "message": "  pulled  ",
               "reportingComponent": "kubelet", "eventTime": "2026-11-23T09:50:00.000000Z",
               "series": {"count": 7, "lastObservedTime": "2026-11-23T09:59:00.000000Z"}}]
    text = describe("Pod", pod, events, now=NOW)
    assert _lines(
        "Annotations:      note:",
        "                    line one",
        "                    line two",
        "                  short: yes",
    ) in text
    assert "  Normal  Pulled  60s (x7 over 10m)  kubelet  pulled\n" in text
