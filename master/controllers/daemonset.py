"""DaemonSet: one pod of the template on every eligible node.

A node is eligible ("should run") when the template's nodeName (if any),
nodeSelector and required node affinity match it and every NoSchedule /
NoExecute taint on it is tolerated. The tolerations checked are the
template's plus the ones Kubernetes gives every daemon pod:
node.kubernetes.io/{not-ready,unreachable} (NoExecute) and
{disk,memory,pid}-pressure and unschedulable (NoSchedule), and
network-unavailable (NoSchedule) for hostNetwork pods. As in Kubernetes, a
pod already running on a node that gained an untolerated NoSchedule taint is
left alone (and counted as misscheduled); an untolerated NoExecute taint, or
labels that no longer match, remove it.

Placement is Kubernetes': the pod is created unbound with its required node
affinity replaced by a single term `matchFields metadata.name In [<node>]`,
and the scheduler binds it (so resources, host ports and so on are checked
by the scheduler like for any pod). A template with spec.nodeName keeps it.

For each DaemonSet, in one level-triggered sync:

- pods are claimed like a ReplicaSet does (adopt orphans the selector
  matches, release owned pods whose labels no longer match) and grouped by
  their target node (spec.nodeName, else the matchFields pin);
- the current revision is recorded as a ControllerRevision `<ds>-<hash>`
  (the template as a replace patch; rollback to an older template reuses
  that revision with a new number; revisions beyond revisionHistoryLimit
  that no pod uses are deleted). Pods carry `controller-revision-hash` and
  `pod-template-generation` labels; a pod is up to date when its hash is the
  current one;
- "manage": on eligible nodes without a live pod one is created; extras are
  deleted (the oldest is kept); Failed/Succeeded pods are deleted and
  replaced (Failed ones with a per-node back-off); pods on nodes that are no
  longer eligible, or that no longer exist, are deleted (the latter with
  grace period 0 after a live read confirms the Node is gone: there is no
  pod garbage collector and no agent to confirm a graceful delete);
- only when manage had nothing to do, updateStrategy RollingUpdate replaces
  old pods: at most maxUnavailable (int or percent of desired, rounded up;
  default 1) eligible nodes are without an available pod at any time, old
  pods that are already unavailable being replaced first; with maxSurge
  (and maxUnavailable 0) a new pod is started next to the old one, which is
  deleted once the new one is available. OnDelete replaces nothing: a pod
  the user deletes comes back with the current template;
- creations and deletions are remembered ("expectations") and nothing more
  is done for that DaemonSet until the informer has shown them, so a slow
  watch never puts two pods on one node;
- status: desired/current/updated NumberScheduled, numberMisscheduled,
  numberReady, numberAvailable (ready for minReadySeconds),
  numberUnavailable, observedGeneration, collisionCount.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from kubelite.api import apps_pb2, meta_pb2, pod_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert, selectors
from master.controllers.base import (
    Controller,
    Expectations,
    controller_ref,
    owner_reference,
    split_key,
)
from master.controllers.replicaset import _timestamp, active, available, pod_ready, ready_since
from master.informers import key_of
from master.scheduler.nodeinfo import NodeInfo
from master.scheduler.plugins.nodeaffinity import required_matches
from master.scheduler.plugins.taints import untolerated

log = logging.getLogger(__name__)

KIND, API_VERSION = "DaemonSet", "apps/v1"
LABEL_HASH = "controller-revision-hash"
LABEL_GENERATION = "pod-template-generation"
NODE_NAME_FIELD = "metadata.name"
BURST = 250  # at most this many creations/deletions per sync
FAILED_BACKOFF = (1.0, 900.0)  # initial, max seconds before replacing a Failed pod again

# What Kubernetes' DaemonSet controller lets every daemon pod tolerate.
DEFAULT_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
HOST_NETWORK_TOLERATION = ("node.kubernetes.io/network-unavailable", "NoSchedule")


# ---- pure helpers -------------------------------------------------------------

def add_default_tolerations(spec: Any) -> None:
    """Add the daemon pod tolerations to a PodSpec (an existing one with the same
    key/operator/value/effect is made the default: no tolerationSeconds)."""
    wanted = list(DEFAULT_TOLERATIONS)
    if spec.hostNetwork:
        wanted.append(HOST_NETWORK_TOLERATION)
    for key, effect in wanted:
        for t in spec.tolerations:
            if (t.key, t.operator, t.value, t.effect) == (key, "Exists", "", effect):
                t.ClearField("tolerationSeconds")
                break
        else:
            spec.tolerations.add(key=key, operator="Exists", effect=effect)


def revision_data(template: Any) -> bytes:
    """What a ControllerRevision of a DaemonSet records: its template as a replace patch."""
    t = convert.to_dict(template)
    t["$patch"] = "replace"
    return json.dumps({"spec": {"template": t}}, sort_keys=True,
                      separators=(",", ":")).encode()


_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: no words in names


def template_hash(template: Any, collision_count: int | None = None) -> str:
    """A stable short hash of a pod template (FNV-1a 32 of its canonical form, plus
    the collision count when set), spelled with characters safe in names."""
    h = 0x811C9DC5
    data = revision_data(template)
    if collision_count is not None:
        data += b"/" + str(collision_count).encode()
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(h))


def target_node(pod: Any) -> str:
    """The node a daemon pod is for: spec.nodeName, else its matchFields pin."""
    if pod.spec.nodeName:
        return str(pod.spec.nodeName)
    req = pod.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    for term in req.nodeSelectorTerms:
        for r in term.matchFields:
            if r.key == NODE_NAME_FIELD and r.operator == "In" and len(r.values) == 1:
                return str(r.values[0])
    return ""


def pin_to_node(spec: Any, node: str) -> None:
    """Replace the required node affinity with `metadata.name In [node]` (the node
    already matched the original terms); preferred terms are kept."""
    req = spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution
    del req.nodeSelectorTerms[:]
    req.nodeSelectorTerms.add().matchFields.add(key=NODE_NAME_FIELD, operator="In",
                                                values=[node])


def daemon_pod_spec(template: Any) -> Any:
    """The template's PodSpec with the daemon tolerations, not yet pinned to a node."""
    spec = pod_pb2.PodSpec()
    spec.CopyFrom(template.spec)
    add_default_tolerations(spec)
    return spec


