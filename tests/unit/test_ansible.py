"""ansible/: ansible-lint's production profile, the playbooks' syntax check,
and the configuration the roles write, read back by kubelite's own parsers.

The last test runs the master and node roles' config tasks for real, on this
machine (connection local), into a temporary directory, against the
kubelite-master and kubelite-node installed here: the flags Ansible writes
are the flags the binaries accept, every node's token is in the master's
token file, and a second run changes nothing. What needs real hosts (the
packages, the services, nodes turning Ready) is `make vagrant-smoke`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubelite.client.config import load_config
from master.auth import load_tokens
from master.main import parse_args as master_args
from node.agent import parse_args as node_args
from tests.cluster import ROOT

ANSIBLE = ROOT / "ansible"
BIN = Path(sys.executable).parent


def _run(*cmd: str | Path, cwd: Path = ANSIBLE, **env: str) -> subprocess.CompletedProcess[str]:
    exe = BIN / str(cmd[0])
    assert exe.exists(), f"{exe} is missing: run hack/install-deps.sh (pyproject's dev extra)"
    full_env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
                "ANSIBLE_ROLES_PATH": str(ANSIBLE / "roles"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", **env}
    return subprocess.run([str(exe), *map(str, cmd[1:])], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)


def test_ansible_lint_production_profile() -> None:
    r = _run("ansible-lint", "--nocolor", "--profile", "production", "--offline")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Profile 'production' was required, and it passed" in out, out


@pytest.mark.parametrize("playbook", ["cluster.yml", "tests/smoke.yml"])
def test_playbook_syntax(playbook: str) -> None:
    r = _run("ansible-playbook", "-i", "inventory/sample/hosts.ini", "--syntax-check", playbook)
    assert r.returncode == 0, r.stdout + r.stderr


def test_inventory_groups_and_cluster_settings() -> None:
    r = _run("ansible-inventory", "-i", "inventory/sample/hosts.ini", "--list")
    assert r.returncode == 0, r.stderr
    inv = yaml.safe_load(r.stdout)
    for group in ("etcd", "masters", "nodes"):
        assert inv[group]["hosts"], group
    hostvars = inv["_meta"]["hostvars"]["node-1"]
    assert hostvars["kubelite_cluster_cidr"] == "10.244.0.0/16"
    assert hostvars["kubelite_service_cidr"] == "10.96.0.0/12"
    assert hostvars["kubelite_network_backend"] in ("vxlan", "host-gw")
    assert hostvars["kubelite_proxy_mode"] in ("iptables", "ipvs", "userspace")


PLAYBOOK = """
- name: Settings and addresses
  hosts: etcd:masters:nodes
  gather_facts: false
  roles:
    - role: kubelite
- name: Master configuration
  hosts: masters
  gather_facts: false
  roles:
    - role: kubelite
  tasks:
    - name: Master config tasks
      ansible.builtin.include_role:
        name: master
        tasks_from: config
    # No handlers: they would restart a systemd service.
    - name: Stop before the handlers
      ansible.builtin.meta: end_play
- name: Node configuration
  hosts: nodes
  gather_facts: false
  roles:
    - role: kubelite
  tasks:
    - name: Node config tasks
      ansible.builtin.include_role:
        name: node
        tasks_from: config
    - name: Stop before the handlers
      ansible.builtin.meta: end_play
"""

HOSTS = {"master-1": "10.0.0.1", "node-1": "10.0.0.11", "node-2": "10.0.0.12"}


def _env_args(path: Path, var: str) -> list[str]:
    """The value of VAR="..." split the way systemd splits an unbraced $VAR."""
    m = re.search(rf'^{var}="(.*)"$', path.read_text(), re.M)
    assert m, path.read_text()
    return m.group(1).split()


def _flag_names(defaults: Path, key: str) -> list[str]:
    return list(yaml.safe_load(defaults.read_text())[key])


def _warning(output: str, who: str) -> str:
    """The role's warning about flags the installed binary does not have."""
    return next((line for line in output.splitlines() if f"WARNING: {who} has no" in line), "")


def _known(parser_help: str) -> set[str]:
    return set(re.findall(r"--([a-z0-9][a-z0-9-]*)", parser_help))


