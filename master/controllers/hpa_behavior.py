"""From the metrics' recommendation to the replica count actually set: Kubernetes'
stabilization and rate limits (horizontal.go's normalizeDesiredReplicas*), as
pure functions over a per-HPA History the controller keeps in memory.

Without spec.behavior (Kubernetes' historical rules):
- scale-down stabilization: the highest recommendation of the last
  `down_window` seconds (the master's --hpa-downscale-stabilization, 300 s)
  wins, so a brief dip does not remove pods;
- a scale-up is limited to max(2 x current, 4) per sync;
- then clamped to [minReplicas, maxReplicas].

With spec.behavior:
- stabilization in both directions: the result stays between the lowest
  recommendation of the scale-up window and the highest of the scale-down
  window (current replicas when inside them);
- rate policies: each policy allows, from the replica count at the start of
  its period, +value pods (Pods) or +value% (Percent, rounded up when
  growing, down when shrinking); selectPolicy Max takes the policy allowing
  the biggest change, Min the smallest, Disabled forbids that direction.

Worked example of a rate limit: scaleUp policies [Pods 4 per 60s, Percent
100 per 60s], selectPolicy Max, 3 replicas now, and 2 were added 30 s ago
(so the period started at 1). Pods allows 1 + 4 = 5, Percent allows
ceil(1 x 2) = 2; Max picks 5. A recommendation of 10 becomes 5
(ScalingLimited: ScaleUpLimit); with selectPolicy Min it would be 2, below
the current 3, so nothing is added until the period has passed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0
DOWNSCALE_STABILIZATION = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization


@dataclass(frozen=True)
class Policy:
    type: str  # "Pods" or "Percent"
    value: int
    period: int  # seconds


@dataclass(frozen=True)
class Rules:
    """One direction of spec.behavior, defaults applied."""

    window: float  # stabilization window, seconds
    select: str = "Max"  # Max, Min or Disabled
    policies: tuple[Policy, ...] = ()


DEFAULT_UP = Rules(0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15)))
DEFAULT_DOWN = Rules(DOWNSCALE_STABILIZATION, "Max", (Policy("Percent", 100, 15),))


@dataclass(frozen=True)
class Behavior:
    up: Rules = DEFAULT_UP
    down: Rules = DEFAULT_DOWN


@dataclass
class Recommendation:
    replicas: int
    at: float


@dataclass
class ScaleEvent:
    change: int  # replicas added (scale-up list) or removed (scale-down list), > 0
    at: float
    outdated: bool = False


@dataclass
class History:
    """What an HPA's past decisions leave behind (lost on a master restart, as in
    Kubernetes)."""

    recommendations: list[Recommendation] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    replicas: int
    # AbleToScale (always True here): ReadyForNewScale, ScaleUpStabilized, ScaleDownStabilized
    able_reason: str
    able_message: str
    limited: bool  # ScalingLimited status
    limited_reason: str
    limited_message: str


_READY = ("ReadyForNewScale", "recommended size matches current size")
_UP_STABILIZED = ("ScaleUpStabilized", "recent recommendations were lower than current one, "
                                       "applying the lowest recent recommendation")
_DOWN_STABILIZED = ("ScaleDownStabilized", "recent recommendations were higher than current "
                                           "one, applying the highest recent recommendation")
_WITHIN = ("DesiredWithinRange", "the desired count is within the acceptable range")
_TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica "
                                "count")
_TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
_UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum "
                             "scale rate")
_DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the "
                                 "maximum scale rate")


def _record(history: History, desired: int, now: float, *, older_than: float) -> None:
    """Remember a recommendation, reusing one slot that is older than every window."""
    for rec in history.recommendations:
        if rec.at < older_than:
            rec.replicas, rec.at = desired, now
            return
    history.recommendations.append(Recommendation(desired, now))


def normalize(history: History, *, current: int, desired: int, min_replicas: int,
              max_replicas: int, behavior: Behavior | None, now: float,
              down_window: float = DOWNSCALE_STABILIZATION) -> Decision:
    """The replica count to set for a metrics recommendation of `desired`."""
    if behavior is None:
        return _normalize_plain(history, current, desired, min_replicas, max_replicas, now,
                                down_window)
    return _normalize_behavior(history, current, desired, min_replicas, max_replicas,
                               behavior, now)


def _decision(replicas: int, stabilized: int, able: tuple[str, str],
              limit: tuple[str, str]) -> Decision:
    return Decision(replicas, *able, replicas != stabilized, *limit)


# ---- without spec.behavior ---------------------------------------------------------

def _normalize_plain(history: History, current: int, desired: int, min_replicas: int,
                     max_replicas: int, now: float, down_window: float) -> Decision:
    cutoff = now - down_window
    stabilized = max([desired] + [r.replicas for r in history.recommendations
                                  if r.at >= cutoff])
    _record(history, desired, now, older_than=cutoff)
    able = _DOWN_STABILIZED if stabilized != desired else _READY
    replicas, limit = clamp_plain(current, stabilized, min_replicas, max_replicas)
    return _decision(replicas, stabilized, able, limit)


def clamp_plain(current: int, desired: int, min_replicas: int, max_replicas: int
                ) -> tuple[int, tuple[str, str]]:
    """Kubernetes' convertDesiredReplicasWithRules: min/max and max(2 x current, 4)."""
    up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > up_limit:
        highest, reason = up_limit, _UP_LIMIT
    else:
        highest, reason = max_replicas, _TOO_MANY
    if desired < min_replicas:
        return min_replicas, _TOO_FEW
    if desired > highest:
        return highest, reason
    return desired, _WITHIN


