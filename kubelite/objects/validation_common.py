"""Checks shared by every kind's validation, with Kubernetes' wording.

Paths are plain strings built the way Kubernetes' field.Path prints them:
`spec.template.spec.containers[0].ports[1].name`, `metadata.labels`,
`data[my.key]`. Values in `Invalid value: ...` are shown like Go's `%#v`
would show them where users are used to seeing that form (label maps as
`map[string]string{"app":"web"}`), so messages match what kubectl prints.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubelite.objects import names, quantity, selectors
from kubelite.objects.errors import FieldError, duplicate, forbidden, invalid, required, unsupported

Errs = list[FieldError]

NEGATIVE_MSG = "must be greater than or equal to 0"
NOT_POSITIVE_MSG = "must be greater than zero"
IMMUTABLE_MSG = "field is immutable"
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TOTAL_ANNOTATION_SIZE = 256 * 1024


@dataclass(frozen=True)
class Shown:
    """A value rendered verbatim after `Invalid value:` (not quoted like a string)."""

    text: str

    def __str__(self) -> str:
        return self.text


def go_quote(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def go_map(d: Mapping[str, str]) -> Shown:
    if not d:
        return Shown("map[string]string(nil)")
    body = ", ".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in sorted(d.items()))
    return Shown("map[string]string{" + body + "}")


def go_strings(items: Iterable[str]) -> Shown:
    items = list(items)
    if not items:
        return Shown("[]string(nil)")
    return Shown("[]string{" + ", ".join(go_quote(i) for i in items) + "}")


def go_bool(b: bool) -> Shown:
    return Shown("true" if b else "false")


def go_selector(sel: Any) -> Shown:
    """A LabelSelector as Kubernetes shows it: `v1.LabelSelector{MatchLabels:...}`."""
    if sel is None:
        return Shown("null")
    exprs = [
        f"v1.LabelSelectorRequirement{{Key:{go_quote(e.key)}, Operator:{go_quote(e.operator)}, "
        f"Values:{go_strings(e.values)}}}"
        for e in sel.matchExpressions
    ]
    shown_exprs = (
        "[]v1.LabelSelectorRequirement{" + ", ".join(exprs) + "}"
        if exprs else "[]v1.LabelSelectorRequirement(nil)"
    )
    return Shown(
        f"v1.LabelSelector{{MatchLabels:{go_map(dict(sel.matchLabels))}, "
        f"MatchExpressions:{shown_exprs}}}"
    )


def ios_shown(ios: Any) -> object:
    """An IntOrString as its scalar: 3 or "25%"."""
    return str(ios.strVal) if ios.type == 1 else int(ios.intVal)


def not_found(path: str, value: str) -> FieldError:
    return FieldError(path, f"Not found: {go_quote(value)}")


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, f"Too long: must have at most {limit} bytes")


def with_errors(path: str, value: object, messages: Iterable[str]) -> Errs:
    return [invalid(path, value, m) for m in messages]


def nonnegative(value: int, path: str) -> Errs:
    return [invalid(path, value, NEGATIVE_MSG)] if value < 0 else []


def positive(value: int, path: str, msg: str = "must be greater than 0") -> Errs:
    return [invalid(path, value, msg)] if value <= 0 else []


def one_of(value: str, path: str, allowed: list[str], *, allow_empty: bool = False) -> Errs:
    """Empty is `Required value` (unless allowed); anything else not listed is unsupported."""
    if not value:
        return [] if allow_empty else [required(path)]
    return [] if value in allowed else [unsupported(path, value, allowed)]


# ---- names -------------------------------------------------------------------

DNS1035_MAX = 63
_DNS1035_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1035_MAX:
        errs.append(f"must be no more than {DNS1035_MAX} characters")
    if not _DNS1035_RE.match(value):
        errs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
            "start with an alphabetic character, and end with an alphanumeric character "
            "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
            "'[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return errs


def mask_trailing_dash(name: str) -> str:
    """Kubernetes checks a generateName prefix as if its trailing '-' were a letter."""
    if len(name) > 1 and name.endswith("-"):
        return name[:-2] + "a"
    return name


def label_errors(value: str, path: str) -> Errs:
    return with_errors(path, value, names.dns1123_label(value))


def subdomain_errors(value: str, path: str) -> Errs:
    return with_errors(path, value, names.dns1123_subdomain(value))


def qualified_name_errors(value: str, path: str) -> Errs:
    return with_errors(path, value, names.qualified_name(value))


# ---- labels, annotations, selectors -------------------------------------------

def validate_labels(labels: Mapping[str, str], path: str) -> Errs:
    errs: Errs = []
    for k, v in sorted(labels.items()):
        errs += with_errors(path, k, names.qualified_name(k))
        errs += with_errors(path, v, names.label_value(v))
    return errs


def validate_annotations(annotations: Mapping[str, str], path: str) -> Errs:
    errs: Errs = []
    total = 0
    for k, v in sorted(annotations.items()):
        errs += with_errors(path, k, names.qualified_name(k.lower()))
        total += len(k.encode()) + len(v.encode())
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))
    return errs


def validate_label_selector(sel: Any, path: str) -> Errs:
    """A LabelSelector message (metav1 ValidateLabelSelector)."""
    errs = validate_labels(sel.matchLabels, f"{path}.matchLabels")
    for i, e in enumerate(sel.matchExpressions):
        p = f"{path}.matchExpressions[{i}]"
        if e.operator in ("In", "NotIn"):
            if not e.values:
                errs.append(required(f"{p}.values",
                                     "must be specified when `operator` is 'In' or 'NotIn'"))
        elif e.operator in ("Exists", "DoesNotExist"):
            if e.values:
                errs.append(forbidden(
                    f"{p}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", e.operator, "not a valid selector operator"))
        errs += with_errors(f"{p}.key", e.key, names.qualified_name(e.key))
        for j, v in enumerate(e.values):
            errs += with_errors(f"{p}.values[{j}]", v, names.label_value(v))
    return errs


def selector_is_empty(sel: Any) -> bool:
    return not sel.matchLabels and not sel.matchExpressions


def selector_matches(sel: Any, labels: Mapping[str, str]) -> bool | None:
    """Whether a LabelSelector message selects `labels`; None when it cannot be parsed."""
    try:
        return selectors.matches(selectors.from_message(sel), labels)
    except selectors.SelectorError:
        return None


def template_mismatch(path: str, labels: Mapping[str, str]) -> FieldError:
    return invalid(path, go_map(labels), "`selector` does not match template `labels`")


# ---- ports -------------------------------------------------------------------

def port_num_errors(port: int) -> list[str]:
    return [] if 1 <= port <= 65535 else [PORT_RANGE_MSG]


def port_name_errors(name: str) -> list[str]:
    """IANA_SVC_NAME, as Kubernetes' IsValidPortName."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch(r"[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_num_or_name(ios: Any, path: str) -> Errs:
    if ios.type == 1:
        return with_errors(path, ios.strVal, port_name_errors(ios.strVal))
    return with_errors(path, ios.intVal, port_num_errors(ios.intVal))


