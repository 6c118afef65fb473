"""CronJob schedule arithmetic (pure): which run is due, how many were missed."""

from __future__ import annotations

import datetime as dt

from kubelite.objects.validation_cron import parse
from master.controllers.cronjob import TOO_MANY_MISSED, unmet

UTC = dt.UTC


def t(h: int, m: int, s: int = 0, day: int = 23) -> dt.datetime:
    return dt.datetime(2026, 11, day, h, m, s, tzinfo=UTC)


def test_most_recent_unmet_time_and_next() -> None:
    latest, missed, nxt = unmet(parse("*/5 * * * *"), t(10, 0), t(10, 17, 30))
    assert (latest, missed, nxt) == (t(10, 15), 3, t(10, 20))


def test_nothing_due_yet() -> None:
    latest, missed, nxt = unmet(parse("0 * * * *"), t(10, 0), t(10, 59))
    assert latest is None and missed == 0 and nxt == t(11, 0)


def test_after_a_long_outage_only_the_most_recent_counts() -> None:
    latest, missed, nxt = unmet(parse("* * * * *"), t(0, 0, day=20), t(10, 17, 30))
    assert latest == t(10, 17) and missed > TOO_MANY_MISSED and nxt == t(10, 18)


def test_time_zone_and_every() -> None:
    sched = parse("CRON_TZ=Europe/Paris 0 9 * * *")
    paris = dt.timezone(dt.timedelta(hours=1))  # CET in November
    latest, _, _ = unmet(sched, t(0, 0).astimezone(paris), t(12, 0).astimezone(paris))
    assert latest is not None and latest.astimezone(UTC) == t(8, 0)
    latest, missed, nxt = unmet(parse("@every 10s"), t(10, 0), t(10, 0, 35))
    assert (latest, missed, nxt) == (t(10, 0, 30), 3, t(10, 0, 40))
