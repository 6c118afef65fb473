#!/usr/bin/env bash
# The real-VM run of the Vagrantfile and ansible/ (issue #11), as root on a
# Debian 12 host: builds the Debian 12 box (hack/build-vagrant-box.sh), boots
# a master and N nodes with libvirt, provisions them with ansible/cluster.yml,
# provisions again (which must change nothing), runs ansible/tests/smoke.yml,
# prints the wall times, then destroys the VMs.
#
# Settings (environment): KUBELITE_NODES (default 2), KUBELITE_MEMORY (MiB,
# default 1024), KUBELITE_CPUS (default 1), and any other KUBELITE_* setting of
# the Vagrantfile. The box boots under emulation (libvirt driver qemu, CPU
# qemu64); set KUBELITE_LIBVIRT_DRIVER=kvm KUBELITE_LIBVIRT_CPU_MODE=host-passthrough
# on a host whose KVM works. KEEP=1 leaves the VMs running.
# Measured on a 2-core host under emulation: 36 minutes in all (boot 2 min,
# provisioning 18 min, the second provisioning 12 min, smoke check 2 min),
# plus about 3 minutes to build the box the first time; about 2.3 GB of host
# memory per VM.
#
# Made for hosts without systemd too: virtlogd and libvirtd are started here
# when not running (and stopped at the end if this script started them), and
# forwarding between the VMs is allowed past Docker's FORWARD DROP policy
# (rules tagged kubelite-vagrant-smoke, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[ "$(id -u)" = 0 ] || { echo "vagrant-smoke: run as root" >&2; exit 1; }
logs=$ROOT/.vagrant-box/smoke-$(date +%Y%m%d-%H%M%S)
mkdir -p "$logs"
TAG=kubelite-vagrant-smoke

# 1. Packages: libvirt with QEMU, Vagrant with its libvirt plugin, debootstrap.
pkgs=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base
      vagrant vagrant-libvirt debootstrap e2fsprogs iptables)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Without systemd the packages' postinst cannot start their daemons: we do.
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null ||
        { dpkg --configure -a || true; apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null; }
fi
bash hack/install-deps.sh   # the project's venv: ansible, ansible-lint

# 2. libvirt's daemons.
started=() kvm_was=
restore_kvm() {
    [ -n "$kvm_was" ] || return 0
    chgrp "${kvm_was% *}" /dev/kvm
    chmod "${kvm_was#* }" /dev/kvm
    kvm_was=
}
for daemon in virtlogd libvirtd; do
    if ! pgrep -x "$daemon" >/dev/null; then
        echo "==> starting $daemon"
        "$daemon" -d
        started+=("$daemon")
    fi
done
for _ in $(seq 1 30); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 1; done
# libvirtd probes each QEMU binary (QMP) and caches what it found under
# /var/cache/libvirt/qemu, but throws the cache away whenever KVM looks
# different to the user QEMU runs as (libvirt-qemu) than it did to the probe
# (root). Without udev, /dev/kvm stays root:root 0600: every domain definition
# then re-probes once per device, and vagrant-libvirt crawls for many minutes
# at "Updating domain definition". Give /dev/kvm udev's default ownership
# (group kvm, 0660, as Debian's 50-udev-default.rules does). The VMs still run
# under emulation (libvirt driver qemu).
if [ -c /dev/kvm ] && getent group kvm >/dev/null &&
        [ "$(stat -c %G:%a /dev/kvm)" != kvm:660 ]; then
    kvm_was=$(stat -c '%g %a' /dev/kvm)   # put back at the end
    echo "==> /dev/kvm: group kvm, mode 0660 (udev's default; was $(stat -c %G:%a /dev/kvm))"
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
    trap restore_kvm EXIT   # until cleanup() below takes over
fi
if ! timeout 120 virsh -c qemu:///system domcapabilities --virttype qemu \
        --emulatorbin /usr/bin/qemu-system-x86_64 --arch x86_64 >/dev/null; then
    echo "vagrant-smoke: libvirtd cannot probe qemu-system-x86_64 (see /var/log/libvirt/libvirtd.log)" >&2
    exit 1
