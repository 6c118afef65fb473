#!/usr/bin/env bash
# A Debian 12 image whose PID 1 is systemd, for running the Ansible roles
# against containers (tests/e2e/test_ansible_containers.py): debootstrap
# minbase + systemd, python3 and sudo, then `docker import`. About a minute;
# needs Debian's mirror. Skips the build when the image exists.
#
# It runs unprivileged: docker run --tmpfs /run --tmpfs /run/lock
#   -v /sys/fs/cgroup:/sys/fs/cgroup:ro --stop-signal SIGRTMIN+3 IMAGE
#
#   hack/build-systemd-image.sh [IMAGE]   (default kubelite-test/debian12-systemd:1)
set -euo pipefail
IMAGE=${1:-kubelite-test/debian12-systemd:1}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is not installed: run hack/install-deps.sh" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "==> building $IMAGE (debootstrap bookworm)"
debootstrap --variant=minbase \
    --include=systemd-sysv,dbus,python3,sudo,iproute2,ca-certificates,procps \
    bookworm "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 ||
    { tail -30 "$tmp/debootstrap.log" >&2; exit 1; }
: >"$tmp/rootfs/etc/machine-id"
cat >"$tmp/rootfs/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
SOURCES
rm -rf "$tmp"/rootfs/var/lib/apt/lists/* "$tmp"/rootfs/var/cache/apt/*.bin
tar -C "$tmp/rootfs" -c . | docker import -c 'CMD ["/lib/systemd/systemd"]' - "$IMAGE" >/dev/null
