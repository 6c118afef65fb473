"""Mutating admission applied to objects on create.

DefaultTolerationSeconds (Kubernetes' plugin of that name): every pod gets
tolerations for node.kubernetes.io/not-ready and .../unreachable, effect
NoExecute, with tolerationSeconds from --default-not-ready-toleration-seconds
and --default-unreachable-toleration-seconds (300 each), unless it already
has a toleration covering that taint (same key or an empty key, NoExecute
or an empty effect). So a pod on a node that stops answering is evicted
after 5 minutes, not at once. DaemonSet pods already carry both without
tolerationSeconds (the DaemonSet controller adds them), so they stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"


@dataclass(frozen=True)
class TolerationDefaults:
    not_ready_seconds: int = 300
    unreachable_seconds: int = 300


def _covers(t: Any, key: str) -> bool:
    return (t.key in (key, "")) and t.effect in ("NoExecute", "")


def default_toleration_seconds(spec: Any, defaults: TolerationDefaults) -> None:
    """Add the missing default NoExecute tolerations to a PodSpec (in place)."""
    for key, seconds in ((NOT_READY, defaults.not_ready_seconds),
                         (UNREACHABLE, defaults.unreachable_seconds)):
        if not any(_covers(t, key) for t in spec.tolerations):
            spec.tolerations.add(key=key, operator="Exists", effect="NoExecute",
                                 tolerationSeconds=seconds)


DEFAULTS = TolerationDefaults()
