"""etcd storage: versioned keys, compare-and-swap writes, watches.

Keys are `/registry/<resource>/<namespace>/<name>` (cluster-scoped kinds have
no namespace segment); values are serialized protobuf. An object's
resourceVersion is its key's mod_revision, and every write is one etcd
transaction guarded on that revision, so two writers holding the same
resourceVersion cannot both win.

We use aetcd for the connection and etcd's raw stubs for transactions and
watches, because we need the response header revision (the revision a list
was read at, and progress notifications that make bookmarks truthful).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import aetcd
import grpc
from aetcd import rpc


log = logging.getLogger(__name__)


class StorageError(Exception):
    pass


class KeyExists(StorageError):
    pass


class KeyNotFound(StorageError):
    pass


class Conflict(StorageError):
    """The key's mod_revision is not the one the writer expected."""


class ExtraConflict(StorageError):
    """A key of the write's Extra was not as expected (taken, or changed)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class Extra:
    """Keys written in the same transaction as an object, so both happen or neither.

    What the Service allocators use: a record per allocated IP or port is
    created (it must not exist yet) with the Service, and deleted (it must
    still be at the revision read) with it.
    """

    create: dict[str, bytes] = field(default_factory=dict)
    delete: dict[str, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.create or self.delete)


class Compacted(StorageError):
    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"too old resource version: {requested} ({compacted})")
        self.requested = requested
        self.compacted = compacted


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class WatchItem:
    """One change, or a progress mark (type "PROGRESS", key "") at `revision`."""

    type: str  # PUT, DELETE, PROGRESS
    key: str
    value: bytes  # the new value (PUT) or the last value before deletion (DELETE)
    revision: int
    created: bool = False  # PUT that created the key
    prev: bytes | None = None  # the value before a PUT that modified the key


def prefix_end(prefix: bytes) -> bytes:
    """The range end that covers every key starting with `prefix`."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


def parse_endpoints(servers: str) -> list[tuple[str, int]]:
    """`http://a:2379,http://b:2379` (scheme optional) -> [(address, port), ...]."""
    out = []
    for item in (s.strip() for s in servers.split(",")):
        if not item:
            continue
        u = urlparse(item if "://" in item else "http://" + item)
        if not u.hostname:
            raise ValueError(f"invalid URL {item!r}")
        out.append((u.hostname, u.port or 2379))
    if not out:
        raise ValueError("no etcd endpoint given")
    return out


def _channel_target(endpoints: list[tuple[str, int]]) -> tuple[str, int]:
    """aetcd's (host, port) such that its `f"{host}:{port}"` target names every member.

    Several members become gRPC's static address list
    (`ipv4:10.0.0.1:2379,10.0.0.2:2379`) under the default pick_first policy:
    the channel uses one member and, when that one goes away, the next call
    reconnects to the first of the others that answers. No watch or lease
    is tied to a member, so nothing else has to know. A static list wants
    addresses, so names are resolved once, here.
    """
    if len(endpoints) == 1:
        return endpoints[0]
    addrs = [(socket.gethostbyname(h), p) for h, p in endpoints]
    head = ",".join(f"{h}:{p}" for h, p in addrs[:-1])
    return f"ipv4:{head},{addrs[-1][0]}", addrs[-1][1]


