"""The scheduling queue: active, backing off, and unschedulable pods.

- push(key): a new or changed pod; goes to the active queue, unless it is
  still backing off from a failed attempt (then it waits its turn).
- pop(): the next key to schedule (waits; never hands out a key twice).
- failed(key): the attempt found no node; the pod parks as unschedulable
  with an exponential backoff (initial 1 s, doubling, capped at 10 s).
- move_all(): the cluster changed (a node appeared or changed, a pod went
  away); every parked pod becomes eligible again, each after its backoff.
  Parked pods nothing wakes are retried after `max_unschedulable` anyway.
- done(key) / delete(key): forget the pod's attempts / the pod.

So a pod that fits nowhere costs one attempt per cluster change at most,
never a hot loop.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable: float = 60.0) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self._active: deque[str] = deque()
        self._in_active: set[str] = set()
        self._backoff: dict[str, float] = {}  # key -> monotonic time it may run again
        self._unschedulable: dict[str, float] = {}  # key -> when it was parked
        self._attempts: dict[str, int] = {}
        self._last_failure: dict[str, float] = {}
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._in_active) + len(self._backoff) + len(self._unschedulable)

    def pending(self) -> dict[str, int]:
        return {"active": len(self._in_active), "backoff": len(self._backoff),
                "unschedulable": len(self._unschedulable)}

    def _ready_at(self, key: str) -> float:
        n = self._attempts.get(key, 0)
        if n == 0:
            return 0.0
        delay = min(self.max_backoff, self.initial_backoff * 2 ** (n - 1))
        return self._last_failure.get(key, 0.0) + delay

    def _activate(self, key: str) -> None:
        self._unschedulable.pop(key, None)
        ready = self._ready_at(key)
        if ready > time.monotonic():
            self._backoff[key] = ready
        elif key not in self._in_active:
            self._backoff.pop(key, None)
            self._active.append(key)
            self._in_active.add(key)
        self._wake.set()

    def push(self, key: str) -> None:
        self._activate(key)

    def failed(self, key: str) -> None:
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._last_failure[key] = time.monotonic()
        self._unschedulable[key] = time.monotonic()

    def requeue(self, key: str) -> None:
        """An error (not a verdict): retry after the backoff without waiting for an event."""
        self._attempts[key] = self._attempts.get(key, 0) + 1
        self._last_failure[key] = time.monotonic()
        self._activate(key)

    def move_all(self) -> None:
        for key in list(self._unschedulable):
            self._activate(key)

    def done(self, key: str) -> None:
        self._attempts.pop(key, None)
        self._last_failure.pop(key, None)

    def delete(self, key: str) -> None:
        self.done(key)
        self._unschedulable.pop(key, None)
        self._backoff.pop(key, None)
        if key in self._in_active:
            self._in_active.discard(key)
            self._active.remove(key)

    def _flush(self) -> float | None:
        """Move due backoffs and stale unschedulables; seconds until the next one is due."""
        now = time.monotonic()
        for key, at in list(self._unschedulable.items()):
            if now - at >= self.max_unschedulable:
                self._activate(key)
        nxt: float | None = None
        for key, ready in list(self._backoff.items()):
            if ready <= now:
                del self._backoff[key]
                if key not in self._in_active:
                    self._active.append(key)
                    self._in_active.add(key)
            else:
                nxt = ready - now if nxt is None else min(nxt, ready - now)
        if self._unschedulable:
            oldest = min(self._unschedulable.values())
            until = max(0.0, oldest + self.max_unschedulable - now)
            nxt = until if nxt is None else min(nxt, until)
        return nxt

    async def pop(self) -> str:
        while True:
            wait = self._flush()
            if self._active:
                key = self._active.popleft()
                self._in_active.discard(key)
                return key
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
