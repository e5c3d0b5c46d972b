"""Admission control: at most ``max_inflight_requests`` requests inside the app at once.

Why: routes are sync, so FastAPI runs each one in a worker thread *and* hops to a worker thread again to
serialize its response, while the request's session still holds a pooled database connection. With more
requests in flight than the pool has connections, every worker thread can end up waiting for a connection
that belongs to a request waiting for a thread: a deadlock that lasts until the pool timeout (30 s; measured
in docs/benchmarks.md, service load). Keeping the in-flight count at or below the pool size means a thread
never waits for a connection; the requests over the limit wait here, on the event loop, holding nothing.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Receive, Scope, Send


class InflightLimitMiddleware:
    def __init__(self, app: ASGIApp, max_inflight: int) -> None:
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be >= 1, got {max_inflight=}.")
        self.app = app
        self.max_inflight = max_inflight
        self._slots: asyncio.Semaphore | None = None  # created lazily: it must belong to the server's loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_inflight)
        async with self._slots:
            await self.app(scope, receive, send)
