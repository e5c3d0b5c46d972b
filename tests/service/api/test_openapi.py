"""The OpenAPI document: schedule schemas generated from the one definition of each family and distribution,
precise enough that values generated from them are valid schedules, and every status a route answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from schedules.families._base import params_of
from schedules.spec import BATCH_FAMILIES, LR_FAMILIES, SpecError
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.support.jobs import JOB

FAMILIES = [("batch", c) for c in BATCH_FAMILIES.values()] + [("lr", c) for c in LR_FAMILIES.values()]


@pytest.fixture(scope="module")
def schema_app() -> FastAPI:
    """An app for its OpenAPI document only: the schema tests need no database, so they run once, not once
    per backend."""
    from service.api.app import create_app
    from service.settings import Settings

    return create_app(Settings(database_url="sqlite://", embedded_dispatcher=False))


@pytest.fixture(scope="module")
def document(schema_app: FastAPI) -> dict[str, Any]:
    return schema_app.openapi()


def test_each_family_schema_is_its_dataclass(document: dict[str, Any]) -> None:
    """One definition: every registered family has a component whose properties, required parameters,
    types and ranges are those of its dataclass; the unions list every family of the registries."""
    schemas = document["components"]["schemas"]
    for kind, cls in FAMILIES:
        schema = schemas[cls.__name__]
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(schema["properties"]) == {"family", *fields}, cls
        assert schema["properties"]["family"]["const"] == cls.family
        assert set(schema["required"]) == {"family", *(p.name for p in params_of(cls) if p.required)}
        assert schema["additionalProperties"] is False
        candidate = schemas[cls.__name__ + "Candidate"]
        assert set(candidate["properties"]) == set(schema["properties"])
        union = schemas["BatchSchedule" if kind == "batch" else "LRSchedule"]
        assert union["discriminator"]["mapping"][cls.family] == f"#/components/schemas/{cls.__name__}"
    assert set(schemas["BatchSchedule"]["discriminator"]["mapping"]) == set(BATCH_FAMILIES)
    assert set(schemas["LRSchedule"]["discriminator"]["mapping"]) == set(LR_FAMILIES)
    # ranges, read from the dataclasses' declarations: a few rows
    assert schemas["ExpGrowthBatch"]["properties"]["factor"] == {
        "type": "number",
        "exclusiveMinimum": 1.0,
        "description": "Growth per stage (delta).",
    }
    step = schemas["StepDecayLR"]["properties"]["decay"]
    assert (step["exclusiveMinimum"], step["exclusiveMaximum"]) == (0.0, 1.0)
    # lr_max > lr0 > 0: the schema holds the part it can (> 0) and says the rest
    lr_max = schemas["WarmupConstLR"]["properties"]["lr_max"]
    assert lr_max["exclusiveMinimum"] == 0.0 and "Must be > lr0." in lr_max["description"]
    # Seesaw's base is one of the families it accepts, by reference
    assert set(schemas["SeesawBase"]["discriminator"]["mapping"]) == {"constant", "cosine", "step_decay"}


def test_each_task_schema_is_its_definition(document: dict[str, Any]) -> None:
    """One definition: the job spec's task is the union Task on ``name``, one member per installed task, whose
    options are that task's Options with their type, default, bounds, choices, null and description."""
    from schedules.tasks import catalogue
    from schedules.tasks.schema import task_component_name

    schemas = document["components"]["schemas"]
    assert schemas["JobSpec"]["properties"]["task"] == {"$ref": "#/components/schemas/TaskSpec"}
    assert schemas["TaskSpec"] == {"allOf": [{"$ref": "#/components/schemas/Task"}]}
    tasks = catalogue().tasks
    mapping = schemas["Task"]["discriminator"]["mapping"]
    assert (schemas["Task"]["discriminator"]["propertyName"], set(mapping)) == ("name", set(tasks))
    types = {"int": "integer", "float": "number", "bool": "boolean", "str": "string", "path": "string"}
    for name, definition in tasks.items():
        member = schemas[task_component_name(name)]
        assert mapping[name] == f"#/components/schemas/{task_component_name(name)}"
        assert member["properties"]["name"] == {"const": name, "type": "string"}
        assert (member["required"], member["additionalProperties"]) == (["name"], False)
        options = member["properties"]["options"]
        assert options["additionalProperties"] is False
        assert list(options["properties"]) == list(definition.option_names)
        for option in definition.options:
            schema = options["properties"][option.name]
            value = schema["anyOf"][0] if option.nullable else schema
            assert (schema["default"], value["type"]) == (option.default, types[option.type]), option
            assert schema["description"].startswith(option.description)
            assert (schema["anyOf"][1] == {"type": "null"}) if option.nullable else "anyOf" not in schema
            assert value.get("enum") == (list(option.choices) if option.choices is not None else None)
            if option.minimum is not None:
                assert value["minimum"] == option.minimum
            if option.maximum is not None:
                assert value["maximum"] == option.maximum
    # a few rows, read from the definitions
    digits = schemas["DigitsMlpTask"]["properties"]["options"]["properties"]
    assert digits["hidden"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 4096,
        "default": 128,
        "description": "Width of each hidden layer.",
    }
    cifar = schemas["Cifar10Resnet18Task"]["properties"]["options"]["properties"]
    assert cifar["folder"]["anyOf"][1] == {"type": "null"}
    assert "relative to the data root" in cifar["folder"]["description"]


