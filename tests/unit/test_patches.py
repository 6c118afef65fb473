"""JSON merge patch (server) and apply's three-way patch (CLI)."""

from __future__ import annotations

from kubelite.cli.cmd_apply import three_way_patch
from master.apiserver.registry import merge_patch


def test_merge_patch_rfc7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) \
        == {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch({"a": 1}, {}) == {"a": 1}


def test_three_way_keeps_others_fields_and_removes_dropped_ones() -> None:
    last = {"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1", "y": "2"}}
    desired = {"metadata": {"labels": {"a": "1"}}, "data": {"x": "1"}}
    live = {"metadata": {"labels": {"a": "1", "b": "2", "hand": "yes"}, "uid": "u"},
            "data": {"x": "1", "y": "2"}}
    assert three_way_patch(last, desired, live) == {
        "metadata": {"labels": {"b": None}}, "data": {"y": None}}


def test_three_way_noop_when_live_already_matches() -> None:
    desired = {"spec": {"replicas": 3}}
    assert three_way_patch(desired, desired, {"spec": {"replicas": 3, "paused": False}}) == {}
    assert three_way_patch({}, desired, {"spec": {"replicas": 2}}) == {"spec": {"replicas": 3}}
