"""kubelite-up / kubelite-down: a local cluster on this machine.

    kubelite-up      start etcd, a master and --nodes node agents (default 2)
                     in the background (idempotent: what runs is kept, what
                     died is restarted, a half-built network is completed),
                     write the client config, print how to use the CLI
    kubelite-down    stop them, remove their containers and everything
                     kubelite-up created (namespaces, links, bridge, chains)

State lives in one directory (default <repo>/.local-cluster, or
$KUBELITE_LOCAL_DIR): etcd data, logs, pid files, the token, each node's
state, network.json. The cluster's etcd listens on 127.0.0.1:23790 so it
never collides with a system etcd on 2379 (with --etcd-members 3, three
members on 23790-23792, the master given all of them). Each node agent (node-1, node-2,
...) runs in its own network namespace (kubelite-node-1, ...) joined to the
bridge kl0 (10.240.0.1/24) as 10.240.0.11, .12, ... (kubelite/localnet.py),
with its own routes, iptables and pod network (--network-backend vxlan or
host-gw); the master listens on 127.0.0.1 and on the bridge. The agents
share this machine's Docker daemon; each touches only containers labelled
with its own name.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from kubelite import localnet
from kubelite.client import Client, ClientConfig
from kubelite.client.config import default_path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "# written by kubelite-up\n"


def state_dir() -> Path:
    return Path(os.environ.get("KUBELITE_LOCAL_DIR") or ROOT / ".local-cluster")


def _alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return None  # dead, not yet reaped
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if not cmdline:
            return pid  # between fork and exec: just started by us
        if str(pidfile.parent).encode() not in cmdline and b"kubelite" not in cmdline:
            return None  # the pid was reused by something else
        return pid
    except (OSError, ValueError):
        return None


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _spawn(name: str, cmd: list[str], d: Path) -> None:
    pidfile = d / f"{name}.pid"
    if _alive(pidfile):
        print(f"  {name}: already running (pid {pidfile.read_text().strip()})")
        return
    with open(d / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT)
    pidfile.write_text(str(proc.pid))
    print(f"  {name}: started (pid {proc.pid}, log {d / (name + '.log')})")


def _wait(port: int, name: str, d: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _port_open(port):
        if not _alive(d / f"{name}.pid") or time.monotonic() > deadline:
            tail = (d / f"{name}.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"kubelite-up: {name} did not start; its log ends:\n{tail}")
        time.sleep(0.1)


def up(args: argparse.Namespace) -> int:
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    etcd = shutil.which("etcd")
    if not etcd:
        raise SystemExit("kubelite-up: etcd is not installed (run hack/install-deps.sh)")
    print(f"kubelite-up: local cluster in {d}")
    net = localnet.plan(args.bridge, args.host_cidr,
                        [f"{args.node_prefix}{i}" for i in range(1, args.nodes + 1)],
                        args.netns_prefix)
    old = localnet.LocalNet.load(d / "network.json")
    if old is not None and (old.bridge, old.cidr) != (net.bridge, net.cidr):
        raise SystemExit(f"kubelite-up: this cluster was made with --bridge {old.bridge} "
                         f"--host-cidr {old.cidr}; run kubelite-down first to change them")
    backend_file = d / "backend"
    if backend_file.exists() and backend_file.read_text() != args.network_backend:
        raise SystemExit(f"kubelite-up: this cluster runs the {backend_file.read_text()} "
                         "backend; run kubelite-down first to change it")
    if old is not None:  # nodes from an earlier, bigger run stay known (and removed by down)
        known = {n.name for n in net.nodes}
        net.nodes += [n for n in old.nodes if n.name not in known]
    (d / "network.json").write_text(net.to_json())  # before anything exists: down finds it
    backend_file.write_text(args.network_backend)
    try:
        localnet.ensure(net)
    except localnet.LocalNetError as e:
        raise SystemExit(f"kubelite-up: {e}") from None
    net.nodes = [n for n in net.nodes if n.name in
                 {f"{args.node_prefix}{i}" for i in range(1, args.nodes + 1)}]
    etcd_servers = _start_etcd(etcd, args, d)
    token_file = d / "tokens"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(16) + ",admin\n")
        token_file.chmod(0o600)
    token = token_file.read_text().split(",")[0].strip()
    _spawn("master", [sys.executable, "-m", "master.main",
                      "--etcd-servers", etcd_servers,
                      "--listen", f"127.0.0.1:{args.port},{net.gateway}:{args.port}",
                      "--token-file", str(token_file),
                      "--cluster-cidr", args.cluster_cidr,
                      "--network-backend", args.network_backend, *args.master_arg], d)
    _wait(args.port, "master", d)
    server = f"127.0.0.1:{args.port}"
    with Client(server=server, token=token, timeout=5) as c:
        deadline = time.monotonic() + 30
        while True:
            try:
                c.get("namespaces", "default")
                break
            except Exception:  # noqa: BLE001 - still bootstrapping
                if time.monotonic() > deadline:
                    raise SystemExit("kubelite-up: the master did not become ready") from None
                time.sleep(0.2)
    for n in net.nodes:
        # nsenter, not `ip netns exec`: that remounts /sys, hiding /sys/fs/cgroup (usage stats)
        _spawn(n.name, ["nsenter", f"--net=/run/netns/{n.netns}", "--", sys.executable,
                        "-m", "node.agent",
                        "--server", f"{net.gateway}:{args.port}", "--token", token,
                        "--node-name", n.name, "--node-ip", n.address, "--address", n.address,
                        "--port", str(args.kubelet_port), "--root-dir", str(d / n.name),
                        "--proxy-mode", args.proxy_mode], d)
    with Client(server=server, token=token, timeout=5) as c:
        deadline = time.monotonic() + 90
        for n in net.nodes:
            while True:
                why = _node_not_ready(c, n.name)
                if not why:
                    break
                if not _alive(d / f"{n.name}.pid") or time.monotonic() > deadline:
                    tail = (d / f"{n.name}.log").read_text(errors="replace")[-2000:]
                    raise SystemExit(f"kubelite-up: {n.name} is not Ready ({why}); its log "
                                     f"ends:\n{tail}")
                time.sleep(0.2)
    cfg = ClientConfig(servers=[server], token=token)
    (d / "config").write_text(MARKER + cfg.dump())
    user_cfg = default_path()
    if not user_cfg.exists() or user_cfg.read_text().startswith(MARKER):
        user_cfg.parent.mkdir(parents=True, exist_ok=True)
        user_cfg.write_text(MARKER + cfg.dump())
        user_cfg.chmod(0o600)
        where = f"{user_cfg} (the default)"
    else:
        where = f"{d / 'config'} (export KUBELITE_CONFIG={d / 'config'}; {user_cfg} is not ours)"
    print(f"""
