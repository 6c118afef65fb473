"""The node agent against a real master and a real Docker daemon.

One agent (its own node name) serves this module; pods are placed on it by
spec.nodeName (the session master runs no scheduler). Every container the
agent made is removed at the end, whatever happened.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.api import core_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from tests.cluster import Master
from tests.node_agent import NodeAgent, ensure_docker, node_containers, run_node, wait_for

IMAGE = "kubelite/busybox:1.35"


@pytest.fixture(scope="module")
def agent(master: Master) -> Iterator[NodeAgent]:
    ensure_docker()
    with run_node(master.address, "--metrics-interval", "0") as a:
        with Client(server=master.address) as c:
            try:
                wait_for(lambda: c.get("nodes", a.name), 30, "node registration")
            except AssertionError:
                raise AssertionError(a.logs()) from None
        yield a


def container(name: str, command: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", command], **extra}


def make_pod(client: Client, ns: str, name: str, node: str, containers: list[dict[str, Any]],
             **spec: Any) -> Any:
    spec.setdefault("terminationGracePeriodSeconds", 2)
    return client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "containers": containers, **spec}}, pod_pb2.Pod))


def pod(client: Client, ns: str, name: str) -> Any:
    return client.get("pods", name, ns)


def status_of(p: Any, name: str) -> Any:
    return next(cs for cs in [*p.status.containerStatuses, *p.status.initContainerStatuses]
                if cs.name == name)


def phase_is(client: Client, ns: str, name: str, phase: str) -> Any:
    p = pod(client, ns, name)
    return p if p.status.phase == phase else None


def running_ready(client: Client, ns: str, name: str) -> Any:
    p = pod(client, ns, name)
    ok = p.status.phase == "Running" and p.status.containerStatuses and all(
        cs.ready for cs in p.status.containerStatuses)
    return p if ok else None


def events(client: Client, ns: str, name: str) -> list[tuple[str, str]]:
    items, _ = client.list("events", ns, field_selector=f"involvedObject.name={name}")
    return [(e.reason, e.message) for e in items]


def docker_exec(cid: str, *cmd: str) -> str:
    return subprocess.run(["docker", "exec", cid, *cmd], capture_output=True, text=True).stdout


def test_node_registers_and_heartbeats(agent: NodeAgent, client: Client) -> None:
    n = client.get("nodes", agent.name)
    assert {a.type: a.address for a in n.status.addresses} == {
        "InternalIP": "127.0.0.1", "Hostname": agent.name}
    for r in ("cpu", "memory", "pods", "ephemeral-storage"):
        assert n.status.capacity[r].string and n.status.allocatable[r].string
    conds = {c.type: c.status for c in n.status.conditions}
    assert conds == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                     "PIDPressure": "False"}
    info = n.status.nodeInfo
    assert info.containerRuntimeVersion.startswith("docker://")
    assert info.kubeletVersion.startswith("v") and info.operatingSystem == "linux"
    assert n.status.daemonEndpoints.kubeletEndpoint.Port == agent.port
    assert any("kubelite/busybox:1.35" in i.names for i in n.status.images)
    assert n.metadata.labels["kubernetes.io/hostname"] == agent.name
    lease = wait_for(lambda: client.get("leases", agent.name, "kube-node-lease"))
    assert lease.spec.holderIdentity == agent.name and lease.spec.leaseDurationSeconds == 40


def test_pod_shares_network_ipc_uts_and_reports_status(agent: NodeAgent, client: Client,
                                                       namespace: str) -> None:
    make_pod(client, namespace, "web", agent.name, [
        container("web", "mkdir -p /www && echo hello > /www/index.html && "
                         "exec httpd -f -p 8080 -h /www",
                  ports=[{"containerPort": 8080, "name": "http"}],
                  readinessProbe={"httpGet": {"port": "http"}, "periodSeconds": 1}),
        container("side", "sleep 3600"),
    ])
    p = wait_for(lambda: running_ready(client, namespace, "web"), 30, "web Running and Ready")
    assert p.status.podIP and p.status.hostIP == "127.0.0.1" and p.status.startTime
    assert p.status.qosClass == "BestEffort"
    conds = {c.type: c.status for c in p.status.conditions}
    assert conds == {"PodScheduled": "True", "Initialized": "True", "ContainersReady": "True",
                     "Ready": "True"}
    web = status_of(p, "web")
    assert web.state.HasField("running") and web.started and web.restartCount == 0
    assert web.containerID.startswith("docker://") and web.imageID.startswith("docker://")
    side_id = status_of(p, "side").containerID.removeprefix("docker://")
    # Same network namespace: localhost reaches the other container; same hostname.
    assert docker_exec(side_id, "wget", "-qO-", "http://localhost:8080/").strip() == "hello"
    assert docker_exec(side_id, "hostname").strip() == "web"
    # The port is taken in the pod's one network namespace.
    out = subprocess.run(["docker", "exec", side_id, "httpd", "-f", "-p", "8080"],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "in use" in (out.stderr + out.stdout)
    reasons = [r for r, _ in events(client, namespace, "web")]
    assert {"Pulled", "Created", "Started"} <= set(reasons)


def test_init_containers_in_order_and_shared_empty_dir(agent: NodeAgent, client: Client,
                                                       namespace: str) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    make_pod(client, namespace, "init", agent.name,
             [container("app", "cat /work/log; sleep 3600", volumeMounts=mount)],
             initContainers=[container("first", "sleep 1; echo one >> /work/log",
                                       volumeMounts=mount),
                             container("second", "echo two >> /work/log", volumeMounts=mount)],
             volumes=[{"name": "work", "emptyDir": {}}])
    p = wait_for(lambda: phase_is(client, namespace, "init", "Running"), 30, "init done")
    assert [cs.state.terminated.reason for cs in p.status.initContainerStatuses] == [
        "Completed", "Completed"]
    app = status_of(p, "app").containerID.removeprefix("docker://")
    assert docker_exec(app, "cat", "/work/log").split() == ["one", "two"]


def test_env_config_map_secret_and_volumes(agent: NodeAgent, client: Client,
                                           namespace: str) -> None:
    client.create(convert.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "cfg", "namespace": namespace},
                                     "data": {"mode": "fast", "app.conf": "x=1\n"}},
                                    core_pb2.ConfigMap))
    client.create(convert.from_dict({"apiVersion": "v1", "kind": "Secret",
                                     "metadata": {"name": "pw", "namespace": namespace},
                                     "stringData": {"password": "hunter2"}}, core_pb2.Secret))
    make_pod(client, namespace, "env", agent.name, [container(
        "app", "sleep 3600",
        env=[{"name": "GREETING", "value": "hi"},
             {"name": "MSG", "value": "$(GREETING) there"},
             {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
             {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
             {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}}],
        workingDir="/tmp",
        volumeMounts=[{"name": "conf", "mountPath": "/etc/app"},
                      {"name": "sec", "mountPath": "/etc/sec"}])],
        volumes=[{"name": "conf", "configMap": {"name": "cfg"}},
                 {"name": "sec", "secret": {"secretName": "pw", "defaultMode": 0o400}}])
    p = wait_for(lambda: running_ready(client, namespace, "env"))
    cid = status_of(p, "app").containerID.removeprefix("docker://")
    env = dict(line.split("=", 1) for line in docker_exec(cid, "env").splitlines() if "=" in line)
    assert env["MSG"] == "hi there" and env["POD"] == "env" and env["NODE"] == agent.name
    assert env["MODE"] == "fast" and env["PW"] == "hunter2"
    assert docker_exec(cid, "pwd").strip() == "/tmp"
    assert docker_exec(cid, "cat", "/etc/app/app.conf") == "x=1\n"
    assert docker_exec(cid, "cat", "/etc/sec/password") == "hunter2"
    assert docker_exec(cid, "stat", "-c", "%a", "/etc/sec/password").strip() == "400"


def test_missing_config_map_key_is_a_config_error(agent: NodeAgent, client: Client,
                                                  namespace: str) -> None:
    make_pod(client, namespace, "nocfg", agent.name, [container(
        "app", "sleep 3600",
        env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}}}])])

    def waiting() -> Any:
        cs = pod(client, namespace, "nocfg").status.containerStatuses
        return cs and cs[0].state.waiting.reason == "CreateContainerConfigError" and cs[0]

    cs = wait_for(waiting)
    assert cs.state.waiting.message == 'configmap "absent" not found'


def test_restart_policies_and_crash_loop_back_off(agent: NodeAgent, client: Client,
                                                  namespace: str) -> None:
    make_pod(client, namespace, "never", agent.name, [container("c", "exit 3")],
             restartPolicy="Never")
    make_pod(client, namespace, "done", agent.name, [container("c", "exit 0")],
             restartPolicy="OnFailure")
    make_pod(client, namespace, "crash", agent.name, [container("c", "echo boom; exit 1")])
    p = wait_for(lambda: phase_is(client, namespace, "never", "Failed"))
    t = status_of(p, "c").state.terminated
    assert (t.exitCode, t.reason) == (3, "Error") and t.finishedAt
    assert {c.type: c.status for c in p.status.conditions}["Ready"] == "False"
    p = wait_for(lambda: phase_is(client, namespace, "done", "Succeeded"))
    assert status_of(p, "c").state.terminated.reason == "Completed"

    def looping() -> Any:
        cs = status_of(pod(client, namespace, "crash"), "c")
        return cs.restartCount >= 2 and cs.state.waiting.reason == "CrashLoopBackOff" and cs

    cs = wait_for(looping, 40, "CrashLoopBackOff after restarts")
    assert cs.lastState.terminated.exitCode == 1 and cs.lastState.terminated.reason == "Error"
    assert "back-off" in cs.state.waiting.message
    assert pod(client, namespace, "crash").status.phase == "Running"
    assert "BackOff" in [r for r, _ in events(client, namespace, "crash")]


def test_probes(agent: NodeAgent, client: Client, namespace: str) -> None:
    make_pod(client, namespace, "probed", agent.name, [
        container("live", "touch /tmp/ok; sleep 3600",
                  livenessProbe={"exec": {"command": ["cat", "/tmp/ok"]}, "periodSeconds": 1,
                                 "failureThreshold": 2}),
        container("unready", "sleep 3600",
                  readinessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1}),
        container("slow", "sleep 2; touch /tmp/started; sleep 3600",
                  startupProbe={"exec": {"command": ["cat", "/tmp/started"]},
                                "periodSeconds": 1, "failureThreshold": 30}),
    ])

    def state() -> Any:
        p = pod(client, namespace, "probed")
        st = {cs.name: cs for cs in p.status.containerStatuses}
        return len(st) == 3 and st["slow"].started and st["live"].ready and p

    p = wait_for(state, 30, "startup probe passes")
    st = {cs.name: cs for cs in p.status.containerStatuses}
    assert not st["unready"].ready and st["unready"].started
    assert {c.type: c.status for c in p.status.conditions}["Ready"] == "False"
    # Break the liveness check: the container is killed and restarted.
    live_id = st["live"].containerID.removeprefix("docker://")
    docker_exec(live_id, "rm", "/tmp/ok")
    wait_for(lambda: status_of(pod(client, namespace, "probed"), "live").restartCount >= 1,
             30, "liveness restart")
    evs = events(client, namespace, "probed")
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed") for r, m in evs)
    assert any(r == "Unhealthy" and m.startswith("Readiness probe failed: dial tcp")
               for r, m in evs)
    assert ("Killing", "Container live failed liveness probe, will be restarted") in evs


def test_hooks_and_graceful_termination(agent: NodeAgent, client: Client, namespace: str,
                                        tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    mount = [{"name": "shared", "mountPath": "/shared"}]
    make_pod(client, namespace, "hooks", agent.name, [
        # The seed's postStart: copy a file when the container starts.
        container("app", "echo payload > /tmp/src; "
                         "trap 'echo term > /shared/term; exit 0' TERM; "
                         "while :; do sleep 1; done",
                  volumeMounts=mount,
                  lifecycle={"postStart": {"exec": {"command": [
                      "sh", "-c", "sleep 0.5; cp /tmp/src /shared/copied"]}},
                             "preStop": {"httpGet": {"port": 9000, "path": "/shutdown"}}}),
        container("listener", "nc -l -p 9000 > /shared/request", volumeMounts=mount),
    ], volumes=[{"name": "shared", "hostPath": {"path": str(host)}}],
        terminationGracePeriodSeconds=10)
    wait_for(lambda: running_ready(client, namespace, "hooks"))
    wait_for(lambda: (host / "copied").exists(), 10, "postStart copied the file")
    assert (host / "copied").read_text() == "payload\n"
    t = time.monotonic()
    client.delete("pods", "hooks", namespace)
    wait_for(lambda: not _exists(client, namespace, "hooks"), 20, "pod removed")
    assert time.monotonic() - t < 8  # the app exits on SIGTERM: no wait for the grace
    assert "GET /shutdown" in (host / "request").read_text()  # preStop httpGet
    assert (host / "term").read_text() == "term\n"  # SIGTERM reached the app
    assert not node_containers(agent.name, pod_name="hooks")


def test_sigkill_after_grace_period(agent: NodeAgent, client: Client, namespace: str) -> None:
    make_pod(client, namespace, "stubborn", agent.name,
             [container("c", "trap '' TERM; while :; do sleep 1; done")],
             terminationGracePeriodSeconds=2)
    wait_for(lambda: running_ready(client, namespace, "stubborn"))
    t = time.monotonic()
    client.delete("pods", "stubborn", namespace)
    wait_for(lambda: not _exists(client, namespace, "stubborn"), 20)
    took = time.monotonic() - t
    assert 1.5 < took < 10, took


def _exists(client: Client, ns: str, name: str) -> bool:
    try:
        client.get("pods", name, ns)
        return True
    except APIStatusError as e:
        if e.not_found:
            return False
        raise


def test_resources_become_cgroup_limits(agent: NodeAgent, client: Client,
                                        namespace: str) -> None:
    make_pod(client, namespace, "limited", agent.name, [container(
        "c", "sleep 3600", resources={"requests": {"cpu": "250m", "memory": "32Mi"},
                                      "limits": {"cpu": "500m", "memory": "64Mi"}})])
    p = wait_for(lambda: running_ready(client, namespace, "limited"), 30, "limited running")
    assert p.status.qosClass == "Burstable"
    cid = status_of(p, "c").containerID.removeprefix("docker://")
    hc = _inspect(cid)["HostConfig"]
    assert hc["CpuShares"] == 256 and hc["CpuQuota"] == 50000 and hc["CpuPeriod"] == 100000
    assert hc["Memory"] == 64 * 1024 * 1024 and hc["Privileged"] is False


def test_privileged_is_passed_to_docker(agent: NodeAgent, client: Client,
                                        namespace: str) -> None:
    # Whether a privileged container can start depends on the host (this
    # sandbox refuses the capabilities); what the agent asks Docker for does not.
    make_pod(client, namespace, "priv", agent.name,
             [container("c", "sleep 3600", securityContext={"privileged": True})])
    cid = wait_for(lambda: subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=io.kubelite.node={agent.name}",
         "--filter", "label=io.kubelite.pod.name=priv",
         "--filter", "label=io.kubelite.container.name=c"],
        capture_output=True, text=True).stdout.split(), 30, "the container created")[0]
    assert _inspect(cid)["HostConfig"]["Privileged"] is True


def _inspect(cid: str) -> Any:
    out = subprocess.run(["docker", "inspect", cid], capture_output=True, text=True).stdout
    return json.loads(out)[0]


@pytest.mark.parametrize("case, spec, reason", [
    ("never-pull", {"image": "kubelite/absent:1.0", "imagePullPolicy": "Never"},
     "ErrImageNeverPull"),
    ("no-image", {"image": "kubelite/absent:1.0"}, ("ErrImagePull", "ImagePullBackOff")),
])
def test_image_errors(agent: NodeAgent, client: Client, namespace: str, case: str,
                      spec: dict[str, Any], reason: Any) -> None:
    make_pod(client, namespace, case, agent.name, [{"name": "c", **spec}])
    reasons = (reason,) if isinstance(reason, str) else reason

    def waiting() -> Any:
        cs = pod(client, namespace, case).status.containerStatuses
        return cs and cs[0].state.waiting.reason in reasons and cs[0]

    cs = wait_for(waiting, 60)
    assert cs.state.waiting.message
    assert pod(client, namespace, case).status.phase == "Pending"


def test_bad_command_hostpath_and_oom(agent: NodeAgent, client: Client,
                                      namespace: str) -> None:
    make_pod(client, namespace, "badcmd", agent.name,
             [{"name": "c", "image": IMAGE, "command": ["no-such-command"]}],
             restartPolicy="Never")
    make_pod(client, namespace, "nopath", agent.name,
             [container("c", "sleep 3600", volumeMounts=[{"name": "v", "mountPath": "/v"}])],
             volumes=[{"name": "v", "hostPath": {"path": "/nonexistent/kubelite",
                                                 "type": "Directory"}}])
    make_pod(client, namespace, "oom", agent.name, [container(
        "c", "head -c 200m /dev/zero | tail",  # tail holds the one endless line
        resources={"limits": {"memory": "16Mi"}})], restartPolicy="Never")
    p = wait_for(lambda: phase_is(client, namespace, "badcmd", "Failed"), 30)
    t = status_of(p, "c").state.terminated
    assert t.reason == "StartError" and "no-such-command" in t.message
    evs = wait_for(lambda: [m for r, m in events(client, namespace, "nopath")
                            if r == "FailedMount"], 30)
    assert "hostPath type check failed: /nonexistent/kubelite is not a directory" in evs[0]
    assert status_of(pod(client, namespace, "nopath"), "c").state.waiting.reason == \
        "ContainerCreating"
    p = wait_for(lambda: phase_is(client, namespace, "oom", "Failed"), 60)
    t = status_of(p, "c").state.terminated
    assert t.reason == "OOMKilled", t


def test_restarted_agent_adopts_and_cleans_up(agent: NodeAgent, client: Client,
                                              namespace: str) -> None:
    make_pod(client, namespace, "keep", agent.name, [container("c", "sleep 3600")])
    make_pod(client, namespace, "drop", agent.name, [container("c", "sleep 3600")],
             terminationGracePeriodSeconds=0)
    keep = wait_for(lambda: running_ready(client, namespace, "keep"))
    wait_for(lambda: running_ready(client, namespace, "drop"))
    before = status_of(keep, "c").containerID
    agent.proc.kill()
    agent.proc.wait()
    # While the agent is down, the pod "drop" goes away for good.
    client.delete("pods", "drop", namespace, grace_period_seconds=0)
    assert node_containers(agent.name, pod_name="drop")
    agent.restart(kill=False)
    wait_for(lambda: not node_containers(agent.name, pod_name="drop"), 30,
             "the deleted pod's containers removed")
    time.sleep(2)
    keep = pod(client, namespace, "keep")
    cs = status_of(keep, "c")
    assert cs.containerID == before and cs.restartCount == 0 and cs.state.HasField("running")


@pytest.fixture()
def registry(tmp_path: Path) -> Iterator[str]:
    """A private registry (Debian's docker-registry) on a free loopback port."""
    from tests.cluster import _stop, free_port

    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: _port_open(port), 10, "registry up")
        yield address
    finally:
        _stop(proc)
        out = subprocess.run(["docker", "images", "-q", "--filter", f"reference={address}/*/*"],
                             capture_output=True, text=True).stdout.split()
        for ref in set(out):
            subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _push(image: str, target: str, marker: str) -> str:
    """Push a variant of `image` (with a marker file) as `target`; its image id."""
    build = subprocess.run(
        ["docker", "run", "-d", image, "sh", "-c", f"echo {marker} > /marker"],
        capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "wait", build], capture_output=True, check=True)
    subprocess.run(["docker", "commit", build, target], capture_output=True, check=True)
    subprocess.run(["docker", "rm", "-f", build], capture_output=True)
    subprocess.run(["docker", "push", target], capture_output=True, check=True)
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", target],
                              capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "rmi", "-f", target], capture_output=True)
    return image_id


