"""The HPA's arithmetic against worked examples (most from Kubernetes'
replica_calculator_test.go and horizontal_test.go): utilization, tolerance,
missing metrics, not-ready pods, stabilization windows and rate policies."""

from __future__ import annotations

import pytest

from master.controllers.hpa_behavior import (
    Behavior,
    History,
    Policy,
    Recommendation,
    Rules,
    ScaleEvent,
    normalize,
    record_scale,
)
from master.controllers.hpa_replicas import (
    MetricError,
    PodMetric,
    PodState,
    Tolerance,
    group_pods,
    raw_resource_replicas,
    resource_replicas,
)

NOW = 10_000.0
LONG_AGO = NOW - 3600  # started and ready an hour ago: past the cpu initialization period


def pods(*requests: int, resource: str = "cpu", **kw: object) -> list[PodState]:
    """Pods p0, p1, ... each with one container requesting `requests[i]` milli-units."""
    base = {"started": LONG_AGO, "ready_changed": LONG_AGO, **kw}
    return [PodState(f"p{i}", containers=(("app", {resource: r}),), **base)  # type: ignore[arg-type]
            for i, r in enumerate(requests)]


def usage(*values: int | None, at: float = NOW - 5, window: float = 10) -> dict[str, PodMetric]:
    return {f"p{i}": PodMetric(v, at, window) for i, v in enumerate(values) if v is not None}


# ---- the plain formula and the tolerance ------------------------------------------------

def test_scale_up() -> None:
    # 300m + 500m + 700m of 3 x 1000m = 50%; target 30% -> ratio 1.667 -> ceil(5.0) = 5
    p = resource_replicas(3, 30, "cpu", pods(1000, 1000, 1000), usage(300, 500, 700), NOW)
    assert (p.replicas, p.utilization, p.average) == (5, 50, 500)


def test_scale_down() -> None:
    # 1400m of 5000m = 28%; target 50% -> ratio 0.56 -> ceil(2.8) = 3
    p = resource_replicas(5, 50, "cpu", pods(*[1000] * 5), usage(100, 300, 500, 250, 250), NOW)
    assert (p.replicas, p.utilization, p.average) == (3, 28, 280)


def test_within_tolerance_keeps_the_count() -> None:
    # 3060m of 3000m = 102% against 100%: |1 - 1.02| <= 0.1
    p = resource_replicas(3, 100, "cpu", pods(900, 1000, 1100), usage(1010, 1030, 1020), NOW)
    assert (p.replicas, p.utilization) == (3, 102)
    # 111% is outside: ceil(1.11 x 3) = 4
    assert resource_replicas(3, 100, "cpu", pods(1000, 1000, 1000), usage(1110, 1110, 1110),
                             NOW).replicas == 4


def test_per_direction_tolerance() -> None:
    # 75% against 100%: a scale-down by the default 0.1, not with a 0.3 down tolerance
    args = (4, 100, "cpu", pods(*[1000] * 4), usage(750, 750, 750, 750), NOW)
    assert resource_replicas(*args).replicas == 3
    assert resource_replicas(*args, tolerance=Tolerance(down=0.3)).replicas == 4


def test_utilization_is_truncated_before_the_ratio() -> None:
    # 85.9% shows as 85%, and 85/50 = 1.7 decides: ceil(1.7 x 2) = 4
    p = resource_replicas(2, 50, "cpu", pods(1000, 1000), usage(859, 859), NOW)
    assert (p.utilization, p.replicas) == (85, 4)


def test_memory_average_value() -> None:
    mi = 1024 * 1024 * 1000  # one Mi in milli-bytes
    # average 300Mi against a 200Mi per-pod target: ceil(1.5 x 2) = 3
    p = raw_resource_replicas(2, 200 * mi, "memory", pods(0, 0, resource="memory"),
                              usage(250 * mi, 350 * mi), NOW)
    assert (p.replicas, p.utilization, p.average) == (3, None, 300 * mi)


