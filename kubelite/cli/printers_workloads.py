"""get-table rows for pods and the workload kinds that own them.

The pod STATUS column is the interesting one: it is not the phase but the
most telling reason kubectl can find, looked for in this order

1. status.reason (Evicted, NodeLost, ...) or the phase;
2. the first init container that has not succeeded: "Init:2/3" while it
   runs, "Init:CrashLoopBackOff" / "Init:Error" / "Init:ExitCode:1" when
   it fails;
3. otherwise the app containers, last to first, so the first container
   with a waiting or terminated reason wins (ContainerCreating,
   CrashLoopBackOff, Completed, Error, OOMKilled);
4. "Terminating" once metadata.deletionTimestamp is set on a pod that has
   not finished ("Unknown" if its node is lost).

A pod whose containers completed but one still runs reads "Running" (or
"NotReady" without the Ready condition) rather than "Completed".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from kubelite.cli.age import age, human_duration, parse_time, seconds_between
from kubelite.cli.printers_format import (
    NONE,
    Obj,
    condition_true,
    containers_cells,
    format_labels,
    format_selector,
    get,
    meta,
    name_of,
    selector_string,
)

Row = Callable[[Obj, bool, datetime], list[str]]

_TERMINAL = ("Succeeded", "Failed")


def _restartable(container: Obj | None) -> bool:
    """A sidecar: an init container with restartPolicy Always."""
    return container is not None and container.get("restartPolicy") == "Always"


def _later(current: datetime | None, ts: str | None) -> datetime | None:
    t = parse_time(ts)
    if t is None:
        return current
    return t if current is None or t > current else current


def _terminated_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def pod_status(pod: Obj) -> tuple[int, int, str, int, datetime | None]:
    """(ready, total, STATUS, restarts, last restart) exactly as kubectl computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    phase = str(status.get("phase", ""))
    reason = str(status.get("reason") or phase)
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    total = len(spec.get("containers") or []) + sum(
        1 for c in init_specs.values() if _restartable(c))
    ready = 0
    restarts = sidecar_restarts = 0
    last: datetime | None = None
    sidecar_last: datetime | None = None

    init_statuses = status.get("initContainerStatuses") or []
    initializing = False
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount", 0))
        finished = get(cs, "lastState", "terminated", "finishedAt")
        last = _later(last, finished)
        sidecar = _restartable(init_specs.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount", 0))
            sidecar_last = _later(sidecar_last, finished)
        state = cs.get("state") or {}
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting is not None and waiting.get("reason") not in (None, "", "PodInitializing"):
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or condition_true(pod, "Initialized"):
        restarts, last = sidecar_restarts, sidecar_last
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount", 0))
            last = _later(last, get(cs, "lastState", "terminated", "finishedAt"))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif term is not None:
                reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if condition_true(pod, "Ready") else "NotReady"

    if meta(pod).get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in _TERMINAL:
            reason = "Terminating"
    return ready, total, reason, restarts, last


def pod_row(pod: Obj, wide: bool, now: datetime) -> list[str]:
    ready, total, reason, restarts, last = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts and last is not None:
        restarts_cell = f"{restarts} ({human_duration(seconds_between(last, now))} ago)"
    row = [name_of(pod), f"{ready}/{total}", reason, restarts_cell,
           age(meta(pod).get("creationTimestamp"), now)]
    if wide:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        ips = status.get("podIPs") or []
        ip = (ips[0].get("ip") if ips else status.get("podIP")) or NONE
        gates = spec.get("readinessGates") or []
        gates_cell = NONE
        if gates:
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            true = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
            gates_cell = f"{true}/{len(gates)}"
        row += [ip, spec.get("nodeName") or NONE, status.get("nominatedNodeName") or NONE,
                gates_cell]
    return row


def _template_containers(obj: Obj) -> list[Obj]:
    return get(obj, "spec", "template", "spec", "containers", default=[])  # type: ignore[no-any-return]


def _desired(obj: Obj) -> int:
    # spec.replicas defaults to 1 on the server; absent means the default.
    return int(get(obj, "spec", "replicas", default=1))


def deployment_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    st = obj.get("status") or {}
    row = [name_of(obj), f"{st.get('readyReplicas', 0)}/{_desired(obj)}",
           str(st.get("updatedReplicas", 0)), str(st.get("availableReplicas", 0)),
           age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        names, images = containers_cells(_template_containers(obj))
        row += [names, images, selector_string(get(obj, "spec", "selector"))]
    return row


def replicaset_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    st = obj.get("status") or {}
    row = [name_of(obj), str(_desired(obj)), str(st.get("replicas", 0)),
           str(st.get("readyReplicas", 0)), age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        names, images = containers_cells(_template_containers(obj))
        row += [names, images, format_selector(get(obj, "spec", "selector"))]
    return row


def replicationcontroller_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    row = replicaset_row(obj, False, now)
    if wide:
        names, images = containers_cells(_template_containers(obj))
        row += [names, images, format_labels(get(obj, "spec", "selector"))]
    return row


def statefulset_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    st = obj.get("status") or {}
    row = [name_of(obj), f"{st.get('readyReplicas', 0)}/{_desired(obj)}",
           age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        row += list(containers_cells(_template_containers(obj)))
    return row


def daemonset_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    st = obj.get("status") or {}
    row = [name_of(obj)] + [str(st.get(k, 0)) for k in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady",
        "updatedNumberScheduled", "numberAvailable")]
    row += [format_labels(get(obj, "spec", "template", "spec", "nodeSelector")),
            age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        names, images = containers_cells(_template_containers(obj))
        row += [names, images, format_selector(get(obj, "spec", "selector"))]
    return row


def job_status(job: Obj) -> str:
    """Complete, Failed, Terminating, Suspended, FailureTarget or Running."""
    if condition_true(job, "Complete"):
        return "Complete"
    if condition_true(job, "Failed"):
        return "Failed"
    if meta(job).get("deletionTimestamp"):
        return "Terminating"
    if condition_true(job, "Suspended"):
        return "Suspended"
    if condition_true(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(job: Obj) -> str:
    """"2/3"; without spec.completions "1/1", or "0/1 of 3" for a work queue of 3."""
    spec, succeeded = job.get("spec") or {}, get(job, "status", "succeeded", default=0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = int(spec.get("parallelism") or 0)
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    start = parse_time(get(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(get(job, "status", "completionTime")) or now
    return human_duration(seconds_between(start, end))


def job_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    row = [name_of(obj), job_status(obj), job_completions(obj), job_duration(obj, now),
           age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        names, images = containers_cells(_template_containers(obj))
        row += [names, images, format_selector(get(obj, "spec", "selector"))]
    return row


def cronjob_row(obj: Obj, wide: bool, now: datetime) -> list[str]:
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    last = st.get("lastScheduleTime")
    suspend = spec.get("suspend")
    row = [name_of(obj), str(spec.get("schedule", "")), spec.get("timeZone") or NONE,
           "<unset>" if suspend is None else ("True" if suspend else "False"),
           str(len(st.get("active") or [])), age(last, now) if last else NONE,
           age(meta(obj).get("creationTimestamp"), now)]
    if wide:
        job_spec = get(obj, "spec", "jobTemplate", "spec", default={})
        names, images = containers_cells(get(job_spec, "template", "spec", "containers"))
        row += [names, images, format_selector(job_spec.get("selector"))]
    return row


_WIDE_TEMPLATE = ["CONTAINERS", "IMAGES", "SELECTOR"]

# kind -> (columns, extra -o wide columns, row function)
WORKLOAD_COLUMNS: dict[str, tuple[list[str], list[str], Row]] = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"], pod_row),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], _WIDE_TEMPLATE,
                   deployment_row),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], _WIDE_TEMPLATE,
                   replicaset_row),
    "ReplicationController": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], _WIDE_TEMPLATE,
                              replicationcontroller_row),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], statefulset_row),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                   "NODE SELECTOR", "AGE"], _WIDE_TEMPLATE, daemonset_row),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], _WIDE_TEMPLATE, job_row),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                _WIDE_TEMPLATE, cronjob_row),
}
