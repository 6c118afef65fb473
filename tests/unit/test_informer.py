"""Informer: list then watch, resume after a dropped stream, relist after "too old".

A scripted fake client stands in for the API: each watch() call plays the
next script (events, then an error or an end).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from kubelite.api import core_pb2
from kubelite.client import APIStatusError
from master.informers import Informer


def cm(name: str, rv: str, value: str = "") -> core_pb2.ConfigMap:
    obj = core_pb2.ConfigMap()
    obj.metadata.name, obj.metadata.namespace, obj.metadata.resourceVersion = name, "ns", rv
    if value:
        obj.data["v"] = value
    return obj


class FakeClient:
    def __init__(self, lists: list[tuple[list[Any], str]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.watch_from: list[str] = []

    async def list(self, resource: str, namespace: str = "", **kw: Any) -> tuple[list[Any], str]:
        return self.lists.pop(0)

    async def watch(self, resource: str, namespace: str = "", **kw: Any
                    ) -> AsyncIterator[tuple[str, Any, str]]:
        self.watch_from.append(kw["resource_version"])
        script = self.watches.pop(0) if self.watches else None
        if script is None:
            await asyncio.sleep(3600)
            return
        for step in script:
            if isinstance(step, Exception):
                raise step
            yield step


class Recorder:
    def __init__(self) -> None:
        self.log: list[tuple[str, str, str]] = []

    def add(self, o: Any) -> None:
        self.log.append(("add", o.metadata.name, o.metadata.resourceVersion))

    def update(self, old: Any, new: Any) -> None:
        self.log.append(("update", new.metadata.name, new.metadata.resourceVersion))

    def delete(self, o: Any) -> None:
        self.log.append(("delete", o.metadata.name, o.metadata.resourceVersion))


async def run_until_idle(inf: Informer, client: FakeClient) -> None:
    task = asyncio.create_task(inf.run())
    for _ in range(200):
        await asyncio.sleep(0.005)
        if not client.watches and not client.lists:
            break
    await asyncio.sleep(0.05)
    task.cancel()


async def test_list_watch_resume_and_relist_after_compaction() -> None:
    dropped = APIStatusError(grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable", "stream reset")
    expired = APIStatusError(grpc.StatusCode.OUT_OF_RANGE, "Expired",
                             "too old resource version: 5 (9)")
    client = FakeClient(
        lists=[([cm("a", "3"), cm("b", "4")], "5"),
               # after compaction: b changed, a gone, c new
               ([cm("b", "12", "x"), cm("c", "11")], "12")],
        watches=[[("MODIFIED", cm("a", "6", "1"), "6"), dropped],  # stream drops after rv 6
                 [("BOOKMARK", None, "8"), expired],  # resumes from 6, bookmark, then too old
                 ])
    rec = Recorder()
    inf = Informer(client, "configmaps", on_add=rec.add, on_update=rec.update,  # type: ignore[arg-type]
                   on_delete=rec.delete, retry_delay=0.01)
    await run_until_idle(inf, client)
    assert inf.synced.is_set()
    assert client.watch_from[:3] == ["5", "6", "12"]  # resume from the last seen, relist
    assert rec.log == [
        ("add", "a", "3"), ("add", "b", "4"),
        ("update", "a", "6"),
        ("delete", "a", "6"), ("update", "b", "12"), ("add", "c", "11"),
    ]
    assert sorted(o.metadata.name for o in inf.items()) == ["b", "c"]


async def test_a_failing_handler_does_not_stop_the_cache() -> None:
    client = FakeClient(lists=[([cm("a", "1"), cm("b", "2")], "2")], watches=[])

    def boom(o: Any) -> None:
        raise ValueError("handler bug")

    inf = Informer(client, "configmaps", on_add=boom)  # type: ignore[arg-type]
    await run_until_idle(inf, client)
    assert len(inf) == 2