kubelite is running: master at {server}, etcd at {etcd_servers},
{args.nodes} node agent(s) in network namespaces ({", ".join(
    f"{n.name} {n.address}" for n in net.nodes)}) on bridge {net.bridge},
pod network {args.cluster_cidr} ({args.network_backend}).
Client config: {where}

Try:
  .venv/bin/kubelite get namespaces
  .venv/bin/kubelite apply -f examples/nginx-deployment.yaml
  .venv/bin/kubelite get nodes
  .venv/bin/kubelite apply -f examples/busybox-pod.yaml
  .venv/bin/kubelite get pods -o wide

Stop it and remove everything with: make down
""")
    return 0


def _etcd_names(members: int) -> list[str]:
    """Process names (pid, log, data directory) of the members: etcd, etcd-2, etcd-3, ..."""
    return ["etcd", *(f"etcd-{i}" for i in range(2, members + 1))]


def _start_etcd(etcd: str, args: argparse.Namespace, d: Path) -> str:
    """Start the --etcd-members members; the master's --etcd-servers for them.

    Member i (from 0) listens for clients on --etcd-port + i and for peers on
    --etcd-port + 10 + i. One member keeps the name `local` it always had, so
    an existing single-member cluster's data stays usable; a cluster's size
    is fixed when it is made (etcd's initial cluster), hence the check.
    """
    n = args.etcd_members
    size_file = d / "etcd-members"
    if size_file.exists() and int(size_file.read_text()) != n:
        raise SystemExit(f"kubelite-up: this cluster's etcd has {size_file.read_text()} "
                         "member(s); run kubelite-down first to change --etcd-members")
    if not size_file.exists() and (d / "etcd").exists() and n != 1:
        raise SystemExit("kubelite-up: this cluster's etcd has 1 member; run kubelite-down "
                         "first to change --etcd-members")
    size_file.write_text(str(n))
    names = _etcd_names(n)
    member = ["local"] if n == 1 else [f"etcd-{i}" for i in range(1, n + 1)]
    peers = ",".join(f"{member[i]}=http://127.0.0.1:{args.etcd_port + 10 + i}"
                     for i in range(n))
    for i, name in enumerate(names):
        client, peer = args.etcd_port + i, args.etcd_port + 10 + i
        _spawn(name, [etcd, "--name", member[i], "--data-dir", str(d / name),
                      "--listen-client-urls", f"http://127.0.0.1:{client}",
                      "--advertise-client-urls", f"http://127.0.0.1:{client}",
                      "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                      "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                      "--initial-cluster", peers, "--initial-cluster-token", "kubelite-local",
                      "--log-level", "warn", "--logger", "zap"], d)
    for i, name in enumerate(names):
        _wait(args.etcd_port + i, name, d)
    return ",".join(f"http://127.0.0.1:{args.etcd_port + i}" for i in range(n))


def down(args: argparse.Namespace) -> int:
    d = state_dir()
    etcds = sorted((p.stem for p in d.glob("etcd*.pid")), key=lambda x: (len(x), x)) \
        if d.exists() else []
    nodes = sorted(p.stem for p in d.glob("*.pid") if p.stem != "master"
                   and p.stem not in etcds) if d.exists() else []
    for name in (*nodes, "master", *etcds):
        pid = _alive(d / f"{name}.pid")
        if pid:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                if not _alive(d / f"{name}.pid"):
                    break
                time.sleep(0.1)
            else:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            print(f"kubelite-down: stopped {name} (pid {pid})")
    for name in nodes:  # the agents leave pods running on purpose (a restart adopts them)
        _remove_containers(name)
    net = localnet.LocalNet.load(d / "network.json") if d.exists() else None
    if net is not None:
        for what in localnet.remove(net):
            print(f"kubelite-down: removed {what}")
    user_cfg = default_path()
    if user_cfg.exists() and user_cfg.read_text().startswith(MARKER):
        user_cfg.unlink()
    if d.exists():
        shutil.rmtree(d)
        print(f"kubelite-down: removed {d}")
    return 0


def _node_not_ready(c: Client, name: str) -> str:
    """Why the Node is not Ready yet ("" when it is)."""
    try:
        node = c.get("nodes", name)
    except Exception:  # noqa: BLE001 - still registering
        return "not registered"
    ready = next((x for x in node.status.conditions if x.type == "Ready"), None)
    if ready is None:
        return "no Ready condition"
    return "" if ready.status == "True" else ready.message or ready.reason


def _remove_containers(node: str) -> None:
    if not shutil.which("docker"):
        return
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=io.kubelite.node={node}"],
                         capture_output=True, text=True, check=False).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, check=False)
        print(f"kubelite-down: removed {len(ids)} container(s) of {node}")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument("--port", type=int, default=6443, help="API port (default %(default)s)")
    p.add_argument("--etcd-port", type=int, default=23790,
                   help="etcd client port (default %(default)s)")
    p.add_argument("--etcd-members", type=int, default=1, choices=range(1, 10),
                   metavar="N", help="etcd cluster members, client ports from --etcd-port "
                   "on (default %(default)s; 3 survives one member down)")
    p.add_argument("--nodes", type=int, default=2, help="node agents (default %(default)s)")
    p.add_argument("--node-prefix", default="node-",
                   help="node names are <prefix>1, <prefix>2, ... (default %(default)s)")
    p.add_argument("--kubelet-port", type=int, default=10250,
                   help="the node agents' port, each on its own address (default %(default)s)")
    p.add_argument("--network-backend", default="vxlan", choices=("vxlan", "host-gw"),
                   help="how pod traffic crosses nodes (default %(default)s)")
    p.add_argument("--proxy-mode", default="iptables",
                   choices=("iptables", "ipvs", "userspace", "none"),
                   help="the nodes' Service proxy (default %(default)s)")
    p.add_argument("--cluster-cidr", default="10.244.0.0/16",
                   help="the pods' addresses (default %(default)s)")
    p.add_argument("--host-cidr", default="10.240.0.0/24",
                   help="the nodes' network: the bridge gets .1, node i gets .(10+i) "
                   "(default %(default)s)")
    p.add_argument("--bridge", default="kl0",
                   help="the bridge between the nodes (default %(default)s)")
    p.add_argument("--master-arg", action="append", default=[], metavar="FLAG",
                   help="one more kubelite-master flag, repeatable, e.g. "
                        "--master-arg=--node-monitor-grace-period=10")
    p.add_argument("--netns-prefix", default="kubelite-",
                   help="node namespaces are <prefix><node> (default %(default)s)")
    return p


def main() -> None:
    sys.exit(up(_parser("kubelite-up").parse_args()))


def main_down() -> None:
    sys.exit(down(_parser("kubelite-down").parse_args()))
