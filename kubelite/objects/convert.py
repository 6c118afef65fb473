"""Manifest dicts <-> typed protobuf messages: the one conversion layer.

Every path (CLI, API server, tests) goes through here so the wire and etcd
stay typed. Proto field names are Kubernetes' JSON names, so the mapping is
1:1 except for two Kubernetes types protobuf's JSON mapping cannot express:

- IntOrString: written `80`, `"http"` or `"25%"`; stored as the IntOrString
  message {type, intVal, strVal}.
- Quantity: written `1`, `0.5`, `"100m"`, `"128Mi"`; stored as Quantity{string}
  after the syntax is checked.

Decoding is strict like `kubectl apply --validate=strict`: an unknown field or
a value of the wrong type is an error naming the field path, e.g.
`spec.template.spec.containers[0].imagePullPolcy: unknown field`, and every
such error in the document is reported at once.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kubelite.objects import quantity
from kubelite.objects.errors import FieldError, Invalid

M = TypeVar("M", bound=Message)

INT_OR_STRING = "kubelite.v1.IntOrString"
QUANTITY = "kubelite.v1.Quantity"

_INT_TYPES = {
    FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64,
}
_INT32_TYPES = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_repeated(field: FieldDescriptor) -> bool:
    # `label` is deprecated in newer protobuf releases; prefer is_repeated.
    rep = getattr(field, "is_repeated", None)
    if rep is not None:
        return bool(rep)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _is_map(field: FieldDescriptor) -> bool:
    return (
        field.type == FieldDescriptor.TYPE_MESSAGE
        and field.message_type.GetOptions().map_entry
        and _is_repeated(field)
    )


def from_dict(data: Any, cls: type[M], path: str = "") -> M:
    """Decode a manifest dict into `cls`, raising Invalid with every field error."""
    errors: list[FieldError] = []
    msg = cls()
    if not isinstance(data, dict):
        raise Invalid([FieldError(path, f"expected object, got {_type_name(data)}")])
    _fill(msg, data, path, errors)
    if errors:
        raise Invalid(errors)
    return msg


def _fill(msg: Message, data: dict[str, Any], path: str, errors: list[FieldError]) -> None:
    desc: Descriptor = msg.DESCRIPTOR
    for key, value in data.items():
        fpath = _join(path, str(key))
        field = desc.fields_by_name.get(key) if isinstance(key, str) else None
        if field is None:
            errors.append(FieldError(fpath, "unknown field"))
            continue
        if value is None:  # null means unset, as in Kubernetes
            continue
        if _is_map(field):
            if not isinstance(value, dict):
                errors.append(FieldError(fpath, f"expected object, got {_type_name(value)}"))
                continue
            target = getattr(msg, key)
            vfield = field.message_type.fields_by_name["value"]
            for mk, mv in value.items():
                mpath = f"{fpath}[{mk}]"
                if not isinstance(mk, str):
                    mk = str(mk)
                if vfield.type == FieldDescriptor.TYPE_MESSAGE:
                    sub = target[mk]
                    _fill_value(sub, vfield, mv, mpath, errors)
                else:
                    conv = _scalar(vfield, mv, mpath, errors)
                    if conv is not None:
                        target[mk] = conv
        elif _is_repeated(field):
            if not isinstance(value, list):
                errors.append(FieldError(fpath, f"expected array, got {_type_name(value)}"))
                continue
            target = getattr(msg, key)
            for i, item in enumerate(value):
                ipath = f"{fpath}[{i}]"
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    if item is None:
                        errors.append(FieldError(ipath, "expected object, got null"))
                        continue
                    _fill_value(target.add(), field, item, ipath, errors)
                else:
                    conv = _scalar(field, item, ipath, errors)
                    if conv is not None:
                        target.append(conv)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            sub = getattr(msg, key)
            sub.SetInParent()
            _fill_value(sub, field, value, fpath, errors)
        else:
            conv = _scalar(field, value, fpath, errors)
            if conv is not None:
                setattr(msg, key, conv)


def _fill_value(
    sub: Message, field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]
) -> None:
    full = field.message_type.full_name
    if full == INT_OR_STRING:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            errors.append(FieldError(path, f"expected integer or string, got {_type_name(value)}"))
        elif isinstance(value, int):
            sub.type, sub.intVal = 0, value  # type: ignore[attr-defined]
        else:
            sub.type, sub.strVal = 1, value  # type: ignore[attr-defined]
    elif full == QUANTITY:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            errors.append(FieldError(path, f"expected quantity, got {_type_name(value)}"))
            return
        text = quantity.canonical_input(value)
        try:
            quantity.parse(text)
        except ValueError as e:
            errors.append(FieldError(path, f'Invalid value: "{text}": {e}'))
            return
        sub.string = text  # type: ignore[attr-defined]
    elif isinstance(value, dict):
        _fill(sub, value, path, errors)
    else:
        errors.append(FieldError(path, f"expected object, got {_type_name(value)}"))


def _scalar(field: FieldDescriptor, value: Any, path: str, errors: list[FieldError]) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return value
        errors.append(FieldError(path, f"expected string, got {_type_name(value)}"))
    elif t == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return value
        errors.append(FieldError(path, f"expected boolean, got {_type_name(value)}"))
    elif t in _INT_TYPES:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            limit = 2**31 if t in _INT32_TYPES else 2**63
            if -limit <= value < limit:
                return value
            errors.append(FieldError(path, f"Invalid value: {value}: out of range"))
        else:
            errors.append(FieldError(path, f"expected integer, got {_type_name(value)}"))
    elif t in _FLOAT_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        errors.append(FieldError(path, f"expected number, got {_type_name(value)}"))
    elif t == FieldDescriptor.TYPE_BYTES:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                errors.append(FieldError(path, "illegal base64 data"))
        else:
            errors.append(FieldError(path, f"expected base64 string, got {_type_name(value)}"))
    else:  # pragma: no cover - no enums in our protos
        errors.append(FieldError(path, f"unsupported field type {t}"))
    return None


def to_dict(msg: Message) -> dict[str, Any]:
    """Encode a message as a manifest dict (Kubernetes' JSON shape, empty fields omitted)."""
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        out[field.name] = _encode(field, value)
    return out


def _encode(field: FieldDescriptor, value: Any) -> Any:
    if _is_map(field):
        vfield = field.message_type.fields_by_name["value"]
        return {k: _encode_one(vfield, v) for k, v in sorted(value.items())}
    if _is_repeated(field):
        return [_encode_one(field, v) for v in value]
    return _encode_one(field, value)


def _encode_one(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        full = field.message_type.full_name
        if full == INT_OR_STRING:
            return value.strVal if value.type == 1 else value.intVal
        if full == QUANTITY:
            return value.string
        return to_dict(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    return value


def int_or_string(value: int | str) -> Any:
    """Build an IntOrString message from a scalar (for code that sets fields)."""
    from kubelite.api import meta_pb2

    if isinstance(value, int):
        return meta_pb2.IntOrString(type=0, intVal=value)
    return meta_pb2.IntOrString(type=1, strVal=value)


def int_or_string_value(ios: Any) -> int | str | None:
    """The scalar an IntOrString holds; None when it was never set."""
    if ios.type == 1:
        return str(ios.strVal)
    return int(ios.intVal)
