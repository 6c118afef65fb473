"""Field errors, worded like Kubernetes' field.ErrorList.

Validation collects every problem it finds (a user fixing a manifest wants
all of them at once); `Invalid` carries the list and renders the message
Kubernetes prints: `Deployment.apps "web" is invalid: [spec.replicas: ...]`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}" if self.path else self.detail


def required(path: str, what: str = "") -> FieldError:
    return FieldError(path, "Required value" + (f": {what}" if what else ""))


def invalid(path: str, value: object, detail: str) -> FieldError:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return FieldError(path, f"Invalid value: {shown}: {detail}")


def unsupported(path: str, value: object, allowed: list[str]) -> FieldError:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    choices = ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, f"Unsupported value: {shown}: supported values: {choices}")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, f"Forbidden: {detail}")


def duplicate(path: str, value: object) -> FieldError:
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return FieldError(path, f"Duplicate value: {shown}")


class Invalid(ValueError):
    """An object failed decoding or validation; nothing was written."""

    def __init__(self, errors: list[FieldError], *, kind: str = "", name: str = "") -> None:
        self.errors = list(errors)
        self.kind = kind
        self.name = name
        super().__init__(self.message())

    def message(self) -> str:
        items = [str(e) for e in self.errors]
        body = items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"
        if self.kind:
            return f'{self.kind} "{self.name}" is invalid: {body}'
        return body
