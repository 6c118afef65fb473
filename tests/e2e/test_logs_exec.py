"""kubelite logs / exec end to end: the CLI -> a real master -> a node agent's
gRPC server (in this process, tests/agent_server.py) -> Docker.

The Pod objects are created already bound (spec.nodeName) to a Node object
whose InternalIP and kubelet port point at the in-process server; their
containers are made by hand with the pod's uid in their labels, as the node
agent would make them.
"""

from __future__ import annotations

import os
import pty
import select
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from kubelite.api import api_pb2_grpc, core_pb2, node_pb2, pod_pb2
from kubelite.client import APIStatusError, Client
from kubelite.objects import convert
from node.kubelet.runtime import Runtime
from tests.agent_server import (
    BUSYBOX,
    FakePod,
    NodeAgentServer,
    docker_client,
    fake_pods,
    node_runtime,
)
from tests.cluster import ROOT, Etcd, Master, free_port, run_master
from tests.e2e.conftest import Kl

PodMaker = Callable[..., FakePod]


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with node_runtime() as rt:
        yield rt


@pytest.fixture(scope="module")
def agent(runtime: Runtime) -> Iterator[NodeAgentServer]:
    with NodeAgentServer(runtime) as s:
        yield s


def make_node(client: Client, name: str, port: int) -> None:
    client.create(convert.from_dict({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "Hostname", "address": "nowhere.invalid"},
                                 {"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}},
    }, core_pb2.Node))


@pytest.fixture()
def node(client: Client, runtime: Runtime, agent: NodeAgentServer) -> Iterator[str]:
    """The Node object of the in-process agent (named as its runtime's node)."""
    make_node(client, runtime.node_name, agent.port)
    try:
        yield runtime.node_name
    finally:
        try:
            client.delete("nodes", runtime.node_name)
        except APIStatusError:
            pass


@pytest.fixture()
def pods(client: Client, runtime: Runtime, namespace: str, node: str) -> Iterator[PodMaker]:
    """make(name, [container, ...], node=...) -> a FakePod for a new Pod object
    bound to the node; containers must then be run on it. All removed after."""
    created: list[str] = []
    with fake_pods(runtime) as fakes:
        def make(name: str, containers: tuple[str, ...] = ("app",), *,
                 node_name: str | None = None) -> FakePod:
            spec: dict[str, Any] = {"containers": [{"name": c, "image": BUSYBOX}
                                                   for c in containers]}
            if node_name is None:
                node_name = node
            if node_name:
                spec["nodeName"] = node_name
            obj = client.create(convert.from_dict({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace}, "spec": spec,
            }, pod_pb2.Pod))
            created.append(name)
            return fakes(name, namespace, obj.metadata.uid)

        try:
            yield make
        finally:
            for name in created:
                try:
                    client.delete("pods", name, namespace, grace_period_seconds=0)
                except APIStatusError:
                    pass


def started(pod: FakePod, container: str, script: str, ready: bytes = b"ready",
            **kw: Any) -> str:
    cid = pod.run(container, f"{script}; echo {ready.decode()}; exec sleep 3600", **kw)
    pod.wait_logs(cid, ready)
    return cid


# ---- logs ---------------------------------------------------------------------------

def test_logs(kl: Kl, pods: PodMaker) -> None:
    pod = pods("web")
    started(pod, "app", "echo one; echo two; echo three")
    assert kl.ok("logs", "web") == "one\ntwo\nthree\nready\n"
    assert kl.ok("logs", "pod/web", "-c", "app") == "one\ntwo\nthree\nready\n"
    assert kl.ok("logs", "web", "--tail", "2") == "three\nready\n"
    assert kl.ok("logs", "web", "--tail=0") == ""
    assert kl.ok("logs", "web", "--since", "1h") == "one\ntwo\nthree\nready\n"
    assert kl.ok("logs", "web", "--limit-bytes", "6") == "one\ntw"
    stamped = kl.ok("logs", "web", "--timestamps", "--tail", "1")
    stamp, _, text = stamped.partition(" ")
    assert text == "ready\n" and stamp.endswith("Z") and "T" in stamp
    r = kl("logs", "web", "--since", "5x")
    assert r.returncode == 1
    assert r.stderr == 'error: invalid argument "5x" for "--since" flag: time: unknown unit ' \
                       '"x" in duration "5x"\n'


def test_logs_previous_and_containers(kl: Kl, pods: PodMaker) -> None:
    pod = pods("two", ("a", "b"))
    first = pod.run("a", "echo first run; exit 1")
    pod.wait_exited(first)
    r = kl("logs", "two", "-c", "a", "-p")
    assert r.returncode == 1
    assert r.stderr == 'Error from server (BadRequest): previous terminated container "a" ' \
                       'in pod "two" not found\n'
    started(pod, "a", "echo second run", attempt=1)
    started(pod, "b", "echo from b")
    assert kl.ok("logs", "two", "-c", "a") == "second run\nready\n"
    assert kl.ok("logs", "two", "a", "--previous") == "first run\n"
    assert kl.ok("logs", "two", "b") == "from b\nready\n"
    r = kl("logs", "two")
    assert r.returncode == 1
    assert r.stderr == "Error from server (BadRequest): a container name must be specified " \
                       "for pod two, choose one of: [a b]\n"
    r = kl("logs", "two", "-c", "zz")
    assert r.stderr == "Error from server (BadRequest): container zz is not valid for pod two\n"