fi
if ! virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
    echo "==> libvirt storage pool 'default' in /var/lib/libvirt/images"
    virsh -c qemu:///system pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    virsh -c qemu:///system pool-build default >/dev/null
    virsh -c qemu:///system pool-start default >/dev/null
fi

# 3. The box, the dist/ the playbook copies, the settings that boot the box.
bash hack/build-vagrant-box.sh
bash hack/build-dist.sh
# shellcheck disable=SC1091
source .vagrant-box/env
export VAGRANT_DEFAULT_PROVIDER=libvirt
export KUBELITE_MEMORY=${KUBELITE_MEMORY:-1024} KUBELITE_CPUS=${KUBELITE_CPUS:-1}
export KUBELITE_NODES=${KUBELITE_NODES:-2}
export PATH=$ROOT/.venv/bin:$PATH ANSIBLE_CONFIG=$ROOT/ansible/ansible.cfg

# 4. Docker's FORWARD policy is DROP and bridge traffic goes through it
#    (br_netfilter): let the VMs' bridges forward.
chain=FORWARD
iptables -n -L DOCKER-USER >/dev/null 2>&1 && chain=DOCKER-USER
fw() { iptables "$1" "$chain" "$2" virbr+ -m comment --comment "$TAG" -j ACCEPT; }
fw -I -i
fw -I -o

cleanup() {
    local rc=$?
    if [ "${KEEP:-0}" != 1 ]; then
        echo "==> vagrant destroy"
        vagrant destroy -f >>"$logs/destroy.log" 2>&1 || echo "vagrant destroy failed: $logs/destroy.log" >&2
        while fw -D -i 2>/dev/null; do :; done
        while fw -D -o 2>/dev/null; do :; done
        restore_kvm
        for daemon in "${started[@]}"; do
            pid=$(pgrep -x "$daemon" || true)
            [ -n "$pid" ] && kill "$pid"
        done
    else
        echo "==> KEEP=1: VMs left running (vagrant destroy -f to remove them)"
    fi
    exit "$rc"
}
trap cleanup EXIT

# 5. Boot (in parallel), provision, provision again, smoke check.
recap_changes() {  # sum of changed= in a PLAY RECAP
    sed -n 's/.* changed=\([0-9]*\) .*/\1/p' "$1" | awk '{s += $1} END {print s + 0}'
}
t0=$(date +%s)
echo "==> vagrant up (master + $KUBELITE_NODES nodes; log $logs/up.log)"
vagrant up --provider=libvirt --no-provision >"$logs/up.log" 2>&1 ||
    { tail -30 "$logs/up.log" >&2; exit 1; }
t_boot=$(($(date +%s) - t0))
echo "==> provisioning (log $logs/provision-1.log)"
vagrant provision >"$logs/provision-1.log" 2>&1 || { tail -40 "$logs/provision-1.log" >&2; exit 1; }
t_up=$(($(date +%s) - t0))
t1=$(date +%s)
echo "==> provisioning again (log $logs/provision-2.log)"
vagrant provision >"$logs/provision-2.log" 2>&1 || { tail -40 "$logs/provision-2.log" >&2; exit 1; }
t_again=$(($(date +%s) - t1))
changed=$(recap_changes "$logs/provision-2.log")
echo "==> smoke check (log $logs/smoke.log)"
smoke=passed
# SMOKE_ARGS: extra ansible-playbook arguments, e.g. "--skip-tags services"
# while Services (issue #7) have not landed; the summary repeats them.
# shellcheck disable=SC2086
ansible-playbook -i .vagrant/provisioners/ansible/inventory/vagrant_ansible_inventory \
    ansible/tests/smoke.yml ${SMOKE_ARGS:-} >"$logs/smoke.log" 2>&1 || smoke=FAILED

cat <<EOF | tee "$logs/summary.txt"
vagrant up + provisioning, master + $KUBELITE_NODES nodes: ${t_up}s (boot ${t_boot}s)
second provisioning: ${t_again}s, tasks changed: $changed
smoke check: $smoke${SMOKE_ARGS:+ (with $SMOKE_ARGS)}
logs: $logs
EOF
[ "$smoke" = passed ] && [ "$changed" = 0 ]