def _examples(n: int) -> Any:
    """Hypothesis settings of the generation tests: ``n`` examples, the same ones on every run."""
    return settings(
        max_examples=n,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )


def _bodies(app: FastAPI, method: str, path: str) -> Any:
    """Request bodies schemathesis generates from the app's OpenAPI document for one operation."""
    import schemathesis
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) == (method, path):
            return operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(lambda case: case.body)
    raise AssertionError(f"no operation {method} {path}")


# Parameters whose range depends on another one (JSON Schema cannot say it; the description does), or on
# several (exp_growth LR needs lr_max or factor; adaptive's stage count depends on b0 and b_max).
RELATIVE = {
    (kind, cls.family): {
        p.name for p in params_of(cls) if any(isinstance(b, str) for _, b in p.bounds.items())
    }
    for kind, cls in FAMILIES
}
RELATIVE[("lr", "exp_growth")] |= {"lr_max"}
RELATIVE[("batch", "adaptive")] |= {"factor"}
RELATIVE[("lr", "seesaw")] |= {"base"}


def test_schedules_generated_from_the_schema_are_valid(schema_app: FastAPI) -> None:
    """Precise: a schedule generated from the schema (the theory check's body) builds, except where a
    parameter's range depends on another parameter; every family is generated at least once."""
    from schedules.spec import Schedule

    seen: set[tuple[str, str]] = set()

    @_examples(150)
    @given(body=_bodies(schema_app, "POST", "/v1/schedules/check"))
    def check(body: dict[str, Any]) -> None:
        schedule = body["schedule"]
        seen.update({("batch", schedule["batch_size"]["family"]), ("lr", schedule["lr"]["family"])})
        try:
            Schedule.from_json(schedule)
        except SpecError as exc:
            kind, _, rest = exc.field.partition(".")
            if kind == "lr" and rest == "family":  # adaptive + per-step LR: two families together
                return
            part = {"batch_size": "batch", "lr": "lr"}[kind]
            family = schedule[kind]["family"]
            assert rest.split(".")[0] in RELATIVE[(part, family)], (schedule, str(exc))

    check()
    assert len(seen) >= len(FAMILIES) // 2, seen


def test_task_options_generated_from_the_schema_are_valid(schema_app: FastAPI) -> None:
    """Precise: the task of a generated job is an installed task whose generated options its definition
    accepts, except for what the schema leaves to words (a path's rules, a task's cross-option rule);
    several tasks and options are generated."""
    from schedules.tasks import get_definition

    tasks: set[str] = set()
    options_seen = 0

    @_examples(80)
    @given(body=_bodies(schema_app, "POST", "/v1/jobs"))
    def check(body: dict[str, Any]) -> None:
        nonlocal options_seen
        task = body["task"]
        definition = get_definition(task["name"])
        tasks.add(task["name"])
        options_seen += len(task.get("options", {}))
        try:
            definition.validate(task.get("options"))
        except SpecError as exc:
            option = next(o for o in definition.options if exc.field == f"task.options.{o.name}")
            if option.type == "path":
                return  # a path's rules are words in the schema
            # Valid on its own: the refusal is the task's cross-option rule (synthetic-logreg's
            # (n + n_test) * d, text-transformer's heads dividing width), which a schema cannot hold.
            option.check(task.get("options", {}).get(option.name, option.default), task=task["name"])

    check()
    assert len(tasks) >= 3 and options_seen > 0, (tasks, options_seen)


