"""The Vagrantfile, through Vagrant itself (Debian's vagrant and
vagrant-libvirt, installed by hack/install-deps.sh): `vagrant validate` for
the providers' settings, `vagrant status` for the machines it defines (both
work without a hypervisor), and its refusals.

Booting the VMs is `make vagrant-smoke` (hack/vagrant-smoke.sh), not a unit test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.cluster import ROOT


Vagrant = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture()
def vagrant(tmp_path: Path) -> Vagrant:
    exe = shutil.which("vagrant")
    assert exe, "vagrant is not installed: run hack/install-deps.sh"
    # Vagrant's own state goes to tmp_path: nothing in the checkout or ~/.vagrant.d.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KUBELITE_", "VAGRANT_"))}
    base.update(VAGRANT_HOME=str(tmp_path / "home"), VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
                VAGRANT_CHECKPOINT_DISABLE="1", VAGRANT_NO_COLOR="1")

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], cwd=ROOT, env={**base, **env},
                              capture_output=True, text=True, timeout=120)

    return run


def _machines(status_output: str) -> list[str]:
    return [line.split()[0] for line in status_output.splitlines()
            if "not created" in line]


def test_defaults_validate_and_define_a_master_and_two_nodes(vagrant: Vagrant) -> None:
    r = vagrant("validate")
    assert r.returncode == 0, r.stdout + r.stderr
    r = vagrant("status", VAGRANT_DEFAULT_PROVIDER="libvirt")
    assert r.returncode == 0, r.stdout + r.stderr
    assert _machines(r.stdout) == ["master-1", "node-1", "node-2"]


def test_libvirt_settings_for_an_emulation_only_host(vagrant: Vagrant, tmp_path: Path) -> None:
    for name in ("vmlinuz", "initrd.img", "key"):
        (tmp_path / name).write_text("")
    env = dict(VAGRANT_DEFAULT_PROVIDER="libvirt", KUBELITE_BOX="kubelite/debian12",
               KUBELITE_NODES="3", KUBELITE_MEMORY="1024", KUBELITE_CPUS="1",
               KUBELITE_LIBVIRT_DRIVER="qemu", KUBELITE_LIBVIRT_CPU_MODE="custom",
               KUBELITE_LIBVIRT_CPU_MODEL="qemu64",
               KUBELITE_LIBVIRT_KERNEL=str(tmp_path / "vmlinuz"),
               KUBELITE_LIBVIRT_INITRD=str(tmp_path / "initrd.img"),
               KUBELITE_LIBVIRT_CMD_LINE="root=/dev/vda rw console=ttyS0",
               KUBELITE_SSH_KEY=str(tmp_path / "key"))
    r = vagrant("validate", **env)
    assert r.returncode == 0, r.stdout + r.stderr
    r = vagrant("status", **env)
    assert _machines(r.stdout) == ["master-1", "node-1", "node-2", "node-3"]
    # vagrant-libvirt itself rejects a driver it does not know: validate reaches it.
    r = vagrant("validate", **{**env, "KUBELITE_LIBVIRT_DRIVER": "xen"})
    assert r.returncode != 0 and "libvirt_driver must be one of kvm, qemu" in r.stderr


def test_config_file_then_environment(vagrant: Vagrant, tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text("nodes: 1\nbox: debian/bookworm64\nmemory: 1024\n")
    r = vagrant("status", VAGRANT_DEFAULT_PROVIDER="libvirt", KUBELITE_VAGRANT_CONFIG=str(config))
    assert _machines(r.stdout) == ["master-1", "node-1"], r.stdout + r.stderr
    r = vagrant("status", VAGRANT_DEFAULT_PROVIDER="libvirt", KUBELITE_VAGRANT_CONFIG=str(config),
                KUBELITE_NODES="2")
    assert _machines(r.stdout) == ["master-1", "node-1", "node-2"], r.stdout + r.stderr
    config.write_text("nodez: 1\n")
    r = vagrant("status", KUBELITE_VAGRANT_CONFIG=str(config))
    assert r.returncode != 0 and 'unknown setting "nodez"' in r.stderr


def test_refuses_an_unsupported_box(vagrant: Vagrant) -> None:
    r = vagrant("validate", KUBELITE_BOX="ubuntu/jammy64")
    assert r.returncode != 0
    assert 'box "ubuntu/jammy64" is not supported' in r.stderr
    assert "centos/7" in r.stderr and "kubelite/debian12" in r.stderr


def _a_subnet_in_use() -> tuple[str, str]:
    """A /24 holding one of this host's IPv4 addresses (loopback at worst)."""
    for _, addr in sorted((name, a.address) for name, addrs in psutil.net_if_addrs().items()
                          for a in addrs if a.family == socket.AF_INET):
        return addr.rsplit(".", 1)[0], addr
    raise AssertionError("no IPv4 address on this host")


def test_refuses_a_subnet_in_use(vagrant: Vagrant) -> None:
    subnet, addr = _a_subnet_in_use()
    r = vagrant("validate", KUBELITE_SUBNET=subnet)
    assert r.returncode != 0
    assert f"subnet {subnet}.0/24 is already in use on this host" in r.stderr
    assert addr in r.stderr


def test_refuses_bad_numbers_and_missing_files(vagrant: Vagrant) -> None:
    r = vagrant("validate", KUBELITE_NODES="two")
    assert r.returncode != 0 and 'nodes must be a whole number, not "two"' in r.stderr
    r = vagrant("validate", KUBELITE_LIBVIRT_KERNEL="/nonexistent/vmlinuz")
    assert r.returncode != 0 and "libvirt_kernel: /nonexistent/vmlinuz: no such file" in r.stderr
