"""Kubernetes' defaults, applied in place before validation.

Mirrors pkg/apis/*/v1/defaults.go: a field the user left unset gets the value
Kubernetes would give it, so `kubelite get -o yaml` shows what `kubectl get
-o yaml` shows (imagePullPolicy, restartPolicy, strategy.rollingUpdate with
25%/25%, ...). Every rule only fills what is unset, so applying twice
changes nothing: the API server may default on create and on every update.

`apply_job_selector` is separate because it needs the Job's uid, known only
once the server assigns it at create.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from kubelite.objects.convert import int_or_string

__all__ = ["apply", "apply_job_selector", "image_pull_policy", "pod_spec", "pod_template"]

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID = "controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME = "job-name"
FILE_MODE = 0o644


def apply(obj: Message) -> None:
    """Fill Kubernetes' defaults into any kind message, in place (idempotent)."""
    fn = _BY_KIND.get(obj.DESCRIPTOR.name)
    if fn is not None:
        fn(obj)


def apply_job_selector(job: Any, uid: str) -> None:
    """Generate a Job's selector from its uid, as Kubernetes does at create.

    Skipped when spec.manualSelector is true. Labels the user already set on
    the template are kept (validation then rejects a conflicting one).
    """
    s = job.spec
    if s.HasField("manualSelector") and s.manualSelector:
        return
    labels = s.template.metadata.labels
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        if key not in labels:
            labels[key] = job.metadata.name
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        if key not in labels:
            labels[key] = uid
    if CONTROLLER_UID not in s.selector.matchLabels:
        s.selector.matchLabels[CONTROLLER_UID] = uid


