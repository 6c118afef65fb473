"""Reading manifests for `-f`: files, directories, `-` (stdin), YAML or JSON.

A file may hold several YAML documents or a `kind: List` (or `*List`) whose
items are objects. Each object is converted to its stored version and
decoded strictly; every error names the file and the field path, and no
object is sent to the server until all of them decoded.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubelite.objects import convert, kinds, versions
from kubelite.objects.errors import Invalid

_EXTENSIONS = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    pass


@dataclass
class Manifest:
    source: str
    raw: dict[str, Any]  # as written (after version conversion)
    kind: kinds.Kind
    obj: Any  # decoded message


def _paths(spec: str, recursive: bool) -> list[Path]:
    p = Path(spec)
    if p.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(f for f in p.glob(pattern) if f.suffix in _EXTENSIONS and f.is_file())
        return files
    if not p.exists():
        raise ManifestError(f'the path "{spec}" does not exist')
    return [p]


def _documents(text: str, source: str) -> list[Any]:
    stripped = text.lstrip()
    try:
        if stripped.startswith("{") or stripped.startswith("["):
            doc = json.loads(text)
            return doc if isinstance(doc, list) else [doc]
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise ManifestError(f'error parsing {source}: {e}') from None


def _flatten(doc: Any, source: str) -> list[dict[str, Any]]:
    if not isinstance(doc, dict):
        raise ManifestError(f"error validating {source}: expected an object, got "
                            f"{type(doc).__name__}")
    kind = doc.get("kind", "")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(f"error validating {source}: items must be a list")
        out: list[dict[str, Any]] = []
        for item in items:
            out.extend(_flatten(item, source))
        return out
    return [doc]


def decode(raw: dict[str, Any], source: str) -> Manifest:
    api_version, kind_name = raw.get("apiVersion"), raw.get("kind")
    if not kind_name:
        raise ManifestError(f'error validating "{source}": error validating data: '
                            "kind not set")
    if not api_version:
        raise ManifestError(f'error validating "{source}": error validating data: '
                            "apiVersion not set")
    try:
        kind = kinds.by_kind(str(api_version), str(kind_name))
    except kinds.UnknownKind as e:
        raise ManifestError(f'resource mapping not found for name: '
                            f'"{_name(raw)}" namespace: "{_namespace(raw)}" from "{source}": '
                            f"{e}") from None
    try:
        internal = versions.to_internal(raw)
        obj = convert.from_dict(internal, kind.message)
    except Invalid as e:
        raise ManifestError(f'error validating "{source}": {kind.kind} "{_name(raw)}": '
                            + "; ".join(str(x) for x in e.errors)) from None
    return Manifest(source, internal, kind, obj)


def _name(raw: dict[str, Any]) -> str:
    md = raw.get("metadata")
    return str(md.get("name") or md.get("generateName") or "") if isinstance(md, dict) else ""


def _namespace(raw: dict[str, Any]) -> str:
    md = raw.get("metadata")
    return str(md.get("namespace") or "") if isinstance(md, dict) else ""


def load(specs: list[str], *, recursive: bool = False) -> list[Manifest]:
    """Every object in the given -f arguments, decoded; raises on the first bad file."""
    if not specs:
        raise ManifestError("must specify one of -f and -k")
    out: list[Manifest] = []
    for spec in specs:
        if spec == "-":
            sources = [("STDIN", sys.stdin.read())]
        else:
            sources = [(str(p), p.read_text()) for p in _paths(spec, recursive)]
        for source, text in sources:
            for doc in _documents(text, source):
                for raw in _flatten(doc, source):
                    out.append(decode(raw, source))
    if not out:
        raise ManifestError("no objects passed to apply")
    return out
