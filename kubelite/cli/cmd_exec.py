"""kubelite exec: run a command in a container, proxied by the master to its node.

    kubelite exec [-i] [-t] POD [-c CONTAINER] -- COMMAND [args...]

As kubectl: without -i nothing is read from stdin; -t (with -i, and stdin a
terminal) gives the command a terminal and puts the local one in raw mode
(restored on the way out, whatever happens) and window size changes follow;
without -c a pod of several containers gets its default one, with a note on
stderr. The exit code is the command's; a non-zero one is also reported as
`command terminated with exit code N`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from kubelite.cli.cmd_logs import pod_name
from kubelite.cli.context import CLIError, Context
from kubelite.client.client import ExecSession
from kubelite.objects import containers

_USAGE = "kubelite exec [-i] [-t] POD [-c CONTAINER] -- COMMAND [args...]"


def _flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--stdin", action="store_true", default=None,
                   help="pass stdin to the container")
    p.add_argument("-t", "--tty", action="store_true", default=None,
                   help="stdin is a TTY")
    p.add_argument("-c", "--container", default=None,
                   help="container name (default: the pod's default container)")
    p.add_argument("-q", "--quiet", action="store_true", default=None,
                   help="only print output from the remote session")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("exec", help="Execute a command in a container", usage=_USAGE)
    _flags(p)
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="POD -- COMMAND [args...]")
    p.set_defaults(func=run)


def parse(args: argparse.Namespace) -> tuple[str, list[str], dict[str, Any]]:
    """(pod, command, flags) from `exec`'s words: flags may sit before or after POD,
    the command comes after `--`."""
    words = list(args.args)
    if "--" in words:
        cut = words.index("--")
        before, command, dashed = words[:cut], words[cut + 1:], True
    else:
        before, command, dashed = words, [], False
    inner = argparse.ArgumentParser(prog="kubelite exec", usage=_USAGE, add_help=False)
    _flags(inner)
    inner.add_argument("words", nargs="*")
    ns, unknown = inner.parse_known_args(before)
    positional = list(ns.words)
    if not dashed and (len(positional) > 1 or unknown):
        raise CLIError("exec [POD] [COMMAND] is not supported anymore. "
                       "Use exec [POD] -- [COMMAND] instead")
    if unknown:
        raise CLIError(f"unknown flag: {unknown[0]}")
    if not positional:
        raise CLIError("pod or type/name must be specified")
    if len(positional) > 1:
        raise CLIError(f"exec accepts one pod, got: {' '.join(positional)}")
    flags = {}
    for key in ("stdin", "tty", "container", "quiet"):
        inner_value = getattr(ns, key)
        flags[key] = inner_value if inner_value is not None else getattr(args, key)
    return positional[0], command, flags


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _reader(stream: Any) -> Callable[[], bytes]:
    """A function reading what is available on stdin (b"" at its end)."""
    try:
        fd = stream.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        buf = getattr(stream, "buffer", None)
        if buf is not None and hasattr(buf, "read1"):
            return lambda: buf.read1(32768)
        return lambda: stream.read(32768).encode()
    return lambda: os.read(fd, 32768)


def _binary(stream: Any) -> BinaryIO | None:
    return getattr(stream, "buffer", None)


def _write(stream: Any, data: bytes) -> None:
    binary = _binary(stream)
    if binary is not None:
        binary.write(data)
        binary.flush()
    else:
        stream.write(data.decode(errors="replace"))
        stream.flush()


@contextlib.contextmanager
def raw_terminal(fd: int, on_resize: Callable[[int, int], None]) -> Iterator[None]:
    """The terminal `fd` in raw mode, its size sent now and on every SIGWINCH;
    the mode and the signal handler restored on the way out."""
    import termios
    import tty

    def send_size(*_: object) -> None:
        with contextlib.suppress(OSError):
            size = os.get_terminal_size(fd)
            on_resize(size.columns, size.lines)

    saved = termios.tcgetattr(fd)
    previous = signal.getsignal(signal.SIGWINCH)
    try:
        tty.setraw(fd)
        signal.signal(signal.SIGWINCH, send_size)
        send_size()
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _pump_stdin(session: ExecSession, read: Callable[[], bytes]) -> None:
    try:
        while data := read():
            session.send_stdin(data)
    except OSError:
        pass
    session.close_stdin()


def run(ctx: Context, args: argparse.Namespace) -> int:
    word, command, flags = parse(args)
    name = pod_name(word)
    if not command:
        raise CLIError("you must specify at least one command for the container")
    pod = ctx.client.get("pods", name, ctx.namespace)
    phase = pod.status.phase
    if phase in ("Succeeded", "Failed"):
        raise CLIError("cannot exec into a container in a completed pod; "
                       f"current phase is {phase}")
    container = flags["container"] or ""
    if not container:
        container, note = containers.kubectl_default(pod)
        if note and not flags["quiet"]:
            ctx.warn(note)
    stdin_stream = sys.stdin
    use_stdin, use_tty = bool(flags["stdin"]), bool(flags["tty"])
    if not use_stdin:
        use_tty = False
    elif use_tty and not _is_terminal(stdin_stream):
        use_tty = False
        if not flags["quiet"]:
            ctx.warn("Unable to use a TTY - input is not a terminal or the right kind of file")

    session = ctx.client.exec(ctx.namespace, name, command, container, stdin=use_stdin,
                              tty=use_tty)
    code, error = 0, ""
    try:
        with contextlib.ExitStack() as stack:
            if use_tty:
                stack.enter_context(raw_terminal(stdin_stream.fileno(), session.resize))
            if use_stdin:
                threading.Thread(target=_pump_stdin, args=(session, _reader(stdin_stream)),
                                 name="exec-stdin", daemon=True).start()
            else:
                session.end_input()
            for out in session:
                if out.stdout:
                    _write(ctx.out, out.stdout)
                if out.stderr:
                    _write(ctx.err, out.stderr)
                if out.error:
                    error = out.error
                if out.HasField("exit_code"):
                    code = out.exit_code
    finally:
        session.close()
    if error:
        ctx.warn(error)
    if code:
        ctx.warn(f"command terminated with exit code {code}")
    return code
