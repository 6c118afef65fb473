"""deploy/: the systemd units and the example files under /etc/kubelite.

No systemd here: the units are read as systemd would read them (ExecStart's
program, the EnvironmentFile's variable split on whitespace) and the flags
they end up passing go through the binaries' own argument parsers.
"""

from __future__ import annotations

import argparse
import configparser
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from kubelite.client.config import load_config
from master.auth import load_tokens
from master.main import parse_args as master_args
from node.agent import parse_args as node_args
from tests.cluster import ROOT

DEPLOY = ROOT / "deploy"


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / name)
    return unit


def _env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        m = re.match(r'^([A-Z_]+)="?(.*?)"?$', line)
        if m and not line.startswith("#"):
            env[m.group(1)] = m.group(2)
    return env


@pytest.mark.parametrize("unit_name, script, var, parse", [
    ("kubelite-master.service", "kubelite-master", "KUBELITE_MASTER_ARGS", master_args),
    ("kubelite-node.service", "kubelite-node", "KUBELITE_NODE_ARGS", node_args),
])
def test_unit_runs_the_console_script_with_its_env_file(
        unit_name: str, script: str, var: str,
        parse: Callable[[list[str]], argparse.Namespace]) -> None:
    unit = _unit(unit_name)
    service = unit["Service"]
    program, *args = service["ExecStart"].split()
    assert program == f"/opt/kubelite/venv/bin/{script}"
    assert args == [f"${var}"]  # unbraced: systemd splits it into words
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert script in scripts
    env_path = service["EnvironmentFile"]
    assert env_path.startswith("/etc/kubelite/")
    example = DEPLOY / "etc-kubelite" / Path(env_path).name
    parsed = parse(_env_file(example)[var].split())
    assert parsed is not None
    # SIGTERM is what `systemctl stop` sends; both programs exit 0 on it
    # (tests/e2e/test_shutdown.py), so a stop is clean, not a failure.
    assert service.get("KillSignal", "SIGTERM") == "SIGTERM"
    assert int(service["TimeoutStopSec"]) >= 10
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_node_unit_leaves_pod_containers_to_docker() -> None:
    service = _unit("kubelite-node.service")["Service"]
    assert service["KillMode"] == "process"
    assert "docker.service" in _unit("kubelite-node.service")["Unit"]["After"]


def test_example_files_are_what_kubelite_reads() -> None:
    etc = DEPLOY / "etc-kubelite"
    tokens = load_tokens(str(etc / "tokens.csv"))
    assert len(tokens) == 2
    conf = load_config(str(etc / "node.conf"))
    assert conf.token in tokens
    node = node_args(_env_file(etc / "node.env")["KUBELITE_NODE_ARGS"].split())
    assert node.kubeconfig == "/etc/kubelite/node.conf"
    master = master_args(_env_file(etc / "master.env")["KUBELITE_MASTER_ARGS"].split())
    assert master.token_file == "/etc/kubelite/tokens.csv"
    assert yaml.safe_load((etc / "node.conf").read_text())["servers"]


@pytest.mark.parametrize("role, unit", [("master", "kubelite-master.service"),
                                        ("node", "kubelite-node.service")])
def test_ansible_installs_these_units(role: str, unit: str) -> None:
    tasks = (ROOT / "ansible" / "roles" / role / "tasks" / "main.yml").read_text()
    assert f"/deploy/systemd/{unit}" in tasks
