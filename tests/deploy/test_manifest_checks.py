"""The deployment checks themselves, on small broken documents: each must report what it exists to catch."""

from __future__ import annotations

import pytest

from tests.deploy import manifests as m


@pytest.mark.parametrize(
    ("name", "value", "problems"),
    [
        ("POSTGRES_PASSWORD", "${POSTGRES_PASSWORD:?set it}", 0),  # required substitution: fine
        ("POSTGRES_PASSWORD", "${POSTGRES_PASSWORD}", 0),  # plain substitution: fine
        ("POSTGRES_PASSWORD", "hunter2", 1),  # literal secret
        ("RAY_AUTH_TOKEN", "${RAY_AUTH_TOKEN:-abc}", 1),  # a compose default is a hard-coded secret
        ("SCHEDSEARCH_DATABASE_URL", "postgresql+psycopg://u:${PW:?x}@postgres/db", 0),  # substituted
        ("SCHEDSEARCH_DATABASE_URL", "postgresql+psycopg://u:pw@postgres/db", 1),  # literal password in a URL
        ("SCHEDSEARCH_DATABASE_URL", "postgresql+psycopg://u:${PW:-pw}@postgres/db", 1),  # defaulted password
        ("SCHEDSEARCH_DATABASE_URL", "postgresql+psycopg://u@postgres/db", 0),  # no password at all
        ("SCHEDSEARCH_LOG_LEVEL", "info", 0),  # not a secret
    ],
)
def test_compose_secret_check(name: str, value: str, problems: int) -> None:
    assert len(m.check_compose_secret(name, value, where="svc")) == problems


@pytest.mark.parametrize(
    ("argv", "ok"),
    [
        (["schedsearch", "serve"], True),  # registered subcommand
        (["schedsearch", "nope"], False),  # unknown subcommand
        (["schedsearch"], False),  # no subcommand at all
        (["scripts/setup.sh"], True),  # a script that exists
        (["scripts/missing.sh"], False),  # a script that does not
        (["ray", "start", "--head"], True),  # a dependency's console script
        (["uvicorn", "app:app"], False),  # not one of the known executables
        ([], True),  # no command: the image's CMD runs
    ],
)
def test_command_check(argv: list[str], ok: bool) -> None:
    problems = m.check_command(argv, where="svc", subcommands={"serve", "migrate"})
    assert (problems == []) is ok, problems


@pytest.mark.parametrize(
    ("env", "secret_ref", "problems"),
    [
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "${RAY_AUTH_TOKEN:?x}"}, False, 0),  # compose, fine
        ({"RAY_AUTH_TOKEN": "${RAY_AUTH_TOKEN:?x}"}, False, 1),  # auth mode missing
        ({"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "${T}"}, False, 1),  # auth switched off
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "abc"}, False, 1),  # literal token
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "<secretKeyRef>"}, True, 0),  # k8s, fine
        ({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "abc"}, True, 1),  # k8s literal token
    ],
)
def test_ray_auth_check(env: dict[str, str], secret_ref: bool, problems: int) -> None:
    assert len(m.check_ray_auth(env, where="svc", secret_ref=secret_ref)) == problems


def test_k8s_secret_check_flags_literal_values_only() -> None:
    container = {
        "env": [
            {"name": "SCHEDSEARCH_DATABASE_URL", "value": "postgresql+psycopg://u:pw@db/x"},  # literal URL
            {"name": "RAY_AUTH_TOKEN", "value": "abc"},  # literal token
            {"name": "OTHER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},  # a Secret
            {"name": "SCHEDSEARCH_LOG_LEVEL", "value": "info"},  # not a secret
        ]
    }
    problems = m.check_k8s_env_secrets(container, where="c")
    assert [p.split(": ")[1].split()[0] for p in problems] == ["SCHEDSEARCH_DATABASE_URL", "RAY_AUTH_TOKEN"]


@pytest.mark.parametrize(
    ("entry", "env", "expected"),
    [
        ("8000:8000", {}, (None, "8000", 8000)),  # host port only
        ("127.0.0.1:8265:8265", {}, ("127.0.0.1", "8265", 8265)),  # bound to one address
        ("${BIND:-127.0.0.1}:${P:-1}:8265", {}, ("127.0.0.1", "1", 8265)),  # defaults hold colons
        ("${BIND:-127.0.0.1}:${P:-1}:8265", {"BIND": "0.0.0.0"}, ("0.0.0.0", "1", 8265)),  # env file wins
    ],
)
def test_published_ports(entry: str, env: dict[str, str], expected: tuple[str | None, str, int]) -> None:
    assert m.published_ports({"ports": [entry]}, env) == [expected]


def test_escaped_dollar_is_not_a_substitution() -> None:
    assert [s["name"] for s in m.substitutions("$${A} ${B:-x}")] == ["B"]
