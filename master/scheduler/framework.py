"""The scheduling framework: a pure function of (pod, snapshot) -> decision.

    result = schedule(pod, snapshot, default_profile(), start=i)
    result.node            # the chosen node's name, or "" when none fits
    result.message()       # "0/3 nodes are available: 1 Insufficient cpu, ..."

A Plugin has a name and implements any of the extension points:

- pre_filter(state, pod, snapshot): compute what filter/score need once per
  pod (requests, affinity counts) into `state`; may reject the pod outright.
- filter(state, pod, node): a Status; Success keeps the node.
- score(state, pod, node): an integer, higher is better; normalize(state,
  pod, scores) rescales a plugin's raw scores to 0..100 in place.

No exceptions cross a plugin boundary as control flow: a plugin says
Unschedulable (resources may free up: retry when the cluster changes),
UnschedulableAndUnresolvable (this node can never take the pod as it is), or
Error. Scores are weighted per plugin and summed; the best node wins, ties
broken at random. As in Kubernetes, in a large cluster filtering stops once
enough feasible nodes are found (percentageOfNodesToScore, adaptive), and it
starts where the previous pod's search stopped, so all nodes get their turn.

Nothing here talks to the API: master/scheduler/scheduler.py keeps the
snapshot current and binds; tests drive this module with fake snapshots.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from master.scheduler.nodeinfo import NodeInfo

MAX_SCORE = 100
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5


class Code(IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.SUCCESS

    @staticmethod
    def unschedulable(plugin: str, *reasons: str) -> Status:
        return Status(Code.UNSCHEDULABLE, reasons, plugin)

    @staticmethod
    def unresolvable(plugin: str, *reasons: str) -> Status:
        return Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, reasons, plugin)

    @staticmethod
    def error(plugin: str, reason: str) -> Status:
        return Status(Code.ERROR, (reason,), plugin)


SUCCESS = Status()


class Plugin:
    """Base class: override the extension points the plugin implements."""

    name = "Plugin"
    weight = 1  # for scoring

    def pre_filter(self, state: dict[str, Any], pod: Any, snapshot: Snapshot) -> Status:
        return SUCCESS

    def filter(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> Status:
        return SUCCESS

    def score(self, state: dict[str, Any], pod: Any, node: NodeInfo) -> int:
        return 0

    def skip_filter(self, state: dict[str, Any], pod: Any) -> bool:
        """After pre_filter: True when filter would pass every node (not run at all)."""
        return False

    def skip_score(self, state: dict[str, Any], pod: Any) -> bool:
        """After pre_filter: True when score would be equal on every node."""
        return False

    def normalize(self, state: dict[str, Any], pod: Any, scores: dict[str, int]) -> None:
        """Rescale raw scores to 0..MAX_SCORE in place; default: clamp."""
        for k, v in scores.items():
            scores[k] = max(0, min(MAX_SCORE, v))

    def implements(self, point: str) -> bool:
        return getattr(type(self), point) is not getattr(Plugin, point)


@dataclass
class Snapshot:
    """Nodes with the pods bound (or assumed) to them, as of one moment."""

    nodes: list[NodeInfo]

    def __post_init__(self) -> None:
        self.by_name = {n.name: n for n in self.nodes}
        self._image_counts: Counter[str] | None = None

    def image_counts(self) -> Counter[str]:
        """How many nodes have each image (computed once per snapshot)."""
        if self._image_counts is None:
            self._image_counts = Counter(i for n in self.nodes for i in n.images)
        return self._image_counts

    @classmethod
    def build(cls, nodes: Iterable[Any], pods: Iterable[Any]) -> Snapshot:
        infos = {n.metadata.name: NodeInfo(n) for n in nodes}
        for p in pods:
            info = infos.get(p.spec.nodeName)
            if info is not None:
                info.add_pod(p)
        return cls(list(infos.values()))


@dataclass
class Profile:
    """The plugins of one scheduler, in order, with their score weights."""

    plugins: list[Plugin]
    percentage_of_nodes_to_score: int = 0  # 0: adaptive, as in Kubernetes

    def __post_init__(self) -> None:
        self.pre_filters = [p for p in self.plugins if p.implements("pre_filter")]
        self.filters = [p for p in self.plugins if p.implements("filter")]
        self.scorers = [p for p in self.plugins if p.implements("score")]


@dataclass
class Result:
    node: str = ""
    evaluated: int = 0
    feasible: int = 0
    # Why each rejected node was rejected (only for nodes that were evaluated).
    diagnosis: dict[str, Status] = field(default_factory=dict)
    # The pod itself was rejected before any node was looked at.
    pre_filter_status: Status | None = None
    scores: dict[str, int] = field(default_factory=dict)
    total_nodes: int = 0
    next_start: int = 0

    def message(self) -> str:
        """Kubernetes' FailedScheduling text: `0/3 nodes are available: 1 ..., 2 ....`"""
        head = f"0/{self.total_nodes} nodes are available"
        if self.pre_filter_status is not None:
            return f"{head}: {'; '.join(self.pre_filter_status.reasons)}."
        if self.total_nodes == 0:
            return "no nodes available to schedule pods"
        counts: Counter[str] = Counter()
        for status in self.diagnosis.values():
            for reason in status.reasons:
                counts[reason] += 1
        parts = sorted(f"{n} {reason}" for reason, n in counts.items())
        return f"{head}: {', '.join(parts)}." if parts else f"{head}."

    @property
    def unresolvable_everywhere(self) -> bool:
        return bool(self.diagnosis) and all(
            s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE for s in self.diagnosis.values())


