"""Security: tokens at rest, isolation between users on every operation of the schema, admin-only reads,
per-user rate limits and quotas, and no secrets in the repository.

Ray token auth and the dashboard exposure of every deployment file are checked by the deploy suite
(``tests/deploy/test_compose.py``, ``tests/deploy/test_k8s.py``; see docs/reliability.md), not repeated here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import Base
from tests.support.jobs import JOB

ROOT = Path(__file__).resolve().parents[2]


def _all_stored_text(app: FastAPI) -> str:
    """Every value of every row of every table, as text."""
    out = []
    with app.state.session_factory() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                out.append(repr(tuple(row)))
    return "\n".join(out)


def test_the_database_holds_only_a_digest_of_each_token(
    app: FastAPI, client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    headers = make_user("alice")
    token = headers["Authorization"].split(" ", 1)[1]
    assert client.post("/v1/jobs", json=JOB, headers=headers).status_code == 202
    stored = _all_stored_text(app)
    assert token not in stored
    assert token[12:] not in stored  # not even the secret part without the shown prefix
    assert hashlib.sha256(token.encode()).hexdigest() in stored


def test_authentication_compares_digests_in_constant_time(
    client: TestClient, make_user: Callable[..., dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []
    original = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    import service.auth

    monkeypatch.setattr(service.auth.hmac, "compare_digest", spy)
    headers = make_user("alice")
    assert client.get("/v1/jobs", headers=headers).status_code == 200
    digest = hashlib.sha256(headers["Authorization"].split(" ", 1)[1].encode()).hexdigest()
    assert calls == [(digest, digest)]


@pytest.mark.parametrize(
    "authorization",
    [
        None,  # no header
        "Bearer ",  # empty token
        "Bearer ss_not-a-real-token",  # unknown token
        "Basic YWxpY2U6cGFzc3dvcmQ=",  # another scheme
    ],
)
def test_every_v1_operation_needs_a_valid_token(
    app: FastAPI, client: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    operations = _operations(app)
    assert len([op for op in operations if op[1].startswith("/v1/")]) >= 10
    for method, path in operations:
        if not path.startswith("/v1/"):
            continue
        url = path.replace("{job_id}", "x").replace("{trial_id}", "1")
        response = client.request(method, url, headers=headers, json={} if method == "POST" else None)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"


def _operations(app: FastAPI) -> list[tuple[str, str]]:
    return sorted((method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops)


# How another user's request must end on each operation of the schema. A new operation fails the test until
# it is classified here, so isolation cannot be forgotten for it.
FOREIGN = {
    ("GET", "/v1/jobs"): "lists only the caller's jobs",
    ("POST", "/v1/jobs"): "creates the caller's own job",
    ("POST", "/v1/schedules/check"): "touches no stored data",
    ("GET", "/v1/tasks"): "the installed tasks, the same for every user; no stored data",
    ("GET", "/healthz"): "public, no job data",
    ("GET", "/metrics"): "public, counts only",
}


def test_another_user_gets_404_on_every_operation_and_changes_nothing(
    app: FastAPI, client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    job_id = client.post("/v1/jobs", json={**JOB, "name": "alice-secret-name"}, headers=alice).json()["id"]
    with session_scope(app.state.session_factory) as session:
        trial = repo.upsert_trial(session, job_id=job_id, trial_key="t0", config={"schedule": {}})
        repo.append_metrics(session, trial_id=trial.id, records=[{"epoch": 1, "sfo": 8, "grad_norm": 0.5}])
        trial_id = trial.id
    before = _all_stored_text(app)

    unclassified = []
    for method, path in _operations(app):
        url = path.replace("{job_id}", job_id).replace("{trial_id}", str(trial_id))
        if "{job_id}" in path:
            response = client.request(method, url, headers=bob)
            assert (response.status_code, response.json()) == (404, {"detail": f"job {job_id} not found"}), (
                url
            )
        elif (method, path) not in FOREIGN:
            unclassified.append((method, path))
    assert not unclassified, f"classify these operations in FOREIGN: {unclassified}"
    assert _all_stored_text(app) == before  # bob's cancel and reads changed nothing

    # The operations that are not about one job still show bob nothing of alice's.
    assert client.get("/v1/jobs", headers=bob).json()["count"] == 0
    for public in ("/healthz", "/metrics"):
        text = client.get(public).text
        assert job_id not in text and "alice" not in text, public
    # A trial id of alice's under a job of bob's is not found either (ids are not a capability).
    bob_job = client.post("/v1/jobs", json=JOB, headers=bob).json()["id"]
    response = client.get(f"/v1/jobs/{bob_job}/trials/{trial_id}/metrics", headers=bob)
    assert (response.status_code, response.json()["detail"]) == (
        404,
        f"trial {trial_id} of job {bob_job} not found",
    )


def test_only_admins_see_every_job_and_token_management_is_not_on_http(
    app: FastAPI, client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    alice, bob, root = make_user("alice"), make_user("bob"), make_user("root", admin=True)
    ids = {
        name: client.post("/v1/jobs", json=JOB, headers=h).json()["id"]
        for name, h in (("alice", alice), ("bob", bob))
    }
    assert {j["id"] for j in client.get("/v1/jobs", headers=root).json()["data"]} == set(ids.values())
    assert {j["id"] for j in client.get("/v1/jobs", headers=alice).json()["data"]} == {ids["alice"]}
    # Users and tokens are made with `schedsearch token create` on the server host only: no HTTP route can
    # create, list or revoke them, so a stolen user token cannot mint an admin one.
    assert not [p for _, p in _operations(app) if re.search(r"token|user|admin", p)]


def test_rate_limit_and_quota_are_per_user(
    db_url: str, tmp_path: Path, make_user: Callable[..., dict[str, str]]
) -> None:
    from service.api.app import create_app

    tight = create_app(
        Settings(
            database_url=db_url,
            data_dir=tmp_path / "d",
            embedded_dispatcher=False,
            submit_burst=2,
            submit_rate_per_minute=1.0,
            max_active_jobs_per_user=2,
        )
    )
    alice, bob = make_user("alice"), make_user("bob")
    with TestClient(tight) as client:
        codes = [client.post("/v1/jobs", json=JOB, headers=alice).status_code for _ in range(3)]
        assert codes == [202, 202, 429]
        # alice used up her burst and her quota; bob's are untouched.
        assert [client.post("/v1/jobs", json=JOB, headers=bob).status_code for _ in range(2)] == [202, 202]
        # A refused submission is not counted against the quota or stored.
        assert client.get("/v1/jobs", headers=alice).json()["count"] == 2
    tight.state.engine.dispose()


# --------------------------------------------------------------------------------------------- secrets

# Patterns of real credentials. Built from pieces so that this file does not match itself.
SECRET_PATTERNS = {
    "schedsearch API token": re.compile("ss" + r"_[A-Za-z0-9_-]{40,}"),
    "private key": re.compile("-----BEGIN [A-Z ]*" + "PRIVATE KEY-----"),
    "AWS access key": re.compile("AK" + r"IA[0-9A-Z]{16}"),
    "GitHub token": re.compile("gh" + r"[pousr]_[A-Za-z0-9]{36,}"),
    "password in a URL": re.compile(r"[a-z+]+://[^\s:/@${}]+:(?!\$\{)[^\s@/${}<>]{3,}@"),
}
# Placeholders that look like credentials in documentation and tests, spelled out on purpose.
ALLOWED = re.compile(
    r"://(user|u|postgres|schedsearch):(password|pw|pass|secret|changeme|\*+)@", re.IGNORECASE
)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("ss" + "_" + "A" * 43, True),  # a token as `schedsearch token create` prints it
        ("postgresql+psycopg://app:" + "s3cr3t-pw@db:5432/x", True),  # a literal password in a URL
        ("postgresql+psycopg://app:${POSTGRES_PASSWORD}@db/x", False),  # a substitution, not a secret
        ("postgresql+psycopg://USER:PASSWORD@host/db", False),  # the documented placeholder
        ("-----BEGIN RSA " + "PRIVATE KEY-----", True),  # a private key
        ("AK" + "IAABCDEFGHIJKLMNOP", True),  # an AWS access key id
        ("ss_short", False),  # a prefix as shown in listings
    ],
)
def test_the_secret_scan_finds_what_it_looks_for(text: str, found: bool) -> None:
    hits = [
        m.group(0)
        for p in SECRET_PATTERNS.values()
        for m in p.finditer(text)
        if not ALLOWED.search(m.group(0))
    ]
    assert bool(hits) is found, hits


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_no_credentials_in_the_repository() -> None:
    files = _repository_files()
    assert any(f.name == "docker-compose.yml" for f in files)
    found = []
    for path in files:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary files (images) hold no configuration
        for name, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                if not ALLOWED.search(match.group(0)):
                    found.append(f"{path.relative_to(ROOT)}: {name}: {match.group(0)[:40]}")
    assert not found, "\n".join(found)


def test_images_copy_no_secrets_and_bake_none_in() -> None:
    """The Dockerfiles set no secret at build time and copy no token file or env file into the image."""
    dockerfiles = sorted((ROOT / "deploy").rglob("Dockerfile*"))
    assert dockerfiles
    for path in dockerfiles:
        for line in path.read_text().splitlines():
            instruction = line.strip().split(" ", 1)[0].upper()
            if instruction in ("ENV", "ARG") and re.search(r"TOKEN|PASSWORD|SECRET", line, re.IGNORECASE):
                assert re.search(r"=\s*$|=\"\"$", line) or "=" not in line, f"{path.name}: {line}"
            if instruction in ("COPY", "ADD"):
                assert not re.search(r"\.env\b|auth_token|\.ray", line), f"{path.name}: {line}"
    ignore = (ROOT / ".dockerignore").read_text() if (ROOT / ".dockerignore").exists() else ""
    for name in (".env", ".schedsearch"):
        assert name in ignore, f".dockerignore must keep {name} out of the build context"


def test_metrics_show_job_counts_only_to_an_admin(
    client: TestClient, make_user: Callable[..., dict[str, str]]
) -> None:
    """/metrics answers without a token (a scraper needs no account) with the process's own HTTP counts and
    latencies; how many jobs the service holds, by status and across all users, needs an admin's token
    (Prometheus: ``authorization: {credentials_file: ...}``). Nothing there names a job, a user or a
    database."""
    alice, root = make_user("alice"), make_user("root", admin=True)
    assert client.post("/v1/jobs", json=JOB, headers=alice).status_code == 202
    public = client.get("/metrics")
    as_user = client.get("/metrics", headers=alice)
    as_admin = client.get("/metrics", headers=root)
    assert [r.status_code for r in (public, as_user, as_admin)] == [200, 200, 200]
    for response in (public, as_user):
        assert "schedsearch_jobs" not in response.text
        assert "schedsearch_http_requests_total" in response.text
    assert 'schedsearch_jobs{status="queued"} 1.0' in as_admin.text
    assert "schedsearch_http_requests_total" in as_admin.text
    # A wrong token is not an error here (the endpoint is public), it just does not see the job counts.
    wrong = client.get("/metrics", headers={"Authorization": "Bearer ss_nope"})
    assert wrong.status_code == 200 and "schedsearch_jobs" not in wrong.text
