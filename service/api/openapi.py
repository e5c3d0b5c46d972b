"""The OpenAPI document: FastAPI's, plus the schedule and task schemas and the statuses every route can
answer.

The job spec's schedule fields and its task options are free-form dicts to pydantic (the ``schedules``
families and the task definitions validate them, with their own messages), so their schema comes from
``schedules.schema``, generated from the family dataclasses and the distribution grammar, and from
``schedules.tasks.schema``, generated from the definitions of the tasks installed here (read from the
catalogue when the document is first built); the job spec's fields point at those components. Generated
requests (schemathesis) then reach the path that stores a job, and a client can be generated from it.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.schemas import ErrorPublic

REF = "#/components/schemas/{}"


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name)}


def schedule_components() -> dict[str, dict[str, Any]]:
    """``schedules.schema.components()`` plus the job spec's baseline forms: a paper strategy by name, or
    a named schedule (``service.jobspec``'s name rules)."""
    from schedules.paper import STRATEGY_NAMES
    from schedules.schema import components
    from service.jobspec import BASELINE_NAME_MAX, PAPER_SHORTHAND, name_pattern

    out = components()
    out["PaperBaseline"] = {
        "type": "string",
        "enum": [PAPER_SHORTHAND, *STRATEGY_NAMES],
        "description": "'paper' for every strategy of the paper, or one of them by name.",
    }
    named = copy.deepcopy(out["Schedule"])
    named["title"] = "NamedSchedule"
    named["description"] = "A fixed schedule run as a baseline, with an optional name (unique in the job)."
    named["properties"] = {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": BASELINE_NAME_MAX,
            "pattern": name_pattern(),
            "description": "Visible text; not paper, paper-..., baseline-<n>, space-<n> or grid-<n>.",
        },
        **named["properties"],
    }
    out["NamedSchedule"] = named
    out["Baseline"] = {"anyOf": [ref("PaperBaseline"), ref("NamedSchedule")]}
    _bound_integers(out)
    return out


def task_components() -> dict[str, dict[str, Any]]:
    """``schedules.tasks.schema.components()`` of the installed tasks: ``Task``, the union on ``name`` that
    the job spec's ``task`` refers to, and one component per task with its options."""
    from schedules.tasks import catalogue
    from schedules.tasks.schema import components

    out = components(catalogue().tasks.values())
    _bound_integers(out)
    return out


def _bound_integers(node: Any) -> None:
    """Give every integer schema without a bound the API's own: integers past 64 bits are refused anywhere
    in a body (``service.strictjson``)."""
    from service.strictjson import MAX_INT

    if isinstance(node, dict):
        if node.get("type") == "integer":
            node.setdefault("maximum", MAX_INT)
            node.setdefault("minimum", -MAX_INT - 1)
        for value in node.values():
            _bound_integers(value)
    elif isinstance(node, list):
        for value in node:
            _bound_integers(value)


# Answers routes share; each route lists the ones it can give (tests/service/api/test_openapi.py).
def error(description: str) -> dict[str, Any]:
    return {"model": ErrorPublic, "description": description}


Responses = dict[int | str, dict[str, Any]]
UNAUTHORIZED: Responses = {401: error("Missing or invalid bearer token.")}
UNAVAILABLE: Responses = {503: error("The database does not answer; retry after Retry-After seconds.")}
NOT_FOUND: Responses = {404: error("No such job or trial, or it belongs to another user.")}
TOO_LARGE: Responses = {413: error("The request body exceeds max_body_bytes.")}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return FastAPI's document with the schedule and task components added."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            added = {**schedule_components(), **task_components()}
            clash = sorted(set(schemas) & set(added))
            if clash:
                raise RuntimeError(f"OpenAPI component names used twice: {clash}")
            schemas.update(added)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
