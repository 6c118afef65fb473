"""The node lifecycle controller's decisions, as pure functions of objects
and a clock reading (the controller in nodelifecycle.py does the I/O).

- A node is *stale* when its heartbeat (the kube-node-lease Lease's
  renewTime, or its Ready condition's lastHeartbeatTime) has not changed
  for longer than the grace period, measured on the controller's own clock
  from when it saw the last change (so clock skew between hosts does not
  matter, and a newly elected controller gives every node a full grace
  period). A stale node gets its kubelet conditions set to Unknown.
- Taints follow the Ready condition (Kubernetes' TaintNodesByCondition and
  taint-based eviction): Unknown -> node.kubernetes.io/unreachable, False ->
  node.kubernetes.io/not-ready, each as NoSchedule (the scheduler keeps new
  pods away; pods get no default toleration for it) and NoExecute (the taint
  manager evicts what does not tolerate it). True -> neither.
- Adding a NoExecute taint is rate-limited (a token bucket of
  --node-eviction-rate nodes per second) and suspended while the cluster
  looks disrupted: every node unhealthy, or at least MIN_NODES nodes of which
  >= --unhealthy-zone-threshold (0.55) are unhealthy. A master cut off from
  its nodes sees exactly that, and must not empty the cluster.
- A pod on a node with NoExecute taints goes at once when it does not
  tolerate one; otherwise when the shortest tolerationSeconds of the
  tolerations matching a taint has run out since the taint's timeAdded.
  Worked example: the unreachable taint is added at 12:00:00; a pod with the
  default toleration (300 s) goes at 12:05:00, a pod with tolerationSeconds 0
  at once, a DaemonSet pod (toleration without seconds) never.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from master.scheduler.plugins.taints import toleration_matches

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"
OURS = {(k, e) for k in (UNREACHABLE, NOT_READY) for e in (NO_SCHEDULE, NO_EXECUTE)}
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."
MIN_NODES = 3  # below this many nodes only a full disruption stops evictions


def rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def ready_status(node: Any) -> str:
    """"True", "False", "Unknown", or "" for a node that never posted a Ready
    condition (it gets one, Unknown, when its grace period runs out, as in
    Kubernetes; until then it is neither tainted nor counted healthy)."""
    for c in node.status.conditions:
        if c.type == "Ready":
            return str(c.status) or "Unknown"
    return ""


def heartbeat_of(node: Any, lease: Any | None) -> tuple[str, str]:
    """What changes each time the agent shows it is alive."""
    beat = next((c.lastHeartbeatTime for c in node.status.conditions if c.type == "Ready"), "")
    return (lease.spec.renewTime if lease is not None else "", beat)


class HeartbeatTracker:
    """When each node was last seen alive, on the controller's clock."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[tuple[str, str], float]] = {}

    def observe(self, name: str, beat: tuple[str, str], now: float) -> float:
        """Record the node's heartbeat; returns when it last changed."""
        prior = self._seen.get(name)
        if prior is None or prior[0] != beat:
            self._seen[name] = (beat, now)
            return now
        return prior[1]

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)


def mark_unknown(node: Any, now: float) -> bool:
    """Set the kubelet's conditions to Unknown (in place); True if anything changed."""
    stamp = rfc3339(now)
    changed = False
    for type_ in KUBELET_CONDITIONS:
        c = next((c for c in node.status.conditions if c.type == type_), None)
        if c is None:
            c = node.status.conditions.add(type=type_)
        elif c.status == "Unknown":
            continue
        c.status, c.reason, c.message = "Unknown", UNKNOWN_REASON, UNKNOWN_MESSAGE
        c.lastTransitionTime = stamp
        changed = True
    return changed


def mark_pod_not_ready(pod: Any, now: float) -> bool:
    """Set a pod's Ready condition False (in place); True if it changed."""
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status != "False":
            c.status, c.reason, c.message = "False", "NodeNotReady", ""
            c.lastTransitionTime = rfc3339(now)
            return True
    return False


def wanted_taints(ready: str, *, evict: bool) -> set[tuple[str, str]]:
    key = {"False": NOT_READY, "Unknown": UNREACHABLE}.get(ready)
    if key is None:
        return set()
    return {(key, NO_SCHEDULE), (key, NO_EXECUTE)} if evict else {(key, NO_SCHEDULE)}


def our_taints(node: Any) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in node.spec.taints if (t.key, t.effect) in OURS}


def apply_taints(node: Any, wanted: set[tuple[str, str]], now: float) -> bool:
    """Make the node's lifecycle taints exactly `wanted` (in place); others are untouched."""
    have = our_taints(node)
    if have == wanted:
        return False
    keep = [t for t in node.spec.taints
            if (t.key, t.effect) not in OURS or (t.key, t.effect) in wanted]
    del node.spec.taints[:]
    node.spec.taints.extend(keep)
    for key, effect in sorted(wanted - have):
        t = node.spec.taints.add(key=key, effect=effect)
        if effect == NO_EXECUTE:
            t.timeAdded = rfc3339(now)
    return True


def disrupted(ready: Iterable[str], threshold: float) -> bool:
    """Whether the cluster looks cut off rather than losing nodes: evict nothing then."""
    states = list(ready)
    bad = sum(1 for s in states if s != "True")
    if not states or bad == 0:
        return False
    if bad == len(states):
        return True
    return len(states) >= MIN_NODES and bad / len(states) >= threshold


def eviction_time(pod: Any, taints: Iterable[Any], now: float) -> float | None:
    """When the pod must leave its node because of NoExecute taints (None: never)."""
    when = math.inf
    for t in taints:
        if t.effect != NO_EXECUTE:
            continue
        added = parse_time(t.timeAdded) or now
        matching = [tol for tol in pod.spec.tolerations
                    if toleration_matches(tol, t.key, t.value, NO_EXECUTE)]
        if not matching:
            return now  # untolerated: at once
        seconds = [max(tol.tolerationSeconds, 0) for tol in matching
                   if tol.HasField("tolerationSeconds")]
        if seconds:
            when = min(when, added + min(seconds))
    return None if when == math.inf else when


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved; rate <= 0 never gives one
    (Kubernetes: --node-eviction-rate 0 stops taint-based eviction)."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._at: float | None = None

    def _refill(self, now: float) -> None:
        if self._at is not None and self.rate > 0:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.rate <= 0 or self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds until take() can succeed (inf when it never will)."""
        self._refill(now)
        if self.rate <= 0:
            return math.inf
        return max(0.0, (1 - self._tokens) / self.rate)