# ---- with spec.behavior --------------------------------------------------------------

def _normalize_behavior(history: History, current: int, desired: int, min_replicas: int,
                        max_replicas: int, behavior: Behavior, now: float) -> Decision:
    stabilized, able = stabilize(history, current, desired, behavior, now)
    replicas, limit = rate_limit(history, current, stabilized, min_replicas, max_replicas,
                                 behavior, now)
    return _decision(replicas, stabilized, able if stabilized != desired else _READY, limit)


def stabilize(history: History, current: int, desired: int, behavior: Behavior,
              now: float) -> tuple[int, tuple[str, str]]:
    """Keep the result between the lowest recommendation of the scale-up window and
    the highest of the scale-down window; record `desired`."""
    up_cutoff = now - behavior.up.window
    down_cutoff = now - behavior.down.window
    up = down = desired
    for rec in history.recommendations:
        if rec.at > up_cutoff:
            up = min(up, rec.replicas)
        if rec.at > down_cutoff:
            down = max(down, rec.replicas)
    _record(history, desired, now, older_than=min(up_cutoff, down_cutoff))
    result = min(max(current, up), down)
    return result, _UP_STABILIZED if desired >= current else _DOWN_STABILIZED


def _changed_within(period: int, events: Sequence[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def _period_start(current: int, policy: Policy, history: History, now: float) -> int:
    """Replicas at the start of the policy's period: current minus what was added
    plus what was removed since."""
    return (current - _changed_within(policy.period, history.up_events, now)
            + _changed_within(policy.period, history.down_events, now))


def scale_up_limit(history: History, current: int, rules: Rules, now: float) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, p, history, now)
        if p.type == "Pods":
            proposals.append(start + p.value)
        else:  # rounded up, or a small target could never grow
            proposals.append(math.ceil(start * (1 + p.value / 100)))
    if not proposals:
        return current
    return min(proposals) if rules.select == "Min" else max(proposals)


def scale_down_limit(history: History, current: int, rules: Rules, now: float) -> int:
    if rules.select == "Disabled":
        return current
    proposals = []
    for p in rules.policies:
        start = _period_start(current, p, history, now)
        if p.type == "Pods":
            proposals.append(start - p.value)
        else:
            proposals.append(int(start * (1 - p.value / 100)))
    if not proposals:
        return current
    return max(proposals) if rules.select == "Min" else min(proposals)


def rate_limit(history: History, current: int, desired: int, min_replicas: int,
               max_replicas: int, behavior: Behavior, now: float
               ) -> tuple[int, tuple[str, str]]:
    """Kubernetes' convertDesiredReplicasWithBehaviorRate."""
    if desired > current:
        limit = max(current, scale_up_limit(history, current, behavior.up, now))
        highest, reason = (limit, _UP_LIMIT) if max_replicas > limit else (max_replicas,
                                                                          _TOO_MANY)
        if desired > highest:
            return highest, reason
    elif desired < current:
        limit = min(current, scale_down_limit(history, current, behavior.down, now))
        lowest, reason = (limit, _DOWN_LIMIT) if min_replicas < limit else (min_replicas,
                                                                           _TOO_FEW)
        if desired < lowest:
            return lowest, reason
    return desired, _WITHIN


def record_scale(history: History, behavior: Behavior | None, before: int, after: int,
                 now: float) -> None:
    """Remember a rescale for the rate policies (only needed with spec.behavior)."""
    if behavior is None or before == after:
        return
    up = after > before
    events = history.up_events if up else history.down_events
    rules = behavior.up if up else behavior.down
    longest = max((p.period for p in rules.policies), default=0)
    slot = None
    for e in events:
        if e.at < now - longest:
            e.outdated = True
        if e.outdated:
            slot = e
    new = ScaleEvent(abs(after - before), now)
    if slot is not None:
        slot.change, slot.at, slot.outdated = new.change, new.at, False
    else:
        events.append(new)
