"""Quantities and label/field selectors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubelite.api import meta_pb2
from kubelite.objects import quantity, selectors


@pytest.mark.parametrize("text,value", [
    ("100m", Decimal("0.1")), ("1.5", Decimal("1.5")), ("128Mi", Decimal(128 * 2**20)),
    ("1G", Decimal(10**9)), ("1e3", Decimal(1000)), ("2Ki", Decimal(2048)), ("0", Decimal(0)),
    ("500u", Decimal("0.0005")),
])
def test_quantity_parse(text: str, value: Decimal) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1.5.5x", "12 Mi", "Mi", "1Qi"])
def test_quantity_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="quantities must match the regular expression"):
        quantity.parse(bad)


def test_quantity_helpers() -> None:
    assert quantity.milli("1.5") == 1500 and quantity.milli("100m") == 100
    assert quantity.value("1.5Ki") == 1536
    assert quantity.format_bytes(128 * 2**20) == "128Mi"
    assert quantity.format_milli(2000) == "2" and quantity.format_milli(250) == "250m"
    assert quantity.canonical_input(0.5) == "0.5" and quantity.canonical_input(2) == "2"


def test_selector_grammar() -> None:
    sel = selectors.parse("app=web, tier in (fe,be),env!=prod,gpu,!legacy,x==y,t notin (a)")
    assert [str(r) for r in sel] == ["app=web", "tier in (fe,be)", "env!=prod", "gpu",
                                     "!legacy", "x==y", "t notin (a)"]
    labels = {"app": "web", "tier": "fe", "gpu": "1", "x": "y", "t": "b"}
    assert selectors.matches(sel, labels)
    assert not selectors.matches(sel, {**labels, "legacy": "1"})
    assert not selectors.matches(sel, {**labels, "env": "prod"})
    assert selectors.matches(selectors.parse("env!=prod"), {})
    assert selectors.matches([], {"any": "thing"})


@pytest.mark.parametrize("bad", ["app in web", "app in ()", "=x", "a b", "app=web,", "a=(b)",
                                 "Bad Key=1", "k=v v"])
def test_selector_errors(bad: str) -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse(bad)


def test_label_selector_message() -> None:
    m = meta_pb2.LabelSelector(matchLabels={"app": "web"})
    m.matchExpressions.add(key="tier", operator="In", values=["fe"])
    m.matchExpressions.add(key="old", operator="DoesNotExist")
    sel = selectors.from_message(m)
    assert selectors.matches(sel, {"app": "web", "tier": "fe"})
    assert not selectors.matches(sel, {"app": "web", "tier": "fe", "old": "1"})
    m.matchExpressions.add(key="x", operator="Like")
    with pytest.raises(selectors.SelectorError):
        selectors.from_message(m)


def test_field_selectors() -> None:
    reqs = selectors.parse_fields("status.phase=Running,spec.nodeName!=n1",
                                  {"status.phase", "spec.nodeName"})
    obj = {"status": {"phase": "Running"}, "spec": {"nodeName": "n2"}}
    assert selectors.fields_match(reqs, obj)
    assert not selectors.fields_match(reqs, {**obj, "spec": {"nodeName": "n1"}})
    with pytest.raises(selectors.SelectorError, match="field label not supported: spec.x"):
        selectors.parse_fields("spec.x=1", {"status.phase"})
