"""Deployment helpers shared by the deployment controller and the CLI.

- the pod-template-hash: FNV-1a (32 bit) of the template's deterministic
  protobuf encoding, plus the collisionCount as 4 little-endian bytes when
  set, rendered as its decimal digits mapped onto a vowel-free alphabet (as
  Kubernetes renders its hash), so the same template always gives the same
  ReplicaSet name and label value;
- template equality ignoring that label, the revision annotations;
- maxSurge / maxUnavailable resolution: a percentage of the desired replicas,
  surge rounded up and unavailable rounded down; if both come to 0,
  unavailable becomes 1.
"""

from __future__ import annotations

import math
from typing import Any

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Deployment annotations never copied onto its ReplicaSets (nor back by a rollback).
SKIP_COPY = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
                       MAX_REPLICAS, ROLLBACK_TO})

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # no vowels, no 0/1/3: never spells a word
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(_SAFE[ord(c) % len(_SAFE)] for c in text)


def without_hash(template: Any) -> Any:
    """A copy of a PodTemplateSpec without the pod-template-hash label."""
    out = type(template)()
    out.CopyFrom(template)
    if HASH_LABEL in out.metadata.labels:
        del out.metadata.labels[HASH_LABEL]
    return out


def pod_template_hash(template: Any, collision_count: int | None = None) -> str:
    data = without_hash(template).SerializeToString(deterministic=True)
    h = fnv32a(data)
    if collision_count is not None:
        h = fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def equal_ignore_hash(a: Any, b: Any) -> bool:
    return bool(without_hash(a) == without_hash(b))


def revision(obj: Any) -> int:
    """The revision annotation as a number; 0 when absent or unreadable."""
    text = obj.metadata.annotations.get(REVISION, "")
    return int(text) if text.isdigit() else 0


def scaled_value(ios: Any, total: int, round_up: bool) -> int:
    """An IntOrString (3 or "25%") against `total`; a percentage rounds up or down."""
    if ios.type != 1:
        return int(ios.intVal)
    text = str(ios.strVal)
    if not text.endswith("%") or not text[:-1].isdigit():
        raise ValueError(f"invalid value for IntOrString: invalid value {text!r}: "
                         "string is not a percentage")
    value = int(text[:-1]) * total / 100
    return int(math.ceil(value) if round_up else math.floor(value))


def resolve_fenceposts(max_surge: Any | None, max_unavailable: Any | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable) for `desired` replicas; unset counts as 0."""
    surge = scaled_value(max_surge, desired, True) if max_surge is not None else 0
    unavailable = (scaled_value(max_unavailable, desired, False)
                   if max_unavailable is not None else 0)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # rounding made both 0: take pods down one at a time
    return surge, unavailable


def is_rolling(d: Any) -> bool:
    return d.spec.strategy.type in ("", "RollingUpdate")


def replicas(d: Any) -> int:
    return int(d.spec.replicas) if d.spec.HasField("replicas") else 1


def _fenceposts(d: Any) -> tuple[int, int]:
    ru = d.spec.strategy.rollingUpdate
    has = d.spec.strategy.HasField("rollingUpdate")
    return resolve_fenceposts(ru.maxSurge if has and ru.HasField("maxSurge") else None,
                              ru.maxUnavailable if has and ru.HasField("maxUnavailable")
                              else None, replicas(d))


def max_surge(d: Any) -> int:
    if not is_rolling(d):
        return 0
    return _fenceposts(d)[0]


def max_unavailable(d: Any) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(_fenceposts(d)[1], replicas(d))