def image_pull_policy(image: str) -> str:
    """Always for ":latest" or an untagged image, else IfNotPresent (a digest counts as a tag)."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.partition(":")[2] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


# ---- pods --------------------------------------------------------------------

def _http_get(action: Any) -> None:
    if not action.path:
        action.path = "/"
    if not action.scheme:
        action.scheme = "HTTP"


def _probe(probe: Any) -> None:
    if probe.timeoutSeconds == 0:
        probe.timeoutSeconds = 1
    if probe.periodSeconds == 0:
        probe.periodSeconds = 10
    if probe.successThreshold == 0:
        probe.successThreshold = 1
    if probe.failureThreshold == 0:
        probe.failureThreshold = 3
    if probe.HasField("httpGet"):
        _http_get(probe.httpGet)


def _container(c: Any) -> None:
    if not c.imagePullPolicy:
        c.imagePullPolicy = image_pull_policy(c.image)
    if not c.terminationMessagePath:
        c.terminationMessagePath = "/dev/termination-log"
    if not c.terminationMessagePolicy:
        c.terminationMessagePolicy = "File"
    for port in c.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.HasField(name):
            _probe(getattr(c, name))
    if c.HasField("lifecycle"):
        for hook in ("postStart", "preStop"):
            handler = getattr(c.lifecycle, hook)
            if c.lifecycle.HasField(hook) and handler.HasField("httpGet"):
                _http_get(handler.httpGet)
    for ev in c.env:
        if (ev.HasField("valueFrom") and ev.valueFrom.HasField("fieldRef")
                and not ev.valueFrom.fieldRef.apiVersion):
            ev.valueFrom.fieldRef.apiVersion = "v1"


def _volume(vol: Any) -> None:
    sources = [f.name for f in vol.DESCRIPTOR.fields if f.message_type is not None]
    if not any(vol.HasField(s) for s in sources):
        vol.emptyDir.SetInParent()  # Kubernetes: a volume with no source is an emptyDir
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        if vol.HasField(src) and not getattr(vol, src).HasField("defaultMode"):
            getattr(vol, src).defaultMode = FILE_MODE
    if vol.HasField("hostPath") and not vol.hostPath.HasField("type"):
        vol.hostPath.type = ""
    if vol.HasField("downwardAPI"):
        _downward_items(vol.downwardAPI.items)
    for source in vol.projected.sources if vol.HasField("projected") else ():
        if source.HasField("serviceAccountToken"):
            token = source.serviceAccountToken
            if not token.HasField("expirationSeconds"):
                token.expirationSeconds = 3600
        if source.HasField("downwardAPI"):
            _downward_items(source.downwardAPI.items)


def _downward_items(items: Any) -> None:
    for item in items:
        if item.HasField("fieldRef") and not item.fieldRef.apiVersion:
            item.fieldRef.apiVersion = "v1"


def pod_spec(spec: Any) -> None:
    """Defaults of a PodSpec (a Pod's or a template's)."""
    if not spec.dnsPolicy:
        spec.dnsPolicy = "ClusterFirst"
    if not spec.restartPolicy:
        spec.restartPolicy = "Always"
    if spec.hostNetwork:  # ports then bind on the node: hostPort is the containerPort
        for c in list(spec.containers) + list(spec.initContainers):
            for port in c.ports:
                if port.hostPort == 0:
                    port.hostPort = port.containerPort
    spec.securityContext.SetInParent()
    if not spec.HasField("terminationGracePeriodSeconds"):
        spec.terminationGracePeriodSeconds = 30
    if not spec.schedulerName:
        spec.schedulerName = "default-scheduler"
    if not spec.HasField("enableServiceLinks"):
        spec.enableServiceLinks = True
    if spec.serviceAccount and not spec.serviceAccountName:
        spec.serviceAccountName = spec.serviceAccount
    if spec.serviceAccountName and not spec.serviceAccount:
        spec.serviceAccount = spec.serviceAccountName
    for c in (*spec.initContainers, *spec.containers, *spec.ephemeralContainers):
        _container(c)
    for vol in spec.volumes:
        _volume(vol)


def pod_template(template: Any) -> None:
    pod_spec(template.spec)


def _pod(pod: Any) -> None:
    pod_spec(pod.spec)
    # For Pods (not templates) a limit without a request makes the request equal the limit.
    for c in (*pod.spec.initContainers, *pod.spec.containers):
        for name, q in c.resources.limits.items():
            if name not in c.resources.requests:
                c.resources.requests[name].CopyFrom(q)


# ---- apps --------------------------------------------------------------------

def _deployment(d: Any) -> None:
    s = d.spec
    if not s.HasField("replicas"):
        s.replicas = 1
    if not s.strategy.type:
        s.strategy.type = "RollingUpdate"
    if s.strategy.type == "RollingUpdate":
        ru = s.strategy.rollingUpdate
        ru.SetInParent()
        if not ru.HasField("maxUnavailable"):
            ru.maxUnavailable.CopyFrom(int_or_string("25%"))
        if not ru.HasField("maxSurge"):
            ru.maxSurge.CopyFrom(int_or_string("25%"))
    if not s.HasField("revisionHistoryLimit"):
        s.revisionHistoryLimit = 10
    if not s.HasField("progressDeadlineSeconds"):
        s.progressDeadlineSeconds = 600
    pod_template(s.template)


def _replica_set(rs: Any) -> None:
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    pod_template(rs.spec.template)


def _replication_controller(rc: Any) -> None:
    s = rc.spec
    if s.HasField("template"):
        labels = dict(s.template.metadata.labels)
        if labels and not s.selector:
            s.selector.update(labels)
        if labels and not rc.metadata.labels:
            rc.metadata.labels.update(labels)
        pod_template(s.template)
    if not s.HasField("replicas"):
        s.replicas = 1


def _stateful_set(sts: Any) -> None:
    s = sts.spec
    if not s.podManagementPolicy:
        s.podManagementPolicy = "OrderedReady"
    if not s.updateStrategy.type:
        s.updateStrategy.type = "RollingUpdate"
    if s.updateStrategy.type == "RollingUpdate":
        ru = s.updateStrategy.rollingUpdate
        if not ru.HasField("partition"):
            ru.partition = 0
    policy = s.persistentVolumeClaimRetentionPolicy
    if not policy.whenDeleted:
        policy.whenDeleted = "Retain"
    if not policy.whenScaled:
        policy.whenScaled = "Retain"
    if not s.HasField("replicas"):
        s.replicas = 1
    if not s.HasField("revisionHistoryLimit"):
        s.revisionHistoryLimit = 10
    for pvc in s.volumeClaimTemplates:
        if not pvc.apiVersion:
            pvc.apiVersion = "v1"
        if not pvc.kind:
            pvc.kind = "PersistentVolumeClaim"
        _pvc(pvc)
    pod_template(s.template)


def _daemon_set(ds: Any) -> None:
    s = ds.spec
    if not s.updateStrategy.type:
        s.updateStrategy.type = "RollingUpdate"
    if s.updateStrategy.type == "RollingUpdate":
        ru = s.updateStrategy.rollingUpdate
        ru.SetInParent()
        if not ru.HasField("maxUnavailable"):
            ru.maxUnavailable.CopyFrom(int_or_string(1))
        if not ru.HasField("maxSurge"):
            ru.maxSurge.CopyFrom(int_or_string(0))
    if not s.HasField("revisionHistoryLimit"):
        s.revisionHistoryLimit = 10
    pod_template(s.template)


# ---- batch -------------------------------------------------------------------

def _job_spec(s: Any) -> None:
    if not s.HasField("completions") and not s.HasField("parallelism"):
        s.completions = 1
        s.parallelism = 1
    if not s.HasField("parallelism"):
        s.parallelism = 1
    if not s.HasField("backoffLimit"):
        s.backoffLimit = 2**31 - 1 if s.HasField("backoffLimitPerIndex") else 6
    if not s.HasField("completionMode"):
        s.completionMode = "NonIndexed"
    if not s.HasField("suspend"):
        s.suspend = False
    if not s.HasField("manualSelector"):
        s.manualSelector = False
    if s.HasField("podFailurePolicy"):
        for rule in s.podFailurePolicy.rules:
            for cond in rule.onPodConditions:
                if not cond.status:
                    cond.status = "True"
    if not s.HasField("podReplacementPolicy"):
        s.podReplacementPolicy = ("Failed" if s.HasField("podFailurePolicy")
                                  else "TerminatingOrFailed")
    pod_template(s.template)


def _job(job: Any) -> None:
    labels = job.spec.template.metadata.labels
    if labels and not job.metadata.labels:
        job.metadata.labels.update(dict(labels))
    _job_spec(job.spec)


def _cron_job(cj: Any) -> None:
    s = cj.spec
    if not s.concurrencyPolicy:
        s.concurrencyPolicy = "Allow"
    if not s.HasField("suspend"):
        s.suspend = False
    if not s.HasField("successfulJobsHistoryLimit"):
        s.successfulJobsHistoryLimit = 3
    if not s.HasField("failedJobsHistoryLimit"):
        s.failedJobsHistoryLimit = 1
    _job_spec(s.jobTemplate.spec)


# ---- autoscaling -------------------------------------------------------------

def _hpa(hpa: Any) -> None:
    s = hpa.spec
    if not s.HasField("minReplicas"):
        s.minReplicas = 1
    if not s.metrics:
        m = s.metrics.add(type="Resource")
        m.resource.name = "cpu"
        m.resource.target.type = "Utilization"
        m.resource.target.averageUtilization = 80
    if s.HasField("behavior"):
        # Kubernetes fills the unset parts of a given behavior with the default rules:
        # up: +4 pods or +100% per 15s, no window; down: -100% per 15s. The scale-down
        # window stays unset, as in Kubernetes: the HPA controller then uses its own
        # default (--hpa-downscale-stabilization, 300s).
        _scaling_rules(s.behavior.scaleUp, 0, [("Pods", 4, 15), ("Percent", 100, 15)])
        _scaling_rules(s.behavior.scaleDown, None, [("Percent", 100, 15)])


def _scaling_rules(rules: Any, window: int | None,
                   policies: list[tuple[str, int, int]]) -> None:
    if window is not None and not rules.HasField("stabilizationWindowSeconds"):
        rules.stabilizationWindowSeconds = window
    if not rules.HasField("selectPolicy"):
        rules.selectPolicy = "Max"
    if not rules.policies:
        for kind, value, period in policies:
            rules.policies.add(type=kind, value=value, periodSeconds=period)


# ---- core --------------------------------------------------------------------

def _service(svc: Any) -> None:
    s = svc.spec
    if not s.sessionAffinity:
        s.sessionAffinity = "None"
    if not s.type:
        s.type = "ClusterIP"
    for port in s.ports:
        if not port.protocol:
            port.protocol = "TCP"
        tp = port.targetPort
        if not port.HasField("targetPort") or (tp.type == 0 and tp.intVal == 0) or (
                tp.type == 1 and not tp.strVal):
            port.targetPort.CopyFrom(int_or_string(port.port))
    if s.sessionAffinity == "ClientIP":
        client = s.sessionAffinityConfig.clientIP
        if not client.HasField("timeoutSeconds"):
            client.timeoutSeconds = 10800
    if s.type != "ExternalName" and not s.HasField("internalTrafficPolicy"):
        s.internalTrafficPolicy = "Cluster"
    if s.type in ("NodePort", "LoadBalancer") and not s.externalTrafficPolicy:
        s.externalTrafficPolicy = "Cluster"
    if s.type == "LoadBalancer" and not s.HasField("allocateLoadBalancerNodePorts"):
        s.allocateLoadBalancerNodePorts = True


def _endpoints(ep: Any) -> None:
    for subset in ep.subsets:
        for port in subset.ports:
            if not port.protocol:
                port.protocol = "TCP"


def _namespace(ns: Any) -> None:
    if ns.metadata.name:
        ns.metadata.labels["kubernetes.io/metadata.name"] = ns.metadata.name
    if not ns.status.phase:
        ns.status.phase = "Active"
    # Not while terminating: the namespace controller removes this finalizer to finish deletion.
    if not ns.spec.finalizers and not ns.metadata.deletionTimestamp:
        ns.spec.finalizers.append("kubernetes")


def _node(node: Any) -> None:
    st = node.status
    if st.capacity and not st.allocatable:
        for name, q in st.capacity.items():
            st.allocatable[name].CopyFrom(q)


def _secret(secret: Any) -> None:
    if not secret.type:
        secret.type = "Opaque"
    for key, value in secret.stringData.items():  # write-only: merged into data, stringData wins
        secret.data[key] = value.encode("utf-8")
    secret.ClearField("stringData")


def _pv(pv: Any) -> None:
    s = pv.spec
    if not s.persistentVolumeReclaimPolicy:
        s.persistentVolumeReclaimPolicy = "Retain"
    if not s.HasField("volumeMode"):
        s.volumeMode = "Filesystem"
    if s.HasField("hostPath") and not s.hostPath.HasField("type"):
        s.hostPath.type = ""
    if not pv.status.phase:
        pv.status.phase = "Pending"


def _pvc(pvc: Any) -> None:
    if not pvc.spec.HasField("volumeMode"):
        pvc.spec.volumeMode = "Filesystem"
    if not pvc.status.phase:
        pvc.status.phase = "Pending"


def _event(ev: Any) -> None:
    if not ev.type:
        ev.type = "Normal"
    if ev.count == 0:
        ev.count = 1


_BY_KIND: dict[str, Callable[[Any], None]] = {
    "Pod": _pod,
    "PodTemplateSpec": pod_template,
    "Deployment": _deployment,
    "ReplicaSet": _replica_set,
    "ReplicationController": _replication_controller,
    "StatefulSet": _stateful_set,
    "DaemonSet": _daemon_set,
    "Job": _job,
    "CronJob": _cron_job,
    "HorizontalPodAutoscaler": _hpa,
    "Service": _service,
    "Endpoints": _endpoints,
    "Namespace": _namespace,
    "Node": _node,
    "Secret": _secret,
    "PersistentVolume": _pv,
    "PersistentVolumeClaim": _pvc,
    "Event": _event,
}
