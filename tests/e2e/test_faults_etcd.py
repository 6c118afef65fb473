"""Faults of etcd: members of a 3-member cluster stopped under load.

The master is given every member (--etcd-servers a,b,c) and uses one at a
time; when it goes away the next call reconnects to another member. With
one member down the clients see nothing beyond retries of UNAVAILABLE; a
member that comes back is used again when another one fails. With quorum
lost the API answers UNAVAILABLE with a message naming etcd, and once
quorum is back the work resumes; nothing acknowledged is ever lost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from kubelite.client import APIStatusError, Client
from tests.cluster import ROOT
from tests.etcd_cluster import EtcdCluster, run_etcd_cluster
from tests.faults import (Creators, RestartableMaster, check_acked, configmap,
                          etcd_member_in_use, report)
from tests.faults import masters_stopped  # noqa: F401 - autouse: no master left behind
from tests.node_agent import wait_for

def _in_use(m: RestartableMaster, etcd: EtcdCluster) -> int:
    assert m.proc is not None
    i = etcd_member_in_use(m.proc.pid, [x.client_port for x in etcd.members])
    assert i >= 0, "the master has no connection to any etcd member"
    return i


def _more(creators: Creators, n: int, what: str) -> None:
    start = creators.count()
    wait_for(lambda: creators.count() >= start + n, 30, what)


@contextmanager
def _under_load(etcd: EtcdCluster) -> Iterator[tuple[RestartableMaster, Creators]]:
    """A master on every member, 20 clients creating through it (100 done
    already); the clients stop on the way out (the master is left to
    masters_stopped)."""
    m = RestartableMaster(etcd.endpoints, "--no-scheduler", "--no-controllers")
    creators = Creators(m.address, "default", clients=20)
    try:
        m.start()
        creators.start()
        _more(creators, 100, "100 creates")
        yield m, creators
    finally:
        creators.stop()


def _lost_and_damaged(m: RestartableMaster, creators: Creators) -> tuple[int, int]:
    """After the load: no client saw an error, and what was acknowledged is there."""
    assert not creators.errors, creators.errors[:5]
    with Client(server=m.address, timeout=15) as c:
        return check_acked(c, "default", creators.acked)


def test_one_of_three_members_down_under_load() -> None:
    with run_etcd_cluster(3) as etcd:
        with _under_load(etcd) as (m, creators):
            # kill -9 the member the master is talking to, mid-flight.
            first = _in_use(m, etcd)
            stopped_at = time.monotonic()
            etcd.members[first].stop(kill=True)
            _more(creators, 150, "150 creates with one member killed")
            detect, recover = creators.figures(stopped_at)
            report("etcd-member-killed", detect=detect, recover=recover, lost=0,
                   retries=creators.retries, errors=len(creators.errors))
            # It comes back; then the one now in use stops: the master moves on again
            # (to the returned member or the third).
            etcd.members[first].start()
            time.sleep(2)  # the returned member catches up with the cluster
            second = _in_use(m, etcd)
            assert second != first
            before_retries = creators.retries
            stopped_at = time.monotonic()
            etcd.members[second].stop()
            _more(creators, 150, "150 creates with another member stopped")
            detect, recover = creators.figures(stopped_at)
            report("etcd-member-stopped", detect=detect, recover=recover, lost=0,
                   retries=creators.retries - before_retries, errors=len(creators.errors))
        lost, damaged = _lost_and_damaged(m, creators)
        report("etcd-members-down-total", detect=0, recover=0, lost=lost, damaged=damaged,
               acked=len(creators.acked), retries=creators.retries)
        assert (lost, damaged) == (0, 0)


def test_frozen_member_is_left_for_another() -> None:
    """The member in use stops answering but keeps its connections (SIGSTOP,
    like a hung host): the master's call times out and it reconnects starting
    from another member; the clients only retry."""
    with run_etcd_cluster(3) as etcd:
        with _under_load(etcd) as (m, creators):
            frozen = etcd.members[_in_use(m, etcd)]
            frozen_at = time.monotonic()
            frozen.freeze()
            _more(creators, 150, "150 creates with a member frozen")
            detect, recover = creators.figures(frozen_at)
            frozen.freeze(False)
        lost, damaged = _lost_and_damaged(m, creators)
        report("etcd-member-frozen", detect=detect, recover=recover, lost=lost,
               damaged=damaged, retries=creators.retries)
        assert (lost, damaged) == (0, 0)


def test_quorum_lost_answers_unavailable_and_resumes() -> None:
    with run_etcd_cluster(3) as etcd:
        m = RestartableMaster(etcd.endpoints, "--no-scheduler", "--no-controllers")
        try:
            m.start()
            with Client(server=m.address, timeout=20) as c:
                c.create(configmap("default", "before"))
                etcd.members[1].stop()
                etcd.members[2].stop()
                lost_at = time.monotonic()
                with pytest.raises(APIStatusError) as err:
                    c.create(configmap("default", "during"))
                detect = time.monotonic() - lost_at
                assert err.value.code == grpc.StatusCode.UNAVAILABLE
                assert "etcd is unavailable" in err.value.message
                etcd.members[1].start()
                back_at = time.monotonic()

                def create_after() -> bool:
                    try:
                        c.create(configmap("default", "after"))
                    except APIStatusError as e:
                        if not e.already_exists:
                            raise
                    return True

                wait_for(create_after, 40, "a create once quorum is back", interval=0.5)
                recover = time.monotonic() - back_at
                lost, damaged = check_acked(c, "default", ["before", "after"])
                report("etcd-quorum-lost", detect=detect, recover=recover, lost=lost,
                       damaged=damaged, message=repr(err.value.message[:80]))
                assert (lost, damaged) == (0, 0)
        finally:
            m.stop()


def test_etcd_away_for_a_while_controllers_resume() -> None:
    """The only etcd member is killed for longer than the leader's renew
    deadline: the API answers UNAVAILABLE, the master keeps running, and once
    etcd is back the controllers lead again (a scale-up is carried out)."""
    from tests.e2e.test_deployments import deployment

    with run_etcd_cluster(1) as etcd:
        member = etcd.members[0]
        m = RestartableMaster(etcd.endpoints, "--no-scheduler", "--identity", "m",
                              "--leader-elect-lease-duration", "3",
                              "--leader-elect-renew-deadline", "2",
                              "--leader-elect-retry-period", "0.5")
        try:
            m.start()
            with Client(server=m.address, timeout=10) as c:
                c.create(deployment("web", "default", 1))
                wait_for(lambda: len(c.list("pods", "default")[0]) == 1, 20, "the first pod")
                member.stop(kill=True)
                gone_at = time.monotonic()

                def refused() -> bool:
                    try:
                        c.get("deployments", "web", "default")
                    except APIStatusError as e:
                        return e.code == grpc.StatusCode.UNAVAILABLE
                    return False

                wait_for(refused, 20, "UNAVAILABLE while etcd is away", interval=0.1)
                detect = time.monotonic() - gone_at
                r = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "--server",
                                    m.address, "get", "configmaps"], cwd=ROOT, text=True,
                                   capture_output=True, timeout=60)
                assert r.returncode == 1
                assert r.stderr.startswith("Error from server (ServiceUnavailable): etcd is "
                                           "unavailable, retry later: "), r.stderr
                time.sleep(4)  # past the renew deadline: the leader steps down
                assert m.proc is not None and m.proc.poll() is None
                member.start()
                back_at = time.monotonic()

                def scaled() -> bool:
                    d = c.get("deployments", "web", "default")
                    if d.spec.replicas != 3:
                        d.spec.replicas = 3
                        c.update(d)
                    return len(c.list("pods", "default")[0]) == 3

                wait_for(scaled, 40, "the scale-up after etcd is back", interval=0.5)
                recover = time.monotonic() - back_at
                report("etcd-away-controllers-resume", detect=detect, recover=recover, lost=0)
                log = m.log.read_text()
                assert "kube-controller-manager: m lost the lease" in log
                assert "(leader transitions in this process: 2)" in log
        finally:
            m.stop()
