"""`kubelite`: kubectl's verbs and flags for the kubelite API.

Exit codes as kubectl: 0 success, 1 any error (printed to stderr as
`error: ...` or `Error from server (Reason): ...`); `exec` exits with the
command's exit code.
"""

from __future__ import annotations

import argparse
import sys

from kubelite.cli import cmd_apply, cmd_delete, cmd_describe, cmd_edit, cmd_get, cmd_info
from kubelite.cli import cmd_exec, cmd_label, cmd_logs, cmd_node
from kubelite.cli import cmd_top
from kubelite.cli import cmd_autoscale
from kubelite.cli import cmd_expose
from kubelite.cli import cmd_rollout
from kubelite.cli import cmd_scale
from kubelite.cli import cmd_set
from kubelite.cli import cmd_rolling_update
from kubelite.cli.context import CLIError, Context
from kubelite.client import APIStatusError
from kubelite.client.config import ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubelite", description="kubelite controls a kubelite "
                                "cluster, the way kubectl controls Kubernetes.")
    p.add_argument("--kubeconfig", default=None,
                   help="client config file (default $KUBELITE_CONFIG or ~/.kubelite/config)")
    p.add_argument("-s", "--server", default=None, help="API address host:port[,host:port]")
    p.add_argument("--token", default=None, help="bearer token")
    p.add_argument("-n", "--namespace", default=None)
    p.add_argument("--request-timeout", type=float, default=30.0)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    cmd_get.add_parser(sub)
    cmd_apply.add_parsers(sub)
    cmd_delete.add_parser(sub)
    cmd_describe.add_parser(sub)
    cmd_label.add_parsers(sub)
    cmd_edit.add_parser(sub)
    cmd_info.add_parsers(sub)
    cmd_node.add_parsers(sub)
    cmd_top.add_parser(sub)
    cmd_logs.add_parser(sub)
    cmd_exec.add_parser(sub)
    cmd_rollout.add_parsers(sub)
    cmd_scale.add_parser(sub)
    cmd_autoscale.add_parser(sub)
    cmd_expose.add_parser(sub)
    cmd_set.add_parsers(sub)
    cmd_rolling_update.add_parser(sub)
    return p


def _hoist_globals(argv: list[str]) -> list[str]:
    """kubectl accepts global flags anywhere (`get pods -n kube-system`); argparse
    wants them before the subcommand, so move them there."""
    takes_value = {"-n", "--namespace", "-s", "--server", "--token", "--kubeconfig",
                   "--request-timeout"}
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0]
        if a == "--":
            rest.extend(argv[i:])
            break
        if name in takes_value:
            if "=" in a:
                front.append(a)
            elif a in takes_value and i + 1 < len(argv):
                front.extend([a, argv[i + 1]])
                i += 1
            else:
                front.append(a)
        elif a.startswith("-n") and len(a) > 2 and not a.startswith("--"):
            front.append(a)  # -nkube-system
        else:
            rest.append(a)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> int:
    argv = _hoist_globals(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        cfg = load_config(args.kubeconfig, server=args.server, token=args.token)
        ctx = Context(args, cfg)
        return int(args.func(ctx, args) or 0)
    except CLIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except APIStatusError as e:
        if e.code.name == "UNAVAILABLE" and not e.from_server:
            print(f"The connection to the server {','.join(cfg.servers)} was refused - "
                  "did you specify the right host or port?", file=sys.stderr)
            return 1
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