def num_feasible_nodes_to_find(total: int, percentage: int = 0) -> int:
    """How many feasible nodes are enough (Kubernetes' adaptive percentage)."""
    if total < MIN_FEASIBLE_NODES_TO_FIND:
        return total
    if percentage <= 0:
        percentage = max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - total // 125)
    if percentage >= 100:
        return total
    return max(MIN_FEASIBLE_NODES_TO_FIND, total * percentage // 100)


def schedule(pod: Any, snapshot: Snapshot, profile: Profile, *, start: int = 0,
             rng: random.Random | None = None) -> Result:
    """Pick a node for `pod` (never mutates the snapshot or the pod)."""
    total = len(snapshot.nodes)
    result = Result(total_nodes=total, next_start=start)
    if total == 0:
        return result
    state: dict[str, Any] = {}
    for p in profile.pre_filters:
        s = p.pre_filter(state, pod, snapshot)
        if not s.ok:
            result.pre_filter_status = s
            return result

    filters = [p for p in profile.filters if not p.skip_filter(state, pod)]
    want = num_feasible_nodes_to_find(total, profile.percentage_of_nodes_to_score)
    feasible: list[NodeInfo] = []
    i = 0
    nodes = snapshot.nodes
    for i in range(total):
        node = nodes[(start + i) % total]
        for p in filters:
            status = p.filter(state, pod, node)
            if status is not SUCCESS and status.code != Code.SUCCESS:
                result.diagnosis[node.name] = status
                break
        else:
            feasible.append(node)
            if len(feasible) >= want:
                break
    result.evaluated = i + 1
    result.next_start = (start + result.evaluated) % total
    result.feasible = len(feasible)
    if not feasible:
        return result
    if len(feasible) == 1:
        result.node = feasible[0].name
        return result

    totals = dict.fromkeys((n.name for n in feasible), 0)
    for p in profile.scorers:
        if p.skip_score(state, pod):
            continue
        scores = {n.name: p.score(state, pod, n) for n in feasible}
        p.normalize(state, pod, scores)
        for name, v in scores.items():
            totals[name] += v * p.weight
    result.scores = totals
    best = max(totals.values())
    winners = [name for name, v in totals.items() if v == best]
    result.node = winners[0] if len(winners) == 1 else (rng or random).choice(winners)
    return result


def scale_to_max(scores: dict[str, int], *, reverse: bool = False) -> None:
    """Min-0 / max-MAX_SCORE rescale in place (reverse: fewer is better)."""
    if not scores:
        return
    top = max(scores.values())
    for k, v in scores.items():
        if top == 0:
            scores[k] = MAX_SCORE if reverse else 0
        else:
            scaled = v * MAX_SCORE // top
            scores[k] = MAX_SCORE - scaled if reverse else scaled
