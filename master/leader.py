"""Leader election on a coordination.k8s.io Lease, as client-go's leaderelection.

    elector = LeaderElector(client, "kube-scheduler", identity="master-1:6443")
    await elector.run(lambda: scheduler.run())

Every candidate keeps trying to acquire the Lease (kube-system/<name>). The
holder renews it every `retry_period`; a candidate takes it over only once
it has watched the Lease record stay unchanged for `lease_duration` (time is
measured on the candidate's own clock from when it saw the record change,
so clocks of different machines never get compared). Every write is a
compare-and-swap on the Lease's resourceVersion, so two candidates can never
both win. A holder that cannot renew within `renew_deadline` stops leading
(its work is cancelled) before anyone else may take over; on shutdown it
releases the Lease so a successor starts at once.

Every acquisition is visible: an Event (reason LeaderElection, "<identity>
became leader") on the Lease, and a log line with this process's count of
leader transitions (`TRANSITIONS`, per lease name).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubelite.api import coordination_pb2
from kubelite.client import APIStatusError, AsyncClient
from master.apiserver.strategy import now_rfc3339
from master.events import EventRecorder

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"

# lease name -> how many times this process became its leader (the metric).
TRANSITIONS: dict[str, int] = {}


class LeaderElector:
    def __init__(self, client: AsyncClient, name: str, *, identity: str,
                 namespace: str = NAMESPACE, lease_duration: float = 15.0,
                 renew_deadline: float = 10.0, retry_period: float = 2.0) -> None:
        if not renew_deadline < lease_duration:
            raise ValueError("renew_deadline must be shorter than lease_duration")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.leading = asyncio.Event()
        self._observed: tuple[str, str, str] | None = None  # holder, renewTime, rv
        self._observed_at = 0.0
        self._lease: Any = None  # the Lease as last written by this candidate
        self._recorder = EventRecorder(client, name, host=identity)

    async def run(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Acquire, run `work` while leading, and start over when leadership is lost.

        Cancelling run() (shutdown) cancels the work and releases the lease.
        """
        while True:
            await self._acquire()
            self._became_leader()
            task = asyncio.create_task(work(), name=f"{self.name}-leader")
            try:
                ended = await self._renew_until_lost(task)
            except asyncio.CancelledError:
                await self._stop(task)
                await self._release()
                raise
            await self._stop(task)
            if ended:  # the work itself stopped (it failed): let another candidate try
                await self._release()
                await asyncio.sleep(self.retry_period)
            else:
                log.warning("%s: %s lost the lease", self.name, self.identity)

    def _became_leader(self) -> None:
        TRANSITIONS[self.name] = TRANSITIONS.get(self.name, 0) + 1
        log.info("%s: %s is now the leader (leader transitions in this process: %d)",
                 self.name, self.identity, TRANSITIONS[self.name])
        if self._lease is not None:
            self._recorder.event(self._lease, "Normal", "LeaderElection",
                                 f"{self.identity} became leader")

    async def _stop(self, task: asyncio.Task[Any]) -> None:
        self.leading.clear()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                self.leading.set()
                return
            await asyncio.sleep(self.retry_period)

    async def _renew_until_lost(self, task: asyncio.Task[Any]) -> bool:
        """Renew until the lease is lost (False) or the work ends (True)."""
        last_renew = time.monotonic()
        while True:
            done, _ = await asyncio.wait([task], timeout=self.retry_period)
            if done:
                exc = None if task.cancelled() else task.exception()
                log.error("%s: leader work ended: %r", self.name, exc)
                return True
            try:
                ok = await asyncio.wait_for(self._try_acquire_or_renew(),
                                            self.renew_deadline)
            except (TimeoutError, APIStatusError, OSError) as e:
                log.warning("%s: renewing failed: %s", self.name, e)
                ok = False
            if ok:
                last_renew = time.monotonic()
            elif time.monotonic() - last_renew >= self.renew_deadline:
                return False

    async def _try_acquire_or_renew(self) -> bool:
        now = now_rfc3339()
        try:
            lease = await self.client.get("leases", self.name, self.namespace)
        except APIStatusError as e:
            if not e.not_found:
                log.info("%s: reading the lease failed: %s", self.name, e.message)
                return False
            lease = self._new_lease(now)
            try:
                self._lease = await self.client.create(lease)
            except APIStatusError as e2:
                log.info("%s: creating the lease failed: %s", self.name, e2.message)
                return False
            return True
        spec = lease.spec
        holder = spec.holderIdentity if spec.HasField("holderIdentity") else ""
        record = (holder, spec.renewTime, lease.metadata.resourceVersion)
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = spec.leaseDurationSeconds if spec.HasField("leaseDurationSeconds") else 0
        expired = time.monotonic() - self._observed_at >= (duration or self.lease_duration)
        if holder and holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec.acquireTime = now
            spec.leaseTransitions = (spec.leaseTransitions if spec.HasField("leaseTransitions")
                                     else 0) + 1
        spec.holderIdentity = self.identity
        spec.leaseDurationSeconds = max(1, int(self.lease_duration))
        spec.renewTime = now
        try:
            updated = await self.client.update(lease)  # CAS on resourceVersion
        except APIStatusError as e:
            log.info("%s: updating the lease failed: %s", self.name, e.message)
            return False
        self._lease = updated
        self._observed = (self.identity, updated.spec.renewTime,
                          updated.metadata.resourceVersion)
        self._observed_at = time.monotonic()
        return True

    def _new_lease(self, now: str) -> Any:
        lease = coordination_pb2.Lease(apiVersion="coordination.k8s.io/v1", kind="Lease")
        lease.metadata.name, lease.metadata.namespace = self.name, self.namespace
        lease.spec.holderIdentity = self.identity
        lease.spec.leaseDurationSeconds = max(1, int(self.lease_duration))
        lease.spec.acquireTime = now
        lease.spec.renewTime = now
        lease.spec.leaseTransitions = 0
        return lease

    async def _release(self) -> None:
        """Give the lease up (holder cleared) so a successor need not wait it out."""
        try:
            lease = await self.client.get("leases", self.name, self.namespace)
            if lease.spec.holderIdentity != self.identity:
                return
            lease.spec.holderIdentity = ""
            lease.spec.leaseDurationSeconds = 1
            lease.spec.renewTime = now_rfc3339()
            await asyncio.wait_for(self.client.update(lease), 2.0)
            log.info("%s: %s released the lease", self.name, self.identity)
        except Exception as e:  # noqa: BLE001 - best effort on the way out
            log.info("%s: releasing the lease failed: %s", self.name, e)
