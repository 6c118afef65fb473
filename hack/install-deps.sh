#!/usr/bin/env bash
# Install everything kubelite needs on a Debian 12 machine (run as root):
# system packages from apt, and the Python packages into the project venv.
# Safe to re-run: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(etcd-server docker.io docker-registry iptables iproute2 util-linux busybox-static conntrack ipvsadm make)

# ansible/ and the Vagrantfile: vagrant validate (tests/unit/test_vagrantfile.py),
# systemd containers for the roles (hack/build-systemd-image.sh).
APT_PKGS+=(vagrant vagrant-libvirt debootstrap)

missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's etcd-server package tries to start a daemon through systemd/init;
    # on machines without an init system that fails harmlessly, we start our own.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null || {
        echo "apt-get failed; retrying once after fixing half-configured packages" >&2
        dpkg --configure -a || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    }
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PY --version)"
    $PY -m venv .venv
fi
# Reinstall only when the dependency list changed since the last install.
stamp=.venv/.kubelite-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> pip install -e .[dev]"
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[dev]'
    echo "$want" > "$stamp"
fi
