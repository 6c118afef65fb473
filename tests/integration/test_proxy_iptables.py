"""The iptables proxy against the real iptables (nf_tables backend), inside a
network namespace this test creates and removes: the payload applies, the
jumps go in once, stale chains go in the same payload, everything can be
removed again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster import ROOT


@pytest.fixture()
def netns() -> Iterator[str]:
    name = f"klpx-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_in(ns: str, code: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", textwrap.dedent(code)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_apply_resync_stale_chains_and_removal(netns: str) -> None:
    out = run_in(netns, """
        import subprocess
        from node.proxy import iptables
        from node.proxy.model import Endpoint, ServicePortInfo
        from node.proxy.proxier import IptablesMode

        def sp(name, n, **kw):
            return ServicePortInfo("default", name, "", "tcp", f"10.96.0.{n}", 80,
                                   endpoints=tuple(Endpoint(f"10.244.1.{i}", 8080)
                                                   for i in range(2, 2 + n)), **kw)

        def save():
            return subprocess.run(["iptables-save"], capture_output=True, text=True).stdout

        mode = IptablesMode()
        ports = [sp("a", 3, affinity_timeout=100), sp("b", 1, node_port=30080)]
        assert mode.sync(ports, "10.244.0.0/16", full=False)
        assert not mode.sync(ports, "10.244.0.0/16", full=False)  # unchanged: nothing written
        assert mode.sync(ports, "10.244.0.0/16", full=True)       # periodic: rewritten
        mode.sync(ports, "10.244.0.0/16", full=True)
        text = save()
        print("svc", sum(l.startswith(":KUBE-SVC-") for l in text.splitlines()))
        print("sep", sum(l.startswith(":KUBE-SEP-") for l in text.splitlines()))
        print("jumps", text.count("-j KUBE-SERVICES"), text.count("-j KUBE-POSTROUTING"))
        print("statistic", "--mode random --probability 0.33333333" in text)
        print("recent", "--rcheck --seconds 100 --reap" in text)
        # a rule deleted by hand: the next full resync puts it back
        subprocess.run(["iptables", "-t", "nat", "-F", "KUBE-SERVICES"], check=True)
        mode.sync(ports, "10.244.0.0/16", full=True)
        print("repaired", "-A KUBE-SERVICES -d 10.96.0.3/32" in save())
        # service a leaves: its chains go in the same payload
        mode.sync([sp("b", 1, node_port=30080)], "10.244.0.0/16", full=False)
        text = save()
        print("after", sum(l.startswith(":KUBE-SVC-") for l in text.splitlines()),
              sum(l.startswith(":KUBE-SEP-") for l in text.splitlines()))
        mode.cleanup()
        print("left", "KUBE-" in save())
    """)
    assert "svc 2" in out and "sep 4" in out
    assert "jumps 5 1" in out  # nat PREROUTING+OUTPUT, filter INPUT/FORWARD/OUTPUT (new)
    assert "statistic True" in out and "recent True" in out
    assert "repaired True" in out
    assert "after 1 1" in out
    assert "left False" in out
