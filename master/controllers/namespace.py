"""Namespace controller: empty a Terminating namespace, then remove it.

Deleting a namespace only marks it (deletionTimestamp, phase Terminating);
this loop deletes everything in it, kind by kind, and removes the namespace
once nothing is left. New objects are refused meanwhile by the API server,
and objects still held by finalizers or graceful pod termination keep the
namespace Terminating until they go, as in Kubernetes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kubelite.objects import kinds
from master.apiserver import errors
from master.apiserver.registry import Registry, key_for
from master.apiserver.storage import Conflict, KeyNotFound

log = logging.getLogger(__name__)


class NamespaceController:
    def __init__(self, registry: Registry, *, resync: float = 2.0) -> None:
        self.registry = registry
        self.resync = resync
        self.kind = kinds.by_resource("namespaces")

    async def run(self) -> None:
        """Level-triggered: any namespace event (or the resync tick) re-checks all."""
        wake = asyncio.Event()

        async def watch() -> None:
            while True:
                try:
                    async for _ in self.registry.watch(self.kind):
                        wake.set()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - restart the watch
                    log.warning("namespace watch failed: %s", e)
                    await asyncio.sleep(1)

        watcher = asyncio.create_task(watch())
        try:
            while True:
                try:
                    await self.sync_all()
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - retry on the next tick
                    log.warning("namespace sync failed: %s", e)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), self.resync)
                except TimeoutError:
                    pass
        finally:
            watcher.cancel()

    async def sync_all(self) -> None:
        items, _ = await self.registry.list(self.kind)
        for ns in items:
            if ns.metadata.deletionTimestamp:
                await self.finalize(ns)

    async def finalize(self, ns: Any) -> bool:
        """Delete the namespace's contents; remove it once empty. True when gone."""
        name = ns.metadata.name
        remaining = 0
        for kind in kinds.KINDS:
            if not kind.namespaced:
                continue
            objs, _ = await self.registry.list(kind, name)
            for obj in objs:
                remaining += 1
                if obj.metadata.deletionTimestamp:
                    continue
                try:
                    await self.registry.delete(kind, name, obj.metadata.name,
                                               propagation_policy="Background")
                except errors.ApiError as e:
                    if e.reason != "NotFound":
                        log.warning("deleting %s/%s in %s: %s", kind.resource,
                                    obj.metadata.name, name, e.message)
        if remaining:
            # Re-list: what had no finalizer is gone already.
            left = 0
            for kind in kinds.KINDS:
                if kind.namespaced:
                    objs, _ = await self.registry.list(kind, name)
                    left += len(objs)
            if left:
                return False
        try:
            kv = await self.registry.storage.get(key_for(self.kind, "", name))
            if kv is None:
                return True
            await self.registry.storage.delete(key_for(self.kind, "", name), kv.mod_revision)
            log.info("namespace %s deleted", name)
            return True
        except (Conflict, KeyNotFound):
            return False


async def ensure_namespaces(registry: Registry, names: tuple[str, ...]) -> None:
    """Create the namespaces every cluster has; already present is fine."""
    from kubelite.api import core_pb2

    for name in names:
        ns = core_pb2.Namespace()
        ns.metadata.name = name
        try:
            await registry.create(ns)
        except errors.ApiError as e:
            if e.reason != "AlreadyExists":
                raise
