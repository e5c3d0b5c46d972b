"""Hostile input at the API: each request gets a 4xx that names the field, and nothing is written.

Every row is one request a careless or malicious client could send. The test asserts the status, that the
``detail`` names the offending field (its ``loc`` for a 422), and that no table gained or lost a row.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.support.jobs import JOB

CONST_LR = {"family": "constant", "lr0": 0.1}


def _job(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(JOB)
    body.update(changes)
    return body


def _baseline_only(batch: dict[str, Any], lr: dict[str, Any] = CONST_LR) -> dict[str, Any]:
    """A job that runs one fixed schedule (no search), so the schedule alone decides acceptance."""
    return _job(
        space=[],
        baselines=[{"name": "b", "batch_size": batch, "lr": lr}],
        search={**JOB["search"], "num_trials": 0},
    )


def _raw(body: dict[str, Any], old: str, new: str) -> str:
    """The JSON text of ``body`` with one literal replaced: how NaN/Infinity reach the server (Python's
    json module writes and reads them, as do many clients)."""
    text = json.dumps(body)
    assert old in text, old
    return text.replace(old, new, 1)


_SURROGATE = '"name": "\\ud800"'  # the JSON escape of a lone UTF-16 surrogate, which UTF-8 cannot encode
_BASELINE_NAME = ("body", "baselines", 0, "name")
_HUGE = "1" + "0" * 400  # an integer JSON allows and no float holds
_CONSTANT = {"batch_size": {"family": "constant", "b0": 8}, "lr": CONST_LR}


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _baselines(*baselines: Any) -> dict[str, Any]:
    return _job(baselines=list(baselines))


HOSTILE: list[tuple[str, Any, int, tuple[Any, ...]]] = [
    # (id, body: dict or raw JSON text, status, loc of the named field)
    ("nan-target", _raw(JOB, '"grad_norm": 0.05', '"grad_norm": NaN'), 422, ("body", "target", "grad_norm")),
    (
        "inf-target",
        _raw(JOB, '"grad_norm": 0.05', '"grad_norm": Infinity'),
        422,
        ("body", "target", "grad_norm"),
    ),
    ("inf-lr0-in-space", _raw(JOB, '"lr0": 0.1', '"lr0": Infinity'), 422, ("body", "space", 0, "lr", "lr0")),
    ("nan-momentum", _raw(JOB, '"momentum": 0.9', '"momentum": NaN'), 422, ("body", "optimizer", "momentum")),
    (
        "nan-baseline-lr0",  # inside a free-form schedule dict, not a typed field
        _raw(JOB, '"lr0": 0.1}}], "budget"', '"lr0": NaN}}], "budget"'),
        422,
        ("body", "baselines", 0, "lr", "lr0"),
    ),
    (
        "nan-baseline-name",  # the only untyped value of a baseline that is not part of the schedule
        _raw(JOB, '"name": "constant"', '"name": NaN'),
        422,
        ("body", "baselines", 0, "name"),
    ),
    (
        "huge-num-trials",
        _job(search={**JOB["search"], "num_trials": 10**12}),
        422,
        ("body", "search", "num_trials"),
    ),
    (
        "huge-max-epochs",
        _job(budget={**JOB["budget"], "max_epochs": 10**9}),
        422,
        ("body", "budget", "max_epochs"),
    ),
    (
        "batch-larger-than-dataset",  # digits-mlp trains on 1347 examples
        _baseline_only({"family": "constant", "b0": 100_000}),
        422,
        ("body", "baselines", 0, "batch_size", "b0"),
    ),
    (
        "batch-choice-larger-than-dataset",
        _job(
            space=[
                {
                    **JOB["space"][0],
                    "batch_size": {**JOB["space"][0]["batch_size"], "b0": {"choice": [8, 4096]}},
                }
            ]
        ),
        422,
        ("body", "space", 0, "batch_size", "b0"),
    ),
    (
        "batch-growth-overflows",  # 1e300^2 is past the largest float within 12 epochs
        _baseline_only({"family": "exp_growth", "b0": 8, "factor": 1e300, "interval": 1}),
        422,
        ("body", "baselines", 0, "batch_size", "factor"),
    ),
    (
        "lr-growth-overflows",
        _baseline_only(
            {"family": "constant", "b0": 8},
            {"family": "exp_growth", "lr0": 0.1, "factor": 1e200, "interval": 1},
        ),
        422,
        ("body", "baselines", 0, "lr", "factor"),
    ),
    (
        "lr-growth-overflows-at-the-top-of-a-range",
        _job(
            space=[
                {
                    "batch_size": {"family": "constant", "b0": 8},
                    "lr": {
                        "family": "exp_growth",
                        "lr0": 0.1,
                        "interval": 1,
                        "factor": {"loguniform": [1.5, 1e100]},
                    },
                }
            ]
        ),
        422,
        ("body", "space", 0, "lr", "factor"),
    ),
    (
        "lr-underflows-to-zero",  # 1e-300 * 1e-10^k is 0.0 after a few epochs
        _baseline_only(
            {"family": "constant", "b0": 8},
            {"family": "step_decay", "lr0": 1e-300, "decay": 1e-10, "interval": 1},
        ),
        422,
        ("body", "baselines", 0, "lr", "lr0"),
    ),
    ("unknown-task", _job(task={"name": "imagenet"}), 422, ("body", "task", "name")),
    (
        "unknown-batch-family",
        _baseline_only({"family": "quadratic", "b0": 8}),
        422,
        ("body", "baselines", 0, "batch_size", "family"),
    ),
    (
        "unknown-lr-family",
        _baseline_only({"family": "constant", "b0": 8}, {"family": "cyclic", "lr0": 0.1}),
        422,
        ("body", "baselines", 0, "lr", "family"),
    ),
    ("unknown-top-level-key", _job(extra={"x": 1}), 422, ("body", "extra")),
    (
        "folder-traversal",
        _job(task={"name": "cifar10-resnet18", "options": {"folder": "../../../etc"}}),
        422,
        ("body", "task", "options", "folder"),
    ),
    (
        "absolute-folder",
        _job(task={"name": "cifar10-resnet18", "options": {"folder": "/etc"}}),
        422,
        ("body", "task", "options", "folder"),
    ),
    (
        "data-root-with-dotdot",
        _job(task={"name": "cifar100-resnet18", "options": {"data_root": "/srv/data/../../etc"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    (
        "data-root-outside-the-server-root",  # the server's root is /srv/data in this test
        _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/etc"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    (
        "data-root-prefix-trick",  # /srv/database starts with /srv/data but is not inside it
        _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/srv/database"}}),
        422,
        ("body", "task", "options", "data_root"),
    ),
    ("control-characters-in-name", _job(name="job\x1b[31m"), 422, ("body", "name")),
    ("not-json", "{not json", 422, ("body",)),
    ("json-but-not-an-object", "[1, 2, 3]", 422, ("body",)),
    # Text JSON can carry but UTF-8 cannot store: a lone surrogate, as a JSON escape, anywhere in a body.
    ("surrogate-in-a-baseline-name", _raw(JOB, '"name": "constant"', _SURROGATE), 422, _BASELINE_NAME),
    ("surrogate-in-the-name", _raw(JOB, f'"name": "{JOB["name"]}"', _SURROGATE), 422, ("body", "name")),
    (
        "surrogate-in-an-echoed-input",
        _raw(JOB, '"objective": "sfo_to_target"', '"objective": "\\ud800"'),
        422,
        ("body", "objective"),
    ),
    (
        "surrogate-in-a-key",
        _raw(JOB, '"objective": "sfo_to_target"', '"\\udfff": 1'),
        422,
        ("body", "\\udfff"),
    ),
    (
        "surrogate-in-task-options",
        json.dumps(_job(task={"name": "digits-mlp", "options": {"x": "\ud800"}})),
        422,
        ("body", "task", "options", "x"),
    ),
    # Integers too large for a float (or a 64-bit column), in typed and in free-form number fields.
    (
        "huge-int-target",
        _raw(JOB, '"grad_norm": 0.05', f'"grad_norm": {_HUGE}'),
        422,
        ("body", "target", "grad_norm"),
    ),
    (
        "huge-int-lr0-in-space",
        _raw(JOB, '"lr0": 0.1', f'"lr0": {_HUGE}'),
        422,
        ("body", "space", 0, "lr", "lr0"),
    ),
    (
        "huge-int-baseline-lr0",
        _raw(JOB, '"lr0": 0.1}}], "budget"', f'"lr0": {_HUGE}}}}}], "budget"'),
        422,
        ("body", "baselines", 0, "lr", "lr0"),
    ),
    (
        "huge-int-distribution-bound",
        _raw(JOB, '"uniform": [1.5, 4.0]', f'"uniform": [1.5, {_HUGE}]'),
        422,
        ("body", "space", 0, "batch_size", "factor", "uniform", 1),
    ),
    (
        "huge-int-momentum",
        _raw(JOB, '"momentum": 0.9', f'"momentum": {_HUGE}'),
        422,
        ("body", "optimizer", "momentum"),
    ),
    (
        "huge-int-momentum-distribution",
        _raw(JOB, '"momentum": 0.9', f'"momentum": {{"uniform": [0.5, {_HUGE}]}}'),
        422,
        ("body", "optimizer", "momentum", "uniform", 1),
    ),
    ("huge-max-sfo", _job(budget={**JOB["budget"], "max_sfo": 2**64}), 422, ("body", "budget", "max_sfo")),
    # Nesting deep enough to break recursive code (1000 and deeper already fail in the JSON parser).
    (
        "nested-500-deep",
        _raw(JOB, '"name": "constant"', '"name": "constant", "x": ' + _nested(500)),
        422,
        ("body", "baselines", 0, "x"),
    ),
    (
        "nested-996-deep-in-options",
        _raw(_job(task={"name": "digits-mlp", "options": {"x": None}}), '"x": null', '"x": ' + _nested(993)),
        422,
        ("body", "task", "options", "x"),
    ),
    # Duplicate keys: refused, not "the last one wins" (the first budget here is invalid).
    (
        "duplicate-top-level-key",
        _raw(JOB, '"budget": {', '"budget": {"max_epochs": -5}, "budget": {'),
        422,
        ("body", "budget"),
    ),
    (
        "duplicate-nested-key",
        _raw(JOB, '"num_trials": 4', '"num_trials": 10000000, "num_trials": 4'),
        422,
        ("body", "search", "num_trials"),
    ),
    # Names that look empty, reorder text, or hide characters.
    ("whitespace-only-name", _job(name=" \t "), 422, ("body", "name")),
    ("next-line-in-name", _job(name="job\u0085x"), 422, ("body", "name")),
    ("right-to-left-override-in-name", _job(name="job\u202etxt.exe"), 422, ("body", "name")),
    ("zero-width-space-in-name", _job(name="job\u200b"), 422, ("body", "name")),
    (
        "zero-width-joiner-in-baseline-name",
        _baselines({"name": "a\u200db", **_CONSTANT}),
        422,
        _BASELINE_NAME,
    ),
    ("whitespace-only-baseline-name", _baselines({"name": "  ", **_CONSTANT}), 422, _BASELINE_NAME),
    ("baseline-name-too-long", _baselines({"name": "b" * 201, **_CONSTANT}), 422, _BASELINE_NAME),
    ("baseline-name-not-a-string", _baselines({"name": 7, **_CONSTANT}), 422, _BASELINE_NAME),
    # A dict baseline that would be dropped or confused with another run.
    (
        "baseline-named-like-a-paper-strategy",
        _baselines({"name": "paper-i", **_CONSTANT}),
        422,
        _BASELINE_NAME,
    ),
    ("baseline-named-paper", _baselines({"name": "paper", **_CONSTANT}), 422, _BASELINE_NAME),
    (
        "baseline-repeating-another-name",
        _baselines({"name": "a", **_CONSTANT}, {"name": "a", **_CONSTANT}),
        422,
        ("body", "baselines", 1, "name"),
    ),
    (
        "baseline-named-like-an-unnamed-one",
        _baselines(_CONSTANT, {"name": "baseline-0", **_CONSTANT}),
        422,
        ("body", "baselines", 1, "name"),
    ),
    # An adaptive batch rule whose stages cannot be enumerated, or whose LR multiplier overflows.
    (
        "adaptive-millions-of-stages",
        _baseline_only({"family": "adaptive", "factor": 1.000001, "b_max": 1024}),
        422,
        ("body", "baselines", 0, "batch_size", "factor"),
    ),
    (
        "adaptive-lr-multiplier-overflows",
        _baseline_only({"family": "adaptive", "factor": 1.01, "lr_factor": 4.0, "b_max": 4096}),
        422,
        ("body", "baselines", 0, "batch_size", "lr_factor"),
    ),
    # Booleans are not numbers.
    (
        "momentum-false",
        _job(optimizer={"name": "nshb", "momentum": False}),
        422,
        ("body", "optimizer", "momentum"),
    ),
    ("bool-target", _job(target={"grad_norm": True}), 422, ("body", "target", "grad_norm")),
    ("bool-cpus", _job(resources={"cpus": True}), 422, ("body", "resources", "cpus")),
    (
        "bool-num-trials",
        _job(search={**JOB["search"], "num_trials": True}),
        422,
        ("body", "search", "num_trials"),
    ),
    (
        "bool-in-a-distribution",
        _job(optimizer={"name": "nshb", "momentum": {"choice": [False, 0.9]}}),
        422,
        ("body", "optimizer", "momentum"),
    ),
    (
        "idempotency-key-with-control-characters",
        (_job(), {"Idempotency-Key": b"k\x85"}),
        422,
        ("header", "idempotency-key"),
    ),
]


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    # A configured data root, so "outside the data root" has a meaning.
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        embedded_dispatcher=False,
        data_root=Path("/srv/data"),
    )


@pytest.mark.parametrize(("body", "status", "loc"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_job_is_refused_naming_the_field_and_writes_nothing(
    client: TestClient,
    make_user: Callable[..., dict[str, str]],
    counts: Callable[[], dict[str, int]],
    body: Any,
    status: int,
    loc: tuple[Any, ...],
) -> None:
    headers = make_user("mallory")
    if isinstance(body, tuple):  # (body, extra headers)
        body, extra = body
        headers = {**headers, **extra}
    before = counts()
    if isinstance(body, str):
        response = client.post(
            "/v1/jobs", content=body, headers={**headers, "Content-Type": "application/json"}
        )
    else:
        response = client.post("/v1/jobs", json=body, headers=headers)
    assert response.status_code == status, response.text
    errors = response.json()["detail"]
    assert any(tuple(e["loc"][: len(loc)]) == loc for e in errors), errors
    assert counts() == before


def test_a_data_root_inside_the_server_root_is_accepted(
    client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    """The refusals above are about the path, not about CIFAR jobs: the same job inside the root passes."""
    body = _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/srv/data/cifar", "subset": 512}})
    response = client.post("/v1/jobs", json=body, headers=make_user("alice"))
    assert response.status_code == 202, response.text


def test_without_a_server_data_root_a_job_cannot_choose_one(
    db_url: str, tmp_path: Any, make_user: Callable[..., dict[str, str]]
) -> None:
    from service.api.app import create_app

    app = create_app(Settings(database_url=db_url, data_dir=tmp_path / "d", embedded_dispatcher=False))
    body = _job(task={"name": "cifar10-resnet18", "options": {"data_root": "/anything"}})
    with TestClient(app) as client:
        response = client.post("/v1/jobs", json=body, headers=make_user("alice"))
    app.state.engine.dispose()
    assert response.status_code == 422
    assert response.json()["detail"][0]["msg"] == (
        "task.options.data_root cannot be chosen by a job: the server has no SCHEDSEARCH_DATA_ROOT; leave it "
        "unset, got '/anything'"
    )


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/jobs", _job(name="x" * 50, space=[JOB["space"][0]] * 40)),  # a big but well-formed job
        ("/v1/schedules/check", {"schedule": {"pad": "x" * 6000}}),  # any endpoint with a body
    ],
)
def test_oversized_body_is_413_and_writes_nothing(
    db_url: str,
    tmp_path: Any,
    make_user: Callable[..., dict[str, str]],
    counts: Callable[[], dict[str, int]],
    path: str,
    body: dict[str, Any],
) -> None:
    from service.api.app import create_app

    small = create_app(
        Settings(database_url=db_url, data_dir=tmp_path / "d", embedded_dispatcher=False, max_body_bytes=4096)
    )
    headers = make_user("mallory")
    before = counts()
    with TestClient(small) as client:
        declared = client.post(path, json=body, headers=headers)

        def chunks() -> Any:  # no Content-Length: the limit must hold while streaming too
            raw = json.dumps(body).encode()
            for i in range(0, len(raw), 1024):
                yield raw[i : i + 1024]

        streamed = client.post(
            path, content=chunks(), headers={**headers, "Content-Type": "application/json"}
        )
    small.state.engine.dispose()
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.json()["limit"] == "max_body_bytes"
    assert counts() == before


@pytest.mark.parametrize(
    ("method", "path", "loc"),
    [
        ("GET", "/v1/jobs?limit=100000", ("query", "limit")),  # page size over the cap
        ("GET", "/v1/jobs?offset=-1", ("query", "offset")),  # negative offset
        ("GET", "/v1/jobs?status=exploded", ("query", "status", 0)),  # unknown status filter
        ("GET", "/v1/jobs/x/trials/99999999999999999999", ("path", "trial_id")),  # past a 32-bit key
        ("GET", "/v1/jobs/x/plot.png?top=1000", ("query", "top")),  # more curves than allowed
    ],
)
def test_hostile_query_and_path_parameters_are_422(
    client: TestClient, make_user: Callable[..., dict[str, str]], method: str, path: str, loc: tuple[Any, ...]
) -> None:
    response = client.request(method, path, headers=make_user("mallory"))
    assert response.status_code == 422, response.text
    assert [tuple(e["loc"]) for e in response.json()["detail"]] == [loc]


def test_nan_in_the_schedule_check_is_422_not_500(
    client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    raw = (
        '{"schedule": {"batch_size": {"family": "constant", "b0": 8}, '
        '"lr": {"family": "constant", "lr0": NaN}}}'
    )
    response = client.post(
        "/v1/schedules/check", content=raw, headers={**make_user("m"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "schedule", "lr", "lr0"]
    assert response.json()["detail"][0]["input"] == "NaN"


_B8 = '{"family": "constant", "b0": 8}'
_LR = '{"family": "constant", "lr0": 0.1}'


def _check_body(batch: str = _B8, lr: str = _LR, extra: str = "") -> str:
    """The raw JSON of a /v1/schedules/check request built from raw pieces."""
    return f'{{"schedule": {{"batch_size": {batch}, "lr": {lr}}}{extra}}}'


@pytest.mark.parametrize(
    ("raw", "loc"),
    [
        # a lone surrogate in a family name (echoed back in the 422) and in a key
        (_check_body(batch='{"family": "\\ud800", "b0": 8}'), ["body", "schedule", "batch_size", "family"]),
        (
            _check_body(batch='{"family": "constant", "b0": 8, "\\ud800": 1}'),
            ["body", "schedule", "batch_size", "\\ud800"],
        ),
        # an integer too large for a float, in the schedule and in a typed field
        (_check_body(lr='{"family": "constant", "lr0": ' + _HUGE + "}"), ["body", "schedule", "lr", "lr0"]),
        (_check_body(extra=', "momentum": ' + _HUGE), ["body", "momentum"]),
        # nested 600 deep inside the schedule
        (_check_body(lr=_nested(600)), ["body", "schedule", "lr"]),
        # a duplicate key
        (
            _check_body(batch='{"family": "constant", "b0": 8, "b0": -1}'),
            ["body", "schedule", "batch_size", "b0"],
        ),
        # a boolean for a number
        (_check_body(extra=', "momentum": false'), ["body", "momentum"]),
        # an adaptive batch that needs millions of stages to reach b_max
        (
            _check_body(batch='{"family": "adaptive", "factor": 1.000001, "b_max": 4096}'),
            ["body", "schedule", "batch_size", "factor"],
        ),
        # an LR multiplier lr_factor^k that overflows at the last stage
        (
            _check_body(batch='{"family": "adaptive", "factor": 1.01, "lr_factor": 4.0, "b_max": 4096}'),
            ["body", "schedule", "batch_size", "lr_factor"],
        ),
    ],
    ids=[
        "surrogate-value",
        "surrogate-key",
        "huge-int-in-schedule",
        "huge-int-momentum",
        "nested-600",
        "duplicate-key",
        "momentum-false",
        "adaptive-millions-of-stages",
        "adaptive-lr-multiplier-overflows",
    ],
)
def test_hostile_schedule_check_is_422_naming_the_field(
    client: TestClient, make_user: Callable[..., dict[str, str]], raw: str, loc: list[Any]
) -> None:
    response = client.post(
        "/v1/schedules/check", content=raw, headers={**make_user("m"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert [e["loc"][: len(loc)] for e in response.json()["detail"]][:1] == [loc], response.text
    response.content.decode("utf-8")  # the echo is valid UTF-8


def _integer_parameters(app: Any) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """(method, path, where, name, schema) of every integer query or path parameter in the OpenAPI schema."""
    out = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                types = [schema.get("type")] + [s.get("type") for s in schema.get("anyOf", [])]
                if "integer" in types:
                    out.append((method.upper(), path, parameter["in"], parameter["name"], schema))
    return out


def test_every_integer_parameter_is_bounded_and_a_huge_value_is_422(
    app: Any, client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    """Paging offsets and ids past a 64-bit integer reach the database as an overflow (500) unless the
    parameter has a maximum: every integer parameter of every operation must have one, and a value past it
    is a 422 naming the parameter."""
    headers = make_user("mallory")
    job_id = client.post("/v1/jobs", json=JOB, headers=headers).json()["id"]
    parameters = _integer_parameters(app)
    assert {(p[1], p[3]) for p in parameters} >= {
        ("/v1/jobs", "offset"),
        ("/v1/jobs/{job_id}/trials", "offset"),
    }
    for method, path, where, name, schema in parameters:
        bound = schema.get(
            "maximum", max((s.get("maximum", 0) for s in schema.get("anyOf", [])), default=None)
        )
        assert bound is not None and bound <= 2**31 - 1, (path, name, schema)
        url = path.replace("{job_id}", job_id).replace("{trial_id}", "1")
        huge = str(2**63)
        if where == "path":
            url = url.replace("/1", f"/{huge}") if name == "trial_id" else url
            params = {}
        else:
            params = {name: huge}
        response = client.request(method, url, params=params, headers=headers)
        assert response.status_code == 422, (method, path, name, response.text)
        assert [e["loc"] for e in response.json()["detail"]] == [[where, name]]


def _strict_json(content: bytes) -> Any:
    """Parse a response body as strict JSON: UTF-8, no NaN or Infinity tokens."""

    def no_constant(token: str) -> Any:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(content.decode("utf-8"), parse_constant=no_constant)


def test_no_stored_row_can_make_a_read_fail(
    app: Any, client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    """Rows written before input was checked (or by a buggy writer) hold what a response cannot carry: lone
    surrogates in JSON columns, NaN in float and JSON columns. Every read, the cancel and the admin's list
    still answer, with valid UTF-8 JSON (the offending text shown as U+FFFD, NaN as null)."""
    from service.storage import repository as repo
    from service.storage.db import session_scope
    from service.storage.models import Job, JobEvent, TrialMetric

    alice, root = make_user("alice"), make_user("root", admin=True)
    bad = "\ud800"
    # PostgreSQL's JSON type refuses NaN, so on it only the float columns can hold one.
    nan: Any = float("nan") if app.state.engine.dialect.name == "sqlite" else None
    job_id = client.post("/v1/jobs", json=JOB, headers=alice).json()["id"]
    with session_scope(app.state.session_factory) as s:
        job = s.get(Job, job_id)
        assert job is not None
        job.spec = {**JOB, "baselines": [{"name": bad, **_CONSTANT}], "target": {"grad_norm": nan}}
        job.warnings = [{"schedule": bad, "warnings": [{"code": bad, "message": bad}], "gamma": nan}]
        job.summary = {"best": {"name": bad, "objective": nan}, "optuna": {"storage": bad}}
        job.best_value = float("nan")
        trial = repo.upsert_trial(
            s,
            job_id=job_id,
            trial_key="baseline:x",
            kind="baseline",
            name="x",
            config={"schedule": {**_CONSTANT, "note": bad}},
        )
        # SFO to target NaN (SQLite) or not even a number (a writer's bug; PostgreSQL's JSON refuses NaN)
        sfo: Any = nan if nan is not None else "twelve"
        trial.summary = {"sfo_to_target": sfo, "final_grad_norm": nan, "name": bad}
        trial.objective = float("nan")
        trial.status = "succeeded"
        s.add(
            TrialMetric(
                trial_id=trial.id, epoch=1, sfo=8, grad_norm=float("nan"), record={"x": bad, "y": nan}
            )
        )
        # a drawable point, so the plot labels this trial with its SFO to target
        s.add(TrialMetric(trial_id=trial.id, epoch=2, sfo=16, grad_norm=0.5, record={"epoch": 2, "sfo": 16}))
        s.add(JobEvent(job_id=job_id, kind="note", message="m", data={"bad": bad, "nan": nan}))
        job.best_trial_id = trial.id
        trial_id = trial.id
        other = repo.upsert_trial(
            s,
            job_id=job_id,
            trial_key="baseline:y",
            kind="baseline",
            name="y",
            config={"schedule": _CONSTANT},
        )
        other.summary, other.status = {"sfo_to_target": 800}, "succeeded"  # compared with the bad one
    reads = [
        ("GET", "/v1/jobs", alice),
        ("GET", "/v1/jobs", root),
        ("GET", f"/v1/jobs/{job_id}", alice),
        ("GET", f"/v1/jobs/{job_id}/events", alice),
        ("GET", f"/v1/jobs/{job_id}/report", alice),
        ("GET", f"/v1/jobs/{job_id}/trials", alice),
        ("GET", f"/v1/jobs/{job_id}/trials/{trial_id}", alice),
        ("GET", f"/v1/jobs/{job_id}/trials/{trial_id}/metrics", alice),
        ("POST", f"/v1/jobs/{job_id}/cancel", alice),
    ]
    for method, url, headers in reads:
        response = client.request(method, url, headers=headers)
        assert response.status_code in (200, 202), (url, response.status_code, response.text[:300])
        body = _strict_json(response.content)
        if url == f"/v1/jobs/{job_id}":
            assert body["spec"]["baselines"][0]["name"] == "\ufffd"
            assert body["best_value"] is None
    plot = client.get(f"/v1/jobs/{job_id}/plot.png", headers=alice)
    assert (plot.status_code, plot.content[:4]) == (200, b"\x89PNG")
