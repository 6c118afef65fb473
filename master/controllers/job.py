"""The Job controller: run pods until enough of them succeed.

- completions / parallelism: at most `parallelism` pods run at once, never
  more than the completions still missing. Without completions, the Job is
  done once one pod has succeeded and none is still running.
- completionMode Indexed: each index 0..completions-1 must succeed once; its
  pods carry the annotation and env JOB_COMPLETION_INDEX and the hostname
  `<job>-<index>`; status.completedIndexes lists them ("0-2,4").
- restartPolicy Never: a failed pod stays and a new one replaces it, after a
  back-off (initial * 2^(failures-1), at most 6 minutes) measured from the
  last failure. OnFailure: the node restarts containers in place and their
  restarts count as failures. More failures than backoffLimit: Failed
  (BackoffLimitExceeded), running pods deleted.
- activeDeadlineSeconds from startTime: Failed (DeadlineExceeded).
- suspend: running pods are deleted, condition Suspended.
- ttlSecondsAfterFinished: the finished Job is deleted (the garbage
  collector takes its pods).

Counts come from the Job's pods (finished pods are kept, as the kubelet
leaves them) and never go down: status.succeeded, status.failed and
status.completedIndexes are floors, so a finished pod deleted by hand, or an
OnFailure pod removed with its restarts, is still counted. The finishing
condition is written before any pod is deleted, and a reconcile that runs
on a cached Job older than the controller's own last status write waits for
the cache: a count is never recomputed from pods that are already going.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from kubelite.api import batch_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert, selectors
from master.apiserver.strategy import now_rfc3339
from master.controllers.base import Controller, controller_ref, owner_reference
from master.informers import key_of

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
MAX_BACKOFF = 360.0
EXPECT_TTL = 30.0


def _ts(text: str) -> float:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def _index(pod: Any) -> int | None:
    v = pod.metadata.annotations.get(INDEX_ANNOTATION)
    return int(v) if v is not None and v.isdigit() else None


def format_indexes(indexes: set[int]) -> str:
    """{0,1,2,4} -> "0-2,4" (Kubernetes' compressed interval list)."""
    out, run = [], []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def parse_indexes(text: str) -> set[int]:
    """"0-2,4" -> {0,1,2,4}; anything malformed is ignored."""
    out: set[int] = set()
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def finished(job: Any) -> str:
    for c in job.status.conditions:
        if c.type in ("Complete", "Failed") and c.status == "True":
            return str(c.type)
    return ""


class JobController(Controller):
    name = "job"
    workers = 4

    def __init__(self, client: AsyncClient, *, initial_backoff: float = 10.0) -> None:
        super().__init__(client)
        self.initial_backoff = initial_backoff
        self.jobs = self.informer("jobs", on_change=self.enqueue)
        self.pods = self.informer("pods", on_change=self._pod_changed,
                                  on_update=lambda _o, n: self._pod_changed(n, added=False))
        # Pods created but not yet seen by the informer, per Job (client-go's
        # expectations): until they show up, no more are created.
        self._expect: dict[str, tuple[set[str], float]] = {}
        # resourceVersion of each Job's last status write: an older cached Job is stale.
        self._written: dict[str, int] = {}

    def _pod_changed(self, pod: Any, *, added: bool = True) -> None:
        ref = controller_ref(pod)
        if ref is not None and ref.kind == "Job":
            key = f"{pod.metadata.namespace}/{ref.name}"
            pending = self._expect.get(key)
            if pending is not None:
                pending[0].discard(pod.metadata.name)
            self.queue.add(key)

    def _expectations_met(self, key: str) -> bool:
        pending = self._expect.get(key)
        if pending is None or not pending[0] or time.monotonic() - pending[1] > EXPECT_TTL:
            self._expect.pop(key, None)
            return True
        return False

    def _pods(self, job: Any) -> list[Any]:
        ns, uid = job.metadata.namespace, job.metadata.uid
        sel = selectors.from_message(job.spec.selector) if job.spec.HasField("selector") else []
        return [p for p in self.pods.items()
                if p.metadata.namespace == ns and (ref := controller_ref(p)) is not None
                and ref.uid == uid and selectors.matches(sel, p.metadata.labels)]

    async def reconcile(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None or job.metadata.deletionTimestamp:
            self._written.pop(key, None)
            self._expect.pop(key, None)
            return
        if int(job.metadata.resourceVersion or 0) < self._written.get(key, 0):
            return  # our own status write is not in the cache yet; its event re-queues
        spec = job.spec
        status = batch_pb2.JobStatus()
        status.CopyFrom(job.status)
        now = time.time()
        pods = self._pods(job)
        active = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")
                  and not p.metadata.deletionTimestamp]
        if finished(job):
            await self._delete_pods(job, active)  # left over if a delete failed before
            await self._ttl(job, now)
            return
        succeeded = [p for p in pods if p.status.phase == "Succeeded"]
        failed = [p for p in pods if p.status.phase == "Failed"]
        restarts = sum(cs.restartCount for p in pods for cs in p.status.containerStatuses)
        failures = max(job.status.failed, len(failed) + (
            restarts if spec.template.spec.restartPolicy == "OnFailure" else 0))
        indexed = spec.completionMode == "Indexed"
        completions = spec.completions if spec.HasField("completions") else None
        parallelism = spec.parallelism if spec.HasField("parallelism") else 1
        backoff_limit = spec.backoffLimit if spec.HasField("backoffLimit") else 6
        if not status.startTime and not (spec.HasField("suspend") and spec.suspend):
            status.startTime = now_rfc3339()

        done_indexes = {i for p in succeeded if (i := _index(p)) is not None}
        if indexed:
            done_indexes |= {i for i in parse_indexes(job.status.completedIndexes)
                             if completions is None or i < completions}
            n_succeeded = len(done_indexes)
            complete = completions is not None and n_succeeded >= completions
        else:
            n_succeeded = max(job.status.succeeded, len(succeeded))
            complete = (n_succeeded >= completions if completions is not None
                        else bool(succeeded) and not active)
        failure = ""
        if not complete:
            if failures > backoff_limit:
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif spec.HasField("activeDeadlineSeconds") and status.startTime and \
                    now - _ts(status.startTime) >= spec.activeDeadlineSeconds:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")

        stop: list[Any] = []  # deleted only once the status saying why is written
        if complete or failure:
            stop, active = active, []
            cond = status.conditions.add(type="Complete" if complete else "Failed",
                                         status="True")
            cond.lastProbeTime = cond.lastTransitionTime = now_rfc3339()
            if complete:
                status.completionTime = now_rfc3339()
                self.recorder.event(job, "Normal", "Completed", "Job completed")
            else:
                cond.reason, cond.message = failure
                self.recorder.event(job, "Warning", failure[0], failure[1])
        elif spec.HasField("suspend") and spec.suspend:
            stop, active = active, []
            if not any(c.type == "Suspended" for c in status.conditions):
                c = status.conditions.add(type="Suspended", status="True", reason="JobSuspended",
                                          message="Job suspended")
                c.lastTransitionTime = now_rfc3339()
        else:
            wait = self._backoff_left(failed, now) if failed else 0.0
            if not self._expectations_met(key_of(job)):
                pass  # the pods just created are not in the cache yet
            elif wait > 0:
                self.queue.add_after(key_of(job), wait)
            else:
                active += await self._start(job, active, done_indexes, completions,
                                            parallelism, n_succeeded, indexed)
            if spec.HasField("activeDeadlineSeconds") and status.startTime:
                left = _ts(status.startTime) + spec.activeDeadlineSeconds - now
                self.queue.add_after(key_of(job), max(0.1, left))

        status.active = len(active)
        status.succeeded = n_succeeded
        status.failed = failures
        status.ready = sum(1 for p in active if any(
            c.type == "Ready" and c.status == "True" for c in p.status.conditions))
        if indexed:
            status.completedIndexes = format_indexes(done_indexes)
        await self._write_status(job, status)
        await self._delete_pods(job, stop)

    def _backoff_left(self, failed: list[Any], now: float) -> float:
        last = max((_ts(cs.state.terminated.finishedAt) for p in failed
                    for cs in p.status.containerStatuses if cs.state.terminated.finishedAt),
                   default=0.0)
        delay = min(MAX_BACKOFF, self.initial_backoff * 2 ** (len(failed) - 1))
        return last + delay - now if last else 0.0

    async def _start(self, job: Any, active: list[Any], done_indexes: set[int],
                     completions: int | None, parallelism: int, n_succeeded: int,
                     indexed: bool) -> list[Any]:
        if indexed and completions is not None:
            running = {i for p in active if (i := _index(p)) is not None}
            todo = [i for i in range(completions) if i not in done_indexes and i not in running]
            slots = max(0, parallelism - len(active))
            wanted: list[int | None] = list(todo[:slots])
        else:
            remaining = (completions - n_succeeded) if completions is not None else parallelism
            if completions is None and n_succeeded:
                remaining = 0  # one success: let the others finish, start no more
            count = max(0, min(parallelism, remaining) - len(active))
            wanted = [None] * count
        if not wanted:
            return []
        results = await asyncio.gather(*(self.client.create(self._pod(job, i)) for i in wanted),
                                       return_exceptions=True)
        created = [r for r in results if not isinstance(r, BaseException)]
        self._expect[key_of(job)] = ({p.metadata.name for p in created
                                      if self.pods.get(key_of(p)) is None}, time.monotonic())
        errors = [r for r in results if isinstance(r, BaseException)]
        if created:
            self.recorder.event(job, "Normal", "SuccessfulCreate",
                                f"Created pod: {created[0].metadata.name}" if len(created) == 1
                                else f"Created {len(created)} pods")
        if errors:
            self.recorder.event(job, "Warning", "FailedCreate",
                                f"Error creating: {getattr(errors[0], 'message', errors[0])}")
            raise errors[0]
        return created

    def _pod(self, job: Any, index: int | None) -> Any:
        t = job.spec.template
        pod = pod_pb2.Pod(apiVersion="v1", kind="Pod")
        md = pod.metadata
        md.generateName = f"{job.metadata.name}-" + (f"{index}-" if index is not None else "")
        md.namespace = job.metadata.namespace
        md.labels.update(t.metadata.labels)
        md.annotations.update(t.metadata.annotations)
        ref = md.ownerReferences.add()
        ref.CopyFrom(convert.from_dict(owner_reference(job, "batch/v1", "Job"), type(ref)))
        pod.spec.CopyFrom(t.spec)
        if index is not None:
            md.annotations[INDEX_ANNOTATION] = str(index)
            md.labels[INDEX_ANNOTATION] = str(index)
            pod.spec.hostname = f"{job.metadata.name}-{index}"
            for c in (*pod.spec.initContainers, *pod.spec.containers):
                c.env.add(name="JOB_COMPLETION_INDEX").valueFrom.fieldRef.fieldPath = \
                    f"metadata.annotations['{INDEX_ANNOTATION}']"
        return pod

    async def _delete_pods(self, job: Any, pods: list[Any]) -> None:
        for p in pods:
            try:
                await self.client.delete("pods", p.metadata.name, p.metadata.namespace,
                                         precondition_uid=p.metadata.uid)
            except APIStatusError as e:
                if not e.not_found:
                    raise

    async def _ttl(self, job: Any, now: float) -> None:
        if not job.spec.HasField("ttlSecondsAfterFinished"):
            return
        end = _ts(job.status.completionTime) or max(
            (_ts(c.lastTransitionTime) for c in job.status.conditions), default=now)
        left = end + job.spec.ttlSecondsAfterFinished - now
        if left > 0:
            self.queue.add_after(key_of(job), left)
            return
        try:
            await self.client.delete("jobs", job.metadata.name, job.metadata.namespace,
                                     propagation_policy="Background",
                                     precondition_uid=job.metadata.uid)
        except APIStatusError as e:
            if not e.not_found:
                raise

    async def _write_status(self, job: Any, status: Any) -> None:
        if status == job.status:
            return
        update = batch_pb2.Job()
        update.CopyFrom(job)
        update.status.CopyFrom(status)
        update.metadata.resourceVersion = job.metadata.resourceVersion  # CAS: no lost counts
        try:
            written = await self.client.update_status(update)
        except APIStatusError as e:
            if not e.not_found:
                raise  # a conflict retries from the fresh cache
            return
        self._written[key_of(job)] = int(written.metadata.resourceVersion)
