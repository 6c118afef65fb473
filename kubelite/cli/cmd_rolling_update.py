"""kubelite rolling-update: kubectl 1.x's client-side rolling update of a
ReplicationController to a new one.

    kubelite rolling-update OLD -f NEW.yaml [--update-period=1m0s] [--poll-interval=3s]
        [--timeout=5m0s]
    kubelite rolling-update OLD [NEW] --rollback     (or -f NEW.yaml --rollback)

The new RC (its selector must differ from the old one's in the value of some
key) is created with 0 replicas, then scaled up and the old one down, keeping
`desired` pods available and never more than desired + 1 (maxUnavailable 0,
maxSurge 1): scale the new RC up as far as the surge allows and wait until
its pods exist, wait --update-period, scale the old RC down as far as the
new RC's ready pods allow, and so on; at the end the old RC is deleted.

Progress lives in annotations, so an interrupted update resumes when run
again (kubectl's names):

- on the new RC: kubectl.kubernetes.io/desired-replicas (its final size) and
  kubectl.kubernetes.io/update-source-id (`OLD:uid`, so a run for another
  source refuses to take it over);
- on the old RC: kubectl.kubernetes.io/original-replicas (its size before the
  update) and kubectl.kubernetes.io/next-controller-id (the new RC's name).

--rollback reverses an interrupted update: the roles swap, the old RC is
scaled back to its original size and the new one down to 0 and deleted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from kubelite.cli import manifests
from kubelite.cli.cmd_node import parse_duration
from kubelite.cli.context import CLIError, Context
from kubelite.client import APIStatusError
from kubelite.objects.convert import int_or_string
from kubelite.objects.rollout import resolve_fenceposts

DESIRED = "kubectl.kubernetes.io/desired-replicas"
SOURCE_ID = "kubectl.kubernetes.io/update-source-id"
ORIGINAL = "kubectl.kubernetes.io/original-replicas"
NEXT = "kubectl.kubernetes.io/next-controller-id"
MAX_SURGE, MAX_UNAVAILABLE = 1, 0
_CAS_RETRIES = 10


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rolling-update", help="Perform a rolling update of the given "
                                               "ReplicationController")
    p.add_argument("old", metavar="OLD_CONTROLLER_NAME")
    p.add_argument("new", nargs="?", default="", metavar="NEW_CONTROLLER_NAME")
    p.add_argument("-f", "--filename", default="",
                   help="file with the new ReplicationController")
    p.add_argument("--update-period", default="1m0s",
                   help="time to wait between updating pods (default 1m0s)")
    p.add_argument("--poll-interval", default="3s",
                   help="time between polls of the controllers' status (default 3s)")
    p.add_argument("--timeout", default="5m0s",
                   help="time to wait for any progress before giving up (default 5m0s)")
    p.add_argument("--rollback", action="store_true",
                   help="abort an interrupted update: scale the old controller back up")
    p.set_defaults(func=run)


# ---- the arithmetic ------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    desired: int
    max_surge: int
    max_unavailable: int
    min_available: int


def plan(desired: int, old_replicas: int, max_surge: int = MAX_SURGE,
         max_unavailable: int = MAX_UNAVAILABLE) -> Plan:
    surge, unavailable = resolve_fenceposts(int_or_string(max_surge),
                                            int_or_string(max_unavailable), desired)
    min_available = max(0, desired - unavailable)
    if desired == 0:  # nothing to keep: the old RC may go at once
        unavailable, min_available = old_replicas, 0
    return Plan(desired, surge, unavailable, min_available)


def scale_up_to(p: Plan, new: int, old: int) -> int | None:
    """The new RC's next size, or None when it must not grow now."""
    if new == p.desired:
        return None
    increment = (p.desired + p.max_surge) - (old + new)
    if old == 0:
        increment = p.desired - new
    if increment <= 0:
        return None
    return min(new + increment, p.desired)


def scale_down_to(p: Plan, new: int, old: int, new_available: int) -> int | None:
    """The old RC's next size, or None when it must not shrink now."""
    if old == 0:
        return None
    new_unavailable = new - new_available
    decrement = (old + new) - p.min_available - new_unavailable
    if decrement <= 0:
        return None
    size = max(0, old - decrement)
    if new == p.desired and new_available == p.desired:
        size = 0
    return size


# ---- talking to the API --------------------------------------------------------------

