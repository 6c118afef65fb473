"""kubelite rollout: status, history, undo, pause, resume and restart of Deployments,
as `kubectl rollout`.

- status: follows the Deployment (a watch) printing kubectl's progress lines
  until it is rolled out; exits 1 with `deployment "web" exceeded its progress
  deadline` when the Progressing condition says ProgressDeadlineExceeded, or
  on --timeout. -w=false prints the current state once.
- history: the REVISION / CHANGE-CAUSE table from the Deployment's
  ReplicaSets (their revision and kubernetes.io/change-cause annotations), or
  one revision's pod template with --revision.
- undo: client side, as kubectl does it: the template of the ReplicaSet with
  the wanted revision (default: the one before the current) is copied into the
  Deployment (without its pod-template-hash label), with that ReplicaSet's
  annotations; the controller then rolls out and gives it a new revision.
- pause / resume: spec.paused; restart: the template annotation
  kubectl.kubernetes.io/restartedAt, so every pod is replaced.

Writes are read-modify-write with the read resourceVersion, retried on a
conflict.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from kubelite.cli.cmd_node import parse_duration
from kubelite.cli.context import CLIError, Context, ref, type_name_args
from kubelite.cli.describe_pods import pod_template_section
from kubelite.cli.describe_writer import Writer
from kubelite.cli.printers_tabwriter import align
from kubelite.client import APIStatusError
from kubelite.objects import convert, kinds, rollout

TIMED_OUT = "ProgressDeadlineExceeded"
_CAS_RETRIES = 10


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("rollout", help="Manage the rollout of a resource")
    p.set_defaults(func=_usage)
    verbs = p.add_subparsers(dest="rollout_command", metavar="COMMAND")

    s = verbs.add_parser("status", help="Show the status of the rollout")
    _target(s)
    s.add_argument("-w", "--watch", default="true", nargs="?", const="true",
                   help="watch the status until the rollout is done (default true)")
    s.add_argument("--timeout", default="0s",
                   help="how long to wait before ending, e.g. 90s or 5m; 0: forever")
    s.add_argument("--revision", type=int, default=0,
                   help="pin to a specific revision; 0 means the latest")
    s.set_defaults(func=run_status)

    h = verbs.add_parser("history", help="View rollout history")
    _target(h)
    h.add_argument("--revision", type=int, default=0, help="show this revision's pod template")
    h.set_defaults(func=run_history)

    u = verbs.add_parser("undo", help="Undo a previous rollout")
    _target(u)
    u.add_argument("--to-revision", type=int, default=0,
                   help="the revision to roll back to; 0 means the previous one")
    u.set_defaults(func=run_undo)

    for verb, what in (("pause", "Mark the provided resource as paused"),
                       ("resume", "Resume a paused resource"),
                       ("restart", "Restart a resource")):
        v = verbs.add_parser(verb, help=what)
        _target(v)
        v.set_defaults(func=run_pause_resume_restart, verb=verb)


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("words", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-l", "--selector", default="")


def _usage(ctx: Context, args: argparse.Namespace) -> int:
    raise CLIError("You must specify a rollout subcommand: history, pause, restart, resume, "
                   "status or undo")


def _bool_flag(value: str, flag: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "t"):
        return True
    if v in ("false", "0", "f"):
        return False
    raise CLIError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseBool: '
                   f'parsing "{value}": invalid syntax')


def _targets(ctx: Context, args: argparse.Namespace) -> list[tuple[kinds.Kind, str]]:
    out: list[tuple[kinds.Kind, str]] = []
    if not args.words:
        raise CLIError("required resource not specified")
    for kind, names in type_name_args(args.words):
        if not names:
            if not args.selector:
                raise CLIError("resource(s) were provided, but no name was specified")
            objs, _ = ctx.client.list(kind.resource, ctx.namespace,
                                      label_selector=args.selector)
            names = sorted(o.metadata.name for o in objs)
        out.extend((kind, n) for n in names)
    return out


def _only_deployments(kind: kinds.Kind, what: str) -> None:
    if kind.kind != "Deployment":
        raise CLIError(f"no {what} has been implemented for "
                       f'{{"{kind.group}" "{kind.kind}"}}')


def _cas(ctx: Context, kind: kinds.Kind, name: str, change: Callable[[Any], None]) -> Any:
    """Read, change, write with the read resourceVersion; again on a conflict."""
    for _ in range(_CAS_RETRIES):
        obj = ctx.client.get(kind.resource, name, ctx.namespace)
        change(obj)
        try:
            return ctx.client.update(obj)
        except APIStatusError as e:
            if not e.conflict:
                raise
    raise CLIError(f"{ref(kind, name)} kept changing; giving up after {_CAS_RETRIES} attempts")


def _say(ctx: Context, text: str) -> None:
    ctx.print(text)
    ctx.out.flush()


# ---- status --------------------------------------------------------------------------

def deployment_status(d: Any, revision: int = 0) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); raises when the rollout failed."""
    name = d.metadata.name
    if revision > 0:
        current = rollout.revision(d)
        if current != revision:
            raise CLIError(f"desired revision ({revision}) is different from the running "
                           f"revision ({current})")
    if d.metadata.generation > d.status.observedGeneration:
        return "Waiting for deployment spec update to be observed...", False
    cond = next((c for c in d.status.conditions if c.type == "Progressing"), None)
    if cond is not None and cond.reason == TIMED_OUT:
        raise CLIError(f'deployment "{name}" exceeded its progress deadline')
    st = d.status
    want = rollout.replicas(d)
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if st.updatedReplicas < want:
        return f"{waiting}{st.updatedReplicas} out of {want} new replicas have been " \
               "updated...", False
    if st.replicas > st.updatedReplicas:
        return f"{waiting}{st.replicas - st.updatedReplicas} old replicas are pending " \
               "termination...", False
    if st.availableReplicas < st.updatedReplicas:
        return f"{waiting}{st.availableReplicas} of {st.updatedReplicas} updated replicas " \
               "are available...", False
    return f'deployment "{name}" successfully rolled out', True


def run_status(ctx: Context, args: argparse.Namespace) -> int:
    if args.watch.lower() not in ("true", "1", "t", "false", "0", "f"):
        # `-w deploy/web`, `-w deployment web`: -w is a bool flag, that was no value of it.
        try:
            kinds.by_resource(args.watch.split("/", 1)[0])
            args.words.insert(0, args.watch)
        except kinds.UnknownKind:
            args.words.append(args.watch)
        args.watch = "true"
    watch = _bool_flag(args.watch, "watch")
    timeout = parse_duration(args.timeout)
    targets = _targets(ctx, args)
    if len(targets) != 1:
        raise CLIError("rollout status is only supported on individual resources and resource "
                       "collections are not supported yet")
    kind, name = targets[0]
    _only_deployments(kind, "status viewer")
    deadline = time.monotonic() + timeout if timeout > 0 else None
    d = ctx.client.get(kind.resource, name, ctx.namespace)
    msg, done = deployment_status(d, args.revision)
    _say(ctx, msg)
    if done or not watch:
        return 0
    last, rv = msg, d.metadata.resourceVersion
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise CLIError("timed out waiting for the condition")
        try:
            for typ, obj, _ in ctx.client.watch(kind.resource, ctx.namespace, name=name,
                                                resource_version=rv, timeout=remaining):
                if obj is None:
                    continue
                if typ == "DELETED":
                    raise CLIError("object has been deleted")
                rv = obj.metadata.resourceVersion
                msg, done = deployment_status(obj, args.revision)
                if msg != last:
                    _say(ctx, msg)
                    last = msg
                if done:
                    return 0
        except APIStatusError as e:
            if e.code.name != "OUT_OF_RANGE" and e.from_server:
                raise
            d = ctx.client.get(kind.resource, name, ctx.namespace)  # resync and go on
            rv = d.metadata.resourceVersion
            msg, done = deployment_status(d, args.revision)
            if msg != last:
                _say(ctx, msg)
                last = msg
            if done:
                return 0


# ---- history -------------------------------------------------------------------------

def owned_replica_sets(ctx: Context, d: Any) -> list[Any]:
    rss, _ = ctx.client.list("replicasets", d.metadata.namespace)
    return [rs for rs in rss if any(r.uid == d.metadata.uid and r.controller
                                    for r in rs.metadata.ownerReferences)]


def history_table(rss: list[Any]) -> str:
    by_rev: dict[int, str] = {}
    for rs in rss:
        rev = rollout.revision(rs)
        if rev > 0:
            by_rev[rev] = rs.metadata.annotations.get(rollout.CHANGE_CAUSE, "") or "<none>"
    if not by_rev:
        return "No rollout history found.\n"
    text = "REVISION\tCHANGE-CAUSE\n" + "".join(f"{r}\t{by_rev[r]}\n" for r in sorted(by_rev))
    return align(text, minwidth=0, padding=2)


def revision_template(rss: list[Any], revision: int) -> str:
    for rs in rss:
        if rollout.revision(rs) == revision:
            template = convert.to_dict(rs.spec.template)
            cause = rs.metadata.annotations.get(rollout.CHANGE_CAUSE, "")
            if cause:
                template.setdefault("metadata", {}).setdefault("annotations", {})[
                    rollout.CHANGE_CAUSE] = cause
            w = Writer()
            pod_template_section(w, template)
            return w.text()
    raise CLIError("unable to find the specified revision")


def run_history(ctx: Context, args: argparse.Namespace) -> int:
    for kind, name in _targets(ctx, args):
        _only_deployments(kind, "history viewer")
        d = ctx.client.get(kind.resource, name, ctx.namespace)
        rss = owned_replica_sets(ctx, d)
        if args.revision > 0:
            body = revision_template(rss, args.revision)
            _say(ctx, f"{ref(kind, name)} with revision #{args.revision}")
        else:
            body = history_table(rss)
            _say(ctx, ref(kind, name))
        ctx.out.write(body + "\n")
    return 0


# ---- undo ----------------------------------------------------------------------------

def revision_to_restore(rss: list[Any], to_revision: int, name: str) -> Any:
    """The ReplicaSet of `to_revision`, or of the revision before the latest when 0."""
    with_rev = [(rollout.revision(rs), rs) for rs in rss if rollout.revision(rs) > 0]
    if to_revision > 0:
        for rev, rs in with_rev:
            if rev == to_revision:
                return rs
        raise CLIError(f"unable to find specified revision {to_revision} in history")
    ordered = sorted(with_rev, key=lambda t: t[0])
    if len(ordered) < 2:
        raise CLIError(f'no rollout history found for deployment "{name}"')
    return ordered[-2][1]


def run_undo(ctx: Context, args: argparse.Namespace) -> int:
    for kind, name in _targets(ctx, args):
        _only_deployments(kind, "rollbacker")
        d = ctx.client.get(kind.resource, name, ctx.namespace)
        if d.spec.paused:
            raise CLIError("you cannot rollback a paused deployment; resume it first with "
                           f"'kubelite rollout resume {ref(kind, name)}' and try again")
        target = revision_to_restore(owned_replica_sets(ctx, d), args.to_revision, name)
        rev = rollout.revision(target)
        if rollout.equal_ignore_hash(target.spec.template, d.spec.template):
            _say(ctx, f"{ref(kind, name)} skipped rollback (current template already matches "
                      f"revision {rev})")
            continue

        _cas(ctx, kind, name, _restorer(d.metadata.uid, target))
        _say(ctx, f"{ref(kind, name)} rolled back")
    return 0


def _restorer(uid: str, rs: Any) -> Callable[[Any], None]:
    """Put the ReplicaSet's template (without its hash label) and annotations back."""

    def restore(obj: Any) -> None:
        if obj.metadata.uid != uid:
            raise CLIError(f'deployment "{obj.metadata.name}" was replaced meanwhile')
        obj.spec.template.CopyFrom(rollout.without_hash(rs.spec.template))
        keep = {k: v for k, v in obj.metadata.annotations.items() if k in rollout.SKIP_COPY}
        keep.update({k: v for k, v in rs.metadata.annotations.items()
                     if k not in rollout.SKIP_COPY})
        obj.metadata.annotations.clear()
        obj.metadata.annotations.update(keep)

    return restore


# ---- pause / resume / restart --------------------------------------------------------

def _rfc3339_now() -> str:
    now = dt.datetime.now().astimezone().replace(microsecond=0)
    text = now.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def run_pause_resume_restart(ctx: Context, args: argparse.Namespace) -> int:
    failed = False
    for kind, name in _targets(ctx, args):
        problem = _pause_resume_restart(ctx, kind, name, args.verb)
        if problem:
            ctx.warn(f'error: {kind.resource_group} "{name}" {problem}')
            failed = True
            continue
        done = {"pause": "paused", "resume": "resumed", "restart": "restarted"}[args.verb]
        _say(ctx, f"{ref(kind, name)} {done}")
    return 1 if failed else 0


class _Skip(Exception):
    """Nothing to write (already in the wanted state)."""


def _pause_resume_restart(ctx: Context, kind: kinds.Kind, name: str, verb: str) -> str:
    """Do it; kubectl's complaint ("is already paused", ...) or ""."""
    supported = ("Deployment",) if verb != "restart" else (
        "Deployment", "DaemonSet", "StatefulSet")
    if kind.kind not in supported:
        what = {"pause": "pausing", "resume": "resuming", "restart": "restarting"}[verb]
        return f"{what} is not supported"
    problem = ""

    def change(obj: Any) -> None:
        nonlocal problem
        if verb == "pause":
            if obj.spec.paused:
                problem = "is already paused"
            obj.spec.paused = True
        elif verb == "resume":
            if not obj.spec.paused:
                problem = "is not paused"
            obj.spec.paused = False
        else:
            if kind.kind == "Deployment" and obj.spec.paused:
                problem = "can't restart paused deployment (run rollout resume first)"
            obj.spec.template.metadata.annotations[rollout.RESTARTED_AT] = _rfc3339_now()
        if problem:
            raise _Skip()

    try:
        _cas(ctx, kind, name, change)
    except _Skip:
        pass
    return problem
