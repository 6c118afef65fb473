"""describe for the controllers: Deployment, ReplicaSet, ReplicationController,
StatefulSet, DaemonSet, Job and CronJob.

"Pods Status" counts the controller's pods by phase, as kubectl does by
listing them; pass those pods in `pods` for the exact figures. Without
them the line is estimated from the controller's own status: ready replicas
count as Running and the rest as Waiting (so "3 Running / 1 Waiting / 0
Succeeded / 0 Failed" for replicas 4, readyReplicas 3).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubelite.cli.age import human_duration, parse_time, rfc1123z, seconds_between
from kubelite.cli.describe_pods import pod_template_section
from kubelite.cli.describe_writer import (
    Writer,
    annotations_multiline,
    conditions_table,
    events_section,
    labels_multiline,
)
from kubelite.cli.printers_format import (
    NONE,
    Obj,
    controller_ref,
    format_labels,
    format_selector,
    get,
    meta,
    selector_string,
)


def pod_phase_counts(owner: Obj, pods: list[Obj] | None, ready: int, total: int) -> str:
    """"R Running / W Waiting / S Succeeded / F Failed" for the owner's pods."""
    if pods is None:
        running, waiting, succeeded, failed = ready, max(total - ready, 0), 0, 0
    else:
        uid = meta(owner).get("uid")
        counts = {"Running": 0, "Pending": 0, "Succeeded": 0, "Failed": 0}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None or ref.get("uid") != uid:
                continue  # orphans and other controllers' pods do not count
            phase = get(pod, "status", "phase", default="")
            if phase in counts:
                counts[phase] += 1
        running, waiting = counts["Running"], counts["Pending"]
        succeeded, failed = counts["Succeeded"], counts["Failed"]
    return f"{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"


def _header(w: Writer, obj: Obj, *, created: bool = False) -> None:
    m = meta(obj)
    w.write(0, f"Name:\t{m.get('name', '')}\n")
    w.write(0, f"Namespace:\t{m.get('namespace', '')}\n")
    if created:
        w.write(0, f"CreationTimestamp:\t{rfc1123z(m.get('creationTimestamp'))}\n")


def _labels_annotations(w: Writer, obj: Obj) -> None:
    labels_multiline(w, "Labels", meta(obj).get("labels"))
    annotations_multiline(w, "Annotations", meta(obj).get("annotations"))


def _controlled_by(w: Writer, obj: Obj) -> None:
    ref = controller_ref(obj)
    if ref is not None:
        w.write(0, f"Controlled By:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")


def _without_hash(template: Any) -> Any:
    if not isinstance(template, dict):
        return template
    labels = dict(get(template, "metadata", "labels", default={}))
    labels.pop("pod-template-hash", None)
    return {**template, "metadata": {**(template.get("metadata") or {}), "labels": labels}}


def _replica_sets_line(rss: list[Obj]) -> str:
    text = ", ".join(f"{meta(rs).get('name', '')} ({get(rs, 'status', 'replicas', default=0)}/"
                     f"{get(rs, 'spec', 'replicas', default=1)} replicas created)" for rs in rss)
    return text or NONE


def _split_replica_sets(d: Obj, rss: list[Obj]) -> tuple[list[Obj], list[Obj]]:
    """(old, new) among the deployment's ReplicaSets; new is the one running its template."""
    uid, name = meta(d).get("uid"), meta(d).get("name")
    owned = []
    for rs in rss:
        ref = controller_ref(rs)
        if ref is not None and ref.get("kind") == "Deployment" and (
                ref.get("uid") == uid if uid else ref.get("name") == name):
            owned.append(rs)
    want = _without_hash(get(d, "spec", "template"))
    by_age = sorted(owned, key=lambda rs: meta(rs).get("creationTimestamp") or "")
    new = next((rs for rs in by_age if _without_hash(get(rs, "spec", "template")) == want), None)
    return [rs for rs in owned if rs is not new], [new] if new is not None else []


def describe_deployment(d: Obj, events: list[Obj], now: datetime,
                        replica_sets: list[Obj] | None = None) -> str:
    w = Writer()
    spec, st = d.get("spec") or {}, d.get("status") or {}
    _header(w, d, created=True)
    _labels_annotations(w, d)
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {st.get('updatedReplicas', 0)} "
               f"updated | {st.get('replicas', 0)} total | {st.get('availableReplicas', 0)} "
               f"available | {st.get('unavailableReplicas', 0)} unavailable\n")
    strategy = spec.get("strategy") or {}
    w.write(0, f"StrategyType:\t{strategy.get('type', 'RollingUpdate')}\n")
    w.write(0, f"MinReadySeconds:\t{spec.get('minReadySeconds', 0)}\n")
    ru = strategy.get("rollingUpdate")
    if ru is not None:
        w.write(0, f"RollingUpdateStrategy:\t{ru.get('maxUnavailable', '25%')} max unavailable, "
                   f"{ru.get('maxSurge', '25%')} max surge\n")
    pod_template_section(w, spec.get("template"))
    conditions_table(w, st.get("conditions"))
    if replica_sets:
        old, new = _split_replica_sets(d, replica_sets)
        if old or new:
            w.write(0, f"OldReplicaSets:\t{_replica_sets_line(old)}\n")
            w.write(0, f"NewReplicaSet:\t{_replica_sets_line(new)}\n")
    events_section(w, events, now)
    return w.text()


