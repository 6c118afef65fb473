"""Informers: a local cache of one resource kept current by list + watch.

    inf = Informer(client, "pods", on_add=..., on_update=..., on_delete=...)
    task = asyncio.create_task(inf.run())
    await inf.synced.wait()          # the first list is in the cache
    inf.get("ns/name"), inf.items()

The handlers run in the informer's task, in the order changes happened, and
must not block (enqueue a key, update an index). A dropped stream resumes
from the last resourceVersion seen; a resourceVersion compacted away
("too old") triggers a fresh list, and the difference between the cache and
that list is delivered as add/update/delete calls, so a handler never misses
a change, only the intermediate states, as in client-go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc

from kubelite.client import APIStatusError, AsyncClient

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]
UpdateHandler = Callable[[Any, Any], None]


def key_of(obj: Any) -> str:
    md = obj.metadata
    return f"{md.namespace}/{md.name}" if md.namespace else md.name


class Informer:
    def __init__(self, client: AsyncClient, resource: str, *, namespace: str = "",
                 label_selector: str = "", field_selector: str = "",
                 on_add: Handler | None = None, on_update: UpdateHandler | None = None,
                 on_delete: Handler | None = None, retry_delay: float = 1.0) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.on_add = on_add
        self.on_update = on_update
        self.on_delete = on_delete
        self.retry_delay = retry_delay
        self.synced = asyncio.Event()
        self._cache: dict[str, Any] = {}
        self._rv = ""

    def get(self, key: str) -> Any | None:
        return self._cache.get(key)

    def items(self) -> list[Any]:
        return list(self._cache.values())

    def __len__(self) -> int:
        return len(self._cache)

    async def run(self) -> None:
        """List, then watch forever (until cancelled), relisting when needed."""
        while True:
            try:
                if not self._rv:
                    await self._relist()
                await self._watch()
            except asyncio.CancelledError:
                raise
            except APIStatusError as e:
                if e.code == grpc.StatusCode.OUT_OF_RANGE:  # compacted: start over
                    log.info("%s watch expired (%s); relisting", self.resource, e.message)
                    self._rv = ""
                    continue
                log.warning("%s watch failed: %s", self.resource, e.message)
                await asyncio.sleep(self.retry_delay)
            except Exception as e:  # noqa: BLE001 - any stream failure: resume
                log.warning("%s watch failed: %s", self.resource, e)
                await asyncio.sleep(self.retry_delay)

    async def _relist(self) -> None:
        items, rv = await self.client.list(self.resource, self.namespace,
                                           label_selector=self.label_selector,
                                           field_selector=self.field_selector)
        fresh = {key_of(o): o for o in items}
        for key, old in list(self._cache.items()):
            if key not in fresh:
                del self._cache[key]
                self._call(self.on_delete, old)
        for key, obj in fresh.items():
            old = self._cache.get(key)
            self._cache[key] = obj
            if old is None:
                self._call(self.on_add, obj)
            elif old.metadata.resourceVersion != obj.metadata.resourceVersion:
                self._call(self.on_update, old, obj)
        self._rv = rv
        self.synced.set()

    async def _watch(self) -> None:
        async for typ, obj, rv in self.client.watch(
                self.resource, self.namespace, label_selector=self.label_selector,
                field_selector=self.field_selector, resource_version=self._rv,
                allow_bookmarks=True):
            if typ == "BOOKMARK" or obj is None:
                self._rv = rv or self._rv
                continue
            key = key_of(obj)
            old = self._cache.get(key)
            if typ == "DELETED":
                self._cache.pop(key, None)
                self._call(self.on_delete, obj)
            else:
                self._cache[key] = obj
                if old is None:
                    self._call(self.on_add, obj)
                else:
                    self._call(self.on_update, old, obj)
            self._rv = rv or obj.metadata.resourceVersion

    def _call(self, fn: Callable[..., None] | None, *args: Any) -> None:
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one bad handler must not stop the cache
            log.exception("%s handler failed", self.resource)
