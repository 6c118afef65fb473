"""Label and field selectors.

Label selector strings use Kubernetes' grammar:
    app=web, tier!=cache, env in (prod,staging), track notin (canary), gpu, !legacy
A LabelSelector message (matchLabels + matchExpressions) converts to the same
requirement list, so matching is one function whichever form arrived.
An empty selector matches everything; a selector message that is absent
matches nothing (callers decide which they have).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubelite.objects import names

OPS = ("=", "==", "!=", "in", "notin", "exists", "!")


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # one of OPS ("exists" / "!" take no values)
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op in ("=", "==", "in"):
            return self.key in labels and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if self.op == "exists":
            return self.key in labels
        return self.key not in labels  # "!"

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return "!" + self.key
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        return f"{self.key}{self.op}{self.values[0]}"


Selector = list[Requirement]

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=]+)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise SelectorError(f"unable to parse requirement: unexpected character at {pos}")
        out.append(m.group(1))
        pos = m.end()
    return out


def parse(text: str) -> Selector:
    """Parse a label selector string; SelectorError names the bad requirement."""
    toks = _tokens(text)
    reqs: Selector = []
    i = 0

    def expect_ident(what: str) -> str:
        nonlocal i
        if i >= len(toks) or toks[i] in ("(", ")", ",", "=", "==", "!=", "!"):
            found = toks[i] if i < len(toks) else ""
            raise SelectorError(f"unable to parse requirement: found '{found}', expected: {what}")
        i += 1
        return toks[i - 1]

    while i < len(toks):
        if toks[i] == "!":
            i += 1
            key = expect_ident("identifier")
            reqs.append(_checked(Requirement(key, "!")))
        else:
            key = expect_ident("identifier")
            if i >= len(toks) or toks[i] == ",":
                reqs.append(_checked(Requirement(key, "exists")))
            elif toks[i] in ("=", "==", "!="):
                op = toks[i]
                i += 1
                value = ""
                if i < len(toks) and toks[i] not in (",",):
                    value = expect_ident("identifier")
                reqs.append(_checked(Requirement(key, op, (value,))))
            elif toks[i] in ("in", "notin"):
                op = toks[i]
                i += 1
                if i >= len(toks) or toks[i] != "(":
                    raise SelectorError(f"unable to parse requirement: expected '(' after {op}")
                i += 1
                values: list[str] = []
                while True:
                    if i >= len(toks):
                        raise SelectorError("unable to parse requirement: missing ')'")
                    if toks[i] == ")":
                        i += 1
                        break
                    if toks[i] == ",":
                        i += 1
                        continue
                    values.append(expect_ident("value"))
                reqs.append(_checked(Requirement(key, op, tuple(values))))
            else:
                raise SelectorError(
                    f"unable to parse requirement: found '{toks[i]}', "
                    "expected: '=', '!=', '==', 'in', notin'"
                )
        if i < len(toks):
            if toks[i] != ",":
                raise SelectorError(
                    f"unable to parse requirement: found '{toks[i]}', expected: ','")
            i += 1
            if i >= len(toks):
                raise SelectorError("found '', expected: identifier after ','")
    return reqs


def _checked(req: Requirement) -> Requirement:
    errs = names.qualified_name(req.key)
    if errs:
        raise SelectorError(f"invalid label key \"{req.key}\": {'; '.join(errs)}")
    if req.op in ("in", "notin") and not req.values:
        raise SelectorError(f"for '{req.op}' operator, values set can't be empty")
    for v in req.values:
        verrs = names.label_value(v)
        if verrs:
            raise SelectorError(f"invalid label value: \"{v}\": {'; '.join(verrs)}")
    return req


def from_message(sel: Any) -> Selector:
    """Requirements of a LabelSelector message (matchLabels AND matchExpressions)."""
    reqs = [Requirement(k, "=", (v,)) for k, v in sorted(sel.matchLabels.items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.matchExpressions:
        if e.operator not in ops:
            raise SelectorError(f'"{e.operator}" is not a valid label selector operator')
        reqs.append(Requirement(e.key, ops[e.operator], tuple(e.values)))
    return reqs


def from_map(labels: Mapping[str, str]) -> Selector:
    """An equality selector (ReplicationController, Service)."""
    return [Requirement(k, "=", (v,)) for k, v in sorted(labels.items())]


def matches(selector: Selector, labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in selector)


def to_string(selector: Selector) -> str:
    return ",".join(str(r) for r in selector)


# ---- field selectors ---------------------------------------------------------

@dataclass(frozen=True)
class FieldRequirement:
    path: str
    op: str  # "=" or "!="
    value: str


def parse_fields(text: str, allowed: set[str]) -> list[FieldRequirement]:
    """`status.phase=Running,spec.nodeName!=n1`; only fields in `allowed` may be used."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise SelectorError(f"invalid field selector: '{part}'")
        path, op, value = m.groups()
        if path not in allowed:
            raise SelectorError(f'field label not supported: {path}')
        out.append(FieldRequirement(path, "!=" if op == "!=" else "=", value))
    return out


def field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part, "")
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return "" if isinstance(cur, (dict, list)) else str(cur)


def fields_match(reqs: list[FieldRequirement], obj: dict[str, Any]) -> bool:
    for r in reqs:
        equal = field_value(obj, r.path) == r.value
        if equal != (r.op == "="):
            return False
    return True