def test_several_containers_are_summed_or_one_is_chosen() -> None:
    two = [PodState("p0", started=LONG_AGO, ready_changed=LONG_AGO,
                    containers=(("app", {"cpu": 100}), ("side", {"cpu": 300})))]
    # 200m of 400m = 50% against 25%: ceil(2 x 1) = 2
    assert resource_replicas(1, 25, "cpu", two, usage(200), NOW).utilization == 50
    assert resource_replicas(1, 25, "cpu", two, usage(200), NOW, container="app"
                             ).utilization == 200


# ---- what cannot be computed ------------------------------------------------------------

def test_a_container_without_a_request_is_named() -> None:
    no_req = [PodState("web-1", started=LONG_AGO, ready_changed=LONG_AGO,
                       containers=(("app", {"cpu": 100}), ("side", {})))]
    with pytest.raises(MetricError, match="missing request for cpu in container side of "
                                          "Pod web-1"):
        resource_replicas(1, 50, "cpu", no_req, {"web-1": PodMetric(100, NOW, 10)}, NOW)


def test_no_pods_or_no_usable_metrics() -> None:
    with pytest.raises(MetricError, match="no pods returned by selector"):
        resource_replicas(1, 50, "cpu", [], {}, NOW)
    pending = pods(100, phase="Pending")
    with pytest.raises(MetricError, match="did not receive metrics for targeted pods"):
        resource_replicas(1, 50, "cpu", pending, usage(100), NOW)


# ---- missing metrics ----------------------------------------------------------------------

def test_missing_pods_count_as_full_on_a_scale_down() -> None:
    # ready pods: 300m of 3000m = 10% against 50% -> ratio 0.2; the 4th pod is assumed at
    # 100%: 1300m of 4000m = 32% -> 0.64 -> ceil(0.64 x 4) = 3 (not ceil(0.2 x 3) = 1)
    p = resource_replicas(4, 50, "cpu", pods(*[1000] * 4), usage(100, 100, 100, None), NOW)
    assert (p.replicas, p.utilization) == (3, 10)


def test_missing_pods_count_as_idle_on_a_scale_up() -> None:
    # the docstring's example: 80% on a, b -> 1.6; with c at 0%: 53% -> 1.06, keep 3
    p = resource_replicas(3, 50, "cpu", pods(100, 100, 100), usage(90, 70, None), NOW)
    assert (p.replicas, p.utilization) == (3, 80)
    # with far more load the damped figure still scales: 180+180+0 of 300 = 120% -> 2.4 -> 8
    assert resource_replicas(3, 50, "cpu", pods(100, 100, 100), usage(180, 180, None),
                             NOW).replicas == 8


def test_missing_pods_that_would_reverse_the_direction_keep_the_count() -> None:
    # target above 100%: missing pods are assumed at the target (150%); ready pods at
    # 140% -> ratio 0.93 -> a scale-down... is within tolerance anyway; at 120%:
    # ratio 0.8, with the missing pod at 150%: (120+150)/200 = 135% -> 0.9 -> keep 2
    p = resource_replicas(2, 150, "cpu", pods(1000, 1000), usage(1200, None), NOW)
    assert p.replicas == 2
    # target 50%: p0 at 40% -> ratio 0.8, a scale-down; the missing p1 assumed at 100%
    # gives 70% -> 1.4, a scale-up: the direction turned, so no change (not ceil(2.8) = 3)
    assert resource_replicas(2, 50, "cpu", pods(1000, 1000), usage(400, None),
                             NOW).replicas == 2
    # ratio exactly 1 with a missing pod: nothing to assume, nothing to change
    assert resource_replicas(2, 100, "cpu", pods(1000, 1000), usage(1000, None),
                             NOW).replicas == 2


def test_raw_value_missing_pods_use_the_target_on_a_scale_down() -> None:
    # 100 + 100 + (missing = target 500) over 3 = 233 -> 0.47 -> ceil(1.4) = 2
    p = raw_resource_replicas(3, 500, "memory", pods(0, 0, 0, resource="memory"),
                              usage(100, 100, None), NOW)
    assert p.replicas == 2


# ---- not-ready pods -----------------------------------------------------------------------

