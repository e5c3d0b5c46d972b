"""Every example the OpenAPI schema shows is accepted as it is, and the docs pages work without a network.

Swagger UI fills "Try it out" with a request body's example, or makes one up from the schema when there is
none (that gave ``max_epochs: 0``, a 422). So: every JSON request body has examples, each is posted as it is;
every field-level example is posted inside the body's first example; /docs and /redoc load only assets the app
itself serves.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

Loc = tuple[str | int, ...]


def _resolve(node: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        node = doc["components"]["schemas"][name]
    return node


def _bodies(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, media type object) of every JSON request body."""
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                yield method, path, body


def _body_examples(body: dict[str, Any], doc: dict[str, Any]) -> list[Any]:
    """What Swagger UI can show as the body: the media type's examples, else the schema's own."""
    out = [e["value"] for e in body.get("examples", {}).values()]
    if "example" in body:
        out.append(body["example"])
    schema = _resolve(body["schema"], doc)
    out += list(schema.get("examples", [])) + ([schema["example"]] if "example" in schema else [])
    return out


def _field_examples(schema: dict[str, Any], doc: dict[str, Any], loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """(location in the body, value) of every example on a field of ``schema``, nested ones included."""
    node = _resolve(schema, doc)
    for key, prop in node.get("properties", {}).items():
        here = (*loc, key)
        for example in prop.get("examples", []) + ([prop["example"]] if "example" in prop else []):
            yield here, example
        yield from _field_examples(prop, doc, here)
    for option in node.get("anyOf", []) + node.get("allOf", []):
        yield from _field_examples(option, doc, loc)
    if "items" in node:
        yield from _field_examples(node["items"], doc, (*loc, 0))


def _with(body: Any, loc: Loc, value: Any) -> Any:
    """A copy of ``body`` with ``value`` at ``loc``; missing objects and lists on the way are created."""
    out = copy.deepcopy(body)
    node = out
    for part, following in itertools.pairwise(loc):
        empty: Any = [] if isinstance(following, int) else {}
        if isinstance(part, int):
            while len(node) <= part:
                node.append(copy.deepcopy(empty))
            node = node[part]
        else:
            node = node.setdefault(part, empty)
    last = loc[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value
    return out


@pytest.fixture
def doc(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    data: dict[str, Any] = response.json()
    return data


def _post_each(
    client: TestClient, make_user: Callable[..., dict[str, str]], method: str, path: str, bodies: list[Any]
) -> None:
    for i, body in enumerate(bodies):
        headers = make_user(f"example-user-{i}")  # a fresh user each: active-job quotas stay out of the way
        response = client.request(method.upper(), path, json=body, headers=headers)
        assert response.status_code in (200, 202), (path, body, response.json())


def test_every_request_body_shows_examples_and_each_is_accepted(
    client: TestClient, doc: dict[str, Any], make_user: Callable[..., dict[str, str]]
) -> None:
    bodies = list(_bodies(doc))
    assert {(m, p) for m, p, _ in bodies} >= {("post", "/v1/jobs"), ("post", "/v1/schedules/check")}
    for method, path, body in bodies:
        examples = _body_examples(body, doc)
        assert examples, f"{method.upper()} {path} has no example: Swagger UI would make one up"
        _post_each(client, make_user, method, path, examples)


def test_every_field_example_is_accepted_inside_the_body_example(
    client: TestClient, doc: dict[str, Any], make_user: Callable[..., dict[str, str]]
) -> None:
    seen: list[Loc] = []
    for method, path, body in _bodies(doc):
        base = _body_examples(body, doc)[0]
        cases = list(_field_examples(body["schema"], doc))
        seen += [loc for loc, _ in cases]
        _post_each(client, make_user, method, path, [_with(base, loc, value) for loc, value in cases])
    # The examples that were incomplete before (a batch family without factor and interval) are among them.
    assert ("space", 0, "batch_size") in seen and ("space", 0, "lr") in seen


def test_the_docs_pages_load_only_assets_the_app_serves(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = client.get(page)
        assert response.status_code == 200
        html = response.text
        assert "http://" not in html and "https://" not in html, f"{page} names an outside URL"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith(".js") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/"), asset
            loaded = client.get(asset)
            assert loaded.status_code == 200, asset
            assert len(loaded.content) > 1000, asset  # the real file, not an error page
    js = client.get("/static-offline-docs/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in js
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
