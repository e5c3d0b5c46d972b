"""Request bodies are parsed as strict JSON (:mod:`service.strictjson`) on every route of the API.

``StrictJSONRoute`` is the ``route_class`` of every router: FastAPI asks the request for its JSON, and the
request parses it strictly. A body that is not strict JSON does not fail there (FastAPI would answer an
undocumented 400 before authentication); it becomes an :class:`InvalidBody` value, so the route's
dependencies (authentication, the submit rate limit) run first, and the validation error handler
(``service.api.errors``) answers the 422 with the exact location of each problem.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from service.strictjson import Problem, StrictJSONError, loads


class InvalidBody:
    """Stands in for the body of a request whose JSON was refused; carries the problems."""

    def __init__(self, error: StrictJSONError) -> None:
        self.problems: list[Problem] = error.problems

    def errors(self) -> list[dict[str, Any]]:
        """The problems as FastAPI validation errors (``loc`` under ``body``)."""
        return [
            {"type": p.kind, "loc": ("body", *p.loc), "msg": p.message, "input": p.input}
            for p in self.problems
        ]


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = loads(await self.body())
            except StrictJSONError as exc:
                self._json = InvalidBody(exc)
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