class Storage:
    def __init__(self, host: str = "127.0.0.1", port: int = 2379, timeout: float = 10.0, *,
                 endpoints: list[tuple[str, int]] | None = None) -> None:
        """One etcd member (host, port), or every member of a cluster (`endpoints`)."""
        self.endpoints = endpoints or [(host, port)]
        target_host, target_port = _channel_target(self.endpoints)
        self.client = aetcd.Client(host=target_host, port=target_port)
        self.timeout = timeout
        self._first = 0  # index in endpoints the current channel's list starts at
        self._retiring: set[asyncio.Task[None]] = set()

    async def connect(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await self.client.close()

    async def _kv_call(self, method: str, request: Any) -> Any:
        client = self.client
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await getattr(client.kvstub, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    and loop.time() - started > 1.0:
                await self._next_member(client)
            raise

    async def _next_member(self, failed: aetcd.Client) -> None:
        """The member in use failed slowly: frozen, cut off from the others, or
        without quorum. The channel stays connected to it (it never went away),
        so start a new one whose address list begins at the next member; the old
        one is closed a little later, ending the watches still on it (they
        resume). With no quorum anywhere this only walks round the members.
        """
        if len(self.endpoints) < 2 or failed is not self.client:
            return
        self._first = (self._first + 1) % len(self.endpoints)
        order = self.endpoints[self._first:] + self.endpoints[:self._first]
        fresh = aetcd.Client(*_channel_target(order))
        await fresh.connect()
        self.client = fresh
        log.warning("etcd: no timely answer from the member in use; reconnecting, "
                    "%s:%d first", *order[0])

        async def retire() -> None:
            await asyncio.sleep(self.timeout)
            await failed.close()

        task = asyncio.get_running_loop().create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @property
    def _kv(self) -> rpc.KVStub:
        return self.client.kvstub

    async def _range(self, request: Any) -> Any:
        """A read, tried a second time when the member in use has just gone away
        (the channel reconnects to another member): reads are safe to repeat,
        writes are not (the first may have been applied). Only a quick failure
        is retried: a member without quorum answers UNAVAILABLE only after its
        request timeout (7 s), and asking again would double the wait."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await self._kv_call("Range", request)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or len(self.endpoints) < 2 or \
                    loop.time() - started > 1.0:
                raise
        return await self._kv_call("Range", request)

    async def get(self, key: str) -> KV | None:
        resp = await self._range(rpc.RangeRequest(key=key.encode()))
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return KV(key, kv.value, kv.mod_revision, kv.create_revision)

    async def list(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under prefix, and the revision the list was read at."""
        p = prefix.encode()
        resp = await self._range(rpc.RangeRequest(key=p, range_end=prefix_end(p)))
        items = [
            KV(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision) for kv in resp.kvs
        ]
        return items, resp.header.revision

    async def revision(self) -> int:
        resp = await self._range(rpc.RangeRequest(key=b"\0", limit=1, count_only=True))
        return int(resp.header.revision)

    async def keys(self, prefix: str) -> list[str]:
        """The keys under prefix (no values): what the allocators count as taken."""
        p = prefix.encode()
        resp = await self._range(rpc.RangeRequest(key=p, range_end=prefix_end(p), keys_only=True))
        return [kv.key.decode() for kv in resp.kvs]

    async def _txn(self, key: str, compare: Any, op: Any, extra: Extra | None) -> Any:
        """One transaction: `op` on key under `compare`, plus `extra`'s writes under theirs.

        On failure every key involved is read back so the caller learns which
        guard failed: the object's own (KeyExists/KeyNotFound/Conflict, left to
        the caller) or one of extra's (ExtraConflict, raised here).
        """
        k = key.encode()
        compares, ops = [compare], [op]
        reads = [rpc.RequestOp(request_range=rpc.RangeRequest(key=k))]
        extra = extra or Extra()
        for xk, value in extra.create.items():
            b = xk.encode()
            compares.append(rpc.Compare(key=b, target=rpc.Compare.CREATE,
                                        result=rpc.Compare.EQUAL, create_revision=0))
            ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=b, value=value)))
            reads.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=b)))
        for xk, rev in extra.delete.items():
            b = xk.encode()
            compares.append(rpc.Compare(key=b, target=rpc.Compare.MOD,
                                        result=rpc.Compare.EQUAL, mod_revision=rev))
            ops.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=b)))
            reads.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=b)))
        resp = await self._kv_call("Txn", rpc.TxnRequest(compare=compares, success=ops,
                                                         failure=reads))
        if resp.succeeded or not extra:
            return resp
        found = [r.response_range.kvs for r in resp.responses[1:]]
        for (xk, _), kvs in zip(extra.create.items(), found, strict=False):
            if kvs:
                raise ExtraConflict(xk)
        for (xk, rev), kvs in zip(extra.delete.items(), found[len(extra.create):],
                                  strict=False):
            if not kvs or kvs[0].mod_revision != rev:
                raise ExtraConflict(xk)
        return resp  # the object's own guard failed

    async def create(self, key: str, value: bytes, extra: Extra | None = None) -> int:
        """Write a new key; KeyExists if it is there. Returns the new revision."""
        k = key.encode()
        resp = await self._txn(
            key, rpc.Compare(key=k, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL,
                             create_revision=0),
            rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value)), extra)
        if not resp.succeeded:
            raise KeyExists(key)
        return int(resp.header.revision)

    async def update(self, key: str, value: bytes, expected: int,
                     extra: Extra | None = None) -> int:
        """Replace the value if the key's mod_revision is still `expected`."""
        k = key.encode()
        resp = await self._txn(
            key, rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                             mod_revision=expected),
            rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value)), extra)
        if not resp.succeeded:
            if not resp.responses[0].response_range.kvs:
                raise KeyNotFound(key)
            raise Conflict(key)
        return int(resp.header.revision)

    async def delete(self, key: str, expected: int, extra: Extra | None = None) -> int:
        k = key.encode()
        resp = await self._txn(
            key, rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                             mod_revision=expected),
            rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k)), extra)
        if not resp.succeeded:
            if not resp.responses[0].response_range.kvs:
                raise KeyNotFound(key)
            raise Conflict(key)
        return int(resp.header.revision)

    async def guarded(self, key: str, expected: int, extra: Extra) -> None:
        """Write only `extra`, provided key is still at mod_revision `expected`."""
        k = key.encode()
        resp = await self._txn(
            key, rpc.Compare(key=k, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL,
                             mod_revision=expected),
            rpc.RequestOp(request_range=rpc.RangeRequest(key=k)), extra)
        if not resp.succeeded:
            if not resp.responses[0].response_range.kvs:
                raise KeyNotFound(key)
            raise Conflict(key)

    # ---- keys that live as long as their writer (etcd leases) ------------------------

    async def grant_lease(self, ttl: int) -> int:
        resp = await self.client.leasestub.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl),
                                                      timeout=self.timeout)
        return int(resp.ID)

    async def refresh_lease(self, lease: int) -> bool:
        """Keep the lease alive one more TTL; False when it has already expired."""
        async def one() -> AsyncIterator[rpc.LeaseKeepAliveRequest]:
            yield rpc.LeaseKeepAliveRequest(ID=lease)

        async for resp in self.client.leasestub.LeaseKeepAlive(one(), timeout=self.timeout):
            return int(resp.TTL) > 0
        return False

    async def revoke_lease(self, lease: int) -> None:
        await self.client.leasestub.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease),
                                                timeout=self.timeout)

    async def put_leased(self, key: str, value: bytes, lease: int) -> None:
        await self._kv.Put(rpc.PutRequest(key=key.encode(), value=value, lease=lease),
                           timeout=self.timeout)

    async def compact(self, revision: int) -> None:
        await self._kv.Compact(rpc.CompactionRequest(revision=revision, physical=True),
                               timeout=self.timeout)

    async def watch(
        self, prefix: str, after: int, *, progress_every: float = 0.0
    ) -> AsyncIterator[WatchItem]:
        """Changes under prefix with revision > after, in order.

        With progress_every > 0, ask etcd for a progress notification after
        that many idle seconds and yield it as a PROGRESS item: etcd promises
        every change up to its revision has been delivered, so it is a safe
        bookmark. Raises Compacted when `after` is older than the compaction.
        """
        p = prefix.encode()
        requests: asyncio.Queue[rpc.WatchRequest | None] = asyncio.Queue()
        await requests.put(rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=p, range_end=prefix_end(p), start_revision=after + 1, prev_kv=True,
        )))

        async def request_iter() -> AsyncIterator[rpc.WatchRequest]:
            while True:
                r = await requests.get()
                if r is None:
                    return
                yield r

        stub = rpc.WatchStub(self.client.channel)
        call = stub.Watch(request_iter())
        # Read in a task: cancelling a pending read would cancel the whole call,
        # so the idle timeout waits on this queue instead.
        responses: asyncio.Queue[Any] = asyncio.Queue()

        async def reader() -> None:
            try:
                async for r in call:
                    await responses.put(r)
                await responses.put(StorageError("etcd closed the watch stream"))
            except Exception as e:  # noqa: BLE001 - handed to the consumer
                await responses.put(e)

        read_task = asyncio.create_task(reader())
        try:
            while True:
                try:
                    timeout = progress_every if progress_every > 0 else None
                    resp = await asyncio.wait_for(responses.get(), timeout)
                except TimeoutError:
                    await requests.put(
                        rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))
                    continue
                if isinstance(resp, Exception):
                    raise resp
                if resp.compact_revision:
                    raise Compacted(after, int(resp.compact_revision))
                if resp.canceled:
                    raise StorageError(f"etcd canceled the watch: {resp.cancel_reason}")
                if resp.created:
                    continue
                if not resp.events:
                    yield WatchItem("PROGRESS", "", b"", int(resp.header.revision))
                    continue
                for ev in resp.events:
                    if ev.type == 0:  # PUT
                        yield WatchItem("PUT", ev.kv.key.decode(), ev.kv.value,
                                        int(ev.kv.mod_revision),
                                        created=ev.kv.create_revision == ev.kv.mod_revision,
                                        prev=ev.prev_kv.value if ev.HasField("prev_kv") else None)
                    else:
                        yield WatchItem("DELETE", ev.kv.key.decode(), ev.prev_kv.value,
                                        int(ev.kv.mod_revision))
        finally:
            await requests.put(None)
            call.cancel()
            read_task.cancel()
            with contextlib.suppress(Exception):
                await call
