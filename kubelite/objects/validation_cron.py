"""Cron schedules exactly as Kubernetes' CronJob reads them.

Kubernetes parses `spec.schedule` with robfig/cron's standard parser: five
fields (minute hour day-of-month month day-of-week) made of `*`/`?`, numbers,
ranges `a-b`, steps `*/n` or `a-b/n` or `a/n`, comma lists, month and weekday
names (jan..dec, sun..sat, any case), or a descriptor: @yearly @annually
@monthly @weekly @daily @midnight @hourly, `@every <duration>`. Errors carry
robfig's wording, which Kubernetes shows after `spec.schedule: Invalid value`.

`Schedule.next_after` gives the next activation, so the CronJob controller
and validation share one reading of the schedule.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import datetime, timedelta

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTES = _Bounds(0, 59)
_HOURS = _Bounds(0, 23)
_DOM = _Bounds(1, 31)
_MONTH = _Bounds(1, 12, _MONTHS)
_DOW = _Bounds(0, 6, _DAYS)
_FIELDS = (_MINUTES, _HOURS, _DOM, _MONTH, _DOW)


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # A field written as `*` (or `?`) without a step: day-of-month and
    # day-of-week then combine with AND instead of OR, as in cron.
    dom_star: bool = False
    dow_star: bool = False
    every: timedelta | None = None
    location: str | None = None

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, t: datetime) -> datetime | None:
        """The first activation strictly after `t` (wall clock of t's tzinfo); None if none
        within five years (e.g. "0 0 30 2 *")."""
        if self.every is not None:
            return t.replace(microsecond=0) + self.every
        t = t.replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t.year + 5
        while t.year <= limit:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = t.replace(year=year, month=month, day=1, hour=0, minute=0)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        return None


def parse(spec: str) -> Schedule:
    """Parse a schedule; CronError carries robfig/cron's message."""
    if not spec:
        raise CronError("empty spec string")
    location = None
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        name = spec[spec.index("=") + 1: space if space >= 0 else len(spec)]
        try:
            zoneinfo.ZoneInfo(name)
        except Exception:  # noqa: BLE001 - any failure means the zone is unusable
            raise CronError(f"provided bad location {name}: unknown time zone {name}") from None
        location = name
        spec = spec[space:].strip() if space >= 0 else ""
    if spec.startswith("@"):
        return _descriptor(spec, location)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    parsed = [_field(f, b) for f, b in zip(fields, _FIELDS, strict=True)]
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0],
                    dom_star=parsed[2][1], dow_star=parsed[4][1], location=location)


def _all(b: _Bounds) -> frozenset[int]:
    return frozenset(range(b.low, b.high + 1))


def _descriptor(spec: str, location: str | None) -> Schedule:
    zero = frozenset({0})
    first = frozenset({1})
    table = {
        "@yearly": (zero, zero, first, first, _all(_DOW), False, True),
        "@monthly": (zero, zero, first, _all(_MONTH), _all(_DOW), False, True),
        "@weekly": (zero, zero, _all(_DOM), _all(_MONTH), zero, True, False),
        "@daily": (zero, zero, _all(_DOM), _all(_MONTH), _all(_DOW), True, True),
        "@hourly": (zero, _all(_HOURS), _all(_DOM), _all(_MONTH), _all(_DOW), True, True),
    }
    table["@annually"] = table["@yearly"]
    table["@midnight"] = table["@daily"]
    if spec in table:
        mi, h, d, mo, w, ds, ws = table[spec]
        return Schedule(mi, h, d, mo, w, dom_star=ds, dow_star=ws, location=location)
    if spec.startswith("@every "):
        text = spec[len("@every "):]
        try:
            seconds = _go_duration(text)
        except ValueError as e:
            raise CronError(f"failed to parse duration {spec}: {e}") from None
        delay = max(int(seconds), 1)
        return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(),
                        every=timedelta(seconds=delay), location=location)
    raise CronError(f"unrecognized descriptor: {spec}")


_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
          "h": 3600.0}


def _go_duration(text: str) -> float:
    """Go's time.ParseDuration, in seconds ("1h30m", "90s", "1.5h")."""
    quoted = f'"{text}"'
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    for m in re.finditer(r"([0-9]*\.?[0-9]*)([^0-9.]*)", body):
        number, unit = m.groups()
        if not number and not unit:
            continue
        if not number or number == ".":
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration {quoted}')
        total += float(number) * _UNITS[unit]
    return sign * total


def _field(field: str, b: _Bounds) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for expr in (r for r in field.split(",") if r):
        got, is_star = _range(expr, b)
        values |= got
        star = star or is_star
    return frozenset(values), star


def _int(expr: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(
            f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, b: _Bounds) -> int:
    if b.names and expr.lower() in b.names:
        return b.names[expr.lower()]
    return _int(expr)


def _range(expr: str, b: _Bounds) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = b.low, b.high, True
    else:
        start = _int_or_name(low_high[0], b)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1])
        if single:
            end = b.high
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.low:
        raise CronError(f"beginning of range ({start}) below minimum ({b.low}): {expr}")
    if end > b.high:
        raise CronError(f"end of range ({end}) above maximum ({b.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star
