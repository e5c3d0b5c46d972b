"""Admission control under load: more concurrent requests than pooled connections must not deadlock.

A real uvicorn serves the app with a two-connection pool; sync routes need a worker thread for the route and
another hop for serializing the response while holding their connection, so without the in-flight limit 100
concurrent reads (more than the 40 worker threads) leave every thread waiting for a connection until the pool
timeout (30 s), and these requests time out after 10 s.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.api.app import create_app
from service.api.inflight import InflightLimitMiddleware
from service.auth import create_token
from service.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def small_pool_server(db_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        embedded_dispatcher=False,
        db_pool_size=2,
        db_max_overflow=0,
        max_inflight_requests=2,
    )
    app = create_app(settings)
    with app.state.session_factory() as session:
        token = create_token(session, user_name="loaded")
        session.commit()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    server.should_exit = True
    thread.join(timeout=10)
    app.state.engine.dispose()


def test_more_requests_than_connections_all_succeed(small_pool_server: tuple[str, str]) -> None:
    url, token = small_pool_server

    async def load() -> list[int]:
        limits = httpx.Limits(max_connections=100)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10, limits=limits) as client:
            responses = await asyncio.gather(*(client.get("/v1/jobs") for _ in range(100)))
        return [r.status_code for r in responses]

    assert asyncio.run(load()) == [200] * 100


def test_max_inflight_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"max_inflight must be >= 1, got max_inflight=0"):
        InflightLimitMiddleware(app=create_app, max_inflight=0)  # type: ignore[arg-type]


def test_settings_refuse_more_inflight_requests_than_connections() -> None:
    expected = r"max_inflight_requests must be <= db_pool_size \+ db_max_overflow = 3"
    with pytest.raises(ValueError, match=expected):
        Settings(db_pool_size=2, db_max_overflow=1, max_inflight_requests=4)