class Updater:
    def __init__(self, ctx: Context, ns: str, update_period: float, interval: float,
                 timeout: float) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.ns = ns
        self.update_period = update_period
        self.interval = interval
        self.timeout = timeout

    def say(self, text: str) -> None:
        self.ctx.print(text)
        self.ctx.out.flush()

    def get(self, name: str) -> Any:
        return self.client.get("replicationcontrollers", name, self.ns)

    def change(self, name: str, fn: Any) -> Any:
        """Read-modify-write guarded by the resourceVersion, again on a conflict."""
        for _ in range(_CAS_RETRIES):
            rc = self.get(name)
            fn(rc)
            try:
                return self.client.update(rc)
            except APIStatusError as e:
                if not e.conflict:
                    raise
        raise CLIError(f"replicationcontroller {name} kept changing; giving up")

    def scale_and_wait(self, name: str, size: int) -> Any:
        def set_size(rc: Any) -> None:
            rc.spec.replicas = size

        self.change(name, set_size)
        deadline = time.monotonic() + self.timeout
        while True:
            rc = self.get(name)
            if rc.status.observedGeneration >= rc.metadata.generation and \
                    rc.status.replicas == size:
                return rc
            if time.monotonic() > deadline:
                raise CLIError(f'timed out waiting for "{name}" to be synced')
            time.sleep(self.interval)

    def available_pods(self, rc: Any) -> int:
        selector = ",".join(f"{k}={v}" for k, v in sorted(rc.spec.selector.items()))
        pods, _ = self.client.list("pods", self.ns, label_selector=selector)
        now = time.time()
        n = 0
        for p in pods:
            if p.metadata.deletionTimestamp:
                continue
            min_ready = rc.spec.minReadySeconds
            n += any(c.type == "Ready" and c.status == "True" and (
                min_ready <= 0 or _ts(c.lastTransitionTime) + min_ready <= now)
                for c in p.status.conditions)
        return n

    def target(self, new_rc: Any, source_id: str) -> tuple[Any, bool]:
        """The new RC, created with 0 replicas unless a previous run left it."""
        try:
            existing = self.get(new_rc.metadata.name)
        except APIStatusError as e:
            if not e.not_found:
                raise
            replicas = new_rc.spec.replicas
            if replicas <= 0:
                raise CLIError(f"Invalid controller spec for {new_rc.metadata.name}; required: "
                               f"> 0 replicas, actual: {replicas}") from None
            new_rc.metadata.annotations[DESIRED] = str(replicas)
            new_rc.metadata.annotations[SOURCE_ID] = source_id
            new_rc.spec.replicas = 0
            new_rc.metadata.resourceVersion = ""
            return self.client.create(new_rc), False
        ann = existing.metadata.annotations
        if ann.get(SOURCE_ID) != source_id or DESIRED not in ann:
            shown = " ".join(f"{k}:{v}" for k, v in sorted(ann.items()))
            raise CLIError(f"Missing/unexpected annotations for controller "
                           f"{new_rc.metadata.name}, expected {source_id} : map[{shown}]")
        return existing, True

    def update(self, old: Any, new_rc: Any) -> Any:
        """Run (or resume) the update from `old` to `new_rc`; the final new RC."""
        source_id = f"{old.metadata.name}:{old.metadata.uid}"
        new, existed = self.target(new_rc, source_id)
        if existed:
            self.say(f"Continuing update with existing controller {new.metadata.name}.")
        else:
            self.say(f"Created {new.metadata.name}")
        desired = int(new.metadata.annotations[DESIRED])
        if ORIGINAL not in old.metadata.annotations or \
                old.metadata.annotations.get(NEXT) != new.metadata.name:
            original = old.metadata.annotations.get(ORIGINAL, str(old.spec.replicas))

            def mark(rc: Any) -> None:
                rc.metadata.annotations[ORIGINAL] = original
                rc.metadata.annotations[NEXT] = new.metadata.name

            old = self.change(old.metadata.name, mark)
        p = plan(desired, old.spec.replicas)
        if desired > 0 and p.max_surge == 0 and p.max_unavailable == 0:
            raise CLIError("one of maxSurge or maxUnavailable must be specified")
        self.say(f"Scaling up {new.metadata.name} from {new.spec.replicas} to {desired}, "
                 f"scaling down {old.metadata.name} from {old.spec.replicas} to 0 (keep "
                 f"{p.min_available} pods available, don't exceed {desired + p.max_surge} pods)")
        progress_deadline = time.monotonic() + self.timeout
        while new.spec.replicas != desired or old.spec.replicas != 0:
            before = (new.spec.replicas, old.spec.replicas)
            size = scale_up_to(p, new.spec.replicas, old.spec.replicas)
            if size is not None:
                self.say(f"Scaling {new.metadata.name} up to {size}")
                new = self.scale_and_wait(new.metadata.name, size)
            time.sleep(self.update_period)
            size = scale_down_to(p, new.spec.replicas, old.spec.replicas,
                                 self.available_pods(new))
            if size is not None:
                self.say(f"Scaling {old.metadata.name} down to {size}")
                old = self.scale_and_wait(old.metadata.name, size)
            if (new.spec.replicas, old.spec.replicas) != before:
                progress_deadline = time.monotonic() + self.timeout
            elif time.monotonic() > progress_deadline:
                raise CLIError("timed out waiting for any update progress to be made")
        return self.cleanup(old, new)

    def cleanup(self, old: Any, new: Any) -> Any:
        def unmark(rc: Any) -> None:
            for k in (SOURCE_ID, DESIRED, ORIGINAL, NEXT):
                if k in rc.metadata.annotations:
                    del rc.metadata.annotations[k]

        new = self.change(new.metadata.name, unmark)
        deadline = time.monotonic() + self.timeout
        while not (new.status.observedGeneration >= new.metadata.generation
                   and new.status.replicas == new.spec.replicas):
            if time.monotonic() > deadline:
                raise CLIError(f'timed out waiting for "{new.metadata.name}" to be synced')
            time.sleep(self.interval)
            new = self.get(new.metadata.name)
        self.say(f"Update succeeded. Deleting {old.metadata.name}")
        try:
            self.client.delete("replicationcontrollers", old.metadata.name, self.ns)
        except APIStatusError as e:
            if not e.not_found:
                raise
        return new