def describe_replica_set(rs: Obj, events: list[Obj], now: datetime,
                         pods: list[Obj] | None = None, *, rc: bool = False) -> str:
    """ReplicaSet, or with `rc` a ReplicationController (map selector, no Controlled By)."""
    w = Writer()
    spec, st = rs.get("spec") or {}, rs.get("status") or {}
    _header(w, rs)
    if rc:
        w.write(0, f"Selector:\t{format_labels(spec.get('selector'))}\n")
    else:
        w.write(0, f"Selector:\t{format_selector(spec.get('selector'))}\n")
    _labels_annotations(w, rs)
    if not rc:
        _controlled_by(w, rs)
    w.write(0, f"Replicas:\t{st.get('replicas', 0)} current / {spec.get('replicas', 1)} desired\n")
    w.write(0, "Pods Status:\t" + pod_phase_counts(
        rs, pods, int(st.get("readyReplicas", 0)), int(st.get("replicas", 0))) + "\n")
    pod_template_section(w, spec.get("template"))
    conditions_table(w, st.get("conditions"))
    events_section(w, events, now)
    return w.text()


def _volume_claims(w: Writer, templates: list[Obj] | None) -> None:
    if not templates:
        w.write(0, "Volume Claims:\t<none>\n")
        return
    w.write(0, "Volume Claims:\n")
    for pvc in templates:
        m = pvc.get("metadata") or {}
        w.write(1, f"Name:\t{m.get('name', '')}\n")
        w.write(1, f"StorageClass:\t{get(pvc, 'spec', 'storageClassName', default='')}\n")
        labels_multiline(w, "Labels", m.get("labels"), initial_indent="  ")
        labels_multiline(w, "Annotations", m.get("annotations"), initial_indent="  ")
        capacity = get(pvc, "spec", "resources", "requests", "storage", default="<default>")
        w.write(1, f"Capacity:\t{capacity}\n")
        w.write(1, f"Access Modes:\t[{' '.join(get(pvc, 'spec', 'accessModes', default=[]))}]\n")


def describe_stateful_set(ss: Obj, events: list[Obj], now: datetime,
                          pods: list[Obj] | None = None) -> str:
    w = Writer()
    spec, st = ss.get("spec") or {}, ss.get("status") or {}
    _header(w, ss, created=True)
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    _labels_annotations(w, ss)
    w.write(0, f"Replicas:\t{spec.get('replicas', 1)} desired | {st.get('replicas', 0)} total\n")
    strategy = spec.get("updateStrategy") or {}
    w.write(0, f"Update Strategy:\t{strategy.get('type', 'RollingUpdate')}\n")
    ru = strategy.get("rollingUpdate") or {}
    if ru.get("partition") is not None:
        w.write(1, f"Partition:\t{ru['partition']}\n")
        if ru.get("maxUnavailable") is not None:
            w.write(1, f"MaxUnavailable:\t{ru['maxUnavailable']}\n")
    w.write(0, "Pods Status:\t" + pod_phase_counts(
        ss, pods, int(st.get("readyReplicas", 0)), int(st.get("replicas", 0))) + "\n")
    pod_template_section(w, spec.get("template"))
    _volume_claims(w, spec.get("volumeClaimTemplates"))
    events_section(w, events, now)
    return w.text()


def describe_daemon_set(ds: Obj, events: list[Obj], now: datetime,
                        pods: list[Obj] | None = None) -> str:
    w = Writer()
    spec, st = ds.get("spec") or {}, ds.get("status") or {}
    _header(w, ds)
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    w.write(0, "Node-Selector:\t"
               f"{format_labels(get(spec, 'template', 'spec', 'nodeSelector'))}\n")
    _labels_annotations(w, ds)
    for label, key in (("Desired Number of Nodes Scheduled", "desiredNumberScheduled"),
                       ("Current Number of Nodes Scheduled", "currentNumberScheduled"),
                       ("Number of Nodes Scheduled with Up-to-date Pods", "updatedNumberScheduled"),
                       ("Number of Nodes Scheduled with Available Pods", "numberAvailable"),
                       ("Number of Nodes Misscheduled", "numberMisscheduled")):
        w.write(0, f"{label}: {st.get(key, 0)}\n")
    w.write(0, "Pods Status:\t" + pod_phase_counts(
        ds, pods, int(st.get("numberReady", 0)), int(st.get("currentNumberScheduled", 0))) + "\n")
    pod_template_section(w, spec.get("template"))
    events_section(w, events, now)
    return w.text()


