#!/usr/bin/env bash
# Build the images kubelite's tests and examples use, from Debian's
# busybox-static, with `docker import` (no registry needed):
#   kubelite/busybox:latest  busybox with every applet linked (sh, httpd, nc, wget, ...),
#                            also tagged with busybox's version (kubelite/busybox:1.35)
#   kubelite/pause:latest    the pod sandbox: sleeps until SIGTERM/SIGINT, then exits 0
# Skips an image that already exists unless --force is given.
set -euo pipefail
force=${1:-}
busybox=/bin/busybox
if [ ! -x "$busybox" ] || ! "$busybox" --list >/dev/null 2>&1; then
    echo "busybox-static is not installed: run hack/install-deps.sh" >&2
    exit 1
fi

have() { docker image inspect "$1" >/dev/null 2>&1; }

rootfs() {  # $1: directory to fill with busybox and its applets
    mkdir -p "$1"/{bin,etc,tmp,root,proc,sys,dev,var/www}
    chmod 1777 "$1/tmp"
    cp "$busybox" "$1/bin/busybox"
    for applet in $("$busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$1/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$1/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$force" = --force ] || ! have kubelite/busybox:latest; then
    echo "==> building kubelite/busybox:latest"
    rootfs "$tmp/busybox"
    tar -C "$tmp/busybox" -c . | docker import \
        -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - kubelite/busybox:latest >/dev/null
fi
# A versioned tag too: pods naming it get imagePullPolicy IfNotPresent by default
# (":latest" means Always, which needs a registry).
version=$("$busybox" 2>&1 | sed -n '1s/^BusyBox v\([0-9]*\.[0-9]*\).*/\1/p' || true)
if [ -n "$version" ] && ! have "kubelite/busybox:$version"; then
    docker tag kubelite/busybox:latest "kubelite/busybox:$version"
fi

if [ "$force" = --force ] || ! have kubelite/pause:latest; then
    echo "==> building kubelite/pause:latest"
    mkdir -p "$tmp/pause/bin"
    cp "$busybox" "$tmp/pause/bin/busybox"
    ln -sf busybox "$tmp/pause/bin/sh"
    ln -sf busybox "$tmp/pause/bin/sleep"
    # PID 1 ignores signals it has no handler for: trap them, and reap children.
    cat >"$tmp/pause/bin/pause" <<'PAUSE'
#!/bin/sh
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
PAUSE
    chmod +x "$tmp/pause/bin/pause"
    tar -C "$tmp/pause" -c . | docker import \
        -c 'ENV PATH=/bin' -c 'ENTRYPOINT ["/bin/pause"]' - kubelite/pause:latest >/dev/null
fi
