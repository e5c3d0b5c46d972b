"""A real ``schedsearch serve`` in a subprocess, and the CLI helpers the end-to-end and fault tests share:
a free loopback port, the ``schedsearch`` console script, a token made by ``schedsearch token create``."""

from __future__ import annotations

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
    return [exe] if exe else [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


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
    """``schedsearch serve`` on 127.0.0.1:<port>; output appended to ``log_path``.

    ``ready_timeout_s`` bounds the wait for /healthz; ``stop_timeout_s`` is how long ``stop`` lets a graceful
    shutdown take (an embedded dispatcher stops its Ray head then) before it kills the process."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        ready_timeout_s: float = 60.0,
        stop_timeout_s: float = 15.0,
    ) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['SCHEDSEARCH_PORT']}"
        self.log_path = log_path
        self.stop_timeout_s = stop_timeout_s
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [*cli(), "serve"], env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self._wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
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
                self.proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self._log.closed:
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