def describe_job(job: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    spec, st = job.get("spec") or {}, job.get("status") or {}
    _header(w, job)
    w.write(0, f"Selector:\t{selector_string(spec.get('selector'))}\n")
    _labels_annotations(w, job)
    _controlled_by(w, job)
    if spec.get("parallelism") is not None:
        w.write(0, f"Parallelism:\t{spec['parallelism']}\n")
    w.write(0, f"Completions:\t{spec.get('completions', '<unset>')}\n")
    if spec.get("completionMode"):
        w.write(0, f"Completion Mode:\t{spec['completionMode']}\n")
    if spec.get("suspend") is not None:
        w.write(0, f"Suspend:\t{'true' if spec['suspend'] else 'false'}\n")
    if spec.get("backoffLimit") is not None:
        w.write(0, f"Backoff Limit:\t{spec['backoffLimit']}\n")
    if spec.get("ttlSecondsAfterFinished") is not None:
        w.write(0, f"TTL Seconds After Finished:\t{spec['ttlSecondsAfterFinished']}\n")
    if st.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(st['startTime'])}\n")
    if st.get("completionTime"):
        w.write(0, f"Completed At:\t{rfc1123z(st['completionTime'])}\n")
    start, end = parse_time(st.get("startTime")), parse_time(st.get("completionTime"))
    if start is not None and end is not None:
        w.write(0, f"Duration:\t{human_duration(seconds_between(start, end))}\n")
    if spec.get("activeDeadlineSeconds") is not None:
        w.write(0, f"Active Deadline Seconds:\t{spec['activeDeadlineSeconds']}s\n")
    # status.ready is optional: older controllers leave it unset and kubectl then omits it.
    ready = "" if st.get("ready") is None else f" ({st['ready']} Ready)"
    w.write(0, f"Pods Statuses:\t{st.get('active', 0)} Active{ready} / "
               f"{st.get('succeeded', 0)} Succeeded / {st.get('failed', 0)} Failed\n")
    if spec.get("completionMode") == "Indexed":
        w.write(0, f"Completed Indexes:\t{st.get('completedIndexes') or NONE}\n")
    pod_template_section(w, spec.get("template"))
    events_section(w, events, now)
    return w.text()


def _or_unset(value: Any, suffix: str = "") -> str:
    return "<unset>" if value is None else f"{value}{suffix}"


def describe_cron_job(cj: Obj, events: list[Obj], now: datetime) -> str:
    w = Writer()
    spec, st = cj.get("spec") or {}, cj.get("status") or {}
    _header(w, cj)
    _labels_annotations(w, cj)
    w.write(0, f"Schedule:\t{spec.get('schedule', '')}\n")
    w.write(0, f"Concurrency Policy:\t{spec.get('concurrencyPolicy', 'Allow')}\n")
    suspend = spec.get("suspend")
    suspend_text = None if suspend is None else ("True" if suspend else "False")
    w.write(0, f"Suspend:\t{_or_unset(suspend_text)}\n")
    for label, key in (("Successful Job History Limit", "successfulJobsHistoryLimit"),
                       ("Failed Job History Limit", "failedJobsHistoryLimit")):
        w.write(0, f"{label}:\t{_or_unset(spec.get(key))}\n")
    deadline = _or_unset(spec.get("startingDeadlineSeconds"), "s")
    w.write(0, f"Starting Deadline Seconds:\t{deadline}\n")
    job_spec = get(spec, "jobTemplate", "spec", default={})
    selector = job_spec.get("selector")
    w.write(0, f"Selector:\t{'<unset>' if selector is None else selector_string(selector)}\n")
    w.write(0, f"Parallelism:\t{_or_unset(job_spec.get('parallelism'))}\n")
    w.write(0, f"Completions:\t{_or_unset(job_spec.get('completions'))}\n")
    if job_spec.get("activeDeadlineSeconds") is not None:
        w.write(0, f"Active Deadline Seconds:\t{job_spec['activeDeadlineSeconds']}s\n")
    pod_template_section(w, job_spec.get("template"))
    last = st.get("lastScheduleTime")
    w.write(0, f"Last Schedule Time:\t{rfc1123z(last) if last else '<unset>'}\n")
    active = [str(j.get("name", "")) for j in st.get("active") or []]
    w.write(0, "Active Jobs:\t")
    w.line(", ".join(active) if active else NONE)
    events_section(w, events, now)
    return w.text()