def test_logs_follow(kl: Kl, pods: PodMaker, runtime: Runtime) -> None:
    pod = pods("tail")
    cid = pod.run("app", "echo start; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                         "echo after; sleep 0.2; echo last")
    pod.wait_logs(cid, b"start")
    cmd = [sys.executable, "-m", "kubelite.cli.main", "-n", kl.namespace, "logs", "-f", "tail"]
    env = {**os.environ, "KUBELITE_SERVER": kl.master.address,
           "KUBELITE_CONFIG": "/nonexistent-kubelite-config"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"start\n"  # what was there...
        assert runtime.exec_run(cid, ["touch", "/tmp/go"])[0] == 0
        assert proc.stdout.readline() == b"after\n"  # ... and what came after
        out, err = proc.communicate(timeout=20)  # ends when the container exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (out, err, proc.returncode) == (b"last\n", b"", 0)


def test_logs_follow_cancel_reaches_the_node(client: Client, namespace: str, pods: PodMaker,
                                             agent: NodeAgentServer) -> None:
    started(pods("long"), "app", "echo hi")
    stream = client.logs(namespace, "long", follow=True)
    assert next(stream) == b"hi\n"
    assert agent.service.stream_threads
    stream.close()  # the caller hangs up: the master cancels its call to the node
    deadline = time.monotonic() + 10
    while agent.service.stream_threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not agent.service.stream_threads


# ---- exec ---------------------------------------------------------------------------

def ex(kl: Kl, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`kubelite exec ARGS` in the test namespace (`kl` puts -n last, after the `--`)."""
    return kl("-n", kl.namespace, "exec", *args, ns=False, **kw)


def test_exec(kl: Kl, pods: PodMaker) -> None:
    started(pods("web"), "app", "true")
    r = ex(kl, "web", "--", "sh", "-c", "echo out; echo err >&2")
    assert (r.returncode, r.stdout, r.stderr) == (0, "out\n", "err\n"), r.stderr
    r = ex(kl, "pod/web", "-c", "app", "--", "sh", "-c", "exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "", "command terminated with exit code 3\n")
    # stdin only with -i
    r = ex(kl, "-i", "web", "--", "cat", input="hello\nworld\n")
    assert (r.returncode, r.stdout) == (0, "hello\nworld\n")
    r = ex(kl, "web", "--", "cat", input="ignored\n")
    assert (r.returncode, r.stdout) == (0, "")
    # -t needs a terminal: without one, kubectl warns and carries on without
    r = ex(kl, "-it", "web", "--", "sh", "-c", "cat; test -t 0 || echo no tty",
           input="x\n")
    assert r.stdout == "x\nno tty\n"
    assert r.stderr == "Unable to use a TTY - input is not a terminal or the right kind of " \
                       "file\n"
    r = ex(kl, "web", "--", "nope")
    assert r.returncode == 126
    assert r.stdout == ""
    assert r.stderr.startswith("OCI runtime exec failed: exec failed: unable to start "
                               'container process: exec: "nope": executable file not found '
                               "in $PATH")
    assert r.stderr.endswith("\ncommand terminated with exit code 126\n")


def test_exec_default_container(kl: Kl, pods: PodMaker) -> None:
    pod = pods("duo", ("first", "second"))
    started(pod, "first", "echo 1 > /tmp/who")
    started(pod, "second", "echo 2 > /tmp/who")
    r = ex(kl, "duo", "--", "cat", "/tmp/who")
    assert (r.returncode, r.stdout) == (0, "1\n")
    assert r.stderr == 'Defaulted container "first" out of: first, second\n'
    r = ex(kl, "duo", "-c", "second", "--", "cat", "/tmp/who")
    assert (r.returncode, r.stdout, r.stderr) == (0, "2\n", "")


def test_exec_usage_errors(kl: Kl, pods: PodMaker) -> None:
    pod = pods("web")
    r = ex(kl, "web")
    assert (r.returncode, r.stderr) == (
        1, "error: you must specify at least one command for the container\n")
    r = ex(kl, "web", "ls", "-l")
    assert r.returncode == 1 and "Use exec [POD] -- [COMMAND] instead" in r.stderr
    pod.wait_exited(pod.run("app", "true"))
    r = ex(kl, "web", "--", "true")
    assert (r.returncode, r.stderr) == (
        1, "Error from server (BadRequest): container app is not running\n")


def test_exec_tty(kl: Kl, pods: PodMaker) -> None:
    """-it in a real terminal: raw mode, the window size, the exit code; the
    terminal's settings are restored afterwards."""
    import fcntl
    import termios

    started(pods("term"), "app", "true")
    master_fd, slave_fd = pty.openpty()
    try:
        fcntl.ioctl(slave_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 42, 117, 0, 0))
        before = termios.tcgetattr(slave_fd)
        cmd = [sys.executable, "-m", "kubelite.cli.main", "-n", kl.namespace,
               "exec", "-it", "term", "--", "sh"]
        env = {**os.environ, "KUBELITE_SERVER": kl.master.address,
               "KUBELITE_CONFIG": "/nonexistent-kubelite-config"}
        proc = subprocess.Popen(cmd, stdin=slave_fd, stdout=slave_fd, stderr=slave_fd,
                                cwd=ROOT, env=env, start_new_session=True)
        out = b""
        deadline = time.monotonic() + 30
        sent = False
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master_fd], [], [], 0.1)
                if ready:
                    try:
                        out += os.read(master_fd, 65536)
                    except OSError:
                        break
                if not sent and b"# " in out:  # the shell's prompt
                    os.write(master_fd, b"stty size; tty; exit 5\r")
                    sent = True
                if proc.poll() is not None and not ready:
                    break
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 5, out
        assert b"42 117" in out and b"/dev/pts/" in out
        assert b"command terminated with exit code 5" in out
        assert termios.tcgetattr(slave_fd) == before  # raw mode undone
    finally:
        os.close(master_fd)
        os.close(slave_fd)