def test_unready_pods_count_as_idle_on_a_scale_up() -> None:
    # p0 not ready: ready pods 1200m of 2000m = 60% vs 30% -> 2.0; with p0 at 0%:
    # 1200 / 3000 = 40% -> 1.33 -> ceil(4.0) = 4 (not 5)
    ps = pods(1000, 1000, 1000)
    ps[0] = PodState("p0", ready=False, started=NOW - 60, ready_changed=NOW - 60,
                     containers=(("app", {"cpu": 1000}),))
    p = resource_replicas(3, 30, "cpu", ps, usage(300, 500, 700), NOW)
    assert (p.replicas, p.utilization) == (4, 60)


def test_unready_pods_are_left_out_of_a_scale_down() -> None:
    ps = pods(1000, 1000, 1000)
    ps[0] = PodState("p0", phase="Pending", containers=(("app", {"cpu": 1000}),))
    # ready: 200m of 2000m = 10% vs 50% -> 0.2 -> ceil(0.4) = 1
    assert resource_replicas(3, 50, "cpu", ps, usage(None, 100, 100), NOW).replicas == 1


def test_cpu_readiness_rules() -> None:
    m = {"a": PodMetric(100, NOW - 5, 10)}

    def grouped(**kw: object) -> str:
        pod = PodState("a", containers=(("app", {"cpu": 100}),), **kw)  # type: ignore[arg-type]
        g = group_pods([pod], m, "cpu", NOW)
        return "ready" if g.ready else "unready" if g.unready else "missing"

    # young pod (within 5 min of start): ready, and measured a whole window after that
    assert grouped(started=NOW - 60, ready_changed=NOW - 30) == "ready"
    assert grouped(started=NOW - 60, ready_changed=NOW - 10) == "unready"  # 5 < 10 + 10
    assert grouped(started=NOW - 60, ready=False, ready_changed=NOW - 60) == "unready"
    assert grouped(started=None) == "unready"
    assert grouped(ready=None, started=NOW - 60) == "unready"
    # old pod: unready only if it never became ready (went False within 30 s of start)
    assert grouped(started=LONG_AGO, ready=False, ready_changed=NOW - 10) == "ready"
    assert grouped(started=LONG_AGO, ready=False, ready_changed=LONG_AGO + 10) == "unready"
    # memory ignores readiness
    pod = PodState("a", ready=False, started=NOW - 60, ready_changed=NOW - 60)
    assert group_pods([pod], m, "memory", NOW).ready == 1
    # deleting and failed pods are ignored altogether
    gone = [PodState("a", deleting=True), PodState("b", phase="Failed")]
    assert group_pods(gone, m, "cpu", NOW).ignored == {"a", "b"}


# ---- stabilization ------------------------------------------------------------------------

def plain(history: History, current: int, desired: int, now: float, *, lo: int = 1,
          hi: int = 10, window: float = 300) -> int:
    return normalize(history, current=current, desired=desired, min_replicas=lo,
                     max_replicas=hi, behavior=None, now=now, down_window=window).replicas


def test_scale_down_waits_for_the_stabilization_window() -> None:
    h = History()
    assert plain(h, 1, 4, 0) == 4
    assert plain(h, 4, 1, 15) == 4  # recommended 4 at t=0: hold
    d = normalize(h, current=4, desired=1, min_replicas=1, max_replicas=10, behavior=None,
                  now=200, down_window=300)
    assert (d.replicas, d.able_reason) == (4, "ScaleDownStabilized")
    assert plain(h, 4, 2, 301) == 2  # t=0 left the window; the highest since is 2 (t=301)
    assert plain(h, 2, 1, 302) == 2
    assert plain(h, 2, 1, 700) == 1


def test_no_behavior_limits_and_bounds() -> None:
    # at most max(2 x current, 4) per step, then the bounds
    d = normalize(History(), current=1, desired=20, min_replicas=1, max_replicas=10,
                  behavior=None, now=0)
    assert (d.replicas, d.limited, d.limited_reason) == (4, True, "ScaleUpLimit")
    d = normalize(History(), current=6, desired=20, min_replicas=1, max_replicas=10,
                  behavior=None, now=0)
    assert (d.replicas, d.limited_reason) == (10, "TooManyReplicas")
    d = normalize(History(), current=3, desired=0, min_replicas=2, max_replicas=10,
                  behavior=None, now=0, down_window=0)
    assert (d.replicas, d.limited_reason) == (2, "TooFewReplicas")
    d = normalize(History(), current=3, desired=5, min_replicas=2, max_replicas=10,
                  behavior=None, now=0)
    assert (d.replicas, d.limited, d.limited_reason, d.able_reason) == \
        (5, False, "DesiredWithinRange", "ReadyForNewScale")