def test_config_tasks_write_what_kubelite_reads(tmp_path: Path) -> None:
    lines = []
    for host, ip in HOSTS.items():
        lines.append(f"{host} ip={ip} kubelite_config_dir={tmp_path / host / 'etc'} "
                     f"kubelite_state_dir={tmp_path / host / 'state'}")
    # The roles ask {{ kubelite_venv }}/bin/kubelite-* --help which flags exist:
    # point them at this checkout's code, the code the asserts below parse with.
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    for script, module in (("kubelite-master", "master.main"), ("kubelite-node", "node.agent")):
        (venv_bin / script).write_text(
            f'#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -m {module} "$@"\n')
        (venv_bin / script).chmod(0o755)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[etcd]\n{0}\n[masters]\n{0}\n[nodes]\n{1}\n{2}\n[all:vars]\n"
        "ansible_connection=local\nansible_python_interpreter={3}\n"
        "kubelite_venv={4}\n".format(*lines, sys.executable, tmp_path / "venv"))
    for host in HOSTS:
        (tmp_path / host / "etc").mkdir(parents=True)
    playbook = tmp_path / "config.yml"
    playbook.write_text(PLAYBOOK)

    first = _run("ansible-playbook", "-i", inventory, playbook, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr

    # The master: flags, tokens, admin configs.
    etc = tmp_path / "master-1" / "etc"
    args = _env_args(etc / "master.env", "KUBELITE_MASTER_ARGS")
    parsed = master_args(args)
    assert parsed.etcd_servers == "http://10.0.0.1:2379"
    assert parsed.listen == "0.0.0.0:6443"
    assert parsed.token_file == str(etc / "tokens.csv")
    assert parsed.identity == "master-1"
    help_master = subprocess.run([sys.executable, "-m", "master.main", "--help"],
                                 capture_output=True, text=True, cwd=ROOT).stdout
    for flag in _flag_names(ANSIBLE / "roles/master/defaults/main.yml", "master_flags"):
        if flag in _known(help_master):
            assert f"--{flag}" in args, flag
        else:  # a flag of a feature still landing: left out, loudly
            assert f"--{flag}" not in args
            assert f"--{flag}" in _warning(first.stdout, "kubelite-master on master-1"), flag

    tokens = load_tokens(str(etc / "tokens.csv"))
    assert len(tokens) == 3 and all(len(t) == 40 for t in tokens)
    assert (etc / "tokens.csv").stat().st_mode & 0o777 == 0o600
    admin = load_config(str(etc / "admin.conf"))
    assert admin.servers == ["10.0.0.1:6443"] and admin.token in tokens
    controller = load_config(str(tmp_path / "credentials" / "kubelite.conf"))
    assert controller.token == admin.token and controller.servers == admin.servers

    # The nodes: each its own token, flags the agent parses.
    node_tokens = set()
    for host in ("node-1", "node-2"):
        etc = tmp_path / host / "etc"
        conf = load_config(str(etc / "node.conf"))
        assert conf.servers == ["10.0.0.1:6443"] and conf.token in tokens
        node_tokens.add(conf.token)
        args = _env_args(etc / "node.env", "KUBELITE_NODE_ARGS")
        parsed = node_args(args)
        assert parsed.node_name == host and parsed.node_ip == HOSTS[host]
        assert parsed.kubeconfig == str(etc / "node.conf")
        assert parsed.root_dir == str(tmp_path / host / "state" / "node")
        help_node = subprocess.run([sys.executable, "-m", "node.agent", "--help"],
                                   capture_output=True, text=True, cwd=ROOT).stdout
        for flag in _flag_names(ANSIBLE / "roles/node/defaults/main.yml", "node_flags"):
            value_given = flag not in ("node-labels", "register-with-taints")  # empty by default
            if flag in _known(help_node) and value_given:
                assert f"--{flag}" in args, flag
            elif value_given:
                assert f"--{flag}" not in args
                assert f"--{flag}" in _warning(first.stdout, f"kubelite-node on {host}"), flag
    assert len(node_tokens) == 2 and admin.token not in node_tokens

    # Idempotent: the tokens are kept, nothing is rewritten.
    second = _run("ansible-playbook", "-i", inventory, playbook, cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", second.stdout, re.M)
    assert recap and all(changed == "0" for _, changed in recap), second.stdout
    assert load_tokens(str(tmp_path / "master-1" / "etc" / "tokens.csv")) == tokens
