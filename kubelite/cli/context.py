"""What every subcommand gets: parsed flags, the config, a lazily made client."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from kubelite.client import Client, ClientConfig
from kubelite.objects import convert, kinds


class CLIError(Exception):
    """A user error: printed as `error: <message>`, exit code 1."""


@dataclass
class Context:
    args: argparse.Namespace
    config: ClientConfig
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.config, timeout=getattr(self.args, "request_timeout", 30))
        return self._client

    @property
    def namespace(self) -> str:
        return self.args.namespace or self.config.namespace or "default"

    def print(self, *parts: Any) -> None:
        print(*parts, file=self.out)

    def warn(self, *parts: Any) -> None:
        print(*parts, file=self.err)


def resolve_kind(name: str) -> kinds.Kind:
    try:
        return kinds.by_resource(name)
    except kinds.UnknownKind as e:
        raise CLIError(str(e)) from None


def type_name_args(words: list[str]) -> list[tuple[kinds.Kind, list[str]]]:
    """`pods a b`, `pod/a deploy/b`, `pods,svc` -> [(kind, names)] in the order given."""
    if not words:
        raise CLIError("You must specify the type of resource to get. Use "
                       '"kubelite api-resources" for a complete list of supported resources.')
    if all("/" in w for w in words):
        out: list[tuple[kinds.Kind, list[str]]] = []
        for w in words:
            t, _, n = w.partition("/")
            if not n:
                raise CLIError(f"arguments in resource/name form must have a single resource "
                               f"and name: {w}")
            k = resolve_kind(t)
            if out and out[-1][0] == k:
                out[-1][1].append(n)
            else:
                out.append((k, [n]))
        return out
    if any("/" in w for w in words):
        raise CLIError("there is no need to specify a resource type as a separate argument "
                       "when passing arguments in resource/name form")
    types = words[0].split(",")
    names = words[1:]
    if len(types) > 1 and names:
        raise CLIError("you may only specify a single resource type")
    expanded: list[str] = []
    for t in types:
        expanded.extend(ALL_TYPES if t == "all" else [t])
    return [(resolve_kind(t), list(names)) for t in expanded]


# What `get all` shows, as in kubectl.
ALL_TYPES = ["pods", "services", "daemonsets", "deployments", "replicasets", "statefulsets",
             "replicationcontrollers", "horizontalpodautoscalers", "cronjobs", "jobs"]


def ref(kind: kinds.Kind, name: str) -> str:
    """`deployment.apps/web`, `pod/web-1`: how kubectl names an object in messages."""
    group = f".{kind.group}" if kind.group else ""
    return f"{kind.singular}{group}/{name}"


def as_dict(obj: Any) -> dict[str, Any]:
    return convert.to_dict(obj)
