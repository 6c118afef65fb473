"""Fault: kill -9 of the master while 20 clients create objects.

Every create that returned success must be there after the master is
restarted, whole (its content is checked), and the clients see nothing but
UNAVAILABLE while it is down (which they retry). An acknowledged write is
one etcd committed before the answer was sent, so this is really a check
that nothing is acknowledged early (no write-behind cache, no batching).
"""

from __future__ import annotations

import time

from kubelite.client import Client
from tests.cluster import run_etcd
from tests.faults import Creators, RestartableMaster, check_acked, report
from tests.faults import masters_stopped  # noqa: F401 - autouse: no master left behind
from tests.node_agent import wait_for

def test_kill9_master_while_20_clients_create() -> None:
    with run_etcd() as etcd:
        m = RestartableMaster(etcd.endpoint, "--no-scheduler", "--no-controllers")
        creators = Creators(m.address, "default", clients=20)
        try:
            m.start()
            creators.start()
            wait_for(lambda: creators.count() >= 150, 30, "150 acknowledged creates")
            killed_at = time.monotonic()
            m.kill9()
            acked_before_restart = creators.count()
            m.start()
            wait_for(lambda: creators.count() >= acked_before_restart + 150, 30,
                     "150 more creates after the restart")
        finally:
            creators.stop()
        try:
            detect, recover = creators.figures(killed_at)
            assert not creators.errors, creators.errors[:5]
            with Client(server=m.address, timeout=15) as c:
                lost, damaged = check_acked(c, "default", creators.acked)
            report("master-kill9-under-create", detect=detect, recover=recover, lost=lost,
                   damaged=damaged, acked=len(creators.acked), retries=creators.retries)
            assert (lost, damaged) == (0, 0)
            assert creators.first_error_at, "no client noticed the master going away"
        finally:
            m.stop()
