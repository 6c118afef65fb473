"""The controllers' work queue and the ReplicaSet controller's pure helpers."""

from __future__ import annotations

import asyncio
import time

from kubelite.api import pod_pb2
from kubelite.objects import convert
from master.controllers.base import Controller
from master.controllers.replicaset import available, deletion_rank
from master.workqueue import WorkQueue


async def get_within(q: WorkQueue, seconds: float) -> str | None:
    try:
        return await asyncio.wait_for(q.get(), seconds)
    except TimeoutError:
        return None


async def test_dedup_and_order() -> None:
    q = WorkQueue()
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_a_key_is_never_handed_to_two_workers() -> None:
    q = WorkQueue()
    q.add("k")
    assert await q.get() == "k"
    q.add("k")  # changed while a worker holds it
    assert await get_within(q, 0.05) is None  # not given to a second worker
    q.done("k")
    assert await get_within(q, 0.05) == "k"  # but not lost either
    q.done("k")
    assert await get_within(q, 0.05) is None


async def test_rate_limited_backoff_doubles_and_forget_resets() -> None:
    q = WorkQueue(initial_backoff=0.05, max_backoff=0.1)
    waits = []
    for _ in range(3):
        t = time.monotonic()
        q.add_rate_limited("k")
        assert await get_within(q, 1) == "k"
        q.done("k")
        waits.append(time.monotonic() - t)
    assert 0.04 <= waits[0] < 0.09 and 0.09 <= waits[1] < 0.2 and waits[2] < 0.2  # capped
    assert q.failures("k") == 3
    q.forget("k")
    assert q.failures("k") == 0


async def test_add_after_keeps_the_earliest() -> None:
    q = WorkQueue()
    q.add_after("k", 0.3)
    q.add_after("k", 0.05)
    q.add_after("k", 1.0)
    t = time.monotonic()
    assert await get_within(q, 1) == "k"
    assert time.monotonic() - t < 0.2


class Flaky(Controller):
    name = "flaky"
    workers = 3

    def __init__(self) -> None:
        super().__init__(client=None)  # type: ignore[arg-type]
        self.calls: list[str] = []
        self.running: set[str] = set()
        self.overlap = False

    async def reconcile(self, key: str) -> None:
        if key in self.running:
            self.overlap = True
        self.running.add(key)
        self.calls.append(key)
        await asyncio.sleep(0.01)
        self.running.discard(key)
        if self.calls.count(key) < 3 and key == "bad":
            raise RuntimeError("transient")


async def test_workers_requeue_failures_and_never_overlap_a_key() -> None:
    c = Flaky()
    c.queue = WorkQueue(initial_backoff=0.01)
    tasks = [asyncio.create_task(c._worker()) for _ in range(c.workers)]
    for _ in range(5):
        c.queue.add("bad")
        c.queue.add("good")
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.3)
    for t in tasks:
        t.cancel()
    assert c.calls.count("bad") >= 3 and not c.overlap
    assert c.queue.failures("bad") == 0  # forgotten after the success


def _pod(name: str, *, node: str = "", phase: str = "Running", ready: str = "",
         restarts: int = 0, created: str = "2026-11-23T10:00:00Z") -> pod_pb2.Pod:
    conds = [{"type": "Ready", "status": "True", "lastTransitionTime": ready}] if ready else []
    return convert.from_dict({
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": phase, "conditions": conds,
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]}},
        pod_pb2.Pod)


def test_surplus_pods_deleted_least_valuable_first() -> None:
    pods = [
        _pod("ready-old", node="n", ready="2026-11-23T10:00:00Z"),
        _pod("ready-new", node="n", ready="2026-11-23T11:00:00Z"),
        _pod("unready", node="n"),
        _pod("pending", node="n", phase="Pending"),
        _pod("unscheduled", phase="Pending"),
        _pod("crashy", node="n", restarts=5),
    ]
    order = [p.metadata.name for p in sorted(pods, key=deletion_rank)]
    assert order[:3] == ["unscheduled", "pending", "crashy"]
    assert order[-2:] == ["ready-new", "ready-old"]


def test_available_needs_min_ready_seconds() -> None:
    p = _pod("p", node="n", ready="2026-11-23T10:00:00Z")
    t = 1795428000.0  # 2026-11-23T10:00:00Z
    assert available(p, 0, t)
    assert not available(p, 30, t + 10)
    assert available(p, 30, t + 31)
    assert not available(_pod("q", node="n"), 0, t)


def test_job_completed_indexes_format() -> None:
    from master.controllers.job import format_indexes

    assert format_indexes(set()) == ""
    assert format_indexes({0, 1, 2, 4}) == "0-2,4"
    assert format_indexes({3}) == "3"
    assert format_indexes({1, 2, 5, 6, 7, 9}) == "1-2,5-7,9"
