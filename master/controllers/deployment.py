"""The Deployment controller: a ReplicaSet per pod template, rolled out gradually.

For each Deployment it:

- claims ReplicaSets: adopts orphans its selector matches, releases owned ones
  that no longer match (as the ReplicaSet controller does with pods);
- finds the new ReplicaSet (the oldest whose template equals the Deployment's,
  ignoring the pod-template-hash label) or creates it as
  `<name>-<pod-template-hash>`, the hash label added to its selector, template
  and so its pods; a name taken by a different template bumps
  status.collisionCount and the next sync tries another hash;
- keeps the revision annotations: the new ReplicaSet's revision is one more
  than the highest old one (a ReplicaSet brought back by a rollback gets a new
  number; its old ones go to deployment.kubernetes.io/revision-history), the
  Deployment carries its new ReplicaSet's revision; its annotations are copied
  onto the new ReplicaSet; desired-replicas / max-replicas record the size
  each ReplicaSet was scaled for;
- RollingUpdate: scales the new ReplicaSet up while the total stays within
  replicas + maxSurge, and old ones down while the available pods stay at or
  above replicas - maxUnavailable (unhealthy old replicas go first). Counts come
  from the pods themselves, bounded by each ReplicaSet's target: a ReplicaSet
  scaled down still counts the pods it has not deleted yet, and counts no more
  available pods than it will keep, so the limits hold while the ReplicaSet
  controller catches up;
- Recreate: scales every old ReplicaSet to 0, waits until their pods are gone,
  then scales the new one up;
- a change of replicas in mid-rollout (seen through desired-replicas) is spread
  over the active ReplicaSets in proportion to their sizes, as Kubernetes does;
- paused: no rollout, scaling still applies;
- revisionHistoryLimit: the oldest old ReplicaSets scaled to 0 beyond the limit
  are deleted;
- status: observedGeneration, replicas, updatedReplicas, readyReplicas,
  availableReplicas, unavailableReplicas, collisionCount and the conditions
  Available (MinimumReplicasAvailable/Unavailable) and Progressing
  (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
  NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
  DeploymentResumed), plus ReplicaFailure copied from its ReplicaSets.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from kubelite.api import apps_pb2, meta_pb2
from kubelite.client import APIStatusError, AsyncClient
from kubelite.objects import convert, rollout, selectors
from master.apiserver.strategy import now_rfc3339
from master.controllers.base import Controller, controller_ref, owner_reference
from master.controllers.replicaset import active, available, pod_ready, ready_since
from master.informers import key_of

log = logging.getLogger(__name__)

NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

MAX_REVISION_HISTORY_CHARS = 2000
WRITTEN_TTL = 30.0  # how long an object we wrote may stand in for one the cache lacks
NO_DEADLINE = 2**31 - 1


def _ts(text: str) -> float:
    try:
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def _int_annotation(obj: Any, key: str) -> int | None:
    text = obj.metadata.annotations.get(key, "")
    try:
        return int(text)
    except ValueError:
        return None


def _rv(obj: Any) -> int:
    try:
        return int(obj.metadata.resourceVersion)
    except ValueError:
        return 0


def _copy(msg: Any) -> Any:
    out = type(msg)()
    out.CopyFrom(msg)
    return out


# ---- the pure part: what to scale, with what the pods show ----------------------

@dataclass
class RS:
    """A ReplicaSet of a Deployment and what its pods show right now."""

    name: str
    replicas: int  # spec.replicas
    created: float = 0.0
    uid: str = ""
    live: int = 0  # pods neither terminating nor finished
    ready: int = 0
    available: int = 0
    running: int = 0  # pods not finished, terminating ones included
    revision: int = 0
    max_replicas: int | None = None  # the max-replicas annotation
    desired: int | None = None  # the desired-replicas annotation
    status_replicas: int = 0
    observed_current: bool = True  # status.observedGeneration >= metadata.generation
    deleting: bool = False
    obj: Any = None

    @property
    def safe_available(self) -> int:
        """Available pods it keeps once at its target (it deletes unavailable pods first)."""
        return max(0, min(self.replicas, self.available))

    @property
    def upper_bound(self) -> int:
        """Pods it may have at once: its target, or more while surplus ones still run."""
        return max(self.replicas, self.live)


def by_age(rss: list[RS]) -> list[RS]:
    return sorted(rss, key=lambda r: (r.created, r.name))


def active_sets(rss: list[RS | None]) -> list[RS]:
    return [r for r in rss if r is not None and r.replicas > 0]


def new_rs_replicas(replicas: int, surge: int, all_rss: list[RS], new: RS | None, *,
                    recreate: bool = False) -> int:
    """The size to give the new ReplicaSet now (NewRSNewReplicas)."""
    if recreate:
        return replicas
    current_new = new.replicas if new is not None else 0
    current = sum(r.upper_bound for r in all_rss)
    max_total = replicas + surge
    if current >= max_total:
        return current_new
    return current_new + max(0, min(max_total - current, replicas - current_new))


def plan_old_scale_down(new: RS | None, old: list[RS], replicas: int,
                        unavailable: int) -> dict[str, int]:
    """New sizes for old ReplicaSets: unhealthy replicas first, then as many
    available ones as keep `replicas - unavailable` pods available."""
    old = active_sets(list(old))
    if not old:
        return {}
    sizes = {r.name: r.replicas for r in old}
    all_pods = sum(sizes.values()) + (new.replicas if new is not None else 0)
    min_available = replicas - unavailable
    new_unavailable = (new.replicas - new.safe_available) if new is not None else 0
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    cleaned = 0
    for r in by_age(old):
        if cleaned >= max_scaled_down:
            break
        unhealthy = r.replicas - r.safe_available
        if unhealthy <= 0:
            continue
        n = min(max_scaled_down - cleaned, unhealthy)
        sizes[r.name] -= n
        cleaned += n
    now_available = sum(min(sizes[r.name], r.available) for r in old) + (
        new.safe_available if new is not None else 0)
    budget = now_available - min_available
    done = 0
    for r in by_age(old):
        if done >= budget:
            break
        if sizes[r.name] == 0:
            continue
        n = min(sizes[r.name], budget - done)
        sizes[r.name] -= n
        done += n
    return {r.name: sizes[r.name] for r in old if sizes[r.name] != r.replicas}


def _round(x: float) -> int:
    """Round half away from zero (Go's math.Round)."""
    return int(math.floor(x + 0.5)) if x >= 0 else -int(math.floor(-x + 0.5))


def rs_fraction(rs: RS, replicas: int, surge: int, status_replicas: int) -> int:
    """How much `rs` grows (or shrinks) when the Deployment goes to `replicas`."""
    if replicas == 0:
        return -rs.replicas
    max_now = replicas + surge
    before = rs.max_replicas or status_replicas  # no annotation: someone scaled it by hand
    if before <= 0:
        return 0
    return _round(rs.replicas * max_now / before) - rs.replicas


def proportion(rs: RS, replicas: int, surge: int, to_add: int, added: int,
               status_replicas: int) -> int:
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = rs_fraction(rs, replicas, surge, status_replicas)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_order(rss: list[RS], to_add: int) -> list[RS]:
    """Largest first; on a tie the newer first when growing, the older first when shrinking."""
    if to_add > 0:
        rss = sorted(rss, key=lambda r: r.name, reverse=True)
        return sorted(rss, key=lambda r: (-r.replicas, -r.created))
    return sorted(rss, key=lambda r: (-r.replicas, r.created, r.name))


def proportional_sizes(rss: list[RS], replicas: int, surge: int,
                       status_replicas: int) -> tuple[list[RS], dict[str, int]]:
    """Spread a change of `replicas` over the active ReplicaSets `rss`, in proportion
    to their sizes; what rounding leaves over goes to the first (the largest)."""
    total = sum(r.replicas for r in rss)
    allowed = replicas + surge if replicas > 0 else 0
    to_add = allowed - total
    order = proportional_order(rss, to_add) if to_add else list(rss)
    sizes: dict[str, int] = {}
    added = 0
    for r in order:
        p = proportion(r, replicas, surge, to_add, added, status_replicas) if to_add else 0
        sizes[r.name] = r.replicas + p
        added += p
    if to_add and order:
        first = order[0].name
        sizes[first] = max(0, sizes[first] + to_add - added)
    return order, sizes


def find_active_or_latest(new: RS | None, old: list[RS]) -> RS | None:
    """The one ReplicaSet with replicas (or the newest when none has); None if several."""
    if new is None and not old:
        return None
    newest_first = sorted(old, key=lambda r: (r.created, r.name), reverse=True)
    act = active_sets([*newest_first, new])
    if not act:
        return new if new is not None else newest_first[0]
    return act[0] if len(act) == 1 else None


def history_victims(old: list[RS], limit: int) -> list[RS]:
    """Old ReplicaSets beyond revisionHistoryLimit that may go: oldest revisions first,
    only those with no replicas and no pods."""
    alive = [r for r in old if not r.deleting]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    ordered = sorted(alive, key=lambda r: (r.revision, r.created, r.name))[:diff]
    return [r for r in ordered if r.replicas == 0 and r.status_replicas == 0 and r.live == 0
            and r.observed_current]


def set_new_rs_annotations(d: Any, rs: Any, new_revision: int, *, exists: bool) -> bool:
    """Copy the Deployment's annotations onto its new ReplicaSet and move its revision
    forward (keeping the numbers it had in revision-history); True if anything changed."""
    changed = False
    ann = rs.metadata.annotations
    for k, v in d.metadata.annotations.items():
        if k in rollout.SKIP_COPY or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    old_text = ann.get(rollout.REVISION, "")
    if old_text and not old_text.isdigit():
        return changed
    old = int(old_text) if old_text else 0
    if old < new_revision:
        ann[rollout.REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = [h for h in ann.get(rollout.REVISION_HISTORY, "").split(",") if h]
            history.append(old_text)
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            ann[rollout.REVISION_HISTORY] = ",".join(history)
    if not exists:
        changed |= set_replicas_annotations(rs, rollout.replicas(d),
                                            rollout.replicas(d) + rollout.max_surge(d))
    return changed


def set_replicas_annotations(rs: Any, desired: int, max_replicas: int) -> bool:
    ann = rs.metadata.annotations
    changed = False
    for k, v in ((rollout.DESIRED_REPLICAS, str(desired)),
                 (rollout.MAX_REPLICAS, str(max_replicas))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


# ---- conditions ------------------------------------------------------------------

def get_condition(status: Any, ctype: str) -> Any | None:
    return next((c for c in status.conditions if c.type == ctype), None)


def new_condition(ctype: str, status: str, reason: str, message: str) -> Any:
    now = now_rfc3339()
    return apps_pb2.DeploymentCondition(type=ctype, status=status, reason=reason,
                                        message=message, lastUpdateTime=now,
                                        lastTransitionTime=now)


def remove_condition(status: Any, ctype: str) -> None:
    keep = [c for c in status.conditions if c.type != ctype]
    del status.conditions[:]
    status.conditions.extend(keep)


def set_condition(status: Any, cond: Any) -> None:
    """Kubernetes' SetDeploymentCondition: same status and reason: no change; same
    status: keep lastTransitionTime; the condition goes last."""
    cur = get_condition(status, cond.type)
    if cur is not None and cur.status == cond.status and cur.reason == cond.reason:
        return
    if cur is not None and cur.status == cond.status:
        cond.lastTransitionTime = cur.lastTransitionTime
    remove_condition(status, cond.type)
    status.conditions.append(cond)


def has_progress_deadline(d: Any) -> bool:
    return d.spec.HasField("progressDeadlineSeconds") and \
        d.spec.progressDeadlineSeconds != NO_DEADLINE


def deployment_complete(d: Any, status: Any) -> bool:
    n = rollout.replicas(d)
    return (status.updatedReplicas == n and status.replicas == n
            and status.availableReplicas == n
            and status.observedGeneration >= d.metadata.generation)


def deployment_progressing(d: Any, status: Any) -> bool:
    old = d.status
    return (status.updatedReplicas > old.updatedReplicas
            or status.replicas - status.updatedReplicas < old.replicas - old.updatedReplicas
            or status.readyReplicas > old.readyReplicas
            or status.availableReplicas > old.availableReplicas)


def deployment_timed_out(d: Any, status: Any, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, "Progressing")
    if cond is None or cond.reason == NEW_RS_AVAILABLE:
        return False
    if cond.reason == TIMED_OUT:
        return True
    return _ts(cond.lastUpdateTime) + d.spec.progressDeadlineSeconds < now


# ---- the controller ----------------------------------------------------------------

class DeploymentController(Controller):
    name = "deployment"
    workers = 4

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self.deployments = self.informer("deployments", on_change=self.enqueue)
        self.replicasets = self.informer("replicasets", on_change=self._rs_changed,
                                         on_update=self._rs_updated,
                                         on_delete=self._rs_deleted)
        self.pods = self.informer("pods", on_change=self._pod_added,
                                  on_update=self._pod_updated, on_delete=self._pod_deleted)
        self._pods_of: dict[str, dict[str, Any]] = {}  # ReplicaSet uid -> {pod key: pod}
        # "resource|ns/name" -> (object this controller last wrote, when): fresher than
        # the cache until the cache catches up.
        self._written: dict[str, tuple[Any, float]] = {}

    # ---- events ------------------------------------------------------------------

    def _enqueue_owner_of_rs(self, rs: Any) -> None:
        ref = controller_ref(rs)
        ns = rs.metadata.namespace
        if ref is not None:
            if ref.kind == "Deployment":
                self.queue.add(f"{ns}/{ref.name}")
            return
        for d in self.deployments.items():  # an orphan: whoever may adopt it
            if d.metadata.namespace != ns or not d.spec.HasField("selector"):
                continue
            sel = selectors.from_message(d.spec.selector)
            if sel and selectors.matches(sel, rs.metadata.labels):
                self.queue.add(key_of(d))

    def _rs_changed(self, rs: Any) -> None:
        self._enqueue_owner_of_rs(rs)

    def _rs_updated(self, old: Any, new: Any) -> None:
        oref, nref = controller_ref(old), controller_ref(new)
        if oref is not None and (nref is None or nref.uid != oref.uid):
            self._enqueue_owner_of_rs(old)
        self._enqueue_owner_of_rs(new)

    def _rs_deleted(self, rs: Any) -> None:
        self._written.pop(f"replicasets|{key_of(rs)}", None)
        self._enqueue_owner_of_rs(rs)

    def _index(self, pod: Any, *, add: bool) -> Any | None:
        ref = controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return None
        key = key_of(pod)
        if add:
            self._pods_of.setdefault(ref.uid, {})[key] = pod
        else:
            pods = self._pods_of.get(ref.uid)
            if pods is not None:
                pods.pop(key, None)
                if not pods:
                    del self._pods_of[ref.uid]
        return ref

    def _enqueue_for_pod(self, ns: str, ref: Any | None) -> None:
        if ref is None:
            return
        rs = self.replicasets.get(f"{ns}/{ref.name}")
        if rs is not None and rs.metadata.uid == ref.uid:
            self._enqueue_owner_of_rs(rs)

    def _pod_added(self, pod: Any) -> None:
        self._enqueue_for_pod(pod.metadata.namespace, self._index(pod, add=True))

    def _pod_updated(self, old: Any, new: Any) -> None:
        oref, nref = controller_ref(old), controller_ref(new)
        if oref is not None and (nref is None or nref.uid != oref.uid):
            self._enqueue_for_pod(old.metadata.namespace, self._index(old, add=False))
        self._enqueue_for_pod(new.metadata.namespace, self._index(new, add=True))

    def _pod_deleted(self, pod: Any) -> None:
        self._enqueue_for_pod(pod.metadata.namespace, self._index(pod, add=False))

    # ---- fresh views ---------------------------------------------------------------

    def remember(self, resource: str, obj: Any) -> None:
        self._written[f"{resource}|{key_of(obj)}"] = (obj, time.monotonic())

    def fresh(self, resource: str, key: str, cached: Any | None) -> Any | None:
        """The newer of the cached object and the one this controller last wrote."""
        wkey = f"{resource}|{key}"
        entry = self._written.get(wkey)
        if entry is None:
            return cached
        obj, at = entry
        if cached is None:
            if resource == "replicasets" and time.monotonic() - at < WRITTEN_TTL:
                return obj  # created a moment ago, not in the cache yet
            self._written.pop(wkey, None)
            return None
        if cached.metadata.uid != obj.metadata.uid or _rv(cached) >= _rv(obj):
            self._written.pop(wkey, None)
            return cached
        return obj

    def replica_sets_in(self, ns: str) -> list[Any]:
        out = {}
        for rs in self.replicasets.items():
            if rs.metadata.namespace == ns:
                key = key_of(rs)
                out[key] = self.fresh("replicasets", key, rs)
        prefix = f"replicasets|{ns}/"
        for wkey in list(self._written):
            if wkey.startswith(prefix) and wkey[len("replicasets|"):] not in out:
                key = wkey[len("replicasets|"):]
                obj = self.fresh("replicasets", key, None)
                if obj is not None:
                    out[key] = obj
        return list(out.values())

    def view(self, rs: Any, now: float) -> RS:
        pods = list(self._pods_of.get(rs.metadata.uid, {}).values())
        live = [p for p in pods if active(p)]
        min_ready = rs.spec.minReadySeconds
        return RS(
            name=rs.metadata.name, uid=rs.metadata.uid,
            replicas=rs.spec.replicas if rs.spec.HasField("replicas") else 1,
            created=_ts(rs.metadata.creationTimestamp),
            live=len(live), ready=sum(1 for p in live if pod_ready(p)),
            available=sum(1 for p in live if available(p, min_ready, now)),
            running=sum(1 for p in pods if p.status.phase not in ("Succeeded", "Failed")),
            revision=rollout.revision(rs),
            max_replicas=_int_annotation(rs, rollout.MAX_REPLICAS),
            desired=_int_annotation(rs, rollout.DESIRED_REPLICAS),
            status_replicas=rs.status.replicas,
            observed_current=rs.status.observedGeneration >= rs.metadata.generation,
            deleting=bool(rs.metadata.deletionTimestamp), obj=rs)

    def min_ready_wait(self, rss: list[Any], now: float) -> float | None:
        """Seconds until the next ready pod of these ReplicaSets becomes available."""
        waits = []
        for rs in rss:
            min_ready = rs.spec.minReadySeconds
            if min_ready <= 0:
                continue
            for p in self._pods_of.get(rs.metadata.uid, {}).values():
                if active(p) and pod_ready(p) and not available(p, min_ready, now):
                    waits.append(ready_since(p) + min_ready - now)
        return max(0.1, min(waits)) if waits else None

    # ---- reconcile -----------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        d = self.fresh("deployments", key, self.deployments.get(key))
        if d is None:
            self._written.pop(f"deployments|{key}", None)
            return
        sync = _Sync(self, _copy(d))
        try:
            await sync.run()
        except APIStatusError as e:
            if e.conflict:  # someone else wrote first: look again shortly
                log.debug("deployment %s: %s; retrying", key, e.message)
                self.queue.add_after(key, 0.2)
                return
            if e.not_found and sync.deployment_gone:
                return
            raise


class _Sync:
    """One sync of one Deployment; `d` is always the latest copy of it."""

    def __init__(self, ctl: DeploymentController, d: Any) -> None:
        self.ctl = ctl
        self.client = ctl.client
        self.d = d
        self.key = key_of(d)
        self.now = time.time()
        self.deployment_gone = False

    # ---- writes ----------------------------------------------------------------------

    async def write_status(self, status: Any) -> None:
        if status == self.d.status:
            return
        upd = _copy(self.d)
        upd.status.CopyFrom(status)
        upd.metadata.resourceVersion = ""
        try:
            self.d = await self.client.update_status(upd)
        except APIStatusError as e:
            if e.not_found:
                self.deployment_gone = True
            raise
        self.ctl.remember("deployments", self.d)

    async def set_revision(self, revision: str) -> None:
        if not revision or self.d.metadata.annotations.get(rollout.REVISION) == revision:
            return
        md = self.d.metadata
        try:
            self.d = await self.client.patch(
                "deployments", md.name,
                {"metadata": {"annotations": {rollout.REVISION: revision}}},
                md.namespace)
        except APIStatusError as e:
            if e.not_found:
                self.deployment_gone = True
            raise
        self.ctl.remember("deployments", self.d)

    async def update_rs(self, rs: RS, obj: Any) -> None:
        """CAS-write a changed ReplicaSet; when only its status moved meanwhile, the
        change still stands and is written over the fresh copy."""
        for attempt in range(3):
            try:
                updated = await self.client.update(obj)
                break
            except APIStatusError as e:
                if not e.conflict or attempt == 2:
                    raise
                live = await self.client.get("replicasets", obj.metadata.name,
                                             obj.metadata.namespace)
                if live.metadata.uid != rs.uid or \
                        live.metadata.generation != rs.obj.metadata.generation or \
                        live.metadata.annotations != rs.obj.metadata.annotations:
                    raise
                obj.metadata.resourceVersion = live.metadata.resourceVersion
        self.ctl.remember("replicasets", updated)
        rs.obj = updated
        rs.replicas = updated.spec.replicas
        rs.desired = _int_annotation(updated, rollout.DESIRED_REPLICAS)
        rs.max_replicas = _int_annotation(updated, rollout.MAX_REPLICAS)

    async def scale_rs(self, rs: RS, size: int, operation: str = "") -> bool:
        """Set a ReplicaSet's size and replica annotations; True if the size changed."""
        n = rollout.replicas(self.d)
        surge = rollout.max_surge(self.d)
        obj = _copy(rs.obj)
        size_changed = rs.replicas != size
        ann_changed = set_replicas_annotations(obj, n, n + surge)
        if not size_changed and not ann_changed:
            return False
        before = rs.replicas
        obj.spec.replicas = size
        await self.update_rs(rs, obj)
        if size_changed:
            direction = operation or ("up" if size > before else "down")
            self.ctl.recorder.event(self.d, "Normal", "ScalingReplicaSet",
                                    f"Scaled {direction} replica set {rs.name} from {before} "
                                    f"to {size}")
        return size_changed

    async def scale_and_record(self, rs: RS, size: int) -> bool:
        if rs.replicas == size:
            return False
        return await self.scale_rs(rs, size)

    # ---- claiming --------------------------------------------------------------------

    async def claim(self) -> list[RS]:
        d = self.d
        sel = selectors.from_message(d.spec.selector)
        uid = d.metadata.uid
        owned: list[RS] = []
        can_adopt: bool | None = None
        for rs in self.ctl.replica_sets_in(d.metadata.namespace):
            ref = controller_ref(rs)
            matches = selectors.matches(sel, rs.metadata.labels)
            if ref is not None:
                if ref.uid != uid:
                    continue
                if matches or d.metadata.deletionTimestamp:
                    owned.append(self.ctl.view(rs, self.now))
                elif not rs.metadata.deletionTimestamp:
                    await self._release(rs)
                continue
            if not matches or rs.metadata.deletionTimestamp or d.metadata.deletionTimestamp:
                continue
            if can_adopt is None:
                can_adopt = await self._can_adopt()
            if can_adopt:
                adopted = await self._adopt(rs)
                if adopted is not None:
                    owned.append(self.ctl.view(adopted, self.now))
        return owned

    async def _can_adopt(self) -> bool:
        """A live read: never adopt for a Deployment that is going or was replaced."""
        md = self.d.metadata
        try:
            live = await self.client.get("deployments", md.name, md.namespace)
        except APIStatusError as e:
            if e.not_found:
                return False
            raise
        return live.metadata.uid == md.uid and not live.metadata.deletionTimestamp

    async def _adopt(self, rs: Any) -> Any | None:
        refs = [convert.to_dict(r) for r in rs.metadata.ownerReferences]
        refs.append(owner_reference(self.d, "apps/v1", "Deployment"))
        patch = {"metadata": {"ownerReferences": refs, "uid": rs.metadata.uid,
                              "resourceVersion": rs.metadata.resourceVersion}}
        try:
            adopted = await self.client.patch("replicasets", rs.metadata.name, patch,
                                              rs.metadata.namespace)
        except APIStatusError as e:
            if e.not_found or e.conflict:
                return None
            raise
        self.ctl.remember("replicasets", adopted)
        return adopted

    async def _release(self, rs: Any) -> None:
        refs = [convert.to_dict(r) for r in rs.metadata.ownerReferences
                if r.uid != self.d.metadata.uid]
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": rs.metadata.resourceVersion}}
        try:
            released = await self.client.patch("replicasets", rs.metadata.name, patch,
                                               rs.metadata.namespace)
        except APIStatusError as e:
            if not (e.not_found or e.conflict):
                raise
            return
        self.ctl.remember("replicasets", released)

    # ---- new and old ReplicaSets -----------------------------------------------------

    def split(self, owned: list[RS]) -> tuple[RS | None, list[RS]]:
        template = self.d.spec.template
        new = next((r for r in by_age(owned)
                    if rollout.equal_ignore_hash(r.obj.spec.template, template)), None)
        return new, [r for r in owned if r is not new]

    def new_revision(self, old: list[RS]) -> int:
        return max((r.revision for r in old), default=0) + 1

    async def sync_new(self, new: RS, old: list[RS]) -> None:
        """Bring an existing new ReplicaSet's annotations and minReadySeconds up to date."""
        obj = _copy(new.obj)
        changed = set_new_rs_annotations(self.d, obj, self.new_revision(old), exists=True)
        if obj.spec.minReadySeconds != self.d.spec.minReadySeconds:
            obj.spec.minReadySeconds = self.d.spec.minReadySeconds
            changed = True
        if changed:
            await self.update_rs(new, obj)
            new.revision = rollout.revision(new.obj)
        await self.set_revision(new.obj.metadata.annotations.get(rollout.REVISION, ""))
        if has_progress_deadline(self.d) and \
                get_condition(self.d.status, "Progressing") is None:
            status = _copy(self.d.status)
            set_condition(status, new_condition("Progressing", "True", FOUND_NEW_RS,
                                                f'Found new replica set "{new.name}"'))
            await self.write_status(status)

    async def create_new(self, old: list[RS]) -> RS:
        d = self.d
        md = d.metadata
        count = d.status.collisionCount if d.status.HasField("collisionCount") else None
        h = rollout.pod_template_hash(d.spec.template, count)
        revision = self.new_revision(old)
        n = new_rs_replicas(rollout.replicas(d), rollout.max_surge(d), old, None,
                            recreate=not rollout.is_rolling(d))
        rs = apps_pb2.ReplicaSet(apiVersion="apps/v1", kind="ReplicaSet")
        rs.metadata.name = f"{md.name}-{h}"
        rs.metadata.namespace = md.namespace
        rs.spec.template.CopyFrom(d.spec.template)
        rs.spec.template.metadata.labels[rollout.HASH_LABEL] = h
        rs.metadata.labels.update(rs.spec.template.metadata.labels)
        rs.metadata.ownerReferences.add().CopyFrom(convert.from_dict(
            owner_reference(d, "apps/v1", "Deployment"), meta_pb2.OwnerReference))
        rs.spec.selector.CopyFrom(d.spec.selector)
        rs.spec.selector.matchLabels[rollout.HASH_LABEL] = h
        rs.spec.minReadySeconds = d.spec.minReadySeconds
        rs.spec.replicas = n
        set_new_rs_annotations(d, rs, revision, exists=False)
        already = False
        try:
            created = await self.client.create(rs)
        except APIStatusError as e:
            if not e.already_exists:
                msg = f'Failed to create new replica set "{rs.metadata.name}": {e.message}'
                self.ctl.recorder.event(d, "Warning", FAILED_RS_CREATE, msg)
                if has_progress_deadline(d):
                    status = _copy(d.status)
                    set_condition(status, new_condition("Progressing", "False",
                                                        FAILED_RS_CREATE, msg))
                    try:
                        await self.write_status(status)
                    except APIStatusError:
                        pass  # the creation failure is what gets reported
                raise
            live = await self.client.get("replicasets", rs.metadata.name, md.namespace)
            ref = controller_ref(live)
            if ref is None or ref.uid != md.uid or \
                    not rollout.equal_ignore_hash(live.spec.template, d.spec.template):
                status = _copy(d.status)
                status.collisionCount = (count or 0) + 1
                await self.write_status(status)
                raise RuntimeError(f"hash collision on replica set {rs.metadata.name}; "
                                   f"collisionCount now {status.collisionCount}") from None
            created, already = live, True
        self.ctl.remember("replicasets", created)
        if not already and n > 0:
            self.ctl.recorder.event(d, "Normal", "ScalingReplicaSet",
                                    f"Scaled up replica set {created.metadata.name} from 0 "
                                    f"to {n}")
        await self.set_revision(str(revision))
        if not already and has_progress_deadline(self.d):
            status = _copy(self.d.status)
            set_condition(status, new_condition("Progressing", "True", NEW_RS_CREATED,
                                                f'Created new replica set '
                                                f'"{created.metadata.name}"'))
            await self.write_status(status)
        return self.ctl.view(created, self.now)

    # ---- status ----------------------------------------------------------------------

    def calculate_status(self, all_rss: list[RS], new: RS | None) -> Any:
        d = self.d
        status = _copy(d.status)
        avail = sum(r.available for r in all_rss)
        status.observedGeneration = d.metadata.generation
        status.replicas = sum(r.live for r in all_rss)
        status.updatedReplicas = new.live if new is not None else 0
        status.readyReplicas = sum(r.ready for r in all_rss)
        status.availableReplicas = avail
        status.unavailableReplicas = max(0, sum(r.replicas for r in all_rss) - avail)
        if avail >= rollout.replicas(d) - rollout.max_unavailable(d):
            cond = new_condition("Available", "True", MIN_AVAILABLE,
                                 "Deployment has minimum availability.")
        else:
            cond = new_condition("Available", "False", MIN_UNAVAILABLE,
                                 "Deployment does not have minimum availability.")
        set_condition(status, cond)
        return status

    async def sync_status(self, all_rss: list[RS], new: RS | None) -> None:
        await self.write_status(self.calculate_status(all_rss, new))
        self._requeue_for_min_ready(all_rss)

    async def sync_rollout_status(self, all_rss: list[RS], new: RS | None) -> None:
        d = self.d
        status = self.calculate_status(all_rss, new)
        if not has_progress_deadline(d):
            remove_condition(status, "Progressing")
        cur = get_condition(d.status, "Progressing")
        complete_before = (status.replicas == status.updatedReplicas and cur is not None
                           and cur.reason == NEW_RS_AVAILABLE)
        if has_progress_deadline(d) and not complete_before:
            what = (f'ReplicaSet "{new.name}"' if new is not None
                    else f'Deployment "{d.metadata.name}"')
            if deployment_complete(d, status):
                set_condition(status, new_condition("Progressing", "True", NEW_RS_AVAILABLE,
                                                    f"{what} has successfully progressed."))
            elif deployment_progressing(d, status):
                cond = new_condition("Progressing", "True", RS_UPDATED, f"{what} is progressing.")
                if cur is not None:
                    if cur.status == "True":
                        cond.lastTransitionTime = cur.lastTransitionTime
                    remove_condition(status, "Progressing")
                set_condition(status, cond)
            elif deployment_timed_out(d, status, self.now):
                set_condition(status, new_condition("Progressing", "False", TIMED_OUT,
                                                    f"{what} has timed out progressing."))
        failure = self._replica_failure(all_rss, new)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, "ReplicaFailure")
        await self.write_status(status)
        self._requeue_stuck()
        self._requeue_for_min_ready(all_rss)

    @staticmethod
    def _replica_failure(all_rss: list[RS], new: RS | None) -> Any | None:
        ordered = ([new] if new is not None else []) + [r for r in all_rss if r is not new]
        for r in ordered:
            for c in r.obj.status.conditions:
                if c.type == "ReplicaFailure" and c.status == "True":
                    return apps_pb2.DeploymentCondition(
                        type="ReplicaFailure", status=c.status, reason=c.reason,
                        message=c.message, lastUpdateTime=c.lastTransitionTime,
                        lastTransitionTime=c.lastTransitionTime)
        return None

    def _requeue_stuck(self) -> None:
        d = self.d
        cond = get_condition(d.status, "Progressing")
        if not has_progress_deadline(d) or cond is None:
            return
        if deployment_complete(d, d.status) or cond.reason in (TIMED_OUT, NEW_RS_AVAILABLE):
            return
        if cond.reason in (PAUSED,):
            return
        after = _ts(cond.lastUpdateTime) + d.spec.progressDeadlineSeconds - time.time()
        self.ctl.queue.add_after(self.key, max(1.0, after + 1.0))

    def _requeue_for_min_ready(self, all_rss: list[RS]) -> None:
        wait = self.ctl.min_ready_wait([r.obj for r in all_rss], self.now)
        if wait is not None:
            self.ctl.queue.add_after(self.key, wait)

    # ---- the sync --------------------------------------------------------------------

    async def run(self) -> None:
        d = self.d
        if not d.spec.HasField("selector") or not (
                d.spec.selector.matchLabels or d.spec.selector.matchExpressions):
            self.ctl.recorder.event(d, "Warning", "SelectingAll",
                                    "This deployment is selecting all pods. A non-empty "
                                    "selector is required.")
            if d.status.observedGeneration < d.metadata.generation:
                status = _copy(d.status)
                status.observedGeneration = d.metadata.generation
                await self.write_status(status)
            return
        owned = await self.claim()
        if d.metadata.deletionTimestamp:
            new, old = self.split(owned)
            await self.sync_status([*old, *([new] if new else [])], new)
            return
        await self.check_paused_conditions()
        new, old = self.split(owned)
        if new is not None:
            await self.sync_new(new, old)
        if self.d.spec.paused or self.is_scaling_event(new, old):
            await self.sync(new, old)
        elif rollout.is_rolling(self.d):
            await self.rolling(new, old)
        else:
            await self.recreate(new, old)

    async def check_paused_conditions(self) -> None:
        d = self.d
        if not has_progress_deadline(d):
            return
        cond = get_condition(d.status, "Progressing")
        if cond is not None and cond.reason == TIMED_OUT:
            return
        paused_cond = cond is not None and cond.reason == PAUSED
        if d.spec.paused and not paused_cond:
            c = new_condition("Progressing", "Unknown", PAUSED, "Deployment is paused")
        elif not d.spec.paused and paused_cond:
            c = new_condition("Progressing", "Unknown", RESUMED, "Deployment is resumed")
        else:
            return
        status = _copy(d.status)
        set_condition(status, c)
        await self.write_status(status)

    def is_scaling_event(self, new: RS | None, old: list[RS]) -> bool:
        n = rollout.replicas(self.d)
        return any(r.desired is not None and r.desired != n for r in active_sets([*old, new]))

    async def sync(self, new: RS | None, old: list[RS]) -> None:
        """Paused or resized: scale (proportionally in mid-rollout), no rollout."""
        await self.scale(new, old)
        if self.d.spec.paused:
            await self.cleanup(old)
        await self.sync_status([*old, *([new] if new else [])], new)

    async def scale(self, new: RS | None, old: list[RS]) -> None:
        d = self.d
        n = rollout.replicas(d)
        target = find_active_or_latest(new, old)
        if target is not None:
            if target.replicas != n:
                await self.scale_and_record(target, n)
            return
        if new is not None and new.replicas == n and new.desired == n and \
                new.safe_available >= n:  # saturated: the old ones go entirely
            for r in active_sets(list(old)):
                await self.scale_and_record(r, 0)
            return
        if not rollout.is_rolling(d):
            return
        act = active_sets([*old, new])
        order, sizes = proportional_sizes(act, n, rollout.max_surge(d), d.status.replicas)
        total = sum(r.replicas for r in act)
        to_add = (n + rollout.max_surge(d) if n > 0 else 0) - total
        operation = "up" if to_add > 0 else "down" if to_add < 0 else ""
        for r in order:
            await self.scale_rs(r, sizes[r.name], operation)

    async def rolling(self, new: RS | None, old: list[RS]) -> None:
        if new is None:
            new = await self.create_new(old)
        all_rss = [*old, new]
        d = self.d
        n = rollout.replicas(d)
        if new.replicas != n:
            size = n if new.replicas > n else new_rs_replicas(n, rollout.max_surge(d),
                                                              all_rss, new)
            if await self.scale_and_record(new, size):
                await self.sync_rollout_status(all_rss, new)
                return
        plan = plan_old_scale_down(new, old, n, rollout.max_unavailable(d))
        scaled = False
        for r in by_age(old):
            if r.name in plan:
                scaled |= await self.scale_and_record(r, plan[r.name])
        if scaled:
            await self.sync_rollout_status(all_rss, new)
            return
        if deployment_complete(self.d, self.d.status):
            await self.cleanup(old)
        await self.sync_rollout_status(all_rss, new)

    async def recreate(self, new: RS | None, old: list[RS]) -> None:
        scaled = False
        for r in active_sets(list(old)):
            scaled |= await self.scale_and_record(r, 0)
        all_rss = [*old, *([new] if new else [])]
        if scaled or any(r.status_replicas > 0 or r.running > 0 for r in old):
            await self.sync_rollout_status(all_rss, new)  # wait for the old pods to go
            return
        if new is None:
            new = await self.create_new(old)
            all_rss = [*old, new]
        elif await self.scale_and_record(new, rollout.replicas(self.d)):
            await self.sync_rollout_status(all_rss, new)
            return
        if deployment_complete(self.d, self.d.status):
            await self.cleanup(old)
        await self.sync_rollout_status(all_rss, new)

    async def cleanup(self, old: list[RS]) -> None:
        d = self.d
        if not d.spec.HasField("revisionHistoryLimit"):
            return
        for r in history_victims(old, d.spec.revisionHistoryLimit):
            log.info("deployment %s: deleting old replica set %s", self.key, r.name)
            try:
                await self.client.delete("replicasets", r.name, d.metadata.namespace,
                                         precondition_uid=r.uid)
            except APIStatusError as e:
                if not (e.not_found or e.conflict):
                    raise
            r.deleting = True