def test_image_pull_policy_always_really_pulls(agent: NodeAgent, client: Client,
                                              namespace: str, registry: str) -> None:
    target = f"{registry}/kubelite/app:v1"
    try:
        first = _push(IMAGE, target, "one")
        make_pod(client, namespace, "pull1", agent.name,
                 [{"name": "c", "image": target, "imagePullPolicy": "Always",
                   "command": ["sh", "-c", "cat /marker; sleep 3600"]}])
        p = wait_for(lambda: running_ready(client, namespace, "pull1"), 60, "pulled and running")
        assert status_of(p, "c").imageID == f"docker://{first}"
        msgs = [m for r, m in events(client, namespace, "pull1")]
        assert f'Pulling image "{target}"' in msgs
        assert any(m.startswith(f'Successfully pulled image "{target}"') for m in msgs)
        # The tag moves in the registry; the image is on the node: Always still pulls.
        second = _push(IMAGE, target, "two")
        assert second != first
        make_pod(client, namespace, "pull2", agent.name,
                 [{"name": "c", "image": target, "imagePullPolicy": "Always",
                   "command": ["sh", "-c", "cat /marker; sleep 3600"]}])
        p = wait_for(lambda: running_ready(client, namespace, "pull2"), 60)
        assert status_of(p, "c").imageID == f"docker://{second}"
        cid = status_of(p, "c").containerID.removeprefix("docker://")
        assert docker_exec(cid, "cat", "/marker").strip() == "two"
    finally:  # its containers go first, so the registry fixture can remove the images
        for name in ("pull1", "pull2"):
            if _exists(client, namespace, name):
                client.delete("pods", name, namespace, grace_period_seconds=0)
        wait_for(lambda: not any(_exists(client, namespace, n) for n in ("pull1", "pull2")),
                 30, "the pods that use the pushed images gone")
