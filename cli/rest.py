"""A small synchronous client for the schedsearch REST API (httpx), used by the ``schedsearch`` client
commands and usable from scripts.

Every failure becomes one :class:`ApiError` whose message a person can act on: the service is not running
(with the URL tried), the token is missing or wrong, or the service's own ``detail`` text for a 4xx/5xx
(validation errors listed field by field). No torch or ray here: the client must start fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "SCHEDSEARCH_URL"
TOKEN_ENV = "SCHEDSEARCH_TOKEN"


class ApiError(Exception):
    """A failed call, with the HTTP status when the service answered (None when it could not be reached)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def format_detail(detail: Any) -> str:
    """FastAPI's ``detail``: a string as is; a validation list as ``field.path: message`` lines."""
    if isinstance(detail, list):
        lines = []
        for item in detail:
            if isinstance(item, Mapping):
                # FastAPI prefixes the location with "body"/"query"/"path"; the field path is what matters.
                loc = [str(part) for part in item.get("loc", []) if part not in ("body", "query", "path")]
                where = ".".join(loc) or "request"
                lines.append(f"{where}: {item.get('msg', item)}")
            else:
                lines.append(str(item))
        return "\n".join(lines)
    if isinstance(detail, Mapping):
        return "; ".join(f"{key}: {value}" for key, value in detail.items())
    return str(detail)


@dataclass(frozen=True)
class Connection:
    """Where the service is and who is asking; flags win over the environment."""

    url: str
    token: str | None

    @classmethod
    def resolve(cls, url: str | None = None, token: str | None = None) -> Connection:
        return cls(
            url=(url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/"),
            token=token or os.environ.get(TOKEN_ENV) or None,
        )


class ApiClient:
    """Thin wrapper: one method per route, JSON in and out, :class:`ApiError` on any failure."""

    def __init__(self, connection: Connection, *, timeout: float = 30.0, transport: Any = None) -> None:
        self.connection = connection
        headers = {"Accept": "application/json"}
        if connection.token:
            headers["Authorization"] = f"Bearer {connection.token}"
        self._http = httpx.Client(
            base_url=connection.url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------------------------ transport

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(
                f"cannot reach the schedsearch service at {self.connection.url} ({exc}). Is it running? "
                f"Start it with `schedsearch serve`, or point --url / {URL_ENV} at it."
            ) from exc
        except httpx.TimeoutException as exc:
            raise ApiError(f"{method} {self.connection.url}{path} timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise ApiError(f"{method} {self.connection.url}{path} failed: {exc}") from exc
        if response.status_code >= 400:
            raise self._error(method, path, response)
        return response

    def _error(self, method: str, path: str, response: httpx.Response) -> ApiError:
        try:
            body = response.json()
            detail = body.get("detail", body) if isinstance(body, Mapping) else body
        except ValueError:
            detail = response.text.strip() or response.reason_phrase
        text = format_detail(detail)
        status = response.status_code
        head = f"{status} {response.reason_phrase} from {method} {path}"
        if status == 401:
            hint = (
                f"set --token or {TOKEN_ENV}" if not self.connection.token else "the token was not accepted"
            )
            message = f"{head}: {text}\n({hint}; create one with `schedsearch token create --user NAME`)"
        elif "\n" in text:
            message = f"{head}:\n{text}"
        else:
            message = f"{head}: {text}"
        return ApiError(message, status=status, detail=detail)

    def get_json(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean).json()

    # ------------------------------------------------------------------------------------------ routes

    def health(self) -> Any:
        return self.get_json("/healthz")

    def submit(self, spec: Mapping[str, Any], *, idempotency_key: str | None = None) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        result: dict[str, Any] = self.request("POST", "/v1/jobs", json=spec, headers=headers).json()
        return result

    def list_jobs(self, *, status: str | None = None, limit: int | None = None) -> Any:
        return self.get_json("/v1/jobs", status=status, limit=limit)

    def get_job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/v1/jobs/{job_id}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/v1/jobs/{job_id}/cancel").json()
        return result

    def trials(self, job_id: str, *, sort: str | None = None, limit: int | None = None) -> Any:
        return self.get_json(f"/v1/jobs/{job_id}/trials", sort=sort, limit=limit)

    def trial(self, job_id: str, trial_id: str | int) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/v1/jobs/{job_id}/trials/{trial_id}")
        return result

    def metrics(self, job_id: str, trial_id: str | int) -> Any:
        return self.get_json(f"/v1/jobs/{job_id}/trials/{trial_id}/metrics")

    def report(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get_json(f"/v1/jobs/{job_id}/report")
        return result

    def plot(self, job_id: str) -> bytes:
        return self.request("GET", f"/v1/jobs/{job_id}/plot.png", headers={"Accept": "image/png"}).content
