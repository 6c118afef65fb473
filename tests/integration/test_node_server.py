"""The node agent's gRPC endpoint (NodeAgent: Logs, Exec) against real Docker
containers laid out as a pod's (tests/agent_server.py), called directly."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from kubelite.api import node_pb2, node_pb2_grpc
from node.kubelet.runtime import Runtime
from tests.agent_server import FakePod, NodeAgentServer, fake_pods, node_runtime

PodFactory = Callable[..., FakePod]

LINES = "echo one; echo two; echo three"


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with node_runtime() as rt:
        yield rt


@pytest.fixture(scope="module")
def server(runtime: Runtime) -> Iterator[NodeAgentServer]:
    with NodeAgentServer(runtime) as s:
        yield s


@pytest.fixture(scope="module")
def stub(server: NodeAgentServer) -> Iterator[node_pb2_grpc.NodeAgentStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield node_pb2_grpc.NodeAgentStub(channel)


@pytest.fixture(scope="module")
def web(runtime: Runtime) -> Iterator[FakePod]:
    """One running pod with one container that has written four lines."""
    with fake_pods(runtime) as make:
        pod = make("web")
        cid = pod.run("app", f"{LINES}; echo oops >&2; exec sleep 3600")
        pod.wait_logs(cid, b"oops")
        yield pod


@pytest.fixture()
def pods(runtime: Runtime) -> Iterator[PodFactory]:
    """Pods for one test, removed after it."""
    with fake_pods(runtime) as make:
        yield make


def logs(stub: node_pb2_grpc.NodeAgentStub, pod: FakePod, **kw: object) -> bytes:
    req = node_pb2.LogsRequest(namespace="default", name=pod.name, **kw)  # type: ignore[arg-type]
    return b"".join(c.data for c in stub.Logs(req, timeout=20))


def status(call: object) -> tuple[grpc.StatusCode, str, str]:
    """(code, message, reason) of a failed call."""
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    e = info.value
    reason = dict(e.trailing_metadata() or ()).get("kubelite-reason", "")
    return e.code(), e.details(), reason


def exec_(stub: node_pb2_grpc.NodeAgentStub, pod: FakePod, command: list[str],
          *more: node_pb2.ExecInput, container: str = "", stdin: bool = False,
          tty: bool = False, uid: str = "") -> list[node_pb2.ExecOutput]:
    start = node_pb2.ExecStart(namespace="default", name=pod.name, container=container,
                               command=command, stdin=stdin, tty=tty, pod_uid=uid)
    return list(stub.Exec(iter([node_pb2.ExecInput(start=start), *more]), timeout=20))


def joined(outs: list[node_pb2.ExecOutput]) -> tuple[bytes, bytes, int | None, str]:
    last = outs[-1]
    return (b"".join(o.stdout for o in outs), b"".join(o.stderr for o in outs),
            last.exit_code if last.HasField("exit_code") else None, last.error)


# ---- logs ---------------------------------------------------------------------------

def test_logs_plain_and_by_uid(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    out = logs(stub, web)
    assert sorted(out.splitlines()) == [b"one", b"oops", b"three", b"two"]
    assert b"\x00" not in out  # demultiplexed
    # The master's form: the uid given, the container named.
    assert logs(stub, web, pod_uid=web.uid, container="app") == out


def test_logs_tail_timestamps_limit(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    all_lines = logs(stub, web).splitlines()
    assert logs(stub, web, tail_lines=1).splitlines() == all_lines[-1:]
    assert logs(stub, web, tail_lines=0) == b""
    stamped = logs(stub, web, timestamps=True, tail_lines=2).splitlines()
    assert len(stamped) == 2
    for line, plain in zip(stamped, all_lines[-2:], strict=True):
        stamp, _, text = line.partition(b" ")
        assert text == plain
        assert stamp[:2] == b"20" and stamp.endswith(b"Z") and b"T" in stamp
    assert logs(stub, web, limit_bytes=5) == logs(stub, web)[:5]
    assert logs(stub, web, since_seconds=3600) == logs(stub, web)
    code, msg, _ = status(lambda: logs(stub, web, tail_lines=-1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "tailLines" in msg


def test_logs_previous(pods: PodFactory, stub: node_pb2_grpc.NodeAgentStub) -> None:
    pod = pods()
    first = pod.run("c", "echo first run; exit 1")
    pod.wait_exited(first)
    code, msg, reason = status(lambda: logs(stub, pod, previous=True))
    assert code == grpc.StatusCode.NOT_FOUND and reason == "BadRequest"
    assert msg == f'previous terminated container "c" in pod "{pod.name}" not found'
    second = pod.run("c", "echo second run; exec sleep 3600", attempt=1)
    pod.wait_logs(second, b"second")
    assert logs(stub, pod) == b"second run\n"
    assert logs(stub, pod, previous=True) == b"first run\n"


def test_logs_follow_until_exit(runtime: Runtime, pods: PodFactory,
                                stub: node_pb2_grpc.NodeAgentStub) -> None:
    pod = pods()
    cid = pod.run("c", "echo start; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                       "echo after; sleep 0.2; echo last")
    pod.wait_logs(cid, b"start")
    stream = stub.Logs(node_pb2.LogsRequest(name=pod.name, follow=True), timeout=20)
    try:
        assert next(stream).data == b"start\n"
        # Output written after the call began arrives on it...
        assert runtime.exec_run(cid, ["touch", "/tmp/go"])[0] == 0
        rest = b"".join(c.data for c in stream)
    finally:
        stream.cancel()
    # ... and the stream ends when the container exits.
    assert rest == b"after\nlast\n"


def test_logs_follow_cancelled(runtime: Runtime, server: NodeAgentServer,
                               stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    stream = stub.Logs(node_pb2.LogsRequest(name=web.name, follow=True, tail_lines=1),
                       timeout=20)
    assert next(stream).data
    assert server.service.stream_threads  # a thread reads docker's stream
    stream.cancel()
    deadline = time.monotonic() + 5
    while server.service.stream_threads and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.service.stream_threads  # and stops when the caller goes


def test_logs_errors(runtime: Runtime, pods: PodFactory,
                    stub: node_pb2_grpc.NodeAgentStub) -> None:
    code, msg, _ = status(lambda: logs(stub, pods("ghost")))
    assert code == grpc.StatusCode.NOT_FOUND
    assert msg == f'pod "ghost" not found on node "{runtime.node_name}"'
    pod = pods("two")
    pod.run("b", "exec sleep 3600")
    pod.run("a", "exec sleep 3600")
    code, msg, reason = status(lambda: logs(stub, pod))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BadRequest")
    assert msg == "a container name must be specified for pod two, choose one of: [a b]"
    code, msg, _ = status(lambda: logs(stub, pod, container="zz"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg == "container zz is not valid for pod two"


# ---- exec ---------------------------------------------------------------------------

def test_exec_stdout_stderr_exit_code(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    out, err, code, error = joined(exec_(stub, web, ["sh", "-c", "echo out; echo err >&2"]))
    assert (out, err, code, error) == (b"out\n", b"err\n", 0, "")
    assert joined(exec_(stub, web, ["sh", "-c", "exit 3"]))[2:] == (3, "")
    # The master's form: uid and container given.
    assert joined(exec_(stub, web, ["hostname"], uid=web.uid, container="app"))[2] == 0


def test_exec_stdin(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    outs = exec_(stub, web, ["cat"], node_pb2.ExecInput(stdin=b"hello\n"),
                 node_pb2.ExecInput(stdin=b"world\n"), node_pb2.ExecInput(stdin_close=True),
                 stdin=True)
    assert joined(outs) == (b"hello\nworld\n", b"", 0, "")
    # The end of the request stream also ends stdin.
    outs = exec_(stub, web, ["wc", "-c"], node_pb2.ExecInput(stdin=b"12345"), stdin=True)
    assert joined(outs)[0].strip() == b"5"


def test_exec_stdin_interactive(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    """Output comes back while the request stream is still open."""
    import queue

    inputs: queue.Queue[node_pb2.ExecInput | None] = queue.Queue()
    start = node_pb2.ExecStart(name=web.name, command=["cat"], stdin=True)
    inputs.put(node_pb2.ExecInput(start=start))
    inputs.put(node_pb2.ExecInput(stdin=b"ping\n"))

    def requests() -> Iterator[node_pb2.ExecInput]:
        while (item := inputs.get()) is not None:
            yield item

    call = stub.Exec(requests(), timeout=20)
    try:
        assert next(call).stdout == b"ping\n"
        inputs.put(node_pb2.ExecInput(stdin=b"pong\n"))
        assert next(call).stdout == b"pong\n"
        inputs.put(node_pb2.ExecInput(stdin_close=True))
        assert next(call).exit_code == 0
    finally:
        inputs.put(None)
        call.cancel()


def test_exec_tty(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    outs = exec_(stub, web, ["sh", "-c", "read line; stty size; tty; echo got $line; exit 4"],
                 node_pb2.ExecInput(resize=node_pb2.TerminalSize(width=101, height=33)),
                 node_pb2.ExecInput(stdin=b"hi\n"), stdin=True, tty=True)
    out, err, code, error = joined(outs)
    assert err == b"" and code == 4 and error == ""
    # One stream, terminal line endings, the size set, a real terminal.
    assert b"33 101\r\n" in out and b"got hi\r\n" in out and b"/dev/pts/" in out


def test_exec_command_not_found(stub: node_pb2_grpc.NodeAgentStub, web: FakePod) -> None:
    outs = exec_(stub, web, ["nope"])
    out, err, code, error = joined(outs)
    assert (out, err) == (b"", b"")
    assert code in (126, 127)
    assert error.startswith("OCI runtime exec failed") and '"nope"' in error
    assert "executable file not found in $PATH" in error


def test_exec_not_running(pods: PodFactory, stub: node_pb2_grpc.NodeAgentStub) -> None:
    pod = pods()
    pod.wait_exited(pod.run("c", "true"))
    code, msg, reason = status(lambda: exec_(stub, pod, ["true"]))
    assert (code, msg, reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                   "container c is not running", "BadRequest")


def test_exec_errors(pods: PodFactory, stub: node_pb2_grpc.NodeAgentStub) -> None:
    pod = pods("multi")
    pod.run("sidecar", "exec sleep 3600")
    pod.run("main", "exec sleep 3600")
    code, msg, _ = status(lambda: exec_(stub, pod, ["true"]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert msg == "a container name must be specified for pod multi, choose one of: " \
                  "[main sidecar]"
    assert joined(exec_(stub, pod, ["true"], container="main"))[2] == 0
    code, msg, _ = status(lambda: exec_(stub, pod, [], container="main"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg, _ = status(lambda: list(stub.Exec(iter([node_pb2.ExecInput(stdin=b"x")]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "start" in msg
    code, _, _ = status(lambda: exec_(stub, pods("ghost"), ["true"]))
    assert code == grpc.StatusCode.NOT_FOUND


def test_pod_from_the_agent_cache(runtime: Runtime, pods: PodFactory) -> None:
    """With the agent's pod cache, the spec decides the containers."""
    pod = pods("cached")
    cid = pod.run("app", "echo hi; exec sleep 3600")
    pod.pod.spec.containers.add(name="later")  # in the spec, not started yet
    pod.wait_logs(cid, b"hi")
    lookup = {("default", "cached"): pod.pod}
    with NodeAgentServer(runtime, lambda ns, n: lookup.get((ns, n))) as server, \
            grpc.insecure_channel(server.address) as channel:
        stub = node_pb2_grpc.NodeAgentStub(channel)
        assert logs(stub, pod, container="app") == b"hi\n"
        code, msg, reason = status(lambda: logs(stub, pod))
        assert msg == "a container name must be specified for pod cached, choose one of: " \
                      "[app later]"
        code, msg, reason = status(lambda: logs(stub, pod, container="later"))
        assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "BadRequest")
        assert msg == 'container "later" in pod "cached" is waiting to start: ContainerCreating'
