"""Horizontal Pod Autoscaler reaction times on a local cluster, against its sync period.

Starts its own etcd, master (scheduler + controllers, HPA sync period and
scale-down window as given) and one node agent (usage reported every
--metrics-interval seconds), then a Deployment whose pods request 100m cpu,
are limited to 200m and burn cpu while /tmp/load exists in them, with an HPA
(target 50%, min 1, max --max). Each run:

1. load on: /tmp/load created in --load-pods pods (each then uses 200m,
   200% of its request) with `kubelite exec`;
2. decision latency: from the load being on to the first scale-up written to
   the Deployment; split into the metrics pipeline (until a PodMetrics shows
   the load) and the controller (from then to the rescale). The floor of
   the first part is up to one metrics interval, of the second up to one sync
   period: the ratio latency / sync period is the figure to read (below 1:
   the first sync after the load was seen decided; about 1-2: the metrics lag
   added an interval);
3. replicas over time until stable (no change for 3 sync periods);
4. load off, then the time until the Deployment is back at 1 replica: the
   scale-down window, counted from the last high recommendation (up to a sync
   period before the load stopped, or a metrics interval and a sync after).

    .venv/bin/python bench/hpa.py [--sync-period 15] [--window 30] [--metrics-interval 10]
                                  [--runs 3] [--load-pods 1] [--max 6]

Not a test: it never fails because the machine is slow; read the figures.
Every container it starts is removed at the end (the node agent's label filter).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubelite.api import apps_pb2  # noqa: E402
from kubelite.client import APIStatusError, Client  # noqa: E402
from kubelite.objects import convert, quantity  # noqa: E402
from tests.cluster import run_etcd, run_master  # noqa: E402
from tests.node_agent import ensure_docker, run_node, wait_for  # noqa: E402

IMAGE = "kubelite/busybox:1.35"
NS = "default"
NAME = "hpa-bench"
LOOP = "while :; do if [ -e /tmp/load ]; then :; else sleep 1; fi; done"
POLL = 0.1


def kubelite(server: str, *args: str) -> None:
    env = {**os.environ, "KUBELITE_SERVER": server, "KUBELITE_CONFIG": "/nonexistent"}
    subprocess.run([sys.executable, "-m", "kubelite.cli.main", *args], check=True, cwd=ROOT,
                   env=env, capture_output=True, text=True, timeout=60)


def replicas(c: Client) -> int:
    return int(c.get("deployments", NAME, NS).spec.replicas)


def running(c: Client) -> list[Any]:
    items, _ = c.list("pods", NS, label_selector=f"app={NAME}")
    return sorted((p for p in items if p.status.phase == "Running"
                   and not p.metadata.deletionTimestamp),
                  key=lambda p: p.metadata.creationTimestamp)


def cpu_of(c: Client, pod: str) -> int:
    try:
        pm = c.get("podmetrics", pod, NS)
    except APIStatusError:
        return 0
    return sum(quantity.milli(x.usage["cpu"].string) for x in pm.containers)


def one_run(c: Client, server: str, args: argparse.Namespace) -> dict[str, Any]:
    pods = wait_for(lambda: len(running(c)) >= 1 and running(c), 120, "a running pod")
    loaded = [p.metadata.name for p in pods[:args.load_pods]]
    start_replicas = replicas(c)
    for name in loaded:
        kubelite(server, "exec", name, "--", "touch", "/tmp/load")
    t0 = time.perf_counter()
    seen = decided = None
    timeline = [(0.0, start_replicas)]
    while decided is None:
        now = time.perf_counter() - t0
        if seen is None and any(cpu_of(c, n) >= 100 for n in loaded):
            seen = now
        r = replicas(c)
        if r != start_replicas:
            decided = now
            timeline.append((now, r))
        if now > 20 * args.sync_period + 10 * args.metrics_interval:
            raise SystemExit("no scale-up: is the HPA controller running?")
        time.sleep(POLL)
    if seen is None:
        seen = decided
    last_change = decided
    while time.perf_counter() - t0 - last_change < 3 * args.sync_period:
        r = replicas(c)
        if r != timeline[-1][1]:
            last_change = time.perf_counter() - t0
            timeline.append((last_change, r))
        time.sleep(POLL)
    for name in loaded:
        try:
            kubelite(server, "exec", name, "--", "rm", "-f", "/tmp/load")
        except subprocess.CalledProcessError:
            pass  # the pod went meanwhile
    t1 = time.perf_counter()
    down_steps: list[tuple[float, int]] = []
    while replicas(c) != 1:
        r = replicas(c)
        if not down_steps or down_steps[-1][1] != r:
            down_steps.append((time.perf_counter() - t1, r))
        time.sleep(POLL)
    down = time.perf_counter() - t1
    down_steps.append((down, 1))
    wait_for(lambda: len(running(c)) == 1, 120, "the surplus pods gone")
    return {"latency": decided, "seen": seen, "timeline": timeline, "down": down,
            "down_steps": down_steps[1:], "stable": timeline[-1][1]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sync-period", type=float, default=15.0)
    ap.add_argument("--window", type=float, default=30.0, help="scale-down stabilization")
    ap.add_argument("--metrics-interval", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--load-pods", type=int, default=1)
    ap.add_argument("--max", type=int, default=6)
    args = ap.parse_args()
    sync = args.sync_period
    ensure_docker()
    print(f"# HPA: target 50% of 100m requests, pods limited to 200m, {args.load_pods} busy "
          f"pod(s) (200% each); sync period {sync:g}s, scale-down window {args.window:g}s, "
          f"metrics every {args.metrics_interval:g}s; one node agent, this machine")
    with run_etcd() as etcd, run_master(
            etcd.endpoint, "--horizontal-pod-autoscaler-sync-period", str(sync),
            "--horizontal-pod-autoscaler-downscale-stabilization", str(args.window)) as master, \
            run_node(master.address, "--metrics-interval", str(args.metrics_interval)) as agent, \
            Client(server=master.address, timeout=30) as c:
        wait_for(lambda: c.get("nodes", agent.name), 30, "node registration")
        c.create(convert.from_dict({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": args.load_pods, "selector": {"matchLabels": {"app": NAME}},
                     "template": {"metadata": {"labels": {"app": NAME}}, "spec": {
                         "terminationGracePeriodSeconds": 0, "containers": [{
                             "name": "burn", "image": IMAGE, "command": ["sh", "-c", LOOP],
                             "resources": {"requests": {"cpu": "100m"},
                                           "limits": {"cpu": "200m"}}}]}}}},
            apps_pb2.Deployment))
        kubelite(master.address, "autoscale", f"deploy/{NAME}", "--min=1",
                 f"--max={args.max}", "--cpu-percent=50")
        # let the HPA settle on the idle pods (and drop to 1) before the first run
        wait_for(lambda: replicas(c) == 1 and len(running(c)) == 1,
                 args.window + 10 * sync + 60, "the idle steady state")
        results = []
        for i in range(args.runs):
            r = one_run(c, master.address, args)
            results.append(r)
            steps = " -> ".join(f"{n}@{t:.1f}s" for t, n in r["timeline"])
            down = " -> ".join(f"{n}@{t:.1f}s" for t, n in r["down_steps"])
            print(f"run {i + 1}: scale-up {r['latency']:.1f}s after load "
                  f"(metrics showed it at {r['seen']:.1f}s) = {r['latency'] / sync:.2f} x sync; "
                  f"replicas {steps}; load off -> {down} ({r['down']:.1f}s)")
        lat = statistics.median(r["latency"] for r in results)
        seen = statistics.median(r["seen"] for r in results)
        ctl = statistics.median(r["latency"] - r["seen"] for r in results)
        down = statistics.median(r["down"] for r in results)
        print(f"decision latency  median {lat:.1f}s = {lat / sync:.2f} x the {sync:g}s sync "
              f"period (metrics pipeline {seen:.1f}s = {seen / args.metrics_interval:.2f} x the "
              f"metrics interval; controller {ctl:.1f}s = {ctl / sync:.2f} x sync)")
        print(f"stable at         {statistics.median(r['stable'] for r in results):g} replicas "
              f"(expected {min(args.max, 4 * args.load_pods)}: 200% x {args.load_pods} pod(s) "
              "/ 50%)")
        # The window counts from the last high recommendation, made up to one sync before
        # the load stopped or (metrics lag) up to an interval plus a sync after it.
        print(f"scale-down        median {down:.1f}s after the load stopped = "
              f"{down / args.window:.2f} x the {args.window:g}s window (expected "
              f"{args.window - sync:g}..{args.window + sync + args.metrics_interval:g}s)")
        c.delete("horizontalpodautoscalers", NAME, NS)
        c.delete("deployments", NAME, NS)
        wait_for(lambda: not c.list("pods", NS, label_selector=f"app={NAME}")[0], 120,
                 "the pods gone")


if __name__ == "__main__":
    main()