def _ts(text: str) -> float:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


# ---- the command ---------------------------------------------------------------------

def _load_new(path: str) -> tuple[Any, bool]:
    """(the new RC from the file, whether it sets spec.replicas)."""
    try:
        found = manifests.load([path])
    except (manifests.ManifestError, OSError) as e:
        raise CLIError(str(e)) from None
    if len(found) != 1 or found[0].kind.kind != "ReplicationController":
        kind = found[0].kind.kind if found else "nothing"
        raise CLIError(f"{path} contains a {kind} not a ReplicationController")
    spec = found[0].raw.get("spec") or {}
    return found[0].obj, "replicas" in spec


def run(ctx: Context, args: argparse.Namespace) -> int:
    old_name, new_name = args.old, args.new
    if not args.filename and not args.rollback:
        raise CLIError("Must specify --filename for a rolling update (or --rollback to "
                       "abort one)")
    if args.filename and new_name:
        raise CLIError("--filename and NEW_CONTROLLER_NAME can't both be specified")
    ns = ctx.namespace
    updater = Updater(ctx, ns, parse_duration(args.update_period),
                      max(0.05, parse_duration(args.poll_interval)),
                      parse_duration(args.timeout))
    old = updater.get(old_name)
    new_rc: Any = None
    replicas_set = True
    if args.filename:
        new_rc, replicas_set = _load_new(args.filename)
        if new_rc.metadata.namespace and new_rc.metadata.namespace != ns:
            raise CLIError(f'the namespace from the provided object "{new_rc.metadata.namespace}"'
                           f' does not match the namespace "{ns}". You must pass '
                           f"'--namespace={new_rc.metadata.namespace}' to perform this operation.")
        new_rc.metadata.namespace = ns
        if new_rc.metadata.name == old_name:
            raise CLIError(f"{args.filename} cannot have the same name as the existing "
                           f"ReplicationController {old_name}")
        new_name = new_rc.metadata.name
    if args.rollback:
        new_name = new_name or old.metadata.annotations.get(NEXT, "")
        try:
            new_rc = updater.get(new_name) if new_name else None
        except APIStatusError as e:
            if not e.not_found:
                raise
            new_rc = None
        if new_rc is None:
            raise CLIError(f"could not find {new_name or 'the next controller'} to rollback.")
    if not any(new_rc.spec.selector.get(k, v) != v and k in new_rc.spec.selector
               for k, v in old.spec.selector.items()):
        source = args.filename or new_name
        raise CLIError(f"{source} must specify a matching key with non-equal value in Selector "
                       f"for {old_name}")
    if args.rollback:
        return _rollback(updater, old, new_rc, old_name)
    if not replicas_set:  # kubectl: the new RC takes the old one's size
        new_rc.spec.replicas = int(old.metadata.annotations.get(ORIGINAL, old.spec.replicas))
    updater.update(old, new_rc)
    updater.say(f'replicationcontroller/{old_name} rolling updated to "{new_name}"')
    return 0


def _rollback(updater: Updater, original: Any, partial: Any, old_name: str) -> int:
    """Swap the roles: `partial` (the interrupted new RC) goes, `original` comes back."""
    size = original.metadata.annotations.get(ORIGINAL)
    if size is None:
        raise CLIError(f'couldn\'t find original replica count of "{original.metadata.name}"')
    updater.say(f'Setting "{original.metadata.name}" replicas to {size}')
    source_id = f"{partial.metadata.name}:{partial.metadata.uid}"

    def take_over(rc: Any) -> None:
        rc.metadata.annotations[SOURCE_ID] = source_id
        rc.metadata.annotations[DESIRED] = size

    updated = updater.change(original.metadata.name, take_over)
    updater.update(partial, updated)
    updater.say(f"replicationcontroller/{old_name} rolled back")
    return 0
