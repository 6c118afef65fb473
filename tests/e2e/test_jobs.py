"""Jobs on a real cluster: etcd, a master (scheduler, controllers, a 1 s job
back-off) and a node agent running the pods in Docker.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import batch_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import ROOT, Master, run_etcd, run_master
from tests.node_agent import NodeAgent, ensure_docker, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Master, NodeAgent]]:
    ensure_docker()
    with run_etcd() as etcd, run_master(etcd.endpoint, "--job-backoff", "1",
                                        "--leader-elect-retry-period", "0.3") as m, \
            run_node(m.address, "--metrics-interval", "0") as node:
        with Client(server=m.address) as c:
            wait_for(lambda: c.get("nodes", node.name), 30, "node registration")
        yield m, node


@pytest.fixture()
def api(cluster: tuple[Master, NodeAgent]) -> Iterator[Client]:
    with Client(server=cluster[0].address, timeout=15) as c:
        yield c


@pytest.fixture()
def ns(api: Client) -> Iterator[str]:
    name = "j-" + uuid.uuid4().hex[:8]
    api.create(convert.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                  "metadata": {"name": name}}, core_pb2.Namespace))
    yield name
    api.delete("namespaces", name)


def job(name: str, ns: str, command: str, *, restart: str = "Never", **spec: Any) -> Any:
    return convert.from_dict({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
        "spec": {**spec, "template": {"spec": {
            "restartPolicy": restart, "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command]}]}}},
    }, batch_pb2.Job)


def condition(j: Any, type_: str) -> Any:
    return next((c for c in j.status.conditions if c.type == type_ and c.status == "True"), None)


def job_pods(api: Client, ns: str, name: str) -> list[Any]:
    items, _ = api.list("pods", ns, label_selector=f"batch.kubernetes.io/job-name={name}")
    return items


def test_completions_with_parallelism(api: Client, ns: str) -> None:
    # The seed's batch example: run to success N times, M at a time.
    api.create(job("batch", ns, "sleep 1; echo done", completions=5, parallelism=2))
    peak = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        j = api.get("jobs", "batch", ns)
        running = [p for p in job_pods(api, ns, "batch")
                   if p.status.phase in ("Pending", "Running") and not
                   p.metadata.deletionTimestamp]
        peak = max(peak, len(running))
        if condition(j, "Complete"):
            break
        time.sleep(0.1)
    j = api.get("jobs", "batch", ns)
    assert condition(j, "Complete") is not None, j.status
    assert j.status.succeeded == 5 and j.status.active == 0 and j.status.failed == 0
    assert j.status.startTime and j.status.completionTime
    assert 1 <= peak <= 2, f"{peak} pods ran at once with parallelism 2"
    assert len([p for p in job_pods(api, ns, "batch") if p.status.phase == "Succeeded"]) == 5


def test_backoff_limit_with_back_off_between_retries(api: Client, ns: str) -> None:
    api.create(job("fails", ns, "exit 1", backoffLimit=2))
    j = wait_for(lambda: condition(api.get("jobs", "fails", ns), "Failed") and
                 api.get("jobs", "fails", ns), 90, "the Job Failed")
    cond = condition(j, "Failed")
    assert cond.reason == "BackoffLimitExceeded"
    assert j.status.failed == 3 and j.status.active == 0
    pods = sorted(job_pods(api, ns, "fails"), key=lambda p: p.metadata.creationTimestamp)
    assert len(pods) == 3 and all(p.status.phase == "Failed" for p in pods)
    # Back-off: 1 s, then 2 s (the master runs with --job-backoff 1).
    starts = [_ts(p.metadata.creationTimestamp) for p in pods]
    assert starts[2] - starts[1] >= 2 - 1  # second-resolution timestamps


def _ts(text: str) -> float:
    import datetime as dt

    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


def test_on_failure_restarts_in_place_and_counts_them(api: Client, ns: str) -> None:
    api.create(job("inplace", ns, "exit 1", restart="OnFailure", backoffLimit=1))
    j = wait_for(lambda: condition(api.get("jobs", "inplace", ns), "Failed") and
                 api.get("jobs", "inplace", ns), 90, "the Job Failed")
    assert condition(j, "Failed").reason == "BackoffLimitExceeded"
    assert j.status.failed >= 2  # the restarts of its container counted as failures
    # One pod, restarted in place (it may already be gone: a failed Job stops its pods).
    items, _ = api.list("events", ns, field_selector="involvedObject.name=inplace,"
                                                      "reason=SuccessfulCreate")
    assert [e.message for e in items] == [items[0].message] and "Created pod" in items[0].message
    assert len(job_pods(api, ns, "inplace")) <= 1


def test_active_deadline(api: Client, ns: str) -> None:
    api.create(job("slow", ns, "sleep 60", activeDeadlineSeconds=2))
    j = wait_for(lambda: condition(api.get("jobs", "slow", ns), "Failed") and
                 api.get("jobs", "slow", ns), 30, "deadline exceeded")
    assert condition(j, "Failed").reason == "DeadlineExceeded"
    wait_for(lambda: all(p.metadata.deletionTimestamp or p.status.phase != "Running"
                         for p in job_pods(api, ns, "slow")) or not job_pods(api, ns, "slow"),
             30, "running pods stopped")


def test_indexed_completion(api: Client, ns: str) -> None:
    api.create(job("idx", ns, "echo index=$JOB_COMPLETION_INDEX host=$(hostname)",
                   completions=3, parallelism=3, completionMode="Indexed"))
    j = wait_for(lambda: condition(api.get("jobs", "idx", ns), "Complete") and
                 api.get("jobs", "idx", ns), 60, "indexed Job complete")
    assert j.status.completedIndexes == "0-2" and j.status.succeeded == 3
    seen = set()
    for p in job_pods(api, ns, "idx"):
        cid = p.status.containerStatuses[0].containerID.removeprefix("docker://")
        out = subprocess.run(["docker", "logs", cid], capture_output=True, text=True).stdout
        index = p.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        assert out.strip() == f"index={index} host=idx-{index}"
        seen.add(index)
    assert seen == {"0", "1", "2"}


def test_ttl_after_finished_deletes_job_and_pods(api: Client, ns: str) -> None:
    api.create(job("short", ns, "true", ttlSecondsAfterFinished=1))

    def gone() -> bool:
        try:
            api.get("jobs", "short", ns)
            return False
        except APIStatusError as e:
            return e.not_found

    wait_for(gone, 60, "the Job deleted after its TTL")
    wait_for(lambda: not job_pods(api, ns, "short"), 30, "its pods collected")


def cronjob(name: str, ns: str, schedule: str, command: str, **spec: Any) -> Any:
    return convert.from_dict({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": schedule, **spec, "jobTemplate": {"spec": {
            "backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "c", "image": IMAGE,
                                "command": ["sh", "-c", command]}]}}}}},
    }, batch_pb2.CronJob)


def cron_jobs(api: Client, ns: str, name: str) -> list[Any]:
    items, _ = api.list("jobs", ns)
    return [j for j in items if any(r.name == name and r.kind == "CronJob"
                                    for r in j.metadata.ownerReferences)]


def test_cronjob_runs_on_schedule_and_prunes_history(api: Client, ns: str) -> None:
    api.create(cronjob("tick", ns, "@every 2s", "true", successfulJobsHistoryLimit=2))
    seen: set[str] = set()
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(seen) < 4:
        seen |= {j.metadata.name for j in cron_jobs(api, ns, "tick")}
        time.sleep(0.2)
    assert len(seen) >= 4, seen
    for j in cron_jobs(api, ns, "tick"):
        assert j.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        assert j.metadata.name.startswith("tick-")
    wait_for(lambda: len([j for j in cron_jobs(api, ns, "tick")
                          if any(c.type == "Complete" for c in j.status.conditions)]) <= 2
             and api.get("cronjobs", "tick", ns).status.lastSuccessfulTime, 20,
             "history pruned to 2 successful jobs")
    st = api.get("cronjobs", "tick", ns).status
    assert st.lastScheduleTime
    api.patch("cronjobs", "tick", {"spec": {"suspend": True}}, ns)
    time.sleep(1)
    before = {j.metadata.name for j in cron_jobs(api, ns, "tick")}
    time.sleep(5)
    after = {j.metadata.name for j in cron_jobs(api, ns, "tick")}
    assert after <= before, "a suspended CronJob started a job"


def test_cronjob_forbid_skips_while_a_job_runs(api: Client, ns: str) -> None:
    api.create(cronjob("single", ns, "@every 1s", "sleep 6", concurrencyPolicy="Forbid"))
    deadline = time.monotonic() + 10
    peak = 0
    while time.monotonic() < deadline:
        running = [j for j in cron_jobs(api, ns, "single")
                   if not any(c.type in ("Complete", "Failed") for c in j.status.conditions)]
        peak = max(peak, len(running))
        time.sleep(0.2)
    assert peak == 1
    items, _ = api.list("events", ns, field_selector="involvedObject.name=single")
    assert "JobAlreadyActive" in {e.reason for e in items}


def test_cronjob_replace_swaps_the_running_job(api: Client, ns: str) -> None:
    api.create(cronjob("swap", ns, "@every 3s", "sleep 60", concurrencyPolicy="Replace"))
    first = wait_for(lambda: cron_jobs(api, ns, "swap"), 20, "a first job")[0].metadata.name
    wait_for(lambda: first not in {j.metadata.name for j in cron_jobs(api, ns, "swap")}
             and cron_jobs(api, ns, "swap"), 20, "the first job replaced")
    live = [j for j in cron_jobs(api, ns, "swap") if not j.metadata.deletionTimestamp]
    assert len(live) == 1


def test_create_job_from_cronjob(api: Client, ns: str, cluster: tuple[Master, NodeAgent]
                                 ) -> None:
    api.create(cronjob("nightly", ns, "0 3 * * *", "echo manual"))
    out = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "--server",
                          cluster[0].address, "-n", ns, "create", "job", "now",
                          "--from=cronjob/nightly"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "job.batch/now created\n"
    j = api.get("jobs", "now", ns)
    assert j.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert j.metadata.ownerReferences[0].name == "nightly"
    wait_for(lambda: condition(api.get("jobs", "now", ns), "Complete"), 60, "manual job done")
    bad = subprocess.run([sys.executable, "-m", "kubelite.cli.main", "--server",
                          cluster[0].address, "-n", ns, "create", "job", "x",
                          "--from=cronjob/absent"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 1
    assert 'Error from server (NotFound): cronjobs.batch "absent" not found' in bad.stderr
