"""What the server does to an object on create and update, whatever its kind.

Kubernetes calls these the registry strategies: the server owns uid,
creationTimestamp, generation and resourceVersion; Update never changes
status and UpdateStatus never changes anything else; generation moves only
when the desired state (everything but metadata and status) changes.
"""

from __future__ import annotations

import secrets
import string
import uuid
from datetime import datetime, UTC
from typing import Any

from google.protobuf.message import Message

# Kubernetes' generated-name alphabet leaves out vowels and look-alikes, so a
# suffix never spells a word or is misread.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SUFFIX_LEN = 5


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str) -> str:
    # Kubernetes truncates the prefix so the name stays within 63 characters.
    prefix = prefix[: 63 - _SUFFIX_LEN]
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(_SUFFIX_LEN))


def _has(obj: Message, field: str) -> bool:
    return field in obj.DESCRIPTOR.fields_by_name


def desired_state(obj: Message) -> bytes:
    """Everything except metadata and status, serialized: what `generation` tracks."""
    clone = type(obj)()
    clone.CopyFrom(obj)
    for f in ("metadata", "status", "apiVersion", "kind"):
        if _has(clone, f):
            clone.ClearField(f)
    return clone.SerializeToString(deterministic=True)


def prepare_for_create(obj: Any) -> None:
    md = obj.metadata
    md.uid = str(uuid.uuid4())
    md.creationTimestamp = now_rfc3339()
    md.generation = 1
    md.resourceVersion = ""
    md.ClearField("deletionTimestamp")
    md.ClearField("deletionGracePeriodSeconds")
    md.selfLink = ""
    del md.managedFields[:]


def prepare_for_update(obj: Any, old: Any) -> None:
    """Keep what clients may not change and bump generation on a spec change."""
    md, omd = obj.metadata, old.metadata
    md.uid = omd.uid
    md.creationTimestamp = omd.creationTimestamp
    md.namespace = omd.namespace
    md.name = omd.name
    md.generation = omd.generation
    md.deletionTimestamp = omd.deletionTimestamp
    if omd.HasField("deletionGracePeriodSeconds"):
        md.deletionGracePeriodSeconds = omd.deletionGracePeriodSeconds
    else:
        md.ClearField("deletionGracePeriodSeconds")
    md.selfLink = ""
    del md.managedFields[:]
    if _has(obj, "status"):
        obj.ClearField("status")
        if old.HasField("status"):
            obj.status.CopyFrom(old.status)
    if desired_state(obj) != desired_state(old):
        md.generation = omd.generation + 1


def prepare_for_status_update(obj: Any, old: Any) -> Any:
    """The stored object with only status taken from `obj`."""
    out = type(old)()
    out.CopyFrom(old)
    out.ClearField("status")
    if obj.HasField("status"):
        out.status.CopyFrom(obj.status)
    return out


def random_token(n: int = 16) -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(n))
