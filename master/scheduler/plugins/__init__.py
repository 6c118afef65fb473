"""The default plugins, in Kubernetes' order, with its default score weights."""

from __future__ import annotations

from master.scheduler.framework import Plugin, Profile
from master.scheduler.plugins.basic import ImageLocality, NodeName, NodePorts, NodeUnschedulable
from master.scheduler.plugins.interpod import InterPodAffinity
from master.scheduler.plugins.nodeaffinity import NodeAffinity
from master.scheduler.plugins.resources import (
    BalancedAllocation,
    LeastAllocated,
    NodeResourcesFit,
)
from master.scheduler.plugins.spread import SelectorSpread
from master.scheduler.plugins.taints import TaintToleration
from master.scheduler.plugins.volumes import VolumeBinding

__all__ = ["default_plugins", "default_profile"]


def default_plugins() -> list[Plugin]:
    return [
        NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
        NodeResourcesFit(), VolumeBinding(), InterPodAffinity(), LeastAllocated(),
        BalancedAllocation(),
        SelectorSpread(), ImageLocality(),
    ]


def default_profile(percentage_of_nodes_to_score: int = 0) -> Profile:
    return Profile(default_plugins(), percentage_of_nodes_to_score)
