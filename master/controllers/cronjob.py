"""The CronJob controller (batch/v1): create Jobs on a schedule.

Each sync works out the most recent schedule time that has not been acted
on: the times after status.lastScheduleTime (or the CronJob's creation),
and no earlier than startingDeadlineSeconds ago. So a master that was down
starts the one most recent missed run when it comes back (not every missed
one), and a run later than its starting deadline is skipped, as in
Kubernetes. Then:

- concurrencyPolicy Allow: start it; Forbid: skip it while a Job runs;
  Replace: delete the running Jobs, then start it;
- the Job is named `<cronjob>-<scheduled time in unix minutes>` (seconds
  for an "@every" under a minute), so a repeat of the same run after a
  restart finds it exists instead of doubling it;
- status.active lists the running Jobs, lastScheduleTime and
  lastSuccessfulTime are kept;
- finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit
  are deleted, oldest first;
- suspend stops new runs. The key is requeued for the next schedule time.

Schedules are evaluated in spec.timeZone (or the schedule's TZ=), else UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from kubelite.api import batch_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert
from kubelite.objects.validation_cron import CronError, parse
from master.controllers.base import Controller, controller_ref, owner_reference
from master.controllers.job import finished
from master.informers import key_of

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
TOO_MANY_MISSED = 100


def _ts(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unmet(schedule: Any, earliest: dt.datetime, now: dt.datetime
          ) -> tuple[dt.datetime | None, int, dt.datetime | None]:
    """(most recent schedule time in (earliest, now], how many there are (counted up to
    just past TOO_MANY_MISSED), the first one after now)."""
    latest, missed = None, 0
    t = schedule.next_after(earliest)
    while t is not None and t <= now and missed <= TOO_MANY_MISSED:
        latest, missed = t, missed + 1
        t = schedule.next_after(t)
    if t is not None and t <= now:
        # Too many to walk: find the most recent one from a window close to now.
        for back in (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=32),
                     dt.timedelta(days=367), dt.timedelta(days=5 * 366)):
            first = schedule.next_after(max(earliest, now - back))
            if first is not None and first <= now:
                latest, t = first, schedule.next_after(first)
                while t is not None and t <= now:
                    latest, t = t, schedule.next_after(t)
                break
    return latest, missed, t


class CronJobController(Controller):
    name = "cronjob"

    def __init__(self, client: AsyncClient, *, clock: Any = None) -> None:
        super().__init__(client)
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.cronjobs = self.informer("cronjobs", on_change=self.enqueue)
        self.jobs = self.informer("jobs", on_change=self._job_changed)

    def _job_changed(self, job: Any) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.kind == "CronJob":
            self.queue.add(f"{job.metadata.namespace}/{ref.name}")

    def _children(self, cj: Any) -> list[Any]:
        ns, uid = cj.metadata.namespace, cj.metadata.uid
        return [j for j in self.jobs.items() if j.metadata.namespace == ns
                and (ref := controller_ref(j)) is not None and ref.uid == uid]

    async def reconcile(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None or cj.metadata.deletionTimestamp:
            return
        spec = cj.spec
        now = self.clock()
        children = self._children(cj)
        status = batch_pb2.CronJobStatus()
        status.CopyFrom(cj.status)
        running = [j for j in children if not finished(j)]
        del status.active[:]
        for j in sorted(running, key=lambda j: j.metadata.name):
            ref = status.active.add(kind="Job", apiVersion="batch/v1", name=j.metadata.name,
                                    namespace=j.metadata.namespace, uid=j.metadata.uid)
            ref.resourceVersion = j.metadata.resourceVersion
        succeeded = [j for j in children if finished(j) == "Complete"]
        for j in succeeded:
            done_at = j.status.completionTime
            if done_at and (not status.lastSuccessfulTime or done_at > status.lastSuccessfulTime):
                status.lastSuccessfulTime = done_at
        await self._prune(cj, children)

        try:
            schedule = parse(spec.schedule)
        except CronError as e:
            self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {spec.schedule!r}: {e}")
            await self._write_status(cj, status)
            return
        tz_name = spec.timeZone if spec.HasField("timeZone") else schedule.location
        tz = zoneinfo.ZoneInfo(tz_name) if tz_name else dt.UTC
        local_now = now.astimezone(tz)
        if spec.HasField("suspend") and spec.suspend:
            await self._write_status(cj, status)
            return
        earliest = _ts(status.lastScheduleTime) or _ts(cj.metadata.creationTimestamp) or now
        if spec.HasField("startingDeadlineSeconds"):
            earliest = max(earliest, now - dt.timedelta(seconds=spec.startingDeadlineSeconds))
        latest, missed, following = unmet(schedule, earliest.astimezone(tz), local_now)
        if following is not None:
            self.queue.add_after(key_of(cj), max(0.05, (following - local_now).total_seconds()))
        if latest is None:
            await self._write_status(cj, status)
            return
        if missed > TOO_MANY_MISSED:
            self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        policy = spec.concurrencyPolicy or "Allow"
        if running and policy == "Forbid":
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            await self._write_status(cj, status)
            return
        if running and policy == "Replace":
            for j in running:
                try:
                    await self.client.delete("jobs", j.metadata.name, j.metadata.namespace,
                                             propagation_policy="Background")
                    self.recorder.event(cj, "Normal", "SuccessfulDelete",
                                        f"Deleted job {j.metadata.name}")
                except APIStatusError as e:
                    if not e.not_found:
                        raise
            del status.active[:]
        job = self._job(cj, latest, schedule)
        try:
            created = await self.client.create(job)
            self.recorder.event(cj, "Normal", "SuccessfulCreate",
                                f"Created job {created.metadata.name}")
            ref = status.active.add(kind="Job", apiVersion="batch/v1",
                                    name=created.metadata.name,
                                    namespace=created.metadata.namespace,
                                    uid=created.metadata.uid)
            ref.resourceVersion = created.metadata.resourceVersion
        except APIStatusError as e:
            if not e.already_exists:  # already made for this time (e.g. before a restart)
                raise
        status.lastScheduleTime = _rfc3339(latest)
        await self._write_status(cj, status)

    def _job(self, cj: Any, when: dt.datetime, schedule: Any) -> Any:
        t = cj.spec.jobTemplate
        job = batch_pb2.Job(apiVersion="batch/v1", kind="Job")
        # Kubernetes names a run by its minute; an "@every" shorter than a
        # minute would collide, so those runs are named by their second.
        sub_minute = schedule.every is not None and schedule.every < dt.timedelta(minutes=1)
        stamp = int(when.timestamp()) if sub_minute else int(when.timestamp() // 60)
        job.metadata.name = f"{cj.metadata.name}-{stamp}"
        job.metadata.namespace = cj.metadata.namespace
        job.metadata.labels.update(t.metadata.labels)
        job.metadata.annotations.update(t.metadata.annotations)
        job.metadata.annotations[SCHEDULED_ANNOTATION] = _rfc3339(when)
        ref = job.metadata.ownerReferences.add()
        ref.CopyFrom(convert.from_dict(owner_reference(cj, "batch/v1", "CronJob"), type(ref)))
        job.spec.CopyFrom(t.spec)
        return job

    async def _prune(self, cj: Any, children: list[Any]) -> None:
        spec = cj.spec
        for outcome, limit in (("Complete", spec.successfulJobsHistoryLimit
                                if spec.HasField("successfulJobsHistoryLimit") else 3),
                               ("Failed", spec.failedJobsHistoryLimit
                                if spec.HasField("failedJobsHistoryLimit") else 1)):
            done = sorted((j for j in children if finished(j) == outcome),
                          key=lambda j: (j.status.startTime or j.metadata.creationTimestamp,
                                         j.metadata.name))
            for j in done[:max(0, len(done) - limit)]:
                try:
                    await self.client.delete("jobs", j.metadata.name, j.metadata.namespace,
                                             propagation_policy="Background",
                                             precondition_uid=j.metadata.uid)
                    self.recorder.event(cj, "Normal", "SawCompletedJob" if outcome == "Complete"
                                        else "SuccessfulDelete", f"Deleted job {j.metadata.name}")
                except APIStatusError as e:
                    if not e.not_found:
                        raise

    async def _write_status(self, cj: Any, status: Any) -> None:
        if status == cj.status:
            return
        update = batch_pb2.CronJob()
        update.CopyFrom(cj)
        update.status.CopyFrom(status)
        update.metadata.resourceVersion = cj.metadata.resourceVersion
        try:
            await self.client.update_status(update)
        except APIStatusError as e:
            if not e.not_found:
                raise