def test_behavior_stabilizes_both_directions() -> None:
    b = Behavior(up=Rules(60, "Max", (Policy("Percent", 1000, 15),)),
                 down=Rules(120, "Max", (Policy("Percent", 100, 15),)))
    h = History(recommendations=[Recommendation(3, 0), Recommendation(8, 50)])
    # up: lowest of the last 60 s is 8 -> a recommendation of 9 yields 8
    d = normalize(h, current=5, desired=9, min_replicas=1, max_replicas=20, behavior=b, now=100)
    assert (d.replicas, d.able_reason) == (8, "ScaleUpStabilized")
    # down: highest of the last 120 s is 9 (t=100) -> stays at 8 (current)
    d = normalize(h, current=8, desired=2, min_replicas=1, max_replicas=20, behavior=b, now=110)
    assert (d.replicas, d.able_reason) == (8, "ScaleDownStabilized")
    # long after: only the newest recommendation counts
    assert normalize(h, current=8, desired=2, min_replicas=1, max_replicas=20, behavior=b,
                     now=1000).replicas == 2


# ---- rate policies ------------------------------------------------------------------------

UP = Rules(0, "Max", (Policy("Pods", 4, 60), Policy("Percent", 100, 60)))
DOWN = Rules(0, "Max", (Policy("Pods", 1, 60),))


def limited(history: History, current: int, desired: int, now: float,
            up: Rules = UP, down: Rules = DOWN, lo: int = 1, hi: int = 100) -> tuple[int, str]:
    d = normalize(history, current=current, desired=desired, min_replicas=lo, max_replicas=hi,
                  behavior=Behavior(up, down), now=now)
    return d.replicas, d.limited_reason


def test_rate_policy_worked_example() -> None:
    # The module docstring: 3 now, 2 added 30 s ago (the period started at 1).
    h = History(up_events=[ScaleEvent(2, 70)])
    assert limited(h, 3, 10, 100) == (5, "ScaleUpLimit")  # Max(1 + 4, ceil(1 x 2))
    h = History(up_events=[ScaleEvent(2, 70)])
    assert limited(h, 3, 10, 100, up=Rules(0, "Min", UP.policies)) == (3, "ScaleUpLimit")
    # once the period has passed: Max(3 + 4, 6) = 7
    assert limited(History(up_events=[ScaleEvent(2, 70)]), 3, 10, 131) == (7, "ScaleUpLimit")
    # the maximum binds before the rate
    assert limited(History(), 3, 10, 100, hi=6) == (6, "TooManyReplicas")


def test_scale_down_pods_policy_and_disabled() -> None:
    h = History()
    b = Behavior(UP, DOWN)
    assert limited(h, 5, 1, 0) == (4, "ScaleDownLimit")
    record_scale(h, b, 5, 4, 0)
    assert limited(h, 4, 1, 30) == (4, "ScaleDownLimit")  # 1 per 60 s, used
    assert limited(h, 4, 1, 61) == (3, "ScaleDownLimit")
    off = Rules(0, "Disabled", DOWN.policies)
    assert limited(History(), 5, 1, 0, down=off) == (5, "ScaleDownLimit")
    assert limited(History(), 5, 1, 0, down=Rules(0, "Max", (Policy("Percent", 100, 15),)),
                   lo=2) == (2, "TooFewReplicas")


def test_percent_scale_down_rounds_down_and_events_are_reused() -> None:
    h = History()
    b = Behavior(UP, Rules(0, "Max", (Policy("Percent", 50, 60),)))
    assert normalize(h, current=5, desired=1, min_replicas=1, max_replicas=10, behavior=b,
                     now=0).replicas == 2  # int(5 x 0.5)
    record_scale(h, b, 5, 2, 0)
    record_scale(h, b, 2, 1, 100)  # the first event is outdated: its slot is reused
    assert len(h.down_events) == 1 and h.down_events[0].change == 1
