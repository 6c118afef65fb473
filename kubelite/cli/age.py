"""Ages and timestamps the way kubectl prints them.

`human_duration` follows apimachinery's duration.HumanDuration: about two
significant figures, so a column of ages stays narrow and still tells "just
now" from "a while ago". Worked through: 95s -> "95s" (seconds up to 2m),
330s -> "5m30s" (under 10m the seconds stay), 1h40m -> "100m" (minutes up to
3h), 5h12m -> "5h12m" (under 8h), 30h -> "30h", 3d4h -> "3d4h" (under 8d),
400d -> "400d" (under 2y), 3y45d -> "3y45d" (under 8y), then whole years.

Times are RFC 3339 strings in object dicts; `now` is passed in by the caller
so output is a pure function of its inputs (tests pin the clock).
"""

from __future__ import annotations

from datetime import UTC, datetime

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def human_duration(seconds: float) -> str:
    """A duration in kubectl's AGE style ("5s", "3m4s", "5h12m", "2d3h", "3y45d")."""
    whole = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if whole < -1:
        # More than a second in the future: clock skew, not an age.
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        s = whole % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(ts: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when empty or unparsable."""
    if not ts:
        return None
    try:
        t = datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def seconds_between(start: datetime, end: datetime) -> float:
    return (_aware(end) - _aware(start)).total_seconds()


def age(ts: str | None, now: datetime) -> str:
    """Time since `ts` ("<unknown>" when there is no timestamp), kubectl's AGE column."""
    t = parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration(seconds_between(t, now))


def rfc1123z(ts: str | None) -> str:
    """Go's time.RFC1123Z, as describe prints times: "Mon, 23 Nov 2026 09:20:25 +0000".

    The offset is the timestamp's own (UTC for the "Z" times the API server
    writes); month and day names are English whatever the locale.
    """
    t = parse_time(ts)
    if t is None:
        # Go formats the zero time.Time for an unset field.
        return "Mon, 01 Jan 0001 00:00:00 +0000"
    off = t.utcoffset()
    minutes = int(off.total_seconds() // 60) if off is not None else 0
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    zone = f"{sign}{minutes // 60:02d}{minutes % 60:02d}"
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} {zone}")


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String, to the millisecond: "10s", "9.998s", "2m5.5s", "1h0m0s"."""
    ms = round(seconds * 1000)
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{sign}{ms}ms"
    minutes, ms = divmod(ms, 60_000)
    hours, minutes = divmod(minutes, 60)
    secs = f"{ms // 1000}.{ms % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs
