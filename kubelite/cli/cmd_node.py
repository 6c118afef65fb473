"""kubelite cordon / uncordon / taint / drain: kubectl's node maintenance verbs.

- cordon/uncordon set spec.unschedulable with a merge patch;
- taint adds (key=value:Effect), overwrites (--overwrite) and removes (key-,
  key:Effect-) node taints in a read-modify-write guarded by resourceVersion,
  retried on a Conflict so a concurrent change is never lost;
- drain cordons, refuses (like kubectl) to touch pods it cannot safely move
  unless told to, evicts the rest through pods/eviction and waits for them
  to be gone.

Messages and exit codes follow kubectl.
"""

from __future__ import annotations

import argparse
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite.api import core_pb2
from kubelite.cli.context import CLIError, Context, type_name_args
from kubelite.client import APIStatusError
from kubelite.objects import names

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_CAS_RETRIES = 8
_POLL = 0.2


def add_parsers(sub: Any) -> None:
    for verb in ("cordon", "uncordon"):
        what = "unschedulable" if verb == "cordon" else "schedulable"
        p = sub.add_parser(verb, help=f"Mark node as {what}")
        p.add_argument("nodes", nargs="*", metavar="NODE")
        p.add_argument("-l", "--selector", default="")
        p.set_defaults(func=run_cordon, verb=verb)

    p = sub.add_parser("taint", help="Update the taints on one or more nodes")
    # Flags may come between the words (`taint nodes -l a=b k=v:NoSchedule`), which one
    # argparse pass cannot collect: take the rest verbatim and parse it intermixed.
    p.add_argument("words", nargs=argparse.REMAINDER,
                   metavar="nodes NODE KEY[=VALUE]:EFFECT ... KEY[:EFFECT]-")
    _taint_flags(p)
    p.set_defaults(func=run_taint)

    p = sub.add_parser("drain", help="Drain node in preparation for maintenance")
    p.add_argument("nodes", nargs="*", metavar="NODE")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--force", action="store_true",
                   help="also delete pods that declare no controller")
    p.add_argument("--ignore-daemonsets", action="store_true",
                   help="ignore DaemonSet-managed pods")
    p.add_argument("--delete-emptydir-data", "--delete-local-data", action="store_true",
                   dest="delete_emptydir_data",
                   help="delete pods using emptyDir (their local data is lost)")
    p.add_argument("--grace-period", type=int, default=-1,
                   help="seconds each pod gets to terminate; negative: the pod's own")
    p.add_argument("--timeout", default="60s",
                   help="how long to wait for the pods to go, e.g. 90s or 5m; 0: forever")
    p.set_defaults(func=run_drain, verb="drain")


def _taint_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace taints with the same key and effect")
    p.add_argument("-l", "--selector", default="")
    p.add_argument("--all", action="store_true", help="select all nodes")


class _WordsParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise CLIError(message)


def _taint_args(args: argparse.Namespace) -> argparse.Namespace:
    p = _WordsParser(prog="kubelite taint", add_help=False)
    p.add_argument("words", nargs="*")
    _taint_flags(p)
    parsed = p.parse_intermixed_args(args.words)
    parsed.overwrite |= args.overwrite
    parsed.all |= args.all
    parsed.selector = parsed.selector or args.selector
    return parsed


# ---- cordon / uncordon -------------------------------------------------------

def _node_names(ctx: Context, verb: str, nodes: list[str], selector: str) -> list[str]:
    if nodes and selector:
        raise CLIError("cannot specify both a node name and a --selector option")
    if selector:
        found, _ = ctx.client.list("nodes", label_selector=selector)
        if not found:
            ctx.warn("No resources found")
        return [n.metadata.name for n in found]
    if not nodes:
        raise CLIError(f"USAGE: {verb} NODE [flags]")
    out = []
    for n in nodes:
        kind_name = n.split("/", 1)
        if len(kind_name) == 2:
            if kind_name[0] not in ("node", "nodes", "no"):
                raise CLIError(f"invalid resource type {kind_name[0]}, only node types "
                               "are supported")
            n = kind_name[1]
        out.append(n)
    return out


def cordon(ctx: Context, name: str, desired: bool) -> None:
    """Set spec.unschedulable; prints `node/NAME cordoned` or `... already cordoned`."""
    verb = "cordoned" if desired else "uncordoned"
    node = ctx.client.get("nodes", name)
    if node.spec.unschedulable == desired:
        ctx.print(f"node/{name} already {verb}")
        return
    ctx.client.patch("nodes", name, {"spec": {"unschedulable": True if desired else None}})
    ctx.print(f"node/{name} {verb}")


def run_cordon(ctx: Context, args: argparse.Namespace) -> int:
    for name in _node_names(ctx, args.verb, args.nodes, args.selector):
        cordon(ctx, name, args.verb == "cordon")
    return 0


# ---- taint -------------------------------------------------------------------

@dataclass(frozen=True)
class TaintSpec:
    key: str
    value: str = ""
    effect: str = ""

    def __str__(self) -> str:  # Kubernetes' Taint.ToString
        if not self.effect:
            return f"{self.key}={self.value}:" if self.value else self.key
        return (f"{self.key}={self.value}:{self.effect}" if self.value
                else f"{self.key}:{self.effect}")


def parse_taint(spec: str) -> TaintSpec:
    """`key=value:Effect`, `key:Effect` or `key` (the last only to remove)."""
    parts = spec.split(":")
    value = effect = ""
    if len(parts) == 1:
        key = parts[0]
    elif len(parts) == 2:
        effect = parts[1]
        if effect not in EFFECTS:
            raise CLIError(f"invalid taint effect: {effect}, unsupported taint effect")
        kv = parts[0].split("=")
        if len(kv) > 2:
            raise CLIError(f"invalid taint spec: {spec}")
        key = kv[0]
        if len(kv) == 2:
            value = kv[1]
            errs = names.label_value(value)
            if errs:
                raise CLIError(f"invalid taint spec: {spec}, {'; '.join(errs)}")
    else:
        raise CLIError(f"invalid taint spec: {spec}")
    errs = names.qualified_name(key)
    if errs:
        raise CLIError(f"invalid taint spec: {spec}, {'; '.join(errs)}")
    return TaintSpec(key, value, effect)


def parse_taints(specs: list[str]) -> tuple[list[TaintSpec], list[TaintSpec]]:
    adds: list[TaintSpec] = []
    removes: list[TaintSpec] = []
    for spec in specs:
        if spec.endswith("-"):
            t = parse_taint(spec[:-1])
            removes.append(TaintSpec(t.key, "", t.effect))
            continue
        t = parse_taint(spec)
        if not t.effect:
            raise CLIError(f"invalid taint spec: {spec}")
        if any(a.key == t.key and a.effect == t.effect for a in adds):
            raise CLIError(f"duplicated taints with the same key and effect: {t}")
        adds.append(t)
    conflicts = [f"{r.key}={r.effect}" for a in adds for r in removes
                 if a.key == r.key and (not r.effect or a.effect == r.effect)]
    if conflicts:
        raise CLIError("can not both modify and remove the following taint(s) in the same "
                       f"command: {', '.join(conflicts)}")
    return adds, removes


def _split_taint_words(words: list[str]) -> tuple[list[str], list[str]]:
    resources: list[str] = []
    taints: list[str] = []
    for w in words:
        is_taint = "=" in w or ":" in w or w.endswith("-")
        if is_taint:
            taints.append(w)
        elif taints:
            raise CLIError(f"all resources must be specified before taint changes: {w}")
        else:
            resources.append(w)
    if not resources:
        raise CLIError("one or more resources must be specified as <resource> <name>")
    if not taints:
        raise CLIError("at least one taint update is required")
    return resources, taints


def update_taints(node: Any, adds: list[TaintSpec], removes: list[TaintSpec],
                  overwrite: bool) -> tuple[str, list[Any]]:
    """kubectl's reorganizeTaints: (operation, the node's new taint list)."""
    old = list(node.spec.taints)
    if not overwrite:
        clash = [a.key for a in adds for o in old if a.key == o.key and a.effect == o.effect]
        if clash:
            raise CLIError(f"node {node.metadata.name} already has {','.join(clash)} taint(s) "
                           "with same effect(s) and --overwrite is false")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    new: list[Any] = []
    for a in adds:
        same = next((o for o in old if o.key == a.key and o.effect == a.effect), None)
        t = core_pb2.Taint(key=a.key, value=a.value, effect=a.effect)
        if a.effect == "NoExecute":  # Kubernetes records when a NoExecute taint appeared
            kept = same is not None and same.value == a.value and same.timeAdded
            t.timeAdded = same.timeAdded if kept else now  # type: ignore[union-attr]
        new.append(t)
    new += [o for o in old if not any(o.key == t.key and o.effect == t.effect for t in new)]
    added = len(new) != len(old)
    missing: list[str] = []
    deleted = False
    for r in removes:
        kept_taints = [t for t in new if not (t.key == r.key and (not r.effect
                                                                  or t.effect == r.effect))]
        deleted = len(kept_taints) != len(new)
        if not deleted:
            missing.append(f'taint "{r}" not found')
        new = kept_taints
    if missing:
        raise CLIError(missing[0] if len(missing) == 1 else "[" + ", ".join(missing) + "]")
    if (added and deleted) or overwrite:
        return "modified", new
    return ("tainted" if added else "untainted"), new


def run_taint(ctx: Context, args: argparse.Namespace) -> int:
    args = _taint_args(args)
    resources, specs = _split_taint_words(args.words)
    adds, removes = parse_taints(specs)
    if args.all and args.selector:
        raise CLIError("setting 'all' parameter with a non empty selector is prohibited")
    targets = type_name_args(resources)
    nodes: list[str] = []
    for kind, objnames in targets:
        if kind.kind != "Node":
            raise CLIError(f"invalid resource type {resources[0]}, only node types are "
                           "supported")
        nodes += objnames
    if not nodes:
        if not (args.all or args.selector):
            raise CLIError("at least one resource name must be specified since 'all' "
                           "parameter is not set")
        found, _ = ctx.client.list("nodes", label_selector=args.selector)
        nodes = [n.metadata.name for n in found]
    for name in nodes:
        ctx.print(f"node/{name} {_taint_node(ctx, name, adds, removes, args.overwrite)}")
    return 0


def _taint_node(ctx: Context, name: str, adds: list[TaintSpec], removes: list[TaintSpec],
                overwrite: bool) -> str:
    """Read, change, write with the read resourceVersion; on Conflict start over."""
    for _ in range(_CAS_RETRIES):
        node = ctx.client.get("nodes", name)
        operation, taints = update_taints(node, adds, removes, overwrite)
        del node.spec.taints[:]
        node.spec.taints.extend(taints)
        try:
            ctx.client.update(node)  # carries the resourceVersion we read: a CAS
            return operation
        except APIStatusError as e:
            if not e.conflict:
                raise
    raise CLIError(f"node {name} kept changing; giving up after {_CAS_RETRIES} attempts")


# ---- drain -------------------------------------------------------------------

DS_FATAL = "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DS_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_FATAL = "cannot delete Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "cannot delete Pods that declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"


@dataclass
class DrainPlan:
    """Which pods on the node to evict, and what kubectl would warn or refuse about."""

    evict: list[Any] = field(default_factory=list)
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)

    def error(self, msg: str, pod: Any) -> None:
        self.errors.setdefault(msg, []).append(_pod_ref(pod))

    def warn(self, msg: str, pod: Any) -> None:
        self.warnings.setdefault(msg, []).append(_pod_ref(pod))

    def error_list(self) -> list[str]:
        return [f"{msg}: {', '.join(pods)}" for msg, pods in _in_filter_order(self.errors)]

    def warning_text(self) -> str:
        return "; ".join(f"{msg}: {', '.join(pods)}"
                         for msg, pods in _in_filter_order(self.warnings))


def _in_filter_order(by_msg: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    rank = {DS_FATAL: 0, DS_WARNING: 0, LOCAL_FATAL: 2, LOCAL_WARNING: 2,
            UNMANAGED_FATAL: 3, UNMANAGED_WARNING: 3}
    return sorted(by_msg.items(), key=lambda kv: rank.get(kv[0], 1))  # 1: DaemonSet lookups


def _pod_ref(pod: Any) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _controller(pod: Any) -> Any | None:
    return next((r for r in pod.metadata.ownerReferences
                 if r.HasField("controller") and r.controller), None)


def plan_drain(ctx: Context, pods: list[Any], args: argparse.Namespace) -> DrainPlan:
    """kubectl's pod filters, in its order; the first that objects decides for a pod."""
    plan = DrainPlan()
    for pod in sorted(pods, key=_pod_ref):
        finished = pod.status.phase in ("Succeeded", "Failed")
        ctrl = _controller(pod)
        if ctrl is not None and ctrl.kind == "DaemonSet" and not finished:
            try:
                ctx.client.get("daemonsets", ctrl.name, pod.metadata.namespace)
            except APIStatusError as e:
                if e.not_found and args.force:  # an orphan: --force removes it
                    plan.warn(e.message, pod)
                    plan.evict.append(pod)
                else:
                    plan.error(e.message, pod)
                continue
            if args.ignore_daemonsets:
                plan.warn(DS_WARNING, pod)
            else:
                plan.error(DS_FATAL, pod)
            continue
        if any(v.HasField("emptyDir") for v in pod.spec.volumes) and not finished:
            if not args.delete_emptydir_data:
                plan.error(LOCAL_FATAL, pod)
                continue
            plan.warn(LOCAL_WARNING, pod)
        if ctrl is None and not finished:
            if not args.force:
                plan.error(UNMANAGED_FATAL, pod)
                continue
            plan.warn(UNMANAGED_WARNING, pod)
        plan.evict.append(pod)
    return plan


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                 "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's duration syntax as kubectl takes it (`90s`, `1m30s`, `0`); bare numbers: seconds."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise CLIError(f'invalid argument "{text}" for "--timeout" flag: time: invalid '
                           f'duration "{text}"') from None
    if seconds < 0:
        raise CLIError(f'invalid argument "{text}" for "--timeout" flag: must not be negative')
    return seconds


def format_duration(seconds: float) -> str:
    """Go's time.Duration.String for whole-second and larger values: 1m0s, 45s, 1h0m0s."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms" if seconds else "0s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:g}s"
    if h:
        return f"{int(h)}h{int(m)}m{sec}"
    if m:
        return f"{int(m)}m{sec}"
    return sec


class DrainError(Exception):
    """Why one node could not be drained (kubectl prints it and goes on)."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def run_drain(ctx: Context, args: argparse.Namespace) -> int:
    timeout = parse_duration(args.timeout)
    nodes = _node_names(ctx, args.verb, args.nodes, args.selector)
    for name in nodes:
        cordon(ctx, name, True)
    pending: list[tuple[str, DrainError]] = []
    for name in nodes:
        try:
            drain_node(ctx, name, args, timeout)
        except DrainError as e:
            ctx.warn(f'error: unable to drain node "{name}" due to error: {e}, '
                     "continuing command...")
            pending.append((name, e))
            continue
        ctx.print(f"node/{name} drained")
    if not pending:
        return 0
    ctx.warn("There are pending nodes to be drained:")
    for name, _ in pending:
        ctx.warn(f" {name}")
    for _, failure in pending:
        for line in failure.errors:
            ctx.warn(line)
    return 1


def drain_node(ctx: Context, name: str, args: argparse.Namespace, timeout: float) -> None:
    pods, _ = ctx.client.list("pods", field_selector=f"spec.nodeName={name}")
    plan = plan_drain(ctx, pods, args)
    if plan.errors:
        raise DrainError(plan.error_list())
    if plan.warnings:
        ctx.warn(f"Warning: {plan.warning_text()}")
    grace = args.grace_period if args.grace_period >= 0 else None
    waiting: list[Any] = []
    for pod in plan.evict:
        ns, pname = pod.metadata.namespace, pod.metadata.name
        ctx.print(f"evicting pod {ns}/{pname}")
        try:
            ctx.client.evict(ns, pname, grace_period_seconds=grace)
        except APIStatusError as e:
            if not e.not_found:  # already gone is what we wanted
                raise DrainError([f"error when evicting pods/\"{pname}\" -n \"{ns}\": "
                                  f"{e.message}"]) from None
        waiting.append(pod)
    _wait_for_deletion(ctx, name, waiting, timeout)


def _wait_for_deletion(ctx: Context, node: str, pods: list[Any], timeout: float) -> None:
    """Until every pod is gone (or replaced by a new pod of the same name)."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    left = {pod.metadata.uid: pod for pod in pods}
    while left:
        present, _ = ctx.client.list("pods", field_selector=f"spec.nodeName={node}")
        uids = {p.metadata.uid for p in present}
        for uid, pod in sorted(left.items(), key=lambda kv: _pod_ref(kv[1])):
            if uid not in uids:
                ctx.print(f"pod/{pod.metadata.name} evicted")
                del left[uid]
        if not left:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise DrainError([f"drain did not complete within {format_duration(timeout)}"])
        time.sleep(_POLL)
