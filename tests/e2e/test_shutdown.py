"""`systemctl stop` sends SIGTERM: the master and the node agent must stop
cleanly on it (exit 0, promptly, no traceback), or systemd records a failed
unit and restarts it.

Each test runs its own processes against the session's etcd and stops them
itself; a node agent's pods stay running for the next agent to adopt.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from kubelite.client import Client
from tests.cluster import Etcd, Master, run_master
from tests.node_agent import ensure_docker, run_node, wait_for


def _sigterm(proc: subprocess.Popen[bytes], log: Path, what: str) -> float:
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} still running 20 s after SIGTERM:\n"
                             f"{log.read_text()[-3000:]}") from None
    elapsed = time.monotonic() - t
    text = log.read_text(errors="replace")
    assert code == 0, f"{what} exited {code} on SIGTERM:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    return elapsed


def test_master_with_scheduler_and_controllers_stops_on_sigterm(etcd: Etcd,
                                                                tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text("shutdown-test-token,admin,admin\n")
    with run_master(etcd.endpoint, "--token-file", str(tokens), "--identity", "shutdown-test",
                    "--leader-elect-lease-duration", "4", "--leader-elect-renew-deadline", "3",
                    "--leader-elect-retry-period", "0.5") as m:
        time.sleep(2)  # the leader loops and the controllers are running
        elapsed = _sigterm(m.proc, m.log, "kubelite-master")
        assert "shutting down" in m.log.read_text()
    assert elapsed < 10, f"kubelite-master took {elapsed:.1f}s to stop"


def test_node_agent_stops_on_sigterm(master: Master) -> None:
    ensure_docker()
    with run_node(master.address, "--metrics-interval", "1") as agent, \
            Client(server=master.address) as c:
        try:
            wait_for(lambda: c.get("nodes", agent.name), 30, "node registration")
        except AssertionError:
            raise AssertionError(agent.logs()) from None
        time.sleep(1)  # heartbeat, pod watch and metrics loops are running
        elapsed = _sigterm(agent.proc, agent.log, "kubelite-node")
    assert elapsed < 10, f"kubelite-node took {elapsed:.1f}s to stop"
