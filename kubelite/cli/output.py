"""-o yaml | json | name | wide and the default table, for get and friends."""

from __future__ import annotations

import json
from datetime import datetime, UTC
from typing import Any

import yaml

from kubelite.cli import printers
from kubelite.cli.context import CLIError, Context, as_dict, ref
from kubelite.objects import kinds

FORMATS = ("", "wide", "yaml", "json", "name")


class _Dumper(yaml.SafeDumper):
    pass


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CLIError(f'unable to match a printer suitable for the output format "{fmt}", '
                       "allowed formats are: json,name,wide,yaml")


def render(ctx: Context, kind: kinds.Kind, objs: list[Any], *, fmt: str,
           with_namespace: bool = False, no_headers: bool = False,
           show_labels: bool = False, single: bool = False) -> str:
    dicts = [as_dict(o) for o in objs]
    if fmt == "name":
        return "".join(ref(kind, d["metadata"]["name"]) + "\n" for d in dicts)
    if fmt in ("yaml", "json"):
        doc: Any = dicts[0] if single and len(dicts) == 1 else {
            "apiVersion": "v1", "items": dicts, "kind": "List",
            "metadata": {"resourceVersion": ""}}
        if fmt == "json":
            return json.dumps(doc, indent=4) + "\n"
        return to_yaml(doc)
    text = printers.table(kind.kind, dicts, wide=fmt == "wide", with_namespace=with_namespace,
                          show_labels=show_labels, no_headers=no_headers,
                          now=datetime.now(UTC))
    return text if not text or text.endswith("\n") else text + "\n"
