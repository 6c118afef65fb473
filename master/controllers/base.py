"""What every controller shares: informers feeding a work queue, workers
calling a level-triggered `reconcile(key)`.

    class MyController(Controller):
        name = "mything"
        def __init__(self, client):
            super().__init__(client)
            self.things = self.informer("things", on_change=self.enqueue_self)
        async def reconcile(self, key: str) -> None: ...

Handlers only enqueue keys ("namespace/name"); reconcile reads the caches
and writes through the API, and may be called any number of times for the
same state. An exception requeues the key with back-off; `requeue_after`
asks for a later look without counting as a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from kubelite.client import AsyncClient
from master.events import EventRecorder
from master.informers import Informer, key_of
from master.workqueue import WorkQueue

log = logging.getLogger(__name__)


EXPECTATIONS_TTL = 300.0


class Expectations:
    """client-go's ControllerExpectations: per owner key, how many pod creations
    and deletions a controller has asked for and not yet seen in its informer.
    Until they are seen (or EXPECTATIONS_TTL passes) the owner is not
    reconciled again, so a slow cache never causes extra creates or deletes."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL) -> None:
        self.ttl = ttl
        self._e: dict[str, tuple[int, int, float]] = {}

    def expect(self, key: str, *, adds: int = 0, dels: int = 0) -> None:
        self._e[key] = (adds, dels, time.monotonic())

    def lower(self, key: str, *, adds: int = 0, dels: int = 0) -> None:
        """Some of what was expected will never be seen (a failed create, a pod
        already gone)."""
        a, d, at = self._e.get(key, (0, 0, 0.0))
        self._e[key] = (a - adds, d - dels, at)

    def observe(self, key: str, *, added: bool) -> None:
        a, d, at = self._e.get(key, (0, 0, 0.0))
        if added and a > 0:
            self._e[key] = (a - 1, d, at)
        elif not added and d > 0:
            self._e[key] = (a, d - 1, at)

    def satisfied(self, key: str) -> bool:
        a, d, at = self._e.get(key, (0, 0, 0.0))
        return (a <= 0 and d <= 0) or time.monotonic() - at > self.ttl

    def forget(self, key: str) -> None:
        self._e.pop(key, None)

    def clear(self) -> None:
        self._e.clear()


class Controller:
    name = "controller"
    workers = 2

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.queue = WorkQueue()
        self.informers: list[Informer] = []
        self.recorder = EventRecorder(client, f"{self.name}-controller")

    def informer(self, resource: str, *, on_change: Callable[[Any], None] | None = None,
                 on_update: Callable[[Any, Any], None] | None = None,
                 on_delete: Callable[[Any], None] | None = None, **kw: Any) -> Informer:
        """An informer whose add/update/delete call `on_change(obj)` (or the specific ones)."""
        inf = Informer(
            self.client, resource, on_add=on_change,
            on_update=on_update or ((lambda _old, new: on_change(new)) if on_change else None),
            on_delete=on_delete or on_change, **kw)
        self.informers.append(inf)
        return inf

    def enqueue(self, obj: Any) -> None:
        self.queue.add(key_of(obj))

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"{self.name}-{i.resource}")
                 for i in self.informers]
        try:
            await asyncio.gather(*(i.synced.wait() for i in self.informers))
            log.info("%s controller: caches synced", self.name)
            workers = [asyncio.create_task(self._worker(), name=f"{self.name}-worker")
                       for _ in range(self.workers)]
            await asyncio.gather(*tasks, *workers)
        finally:
            for t in tasks:
                t.cancel()

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile(key)
                self.queue.forget(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - requeue with back-off
                level = logging.WARNING if self.queue.failures(key) < 5 else logging.ERROR
                log.log(level, "%s %s: %s", self.name, key, e, exc_info=level == logging.ERROR)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


def controller_ref(obj: Any) -> Any | None:
    for ref in obj.metadata.ownerReferences:
        if ref.HasField("controller") and ref.controller:
            return ref
    return None


def owner_reference(owner: Any, api_version: str, kind: str) -> dict[str, Any]:
    """The controller ownerReference a controller puts on what it creates."""
    return {"apiVersion": api_version, "kind": kind, "name": owner.metadata.name,
            "uid": owner.metadata.uid, "controller": True, "blockOwnerDeletion": True}
