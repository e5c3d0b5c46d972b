"""Schemathesis drives every operation of the app's OpenAPI schema with generated requests (valid and
invalid), authenticated as a real user, against the ASGI app on a migrated SQLite database.

Checks on every response: no 5xx, the status code is one the schema documents, the content type and the body
match the schema. Generated inputs go both to random ids and to a stored job and trial of the user, so the
handlers behind the 404 are reached too. Bounded: a few examples per operation and mode, more for the
submission, whose schema is precise enough (every schedule family and distribution, generated from the
families) that generated jobs are accepted and stored: the "no 5xx" covers the path that stores a job.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.api.app import create_app
from service.auth import create_token
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import make_engine, session_scope
from service.storage.migrate import upgrade
from tests.support.jobs import JOB

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 8, GenerationMode.NEGATIVE: 6}
# The submission has the largest input space, and the accept path is behind it.
SUBMIT_EXAMPLES = {GenerationMode.POSITIVE: 80, GenerationMode.NEGATIVE: 20}


class Fixture:
    def __init__(self, app: FastAPI, headers: dict[str, str], job_id: str, trial_id: int) -> None:
        self.app = app
        self.headers = headers
        self.ids = {"job_id": job_id, "trial_id": trial_id}
        self.accepted: list[str] = []  # ids of generated jobs the API stored (202)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fixture]:
    data = tmp_path_factory.mktemp("fuzz")
    settings = Settings(
        database_url=f"sqlite:///{data / 'fuzz.db'}",
        data_dir=data,
        data_root=data / "task-data",  # tasks that read files under a data root are accepted too
        embedded_dispatcher=False,
        # Generated jobs are many; the limits under test elsewhere must not turn them all into 429s here.
        submit_burst=10_000,
        max_active_jobs_per_user=10_000,
    )
    engine = make_engine(settings=settings)
    upgrade(engine)
    engine.dispose()
    app = create_app(settings)
    with session_scope(app.state.session_factory) as session:
        token = create_token(session, user_name="fuzzer")
        user = repo.get_or_create_user(session, name="fuzzer")
        job, _ = repo.create_job(
            session,
            owner_id=user.id,
            name="fuzz target",
            spec=JOB,
            objective="sfo_to_target",
            trials_total=1,
            warnings=[],
            idempotency_key=None,
            request_hash=None,
            max_active_jobs=10_000,
        )
        trial = repo.upsert_trial(session, job_id=job.id, trial_key="t0", config={"schedule": {}})
        repo.append_metrics(session, trial_id=trial.id, records=[{"epoch": 1, "sfo": 8, "grad_norm": 0.5}])
        job_id, trial_id = job.id, trial.id
    yield Fixture(app, {"Authorization": f"Bearer {token}"}, job_id, trial_id)
    app.state.engine.dispose()


def _operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        # An operation the schema cannot describe is a failure of this test, with the reason.
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    return operations


def test_the_schema_covers_every_route(fuzz_app: Fixture) -> None:
    """The fuzzer sees every API route: a route left out of the schema would also be left out here."""
    import pkgutil

    import service.api.routes as routes_pkg

    routes = set()
    for module_info in pkgutil.iter_modules(routes_pkg.__path__):
        router = importlib.import_module(f"service.api.routes.{module_info.name}").router
        for route in router.routes:
            assert route.include_in_schema, f"{route.path} is hidden from the schema, so from the fuzzer"
            routes |= {(m, route.path) for m in route.methods if m != "HEAD"}
    fuzzed = {(op.method.upper(), op.path) for op in _operations(fuzz_app.app)}
    assert fuzzed == routes
    assert len(fuzzed) >= 12


@pytest.mark.parametrize("mode", list(EXAMPLES), ids=lambda m: m.value)
@pytest.mark.parametrize("own_ids", [True, False], ids=["own-ids", "generated-ids"])
def test_every_operation_answers_within_its_schema(
    fuzz_app: Fixture, mode: GenerationMode, own_ids: bool
) -> None:
    failures: list[str] = []
    unsatisfiable: list[str] = []
    for operation in _operations(fuzz_app.app):
        names = {p.name for p in operation.path_parameters}
        fixed = {k: v for k, v in fuzz_app.ids.items() if k in names} if own_ids else None
        strategy = operation.as_strategy(
            generation_mode=mode, headers=fuzz_app.headers, path_parameters=fixed
        )

        submit = (operation.method.upper(), operation.path) == ("POST", "/v1/jobs")

        @hypothesis.settings(
            max_examples=(SUBMIT_EXAMPLES if submit else EXAMPLES)[mode],
            deadline=None,
            derandomize=True,  # the same cases on every run: a failure is reproducible
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @given(case=strategy, data=st.data())
        def run(case: Any, data: Any) -> None:
            case.headers = {**(case.headers or {}), **fuzz_app.headers}
            response = case.call()
            if (case.method.upper(), case.path) == ("POST", "/v1/jobs") and response.status_code == 202:
                fuzz_app.accepted.append(response.json()["id"])
            try:
                case.validate_response(response, checks=CHECKS)
            except Exception as exc:  # collect all operations' failures, then report them together
                failures.append(f"{case.method.upper()} {case.path}: {exc}"[:2000])
                raise

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            # Nothing of this operation can be made invalid (no parameters, or only fixed ones).
            assert mode is GenerationMode.NEGATIVE, operation.path
            unsatisfiable.append(operation.path)
        except Exception:
            if not failures:
                raise
    assert not failures, "\n\n".join(failures)
    # Negative mode must still have reached the operations that take input.
    assert "/v1/jobs" not in unsatisfiable and "/v1/schedules/check" not in unsatisfiable


def test_generated_submissions_are_accepted_and_stored(fuzz_app: Fixture) -> None:
    """Runs after the fuzzing above (same module fixture): some generated jobs were accepted, and each one
    is stored (read back through the API and the repository) with the spec it was accepted with."""
    from fastapi.testclient import TestClient

    if not fuzz_app.accepted:
        test_every_operation_answers_within_its_schema(fuzz_app, GenerationMode.POSITIVE, False)
    assert fuzz_app.accepted, (
        "no generated submission was accepted: the schema does not reach the accept path"
    )
    with TestClient(fuzz_app.app) as client:
        for job_id in fuzz_app.accepted:
            response = client.get(f"/v1/jobs/{job_id}", headers=fuzz_app.headers)
            assert response.status_code == 200, response.text
    with session_scope(fuzz_app.app.state.session_factory) as session:
        stored = {j.id for j in repo.list_jobs(session, limit=10_000)[0]}
    assert set(fuzz_app.accepted) <= stored


def test_generated_task_options_are_accepted_and_stored(fuzz_app: Fixture) -> None:
    """The job spec's task has a precise schema too (a union on ``name``, each member with its task's
    options): tasks generated from it, in an otherwise valid job, are accepted and stored with their options;
    only what the schema leaves to words may be refused (a path's rules, a task's cross-option rule)."""
    from fastapi.testclient import TestClient

    [operation] = [
        op for op in _operations(fuzz_app.app) if (op.method.upper(), op.path) == ("POST", "/v1/jobs")
    ]
    tasks = operation.as_strategy(generation_mode=GenerationMode.POSITIVE).map(lambda case: case.body["task"])
    accepted: list[dict[str, Any]] = []
    refused: list[str] = []

    @hypothesis.settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(task=tasks)
    def run(task: dict[str, Any]) -> None:
        with TestClient(fuzz_app.app) as client:
            response = client.post("/v1/jobs", json={**JOB, "task": task}, headers=fuzz_app.headers)
            if response.status_code == 202:
                stored = client.get(f"/v1/jobs/{response.json()['id']}", headers=fuzz_app.headers)
                assert stored.json()["spec"]["task"] == {"options": {}, **task}
                accepted.append(task)
                return
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["loc"][:3] == ["body", "task", "options"], problem
        refused.append(problem["msg"])

    run()
    assert any(t.get("options") for t in accepted), (accepted, refused)
    assert len({t["name"] for t in accepted}) >= 3, accepted
