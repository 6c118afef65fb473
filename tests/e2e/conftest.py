"""What the CLI tests share: `kl`, the kubelite command pointed at the test master."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.cluster import ROOT, Master


class Kl:
    """Runs `kubelite` with the test master's address and a namespace."""

    def __init__(self, master: Master, namespace: str) -> None:
        self.master = master
        self.namespace = namespace

    def __call__(self, *args: str, input: str | None = None, ns: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "kubelite.cli.main", *args]
        if ns:
            cmd += ["-n", self.namespace]
        full_env = {**os.environ, "KUBELITE_SERVER": self.master.address,
                    "KUBELITE_CONFIG": "/nonexistent-kubelite-config", **(env or {})}
        return subprocess.run(cmd, input=input, capture_output=True, text=True, cwd=ROOT,
                              env=full_env, timeout=60)

    def ok(self, *args: str, **kw: Any) -> str:
        r = self(*args, **kw)
        assert r.returncode == 0, f"kubelite {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r.stdout


@pytest.fixture()
def kl(master: Master, namespace: str) -> Kl:
    return Kl(master, namespace)
