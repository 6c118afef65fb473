"""Shared fixtures: one real etcd and one real master per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kubelite.client import APIStatusError, Client
from tests.cluster import Etcd, Master, run_etcd, run_master


@pytest.fixture(scope="session")
def etcd() -> Iterator[Etcd]:
    with run_etcd() as e:
        yield e


@pytest.fixture(scope="session")
def master(etcd: Etcd) -> Iterator[Master]:
    # No scheduler here: the API tests own their pods. tests/e2e/test_scheduler.py
    # runs masters with schedulers on an etcd of its own.
    with run_master(etcd.endpoint, "--bookmark-interval", "1", "--no-scheduler",
                    "--no-controllers") as m:
        yield m


@pytest.fixture()
def client(master: Master) -> Iterator[Client]:
    with Client(server=master.address, timeout=15) as c:
        yield c


@pytest.fixture()
def namespace(client: Client) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (with everything in it)."""
    from kubelite.objects import convert
    from kubelite.api import core_pb2

    name = "t-" + uuid.uuid4().hex[:8]
    client.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    try:
        client.delete("namespaces", name)
    except APIStatusError:
        pass
