"""A work queue of keys for controllers, with client-go's guarantees.

- add(key): queue it; a key already waiting is not queued twice.
- get(): the next key; while a worker holds it, nobody else gets it. A key
  added meanwhile is queued again when the worker calls done(key).
- add_rate_limited(key): add after a per-key back-off that doubles on each
  failure (initial .. max); forget(key) resets it after a success.
- add_after(key, seconds): add later (a re-check at a known time, e.g. when
  a pod becomes available after minReadySeconds).
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self, *, initial_backoff: float = 0.05, max_backoff: float = 60.0) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # waiting in _queue, or to re-queue after done
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: str, seconds: float) -> None:
        if seconds <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        old = self._timers.get(key)
        when = loop.time() + seconds
        if old is not None and old.when() <= when:
            return  # an earlier wake-up is already due
        if old is not None:
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.max_backoff, self.initial_backoff * 2 ** n))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()
