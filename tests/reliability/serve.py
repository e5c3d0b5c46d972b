"""A real ``schedsearch serve`` (uvicorn, embedded dispatcher off) in a subprocess, for fault tests that kill
or starve the process the way production would see it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli() -> list[str]:
    exe = shutil.which("schedsearch", path=str(Path(sys.executable).parent))
    return (
        [exe] if exe else [sys.executable, "-c", "import sys; from service.cli import main; sys.exit(main())"]
    )


def server_env(db_url: str, data_dir: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ,
        "SCHEDSEARCH_DATABASE_URL": db_url,
        "SCHEDSEARCH_DATA_DIR": str(data_dir),
        "SCHEDSEARCH_EMBEDDED_DISPATCHER": "false",
        "SCHEDSEARCH_PORT": str(port),
        "SCHEDSEARCH_LOG_LEVEL": "info",
    }
    return env


def create_token(env: dict[str, str], user: str) -> str:
    run = subprocess.run(
        [*cli(), "token", "create", "--user", user],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return run.stdout.strip().splitlines()[-1]


class Server:
    """``schedsearch serve`` on 127.0.0.1:<port>; output appended to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['SCHEDSEARCH_PORT']}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cli(), "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not come up:\n{self.log()}")
            time.sleep(0.1)

    def kill9(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash or an OOM kill."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
