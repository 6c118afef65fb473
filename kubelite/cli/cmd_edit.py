"""kubelite edit: open the live object in $EDITOR and update it on save.

The edit carries the resourceVersion it started from, so a concurrent change
makes the update fail with Conflict rather than silently overwrite it; the
edited file is kept so nothing typed is lost.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
from typing import Any

import yaml

from kubelite.cli import manifests, output
from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import convert


def add_parser(sub: Any) -> None:
    p = sub.add_parser("edit", help="Edit a resource on the server in $EDITOR")
    p.add_argument("words", nargs="+", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("--subresource", default="", choices=("", "status"))
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    groups = type_name_args(args.words)
    if len(groups) != 1 or len(groups[0][1]) != 1:
        raise CLIError("edit needs exactly one TYPE NAME")
    kind, (name,) = groups[0]
    ns = ctx.namespace if kind.namespaced else ""
    obj = ctx.client.get(kind.resource, name, ns)
    original = output.to_yaml(convert.to_dict(obj))
    editor = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="kubelite-edit-",
                                     delete=False) as f:
        f.write("# Edit the object below. Lines beginning with '#' are ignored;\n"
                "# an empty file aborts the edit.\n")
        f.write(original)
        path = f.name
    rc = subprocess.call([*shlex.split(editor), path])
    if rc != 0:
        raise CLIError(f"editor exited with status {rc}; your changes were saved to {path}")
    with open(path) as f:
        text = "".join(line for line in f if not line.lstrip().startswith("#"))
    if not text.strip():
        os.unlink(path)
        ctx.print("Edit cancelled, no changes made.")
        return 0
    try:
        edited = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CLIError(f"{e}\nyour changes were saved to {path}") from None
    if edited == yaml.safe_load(original):
        os.unlink(path)
        ctx.print("Edit cancelled, no changes made.")
        return 0
    try:
        m = manifests.decode(edited, path)
        if m.kind != kind or m.obj.metadata.name != name:
            raise CLIError(f"the edited object must stay {ref(kind, name)}; "
                           f"your changes were saved to {path}")
        m.obj.metadata.resourceVersion = obj.metadata.resourceVersion
        if args.subresource == "status":
            ctx.client.update_status(m.obj)
        else:
            ctx.client.update(m.obj)
    except manifests.ManifestError as e:
        raise CLIError(f"{e}\nyour changes were saved to {path}") from None
    except APIStatusError as e:
        ctx.warn(f"error: {ref(kind, name)} could not be updated: {e.message}")
        ctx.warn(f"your changes were saved to {path}")
        return 1
    os.unlink(path)
    ctx.print(f"{ref(kind, name)} edited")
    return 0
