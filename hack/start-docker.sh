#!/usr/bin/env bash
# Make sure a Docker daemon answers on /var/run/docker.sock; start one when
# none does (machines without systemd, CI). Safe to re-run.
set -euo pipefail
if docker info >/dev/null 2>&1; then
    exit 0
fi
if ! command -v dockerd >/dev/null; then
    echo "dockerd is not installed: run hack/install-deps.sh" >&2
    exit 1
fi
log=/var/log/kubelite-dockerd.log
echo "==> starting dockerd (log: $log)"
# setsid: the daemon outlives this script and the shell that ran it.
setsid dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 0.5
done
echo "dockerd did not come up in 30 s; the end of $log:" >&2
tail -20 "$log" >&2
exit 1
