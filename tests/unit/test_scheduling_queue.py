"""The scheduling queue: dedup, backoff, and retry on cluster events only."""

from __future__ import annotations

import asyncio
import time

from master.scheduler.queue import SchedulingQueue


async def pop_within(q: SchedulingQueue, seconds: float) -> str | None:
    try:
        return await asyncio.wait_for(q.pop(), seconds)
    except TimeoutError:
        return None


async def test_push_dedups_and_keeps_order() -> None:
    q = SchedulingQueue()
    for k in ("a", "b", "a", "c"):
        q.push(k)
    assert [await q.pop() for _ in range(3)] == ["a", "b", "c"]
    assert await pop_within(q, 0.05) is None


async def test_unschedulable_waits_for_a_cluster_event() -> None:
    q = SchedulingQueue(initial_backoff=0.05, max_unschedulable=60)
    q.push("p")
    assert await q.pop() == "p"
    q.failed("p")
    assert await pop_within(q, 0.2) is None  # no hot loop: nothing changed
    q.move_all()
    assert await pop_within(q, 0.5) == "p"


async def test_backoff_doubles_and_is_capped() -> None:
    q = SchedulingQueue(initial_backoff=0.1, max_backoff=0.2)
    q.push("p")
    await q.pop()
    waits = []
    for _ in range(3):
        q.failed("p")
        q.move_all()
        t = time.monotonic()
        assert await pop_within(q, 2) == "p"
        waits.append(time.monotonic() - t)
    assert 0.08 <= waits[0] < 0.19
    assert 0.18 <= waits[1] < 0.35
    assert 0.18 <= waits[2] < 0.35  # capped
    q.done("p")
    q.push("p")
    assert await pop_within(q, 0.05) == "p"  # success forgets the backoff


async def test_parked_pods_are_retried_eventually_and_delete_forgets() -> None:
    q = SchedulingQueue(initial_backoff=0.01, max_unschedulable=0.2)
    q.push("p")
    q.push("gone")
    await q.pop()
    await q.pop()
    q.failed("p")
    q.failed("gone")
    q.delete("gone")
    assert await pop_within(q, 1.0) == "p"
    assert await pop_within(q, 0.3) is None
    assert q.pending() == {"active": 0, "backoff": 0, "unschedulable": 0}


async def test_requeue_after_error_needs_no_event() -> None:
    q = SchedulingQueue(initial_backoff=0.05)
    q.push("p")
    await q.pop()
    q.requeue("p")
    assert await pop_within(q, 0.5) == "p"
