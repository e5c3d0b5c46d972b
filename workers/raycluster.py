"""Start and stop Ray nodes on this machine with token auth, each node in its own process group.

Used by the dispatcher (the local Ray it starts when ``SCHEDSEARCH_RAY_ADDRESS`` is unset) and by the test
fixtures (a head plus worker nodes on 127.0.0.1). Facts about Ray 2.60 that shape this module
(docs/workers.md has the full list):

- ``ray start`` daemonizes: GCS, raylet, dashboard and agents keep the process group of the ``ray start``
  process (started with ``start_new_session=True``), but each worker process (the trials' actors) gets a
  process group of its own under the raylet; a node's processes are its group plus their descendants.
  ``ray stop`` would stop every Ray on the machine (other users, other tests) and is never used.
- GCS and raylet ignore SIGTERM for a while; stop is SIGTERM, a short grace, then SIGKILL.
- Token auth is on when ``RAY_AUTH_MODE=token``; the token comes from ``RAY_AUTH_TOKEN`` (or the file
  ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``). Every node, driver and dashboard client needs it.
- ``--node-ip-address=127.0.0.1`` is rewritten by Ray to the machine's first non-loopback address (Ray
  refuses to advertise loopback); the GCS listens on all interfaces and connecting through 127.0.0.1 works.
- Worker nodes share the head's ``--temp-dir`` (they read it from the GCS); the Ray client server (10001)
  and the dashboard agent (52365) default to fixed ports, so each node gets explicit free ones.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")

# Ray advertises the machine's first non-loopback address even for --node-ip-address=127.0.0.1, so a
# "local" cluster would talk to itself through that interface. Ray's switch for single-node platforms
# (Windows, macOS) keeps every address on loopback. Worker nodes cannot join a head started with it, so
# only single-node heads (the dispatcher's local Ray) use it; multi-node clusters keep Ray's default.
LOOPBACK_ONLY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def free_port() -> int:
    """A TCP port that is free right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def new_token() -> str:
    return secrets.token_hex(24)


def auth_env(token: str) -> dict[str, str]:
    """Environment that turns on Ray token auth with ``token`` for a node, driver or client."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


def _ray_binary() -> str:
    # The ``ray`` script next to this interpreter, so nodes run the same Ray and Python as the caller.
    candidate = Path(sys.executable).with_name("ray")
    return str(candidate) if candidate.exists() else (shutil.which("ray") or "ray")


@dataclass(frozen=True)
class RayNode:
    """One started node: its process group, and for a head the addresses to reach it."""

    pgid: int
    temp_dir: Path
    gcs_address: str  # host:port of the head's GCS
    dashboard_url: str | None  # only for a head
    num_cpus: int
    log_path: Path

    def to_json(self) -> dict[str, object]:
        return {
            "pgid": self.pgid,
            "temp_dir": str(self.temp_dir),
            "gcs_address": self.gcs_address,
            "dashboard_url": self.dashboard_url,
            "num_cpus": self.num_cpus,
            "log_path": str(self.log_path),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> RayNode:
        return cls(
            pgid=int(str(data["pgid"])),
            temp_dir=Path(str(data["temp_dir"])),
            gcs_address=str(data["gcs_address"]),
            dashboard_url=str(data["dashboard_url"]) if data.get("dashboard_url") else None,
            num_cpus=int(str(data["num_cpus"])),
            log_path=Path(str(data["log_path"])),
        )


def _run_ray_start(args: list[str], *, env: Mapping[str, str], log_path: Path, timeout_s: float) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [_ray_binary(), "start", *args, "--disable-usage-stats"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,  # the daemons inherit this process group: killpg stops this node only
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, grace_s=1.0)
            raise RuntimeError(f"`ray start` did not finish within {timeout_s}s; log: {log_path}") from None
    if code != 0:
        _kill_group(proc.pid, grace_s=1.0)
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"`ray start {' '.join(args)}` exited with {code}:\n{tail}")
    return proc.pid


def start_head(
    temp_dir: Path,
    *,
    token: str,
    num_cpus: int,
    num_gpus: int | None = None,
    port: int | None = None,
    dashboard_port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> RayNode:
    """Start a head node on 127.0.0.1 with token auth and a dashboard; ports default to free ones."""
    temp_dir = Path(temp_dir).resolve()
    temp_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    dashboard_port = dashboard_port or free_port()
    args = [
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--temp-dir={temp_dir}",
        f"--num-cpus={num_cpus}",
    ]
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    log_path = temp_dir / "head-start.log"
    pgid = _run_ray_start(
        args, env={**(extra_env or {}), **auth_env(token)}, log_path=log_path, timeout_s=timeout_s
    )
    return RayNode(
        pgid=pgid,
        temp_dir=temp_dir,
        gcs_address=f"127.0.0.1:{port}",
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        num_cpus=num_cpus,
        log_path=log_path,
    )


def start_worker(
    head: RayNode,
    *,
    token: str,
    num_cpus: int,
    num_gpus: int | None = None,
    name: str = "worker",
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
) -> RayNode:
    """Start a worker node on this machine that joins ``head``."""
    args = [
        f"--address={head.gcs_address}",
        "--node-ip-address=127.0.0.1",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--num-cpus={num_cpus}",
    ]
    if num_gpus is not None:
        args.append(f"--num-gpus={num_gpus}")
    log_path = head.temp_dir / f"{name}-start.log"
    pgid = _run_ray_start(
        args, env={**(extra_env or {}), **auth_env(token)}, log_path=log_path, timeout_s=timeout_s
    )
    return RayNode(
        pgid=pgid,
        temp_dir=head.temp_dir,
        gcs_address=head.gcs_address,
        dashboard_url=None,
        num_cpus=num_cpus,
        log_path=log_path,
    )


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, state) of every process, from /proc (Linux, like Ray's own tooling here)."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: the fields after the last ")" are fixed.
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]), fields[0])
    return table


def _node_pids(pgid: int) -> list[int]:
    """The node's live processes: its process group plus their descendants. Ray puts each worker process
    (the trials' actors) in a process group of its own under the raylet, so the group alone misses them."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found = {pid for pid, (_, group, _) in table.items() if group == pgid}
    todo = list(found)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return sorted(pid for pid in found if table[pid][2] != "Z")


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue


def _kill_group(pgid: int, *, grace_s: float) -> None:
    pids = _node_pids(pgid)
    if not pids:
        return
    _signal_all(pids, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not any(_pid_alive(pid) for pid in pids):
            return
        time.sleep(0.1)
    _signal_all(pids, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def stop_node(node: RayNode, *, grace_s: float = 2.0) -> None:
    """Stop exactly this node (its processes): SIGTERM, then SIGKILL after ``grace_s``."""
    _kill_group(node.pgid, grace_s=grace_s)


def kill_node(node: RayNode) -> None:
    """Lose a node abruptly: SIGKILL to all its processes at once, trials included, as a crashed machine."""
    _signal_all(_node_pids(node.pgid), signal.SIGKILL)


def is_running(node: RayNode) -> bool:
    """True while any process of the node is alive (zombies waiting to be reaped do not count)."""
    return _group_alive(node.pgid) and bool(_node_pids(node.pgid))


def gcs_answers(address: str, timeout_s: float = 1.0) -> bool:
    """True when something accepts TCP connections at ``host:port`` (the GCS of a head)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except OSError:
        return False


def save_node(node: RayNode, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(node.to_json()))


def load_node(path: Path) -> RayNode | None:
    try:
        return RayNode.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None
