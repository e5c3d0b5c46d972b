"""A real ``schedsearch serve`` (uvicorn, embedded dispatcher off) in a subprocess, for fault tests that kill
or starve the process the way production would see it. The process helpers live in ``tests.support.serve``."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.serve import Server, create_token, free_port

__all__ = ["Server", "create_token", "free_port", "server_env"]


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
