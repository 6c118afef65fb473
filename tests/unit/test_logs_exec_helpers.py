"""The pure parts of logs / exec: container choice, flag parsing, docker's
stream framing, the auth interceptor's denial shapes."""

from __future__ import annotations

import struct

import pytest

from kubelite.api import node_pb2, pod_pb2
from kubelite.cli import cmd_exec
from kubelite.cli.cmd_logs import parse_duration, pod_name
from kubelite.cli.context import CLIError
from kubelite.cli.main import build_parser
from kubelite.objects import containers
from kubelite.objects.convert import from_dict
from master.auth import TokenAuthInterceptor
from node.kubelet.server import _demux


def pod(*names: str, inits: tuple[str, ...] = (), annotations: dict[str, str] | None = None
        ) -> pod_pb2.Pod:
    return from_dict({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "web", "annotations": annotations or {}},
                      "spec": {"containers": [{"name": n, "image": "x"} for n in names],
                               "initContainers": [{"name": n, "image": "x"} for n in inits]}},
                     pod_pb2.Pod)


def test_choose_container() -> None:
    assert containers.choose_in_pod(pod("a")) == "a"
    assert containers.choose_in_pod(pod("a", "b"), "b") == "b"
    assert containers.choose_in_pod(pod("a", inits=("i",)), "i") == "i"
    with pytest.raises(containers.ContainerChoiceError) as e:
        containers.choose_in_pod(pod("a", "b"))
    assert str(e.value) == "a container name must be specified for pod web, choose one of: [a b]"
    with pytest.raises(containers.ContainerChoiceError) as e:
        containers.choose_in_pod(pod("a", "b", inits=("i",)))
    assert str(e.value) == ("a container name must be specified for pod web, choose one of: "
                            "[a b] or one of the init containers: [i]")
    with pytest.raises(containers.ContainerChoiceError) as e:
        containers.choose_in_pod(pod("a"), "z")
    assert str(e.value) == "container z is not valid for pod web"


def test_kubectl_default_container() -> None:
    assert containers.kubectl_default(pod("a")) == ("a", "")
    assert containers.kubectl_default(pod("a", "b")) == (
        "a", 'Defaulted container "a" out of: a, b')
    assert containers.kubectl_default(pod("a", inits=("i",))) == (
        "a", 'Defaulted container "a" out of: a, i (init)')
    annotated = pod("a", "b", annotations={containers.DEFAULT_CONTAINER_ANNOTATION: "b"})
    assert containers.kubectl_default(annotated) == ("b", "")


@pytest.mark.parametrize(("text", "seconds"), [
    ("5s", 5), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25), ("0", 0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("5", 'time: missing unit in duration "5"'),
    ("5x", 'time: unknown unit "x" in duration "5x"'),
    ("m", 'time: invalid duration "m"'),
    ("", 'time: invalid duration ""'),
])
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(CLIError) as e:
        parse_duration(text)
    assert str(e.value) == f'invalid argument "{text}" for "--since" flag: {message}'


def test_pod_name() -> None:
    assert pod_name("web") == pod_name("pod/web") == pod_name("pods/web") == "web"
    with pytest.raises(CLIError):
        pod_name("deploy/web")


def exec_args(*argv: str) -> tuple[str, list[str], dict[str, object]]:
    args = build_parser().parse_args(["exec", *argv])
    return cmd_exec.parse(args)


def test_exec_arguments() -> None:
    assert exec_args("-it", "web", "--", "sh", "-c", "x") == (
        "web", ["sh", "-c", "x"], {"stdin": True, "tty": True, "container": None,
                                   "quiet": None})
    name, command, flags = exec_args("web", "-c", "a", "-i", "--", "ls", "-l")
    assert (name, command, flags["container"], flags["stdin"], flags["tty"]) == (
        "web", ["ls", "-l"], "a", True, None)
    assert exec_args("web")[:2] == ("web", [])
    with pytest.raises(CLIError, match="Use exec \\[POD\\] -- \\[COMMAND\\] instead"):
        exec_args("web", "ls")
    with pytest.raises(CLIError, match="pod or type/name must be specified"):
        exec_args("--", "ls")


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", kind, len(payload)) + payload


def test_demux_docker_frames() -> None:
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"x" * 10)
    # delivered in awkward pieces: headers and payloads split across reads
    pieces = [data[:3], data[3:13], data[13:14], data[14:]]
    got: list[node_pb2.ExecOutput] = []
    _demux(lambda: pieces.pop(0) if pieces else b"", lambda o: got.append(o) or True)
    assert [(o.stdout, o.stderr) for o in got] == [(b"out\n", b""), (b"", b"err\n"),
                                                   (b"x" * 10, b"")]


def test_auth_denials_match_the_method_shapes() -> None:
    interceptor = TokenAuthInterceptor({"t"})
    shapes = {m: (h.request_streaming, h.response_streaming)
              for m, h in ((m, interceptor._deny[interceptor._methods[m]])
                           for m in interceptor._methods)}
    assert shapes["/kubelite.v1.API/Get"] == (False, False)
    assert shapes["/kubelite.v1.API/Watch"] == (False, True)
    assert shapes["/kubelite.v1.API/Logs"] == (False, True)
    assert shapes["/kubelite.v1.API/Exec"] == (True, True)
