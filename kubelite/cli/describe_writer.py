"""The pieces every describe shares: the indenting, tab-aligning writer and
the Labels / Annotations / Taints / Tolerations / Events sections.

kubectl describe writes "Key:\\tvalue" lines at two-space indent levels into
one tabwriter (minwidth 0, padding 2) and flushes it only before the events
table, so values line up across each run of consecutive "key:\\tvalue" lines
and a line without a tab ("Containers:") starts a new run. Writer keeps that
model: write text with tabs, `flush()` where kubectl flushes, `text()` at
the end.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kubelite.cli.age import age, parse_time
from kubelite.cli.printers_format import NONE, Obj, get
from kubelite.cli.printers_tabwriter import DESCRIBE_MINWIDTH, DESCRIBE_PADDING, align

MAX_ANNOTATION_LEN = 140
# kubectl hides the copy of the manifest that `apply` keeps in an annotation.
SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


class Writer:
    """kubectl's PrefixWriter over a tabwriter: `write(level, text)` indents by level*2."""

    def __init__(self) -> None:
        self._segments: list[list[str]] = [[]]

    def write(self, level: int, text: str) -> None:
        self._segments[-1].append("  " * level + text)

    def line(self, text: str = "") -> None:
        """WriteLine: text and a newline, no indent."""
        self._segments[-1].append(text + "\n")

    def flush(self) -> None:
        """End the current alignment block, as tabwriter.Flush does."""
        self._segments.append([])

    def text(self) -> str:
        return "".join(align("".join(seg), minwidth=DESCRIBE_MINWIDTH, padding=DESCRIBE_PADDING)
                       for seg in self._segments if seg)


def labels_multiline(w: Writer, title: str, labels: dict[str, str] | None,
                     initial_indent: str = "") -> None:
    """"Labels:  a=1" then one "\\tkey=value" line per further label, sorted."""
    w.write(0, f"{initial_indent}{title}:\t")
    if not labels:
        w.line(NONE)
        return
    for i, key in enumerate(sorted(labels)):
        if i:
            w.write(0, initial_indent + "\t")
        w.write(0, f"{key}={labels[key]}\n")


def _shorten(s: str, limit: int) -> str:
    return s[:limit] + "..." if len(s) > limit else s


def annotations_multiline(w: Writer, title: str, annotations: dict[str, str] | None) -> None:
    """Like labels, "key: value"; long or multi-line values go below their key."""
    w.write(0, f"{title}:\t")
    keys = sorted(k for k in (annotations or {}) if k not in SKIP_ANNOTATIONS)
    if not keys:
        w.line(NONE)
        return
    assert annotations is not None
    for i, key in enumerate(keys):
        if i:
            w.write(0, "\t")
        value = annotations[key].removesuffix("\n")
        if len(value) + len(key) + 2 > MAX_ANNOTATION_LEN or "\n" in value:
            w.write(0, f"{key}:\n")
            for s in value.split("\n"):
                w.write(0, f"\t  {_shorten(s, MAX_ANNOTATION_LEN - 2)}\n")
        else:
            w.write(0, f"{key}: {value}\n")


def taint_string(t: Obj) -> str:
    if t.get("value"):
        return f"{t.get('key', '')}={t['value']}:{t.get('effect', '')}"
    return f"{t.get('key', '')}:{t.get('effect', '')}"


def taints_multiline(w: Writer, title: str, taints: list[Obj] | None) -> None:
    w.write(0, f"{title}:\t")
    if not taints:
        w.line(NONE)
        return
    ordered = sorted(taints, key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    for i, t in enumerate(ordered):
        if i:
            w.write(0, "\t")
        w.write(0, taint_string(t) + "\n")


def tolerations_multiline(w: Writer, title: str, tolerations: list[Obj] | None) -> None:
    """"key=value:Effect op=Exists for 300s", one per line, sorted by key."""
    w.write(0, f"{title}:\t")
    if not tolerations:
        w.line(NONE)
        return
    for i, t in enumerate(sorted(tolerations, key=lambda t: str(t.get("key", "")))):
        if i:
            w.write(0, "\t")
        text = str(t.get("key", ""))
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            # A bare `operator: Exists` tolerates every taint.
            text += " op=Exists" if t.get("key") or t.get("effect") else "op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, text + "\n")


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _event_time(e: Obj) -> datetime:
    """When an event last happened, for ordering: series, lastTimestamp, eventTime."""
    series = e.get("series")
    if series is not None:
        ts = series.get("lastObservedTime")
    else:
        ts = e.get("lastTimestamp") or e.get("eventTime")
    return parse_time(ts) or _EPOCH


def events_section(w: Writer, events: list[Obj], now: datetime) -> None:
    """The closing "Events:" table, oldest first; "2m (x3 over 5m)" for repeats."""
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.flush()
    w.write(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in sorted(events, key=_event_time):
        first = age(e.get("eventTime") or e.get("firstTimestamp"), now)
        series = e.get("series")
        count = int(e.get("count") or 0)
        if series is not None:
            interval = (f"{age(series.get('lastObservedTime'), now)} "
                        f"(x{series.get('count', 0)} over {first})")
        elif count > 1:
            interval = f"{age(e.get('lastTimestamp'), now)} (x{count} over {first})"
        else:
            interval = first
        source = get(e, "source", "component") or e.get("reportingComponent") or ""
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{interval}\t{source}\t"
                   f"{str(e.get('message', '')).strip()}\n")


def conditions_table(w: Writer, conditions: list[Obj] | None, *, reason: bool = True) -> None:
    """Workload conditions: "Type  Status  Reason" under a dashed underline."""
    if not conditions:
        return
    if reason:
        w.write(0, "Conditions:\n  Type\tStatus\tReason\n")
        w.write(1, "----\t------\t------\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')}\t{c.get('reason', '')}\n")
    else:
        w.write(0, "Conditions:\n  Type\tStatus\n")
        for c in conditions:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")
