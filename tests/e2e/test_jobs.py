"""Jobs on a real cluster: etcd, a master (scheduler, controllers, a 1 s job
back-off) and a node agent running the pods in Docker.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.api import batch_pb2, core_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import Master, run_etcd, run_master
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
    assert len(job_pods(api, ns, "inplace")) == 1  # one pod, restarted in place


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