def protocol_errors(protocol: str, path: str) -> Errs:
    return one_of(protocol, path, PROTOCOLS)


# ---- addresses ---------------------------------------------------------------

def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def ip_errors(value: str, path: str) -> Errs:
    return [] if is_ip(value) else [invalid(path, value, IP_MSG)]


# ---- config keys -------------------------------------------------------------

def config_key_errors(key: str) -> list[str]:
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not re.fullmatch(r"[-._a-zA-Z0-9]+", key):
        errs.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
            "'[-._a-zA-Z0-9]+')"
        )
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


# ---- int-or-percent (maxSurge, maxUnavailable) -------------------------------

_PERCENT_RE = re.compile(r"^[0-9]+%$")
PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)


def int_or_percent(ios: Any, path: str) -> Errs:
    if ios.type == 1:
        if not _PERCENT_RE.match(ios.strVal):
            return [invalid(path, ios.strVal, PERCENT_MSG)]
        return []
    return nonnegative(ios.intVal, path)


def int_or_percent_value(ios: Any) -> int:
    """The number in 3 or "25%" (25); -1 when the percentage is malformed."""
    if ios.type == 1:
        return int(ios.strVal[:-1]) if _PERCENT_RE.match(ios.strVal) else -1
    return int(ios.intVal)


def not_more_than_100_percent(ios: Any, path: str) -> Errs:
    if ios.type == 1 and _PERCENT_RE.match(ios.strVal) and int(ios.strVal[:-1]) > 100:
        return [invalid(path, ios.strVal, "must not be greater than 100%")]
    return []


# ---- quantities --------------------------------------------------------------

def parse_quantity(text: str, path: str, errs: Errs) -> Any:
    """The Decimal value of a Quantity string; records an error and returns None if bad."""
    try:
        return quantity.parse(text)
    except ValueError as e:
        errs.append(invalid(path, text, str(e)))
        return None


def duplicate_names(items: Iterable[tuple[str, str]]) -> Errs:
    """`Duplicate value` for each (path, name) whose name was already seen."""
    seen: set[str] = set()
    errs: Errs = []
    for path, name in items:
        if name in seen:
            errs.append(duplicate(path, name))
        elif name:
            seen.add(name)
    return errs
