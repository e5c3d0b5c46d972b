"""Prometheus metrics for one app (its own registries, so several apps in one process do not collide).

Two registries, because ``/metrics`` answers without a token: ``registry`` holds what any scraper may see
(this process's HTTP request counts and latencies by route template, failed database reads of a scrape);
``admin_registry`` holds the jobs by status across all users, which only an admin's token shows
(docs/reliability.md)."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Telemetry:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "schedsearch_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "schedsearch_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.admin_registry = CollectorRegistry()
        self.jobs = Gauge(
            "schedsearch_jobs", "Jobs by status, all users.", ["status"], registry=self.admin_registry
        )
        self.db_errors = Counter(
            "schedsearch_metrics_db_errors_total",
            "Scrapes that could not read the database.",
            registry=self.registry,
        )

    def set_jobs_by_status(self, counts: dict[str, int]) -> None:
        for status, n in counts.items():
            self.jobs.labels(status=status).set(n)

    def render(self, *, admin: bool = False) -> tuple[bytes, str]:
        body = generate_latest(self.registry)
        if admin:
            body += generate_latest(self.admin_registry)
        return body, CONTENT_TYPE_LATEST


class TelemetryMiddleware:
    """Counts and times every HTTP request by its route template (``/v1/jobs/{job_id}``, not the raw path,
    so label cardinality stays bounded)."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status_code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.telemetry.requests.labels(method=method, route=template, status=str(status_code)).inc()
            self.telemetry.latency.labels(method=method, route=template).observe(time.perf_counter() - start)