def node_should_run(spec: Any, node: Any) -> tuple[bool, bool]:
    """(should run, should continue running) a pod with this spec on `node`."""
    name = node.metadata.name
    if spec.nodeName and spec.nodeName != name:
        return False, False
    if not required_matches(pod_pb2.Pod(spec=spec), NodeInfo(node)):
        return False, False
    if untolerated(spec.tolerations, node.spec.taints, ("NoExecute",)):
        return False, False
    if untolerated(spec.tolerations, node.spec.taints, ("NoSchedule",)):
        return False, True
    return True, True


def scaled(ios: Any, total: int) -> int:
    """An IntOrString as a count: an int as is, "n%" of total rounded up."""
    value = convert.int_or_string_value(ios)
    if isinstance(value, str):
        try:
            pct = int(value.rstrip("%"))
        except ValueError:
            return 0
        return math.ceil(total * pct / 100)
    return int(value or 0)


def update_budget(ds: Any, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) for a RollingUpdate over `desired` nodes."""
    ru = ds.spec.updateStrategy.rollingUpdate
    surge = scaled(ru.maxSurge, desired) if ru.HasField("maxSurge") else 0
    unavailable = scaled(ru.maxUnavailable, desired) if ru.HasField("maxUnavailable") else 1
    if surge > 0:
        return surge, 0
    if desired > 0 and unavailable <= 0:
        unavailable = 1  # an impossible configuration: never stall the rollout
    return 0, unavailable


def is_updated(pod: Any, hash_: str) -> bool:
    return bool(hash_) and pod.metadata.labels.get(LABEL_HASH) == hash_


def age_key(pod: Any) -> tuple[Any, ...]:
    """Oldest first; on a tie, running before pending, then by name."""
    return (_timestamp(pod.metadata.creationTimestamp), pod.status.phase != "Running",
            pod.metadata.name)


def split_pods(pods: Iterable[Any], hash_: str) -> tuple[Any | None, Any | None, bool]:
    """(new pod, old pod, ok) among a node's live pods; not ok when either is doubled
    (manage deletes the extras first)."""
    new = old = None
    for p in pods:
        if p.metadata.deletionTimestamp:
            continue
        if is_updated(p, hash_):
            if new is not None:
                return None, None, False
            new = p
        else:
            if old is not None:
                return None, None, False
            old = p
    return new, old, True


def plan_node(pods: Iterable[Any], should_run: bool, should_continue: bool, hash_: str, *,
              surge: bool, min_ready: int, now: float) -> tuple[bool, list[Any]]:
    """What one node needs: (create a pod?, pods to delete).

    Terminating pods are ignored (a replacement may start while one goes).
    """
    live = [p for p in pods if not p.metadata.deletionTimestamp]
    if not should_run:
        if should_continue:  # untolerated NoSchedule taint: keep what runs, drop failures
            return False, [p for p in live if p.status.phase == "Failed"]
        return False, live
    delete = [p for p in live if p.status.phase in ("Failed", "Succeeded")]
    running = sorted((p for p in live if p.status.phase not in ("Failed", "Succeeded")),
                     key=age_key)
    if not running:
        return True, delete
    if not surge:
        return False, delete + running[1:]
    # Surging: one old and one new pod may share the node until the new one is
    # available; the oldest of each kind is kept.
    new = [p for p in running if is_updated(p, hash_)]
    old = [p for p in running if not is_updated(p, hash_)]
    delete += new[1:] + old[1:]
    if new and old and (not pod_ready(old[0]) or available(new[0], min_ready, now)):
        delete.append(old[0])
    return False, delete


def plan_rolling_update(node_pods: Mapping[str, list[Any]], hash_: str, max_unavailable: int,
                        min_ready: int, now: float) -> list[Any]:
    """Old pods to delete now, over the eligible nodes' pods.

    A node counts as unavailable when it has no live pod, only a new pod that
    is not available yet, or an old pod that is not available. Unavailable old
    pods are always replaced (that costs nothing); available old pods only
    while fewer than max_unavailable nodes are unavailable.
    """
    unavailable = 0
    replace: list[Any] = []
    candidates: list[Any] = []
    for node in sorted(node_pods):
        new, old, ok = split_pods(node_pods[node], hash_)
        if not ok or (new is None) == (old is None):
            unavailable += 1  # nothing, or both: manage sorts the node out first
        elif new is not None:
            if not available(new, min_ready, now):
                unavailable += 1
        elif not available(old, min_ready, now):
            unavailable += 1
            replace.append(old)
        else:
            candidates.append(old)
    room = max(0, max_unavailable - unavailable)
    return replace + candidates[:room]


def plan_surge_update(node_pods: Mapping[str, list[Any]], hash_: str, max_surge: int,
                      min_ready: int, now: float) -> tuple[list[Any], list[str]]:
    """(old pods to delete, nodes to start a new pod on next to the old one)."""
    surging = 0
    delete: list[Any] = []
    replace: list[str] = []
    candidates: list[str] = []
    for node in sorted(node_pods):
        new, old, ok = split_pods(node_pods[node], hash_)
        if not ok:
            surging += 1
        elif old is None:
            continue  # up to date, or empty: manage creates
        elif new is None:
            (candidates if available(old, min_ready, now) else replace).append(node)
        elif available(new, min_ready, now):
            delete.append(old)
        else:
            surging += 1
    room = max(0, max_surge - surging)
    return delete, replace + candidates[:room]


def selector_of(ds: Any) -> selectors.Selector | None:
    if not ds.spec.HasField("selector"):
        return None
    return selectors.from_message(ds.spec.selector) or None


# ---- the controller -----------------------------------------------------------

def _owner_ref(ds: Any) -> Any:
    return convert.from_dict(owner_reference(ds, API_VERSION, KIND), meta_pb2.OwnerReference)


def _namespace_terminating(err: BaseException) -> bool:
    return isinstance(err, APIStatusError) and err.reason == "Forbidden" and \
        "because it is being terminated" in err.message


def _scheduling_view(node: Any) -> tuple[Any, ...]:
    """What of a Node decides eligibility; heartbeats change none of it."""
    return (dict(node.metadata.labels), [(t.key, t.value, t.effect) for t in node.spec.taints],
            node.spec.unschedulable)


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.sets = self.informer("daemonsets", on_change=self.enqueue)
        self.pods = self.informer("pods", on_change=self._pod_changed,
                                  on_update=self._pod_updated, on_delete=self._pod_deleted)
        self.nodes = self.informer("nodes", on_change=self._node_changed,
                                   on_update=self._node_updated)
        self.revisions = self.informer("controllerrevisions", on_change=self._revision_changed)
        self._expect = Expectations()
        self._failed: dict[tuple[str, str], tuple[float, float]] = {}  # -> (delay, since)

    # ---- events -------------------------------------------------------------

    def _enqueue_all(self) -> None:
        for ds in self.sets.items():
            self.enqueue(ds)

    def _node_changed(self, node: Any) -> None:
        self._enqueue_all()

    def _node_updated(self, old: Any, new: Any) -> None:
        if _scheduling_view(old) != _scheduling_view(new):
            self._enqueue_all()

    def _revision_changed(self, cr: Any) -> None:
        ref = controller_ref(cr)
        if ref is not None and ref.kind == KIND:
            self.queue.add(f"{cr.metadata.namespace}/{ref.name}")

    def _owners_of(self, pod: Any) -> list[str]:
        ref = controller_ref(pod)
        ns = pod.metadata.namespace
        if ref is not None:
            if ref.kind != KIND:
                return []
            owner = self.sets.get(f"{ns}/{ref.name}")
            return [f"{ns}/{ref.name}"] if owner is not None and \
                owner.metadata.uid == ref.uid else []
        out = []  # an orphan: every DaemonSet that might adopt it
        for ds in self.sets.items():
            sel = selector_of(ds)
            if ds.metadata.namespace == ns and sel and selectors.matches(sel, pod.metadata.labels):
                out.append(key_of(ds))
        return out

    def _observe(self, pod: Any, *, added: bool) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.kind != KIND:
            return
        self._expect.observe(f"{pod.metadata.namespace}/{ref.name}", added=added)

    def _pod_changed(self, pod: Any) -> None:
        self._observe(pod, added=True)
        for k in self._owners_of(pod):
            self.queue.add(k)

    def _pod_updated(self, old: Any, new: Any) -> None:
        keys = set(self._owners_of(new))
        if old.metadata.labels != new.metadata.labels or \
                controller_ref(old) != controller_ref(new):
            keys |= set(self._owners_of(old))
        if new.metadata.deletionTimestamp and not old.metadata.deletionTimestamp:
            self._observe(new, added=False)  # a graceful delete counts when it starts
        for k in keys:
            self.queue.add(k)

    def _pod_deleted(self, pod: Any) -> None:
        if not pod.metadata.deletionTimestamp:
            self._observe(pod, added=False)
        for k in self._owners_of(pod):
            self.queue.add(k)

    def _satisfied(self, key: str) -> bool:
        return self._expect.satisfied(key)

    # ---- reconcile ------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self._expect.forget(key)
            for k in [k for k in self._failed if k[0] == key]:
                del self._failed[k]
            return
        ns, _ = split_key(key)
        sel = selector_of(ds)
        owned = await self._claim(ds, sel, [p for p in self.pods.items()
                                            if p.metadata.namespace == ns])
        deleting = bool(ds.metadata.deletionTimestamp)
        try:
            hash_, revisions = await self._history(ds, deleting)
        except APIStatusError as e:
            if _namespace_terminating(e):
                return  # the namespace controller is deleting it all
            raise
        spec = daemon_pod_spec(ds.spec.template)
        nodes = {n.metadata.name: n for n in self.nodes.items()}
        eligible = {name: node_should_run(spec, n) for name, n in nodes.items()}
        by_node: dict[str, list[Any]] = {}
        for p in owned:
            by_node.setdefault(target_node(p), []).append(p)
        now = time.time()
        failure = ""
        if self._satisfied(key) and not deleting:
            try:
                if not await self._manage(ds, hash_, nodes, eligible, by_node, now):
                    await self._roll(ds, hash_, eligible, by_node, now)
            except APIStatusError as e:
                failure = e.message
        if not deleting:
            await self._cleanup_history(ds, hash_, revisions, owned)
        await self._write_status(ds, hash_, eligible, by_node, now)
        if failure:
            raise RuntimeError(f"DaemonSet {key}: {failure}")

    async def _manage(self, ds: Any, hash_: str, nodes: dict[str, Any],
                      eligible: dict[str, tuple[bool, bool]], by_node: dict[str, list[Any]],
                      now: float) -> bool:
        """Create and delete pods so every node has what it should; True if it acted."""
        surge = ds.spec.updateStrategy.type == "RollingUpdate" and \
            update_budget(ds, sum(1 for r, _ in eligible.values() if r))[0] > 0
        create: list[str] = []
        delete: list[Any] = []
        for name in sorted(nodes):
            should_run, should_continue = eligible[name]
            pods = by_node.get(name, [])
            need, victims = plan_node(pods, should_run, should_continue, hash_, surge=surge,
                                      min_ready=ds.spec.minReadySeconds, now=now)
            failed = [p for p in victims if p.status.phase == "Failed"]
            if failed and should_run and not self._failed_backoff_over(ds, name):
                continue  # keep the failed pod (and create nothing) until the back-off ends
            for p in failed:
                self.recorder.event(ds, "Warning", "FailedDaemonPod",
                                    f"Found failed daemon pod {ds.metadata.namespace}/"
                                    f"{p.metadata.name} on node {name}, will try to kill it")
            if need:
                create.append(name)
            delete += victims
        gone_nodes = [n for n in by_node if n and n not in nodes]
        orphaned = await self._pods_on_missing_nodes(by_node, gone_nodes)
        delete += [p for p in orphaned if not p.spec.nodeName]  # unbound: deleted at once
        forced = [p for p in orphaned if p.spec.nodeName][:BURST]  # bound: nobody will confirm
        create, delete = create[:BURST], delete[:BURST]
        if create or delete or forced:
            await self._sync_nodes(ds, hash_, create, delete, forced)
        return bool(create or delete or forced)

    def _failed_backoff_over(self, ds: Any, node: str) -> bool:
        """Whether a Failed pod on `node` may be replaced now (then the back-off grows)."""
        k = (key_of(ds), node)
        delay, since = self._failed.get(k, (0.0, 0.0))
        now = time.monotonic()
        initial, most = FAILED_BACKOFF
        if delay and now - since > 2 * most:
            delay = 0.0  # long quiet: start over
        if delay and now < since + delay:
            self.queue.add_after(key_of(ds), since + delay - now)
            return False
        self._failed[k] = (min(most, delay * 2) if delay else initial, now)
        return True

    async def _pods_on_missing_nodes(self, by_node: dict[str, list[Any]],
                                     gone: list[str]) -> list[Any]:
        """Pods for nodes absent from the cache whose absence a live read confirms."""
        out: list[Any] = []
        for name in gone:
            try:
                await self.client.get("nodes", name)
                continue  # the cache is behind: the node event will bring us back
            except APIStatusError as e:
                if not e.not_found:
                    raise
            out += by_node[name]
        return out

    async def _roll(self, ds: Any, hash_: str, eligible: dict[str, tuple[bool, bool]],
                    by_node: dict[str, list[Any]], now: float) -> None:
        if ds.spec.updateStrategy.type != "RollingUpdate":
            return  # OnDelete: manage replaces what the user deleted
        node_pods = {n: by_node.get(n, []) for n, (run, _) in eligible.items() if run}
        max_surge, max_unavailable = update_budget(ds, len(node_pods))
        min_ready = ds.spec.minReadySeconds
        if max_surge > 0:
            delete, create = plan_surge_update(node_pods, hash_, max_surge, min_ready, now)
        else:
            delete, create = plan_rolling_update(node_pods, hash_, max_unavailable, min_ready,
                                                 now), []
        if create or delete:
            await self._sync_nodes(ds, hash_, create[:BURST], delete[:BURST])

    # ---- writes -------------------------------------------------------------------

    def _new_pod(self, ds: Any, hash_: str, node: str) -> Any:
        t = ds.spec.template
        pod = pod_pb2.Pod(apiVersion="v1", kind="Pod")
        md = pod.metadata
        md.generateName = f"{ds.metadata.name}-"
        md.namespace = ds.metadata.namespace
        md.labels.update(t.metadata.labels)
        md.labels[LABEL_HASH] = hash_
        md.labels[LABEL_GENERATION] = str(ds.metadata.generation)
        md.annotations.update(t.metadata.annotations)
        md.finalizers.extend(t.metadata.finalizers)
        md.ownerReferences.append(_owner_ref(ds))
        pod.spec.CopyFrom(daemon_pod_spec(t))
        if not pod.spec.nodeName:
            pin_to_node(pod.spec, node)
        return pod

    async def _sync_nodes(self, ds: Any, hash_: str, create: list[str], delete: list[Any],
                          force: list[Any] | None = None) -> None:
        """Create pods for `create` nodes, delete `delete` (and `force` with grace 0),
        expecting to see each of them in the informer before acting again."""
        key = key_of(ds)
        force = force or []
        victims = [(p, None) for p in delete] + [(p, 0) for p in force]
        # A pod already terminating shows no new deletion to wait for.
        dels = sum(1 for p, _ in victims if not p.metadata.deletionTimestamp)
        self._expect.expect(key, adds=len(create), dels=dels)
        errors: list[BaseException] = []
        if victims:
            results = await asyncio.gather(
                *(self.client.delete("pods", p.metadata.name, p.metadata.namespace,
                                     grace_period_seconds=grace,
                                     precondition_uid=p.metadata.uid) for p, grace in victims),
                return_exceptions=True)
            gone = 0
            for (p, _), r in zip(victims, results, strict=True):
                counted = not p.metadata.deletionTimestamp
                if isinstance(r, APIStatusError) and r.not_found:
                    gone += counted
                elif isinstance(r, BaseException):
                    gone += counted
                    errors.append(r)
                    self.recorder.event(ds, "Warning", "FailedDelete",
                                        f"Error deleting pod {p.metadata.name}: "
                                        f"{getattr(r, 'message', r)}")
                else:
                    self.recorder.event(ds, "Normal", "SuccessfulDelete",
                                        f"Deleted pod: {p.metadata.name}")
            if gone:
                self._lower(key, dels=gone)
        batch, left = 1, list(create)
        while left:  # slow start: 1, 2, 4, ... so a broken template fails fast
            chunk, left = left[:batch], left[batch:]
            results = await asyncio.gather(
                *(self.client.create(self._new_pod(ds, hash_, n)) for n in chunk),
                return_exceptions=True)
            failed = 0
            for r in results:
                if isinstance(r, BaseException):
                    failed += 1
                    if _namespace_terminating(r):
                        continue  # all is going away: nothing to report or retry
                    errors.append(r)
                    self.recorder.event(ds, "Warning", "FailedCreate",
                                        f"Error creating: {getattr(r, 'message', r)}")
                else:
                    self.recorder.event(ds, "Normal", "SuccessfulCreate",
                                        f"Created pod: {r.metadata.name}")
            if failed:
                self._lower(key, adds=failed + len(left))  # these will never be seen
                break
            batch *= 2
        if errors:
            raise errors[0]

    def _lower(self, key: str, *, adds: int = 0, dels: int = 0) -> None:
        self._expect.lower(key, adds=adds, dels=dels)

    # ---- claiming -------------------------------------------------------------

    async def _claim(self, ds: Any, sel: selectors.Selector | None,
                     pods: list[Any]) -> list[Any]:
        owned = []
        uid = ds.metadata.uid
        for p in pods:
            ref = controller_ref(p)
            matches = sel is not None and selectors.matches(sel, p.metadata.labels)
            if ref is not None and ref.uid == uid:
                if matches or not active(p):
                    owned.append(p)
                else:
                    await self._patch_refs(p, [r for r in p.metadata.ownerReferences
                                               if r.uid != uid])
            elif ref is None and matches and active(p) and not ds.metadata.deletionTimestamp:
                refs = [*p.metadata.ownerReferences, _owner_ref(ds)]
                adopted = await self._patch_refs(p, refs, uid=True)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _patch_refs(self, pod: Any, refs: list[Any], *, uid: bool = False) -> Any | None:
        md = pod.metadata
        patch: dict[str, Any] = {"metadata": {
            "ownerReferences": [convert.to_dict(r) for r in refs] or None,
            "resourceVersion": md.resourceVersion}}
        if uid:
            patch["metadata"]["uid"] = md.uid
        try:
            return await self.client.patch("pods", md.name, patch, md.namespace)
        except APIStatusError as e:
            if e.not_found or e.conflict:
                return None  # changed meanwhile: the next sync sees the new state
            raise

    # ---- history (ControllerRevisions) --------------------------------------------

    def _owned_revisions(self, ds: Any) -> list[Any]:
        out = []
        for cr in self.revisions.items():
            ref = controller_ref(cr)
            if cr.metadata.namespace == ds.metadata.namespace and ref is not None and \
                    ref.uid == ds.metadata.uid:
                out.append(cr)
        return out

    async def _history(self, ds: Any, deleting: bool) -> tuple[str, list[Any]]:
        """The current hash and the DaemonSet's revisions, recording the current one."""
        collision = ds.status.collisionCount if ds.status.HasField("collisionCount") else None
        hash_ = template_hash(ds.spec.template, collision)
        revisions = self._owned_revisions(ds)
        if deleting:
            return hash_, revisions
        name = f"{ds.metadata.name}-{hash_}"
        data = revision_data(ds.spec.template)
        top = max((cr.revision for cr in revisions), default=0)
        current = next((cr for cr in revisions if cr.metadata.name == name), None)
        if current is None:
            current = await self._create_revision(ds, name, hash_, data, top + 1)
            revisions.append(current)
        elif current.data != data:
            await self._collided(ds, name)
        elif current.revision < top:  # back to an older template: it becomes the newest
            await self.client.patch("controllerrevisions", name, {"revision": top + 1},
                                    ds.metadata.namespace)
        return hash_, revisions

    async def _create_revision(self, ds: Any, name: str, hash_: str, data: bytes,
                               number: int) -> Any:
        cr = apps_pb2.ControllerRevision(apiVersion=API_VERSION, kind="ControllerRevision",
                                         data=data, revision=number)
        md = cr.metadata
        md.name, md.namespace = name, ds.metadata.namespace
        md.labels.update(ds.spec.template.metadata.labels)
        md.labels[LABEL_HASH] = hash_
        md.ownerReferences.append(_owner_ref(ds))
        try:
            return await self.client.create(cr)
        except APIStatusError as e:
            if not e.already_exists:
                raise
        existing = await self.client.get("controllerrevisions", name, ds.metadata.namespace)
        ref = controller_ref(existing)
        if existing.data == data and ref is not None and ref.uid == ds.metadata.uid:
            return existing  # ours, not in the cache yet
        await self._collided(ds, name)

    async def _collided(self, ds: Any, name: str) -> NoReturn:
        """Another revision holds our name: bump collisionCount (a new hash) and retry."""
        update = apps_pb2.DaemonSet()
        update.CopyFrom(ds)
        update.status.collisionCount = (ds.status.collisionCount + 1
                                        if ds.status.HasField("collisionCount") else 1)
        update.metadata.resourceVersion = ""
        await self.client.update_status(update)
        raise RuntimeError(f"ControllerRevision {name} exists with other data: "
                           f"collisionCount now {update.status.collisionCount}")

    async def _cleanup_history(self, ds: Any, hash_: str, revisions: list[Any],
                               pods: list[Any]) -> None:
        limit = ds.spec.revisionHistoryLimit if ds.spec.HasField("revisionHistoryLimit") else 10
        in_use = {hash_} | {p.metadata.labels.get(LABEL_HASH) for p in pods if active(p)}
        old = sorted((cr for cr in revisions if cr.metadata.labels.get(LABEL_HASH) not in in_use
                      and cr.metadata.name != f"{ds.metadata.name}-{hash_}"),
                     key=lambda cr: cr.revision)
        for cr in old[:max(0, len(old) - limit)]:
            try:
                await self.client.delete("controllerrevisions", cr.metadata.name,
                                         cr.metadata.namespace, precondition_uid=cr.metadata.uid)
            except APIStatusError as e:
                if not e.not_found:
                    raise

    # ---- status -------------------------------------------------------------------

    async def _write_status(self, ds: Any, hash_: str, eligible: dict[str, tuple[bool, bool]],
                            by_node: dict[str, list[Any]], now: float) -> None:
        min_ready = ds.spec.minReadySeconds
        desired = current = misscheduled = ready = avail = updated = 0
        waiting: list[float] = []
        for name, (should_run, _) in eligible.items():
            live = sorted((p for p in by_node.get(name, []) if active(p)), key=age_key)
            if not should_run:
                misscheduled += bool(live)
                continue
            desired += 1
            if not live:
                continue
            current += 1
            oldest = live[0]
            if pod_ready(oldest):
                ready += 1
                avail += available(oldest, min_ready, now)
            waiting += [ready_since(p) + min_ready - now for p in live
                        if pod_ready(p) and not available(p, min_ready, now)]
            if any(is_updated(p, hash_) for p in live):
                updated += 1
        if waiting:
            self.queue.add_after(key_of(ds), max(0.1, min(waiting)))
        status = apps_pb2.DaemonSetStatus()
        status.CopyFrom(ds.status)
        status.desiredNumberScheduled = desired
        status.currentNumberScheduled = current
        status.numberMisscheduled = misscheduled
        status.numberReady = ready
        status.numberAvailable = avail
        status.numberUnavailable = desired - avail
        status.updatedNumberScheduled = updated
        status.observedGeneration = ds.metadata.generation
        if status == ds.status:
            return
        update = apps_pb2.DaemonSet()
        update.CopyFrom(ds)
        update.status.CopyFrom(status)
        update.metadata.resourceVersion = ""
        try:
            await self.client.update_status(update)
        except APIStatusError as e:
            if not e.not_found:
                raise