def test_client_exec_session(client: Client, namespace: str, pods: PodMaker) -> None:
    started(pods("api"), "app", "true")
    with client.exec(namespace, "api", ["sh", "-c", "read x; echo got $x; exit 2"],
                     stdin=True) as session:
        session.send_stdin(b"it\n")
        outs = list(session)
    assert b"".join(o.stdout for o in outs) == b"got it\n"
    assert outs[-1].exit_code == 2


# ---- errors -------------------------------------------------------------------------

def test_errors(kl: Kl, client: Client, pods: PodMaker) -> None:
    for args in (("logs", "nope"), ("exec", "nope", "--", "true")):
        r = kl("-n", kl.namespace, *args, ns=False)
        assert (r.returncode, r.stderr) == (
            1, 'Error from server (NotFound): pods "nope" not found\n'), args
    pods("floating", node_name="")
    for args in (("logs", "floating"), ("exec", "floating", "--", "true")):
        r = kl("-n", kl.namespace, *args, ns=False)
        assert (r.returncode, r.stderr) == (
            1, "Error from server (BadRequest): pod floating does not have a host "
               "assigned\n"), args
    gone = "gone-" + uuid.uuid4().hex[:6]
    port = free_port()  # nothing listens there
    make_node(client, gone, port)
    try:
        pods("stranded", node_name=gone)
        for args in (("logs", "stranded"), ("exec", "stranded", "--", "true")):
            r = kl("-n", kl.namespace, *args, ns=False)
            assert r.returncode == 1
            assert r.stderr.startswith(
                f'Error from server (ServiceUnavailable): error dialing backend: node "{gone}" '
                f"at 127.0.0.1:{port} is unreachable"), r.stderr
    finally:
        client.delete("pods", "stranded", kl.namespace, grace_period_seconds=0)
        client.delete("nodes", gone)


def test_streaming_calls_need_a_token(etcd: Etcd, tmp_path: Any) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("sekrit\n")
    with run_master(etcd.endpoint, "--token-file", str(tokens), "--no-scheduler") as m, \
            grpc.insecure_channel(m.address) as channel:
        stub = api_pb2_grpc.APIStub(channel)
        calls = {
            "Logs": lambda md: list(stub.Logs(node_pb2.LogsRequest(name="x"), metadata=md,
                                              timeout=10)),
            "Exec": lambda md: list(stub.Exec(iter([node_pb2.ExecInput(
                start=node_pb2.ExecStart(name="x", command=["true"]))]), metadata=md,
                timeout=10)),
        }
        for method, call in calls.items():
            with pytest.raises(grpc.RpcError) as e:
                call(())
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
            with pytest.raises(grpc.RpcError) as e:
                call((("authorization", "Bearer sekrit"),))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND, method


# ---- with the real node agent -------------------------------------------------------

def test_with_a_real_node_agent(master: Master, client: Client, kl: Kl) -> None:
    """The same calls against a kubelite-node that made the pod itself."""
    from tests.node_agent import run_node, wait_for

    docker_client().close()  # skips without docker or the images
    with run_node(master.address, "--metrics-interval", "0") as agent:
        wait_for(lambda: client.get("nodes", agent.name), 30, "node registration")
        client.create(convert.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "real", "namespace": kl.namespace},
            "spec": {"nodeName": agent.name, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "app", "image": "kubelite/busybox:1.35",
                                     "command": ["sh", "-c", "echo hello; exec sleep 3600"]}]},
        }, pod_pb2.Pod))
        try:
            try:
                wait_for(lambda: kl("logs", "real").stdout == "hello\n", 30, "the pod's logs")
            except AssertionError as e:
                raise AssertionError(f"{e}\nagent log:\n{agent.logs()}") from None
            r = ex(kl, "real", "--", "sh", "-c", "hostname; exit 7")
            assert (r.returncode, r.stdout, r.stderr) == (
                7, "real\n", "command terminated with exit code 7\n")
        finally:
            client.delete("pods", "real", kl.namespace, grace_period_seconds=0)
