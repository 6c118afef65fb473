"""Recording Events about objects, as client-go's EventRecorder does.

    rec = EventRecorder(client, "default-scheduler")
    rec.event(pod, "Warning", "FailedScheduling", "0/3 nodes are available: ...")

Writes happen in the background (a component never waits on its own
events) and are bounded: past `max_pending` writes in flight, new events are
dropped with a log line. A repeat of the same (object, type, reason,
message) within `dedup_window` bumps the count and lastTimestamp of the
Event already written instead of creating another.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from kubelite.api import core_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import kinds
from master.apiserver.strategy import now_rfc3339

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, client: AsyncClient, component: str, *, host: str = "",
                 max_pending: int = 256, dedup_window: float = 600.0) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.max_pending = max_pending
        self.dedup_window = dedup_window
        self._pending: set[asyncio.Task[None]] = set()
        # (uid, type, reason, message) -> (event name, namespace, count, when)
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, int, float]] = {}

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        if len(self._pending) >= self.max_pending:
            log.warning("dropping event %s %s: too many in flight", reason, obj.metadata.name)
            return
        task = asyncio.get_running_loop().create_task(self._write(obj, type_, reason, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _write(self, obj: Any, type_: str, reason: str, message: str) -> None:
        md = obj.metadata
        key = (md.uid, type_, reason, message)
        seen = self._seen.get(key)
        now = now_rfc3339()
        try:
            if seen and time.monotonic() - seen[3] < self.dedup_window:
                name, ns, count, _ = seen
                await self.client.patch("events", name, {"count": count + 1,
                                                         "lastTimestamp": now}, ns)
                self._seen[key] = (name, ns, count + 1, time.monotonic())
                return
            ev = self._new(obj, type_, reason, message, now)
            created = await self.client.create(ev)
            self._seen[key] = (created.metadata.name, created.metadata.namespace, 1,
                               time.monotonic())
            if len(self._seen) > 4096:
                self._seen.pop(next(iter(self._seen)))
        except APIStatusError as e:
            if e.not_found and seen:  # the Event expired or was deleted: write a new one
                self._seen.pop(key, None)
            log.info("event %s for %s not recorded: %s", reason, md.name, e.message)
        except Exception as e:  # noqa: BLE001 - events are best effort
            log.info("event %s for %s not recorded: %s", reason, md.name, e)

    def _new(self, obj: Any, type_: str, reason: str, message: str, now: str) -> Any:
        md = obj.metadata
        kind = kinds.of(obj)
        ev = core_pb2.Event(apiVersion="v1", kind="Event", reason=reason, message=message,
                            type=type_, firstTimestamp=now, lastTimestamp=now, count=1,
                            reportingComponent=self.component,
                            reportingInstance=self.host or os.uname().nodename)
        ev.metadata.name = f"{md.name}.{time.time_ns():x}"
        ev.metadata.namespace = md.namespace or "default"
        ref = ev.involvedObject
        ref.kind, ref.apiVersion = kind.kind, kind.api_version
        ref.name, ref.namespace, ref.uid = md.name, md.namespace, md.uid
        ref.resourceVersion = md.resourceVersion
        ev.source.component = self.component
        if self.host:
            ev.source.host = self.host
        return ev