def test_generated_candidates_use_the_distribution_grammar(schema_app: FastAPI) -> None:
    """Every distribution in a generated search-space candidate is one schedules.space reads; what a schema
    cannot say (lo < hi) is the only thing it may refuse."""
    from schedules.space import check_distribution, distributions

    count = 0

    @_examples(80)
    @given(body=_bodies(schema_app, "POST", "/v1/jobs"))
    def check(body: dict[str, Any]) -> None:
        nonlocal count
        for candidate in body.get("space", []):
            for name, dist in distributions(candidate):
                count += 1
                try:
                    check_distribution(name, dist)
                except SpecError as exc:
                    assert "lo < hi" in str(exc) or "lo <= hi" in str(exc), str(exc)

    check()
    assert count > 0


def test_momentum_is_a_number_in_range_or_a_distribution(document: dict[str, Any]) -> None:
    momentum = document["components"]["schemas"]["OptimizerSpec"]["properties"]["momentum"]
    number, distribution = momentum["anyOf"]
    assert number == {"type": "number", "minimum": 0, "exclusiveMaximum": 1}
    kinds = {next(iter(option["properties"])) for option in distribution["oneOf"]}
    assert kinds == {"uniform", "loguniform", "int", "choice"}
    import jsonschema

    with pytest.raises(jsonschema.ValidationError):  # JSON Schema's "number" excludes booleans
        jsonschema.validate(False, momentum)


def _expected_statuses(method: str, path: str, operation: dict[str, Any]) -> set[str]:
    expected = {"200"} if method == "GET" else set()
    if path.startswith("/v1/"):
        expected |= {"401", "503"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected |= {"422"}  # a parameter or a body that does not validate
    if "{job_id}" in path:
        expected |= {"404"}
    if (method, path) == ("POST", "/v1/jobs"):
        expected |= {"200", "202", "409", "413", "429"}
    if (method, path) == ("POST", "/v1/jobs/{job_id}/cancel"):
        expected |= {"202", "409"}
    if (method, path) == ("POST", "/v1/schedules/check"):
        expected |= {"200", "413"}
    if path == "/healthz":
        expected |= {"503"}
    return expected


def test_every_status_a_route_answers_is_in_the_schema(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            documented = set(operation["responses"])
            missing = _expected_statuses(method.upper(), path, operation) - documented
            assert not missing, (method, path, missing)


def test_cancelling_a_finished_job_is_a_documented_409(
    app: FastAPI, client: TestClient, alice: dict[str, str], document: dict[str, Any]
) -> None:
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    with session_scope(app.state.session_factory) as s:
        repo.claim_job(s, owner="d", lease_seconds=60, job_id=job_id)
        repo.set_job_status(s, job_id=job_id, status="succeeded")
    response = client.post(f"/v1/jobs/{job_id}/cancel", headers=alice)
    assert response.status_code == 409, response.text
    assert response.json()["detail"].startswith("job cannot go from succeeded to ")
    assert "409" in document["paths"]["/v1/jobs/{job_id}/cancel"]["post"]["responses"]


def test_momentum_false_is_refused(client: TestClient, alice: dict[str, str]) -> None:
    body = {**JOB, "optimizer": {"name": "nshb", "momentum": False}}
    response = client.post("/v1/jobs", json=body, headers=alice)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:3] == ["body", "optimizer", "momentum"]


def test_the_job_spec_says_what_a_job_needs_to_run(schema_app: FastAPI) -> None:
    """A job runs searched trials over a space, or baselines: generated from the schema's anyOf, no job
    breaks JobSpec's own rule."""
    from pydantic import ValidationError

    from service.jobspec import JobSpec

    @_examples(60)
    @given(body=_bodies(schema_app, "POST", "/v1/jobs"))
    def check(body: dict[str, Any]) -> None:
        try:
            JobSpec.model_validate(body)
        except ValidationError as exc:
            for error in exc.errors():
                assert error["type"] not in ("empty_space", "nothing_to_run"), error

    check()


def test_every_route_parses_its_body_as_strict_json() -> None:
    """The strict JSON rules (service.strictjson) hold on every route because every router uses the route
    class that applies them; a router without it would let surrogates and duplicate keys through."""
    import importlib
    import pkgutil

    import service.api.routes as routes_pkg
    from service.api.strict import StrictJSONRoute

    routes = []
    for module_info in pkgutil.iter_modules(routes_pkg.__path__):
        routes += importlib.import_module(f"service.api.routes.{module_info.name}").router.routes
    assert len(routes) >= 12
    assert [r.path for r in routes if not isinstance(r, StrictJSONRoute)] == []
