"""The pieces of several masters / several etcd members that need no cluster:
endpoint parsing, the gRPC address list, local etcd member names, and the
async client moving to the next server once per failed channel."""

from __future__ import annotations

import asyncio

import pytest

from kubelite import up
from kubelite.client import AsyncClient, ClientConfig
from master.apiserver.storage import _channel_target, parse_endpoints


def test_parse_endpoints() -> None:
    assert parse_endpoints("http://10.0.0.1:2379, 10.0.0.2:2380,http://10.0.0.3") == [
        ("10.0.0.1", 2379), ("10.0.0.2", 2380), ("10.0.0.3", 2379)]
    with pytest.raises(ValueError, match="no etcd endpoint"):
        parse_endpoints(" , ")
    with pytest.raises(ValueError, match="invalid URL"):
        parse_endpoints("http://:2379")


def test_channel_target_lists_every_member() -> None:
    assert _channel_target([("localhost", 2379)]) == ("localhost", 2379)
    host, port = _channel_target([("10.0.0.1", 1), ("localhost", 2), ("10.0.0.3", 3)])
    assert f"{host}:{port}" == "ipv4:10.0.0.1:1,127.0.0.1:2,10.0.0.3:3"


def test_local_etcd_member_names() -> None:
    assert up._etcd_names(1) == ["etcd"]
    assert up._etcd_names(3) == ["etcd", "etcd-2", "etcd-3"]
    args = up._parser("kubelite-up").parse_args(["--etcd-members", "3"])
    assert args.etcd_members == 3


def test_async_client_fails_over_once_per_channel() -> None:
    async def run() -> None:
        c = AsyncClient(ClientConfig(servers=["127.0.0.1:1", "127.0.0.1:2"]))
        first = c._get_stub()
        c._failover(first)
        assert c._index == 1
        c._failover(first)  # a second call that failed on the old channel: no skip
        assert c._index == 1
        second = c._get_stub()
        assert second is not first
        c._failover(second)
        assert c._index == 0
        await c.close()
        assert not c._retired

    asyncio.run(run())
