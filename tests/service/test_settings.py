"""Settings: the database URL is normalised once, where it is read from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import Settings


@pytest.mark.parametrize(
    ("given", "resolved"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),  # libpq's form: psycopg 3
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),  # the short scheme of hosting providers
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),  # already a driver URL
        ("sqlite:///var/s.db", "sqlite:///var/s.db"),
        (None, "sqlite:///d/schedsearch.db"),  # the default file under data_dir
    ],
)
def test_the_database_url_is_normalised_in_settings(given: str | None, resolved: str) -> None:
    assert Settings(database_url=given, data_dir=Path("d")).resolved_database_url() == resolved


def test_the_environment_url_is_normalised_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDSEARCH_DATABASE_URL", "postgres://u@h/db")
    assert Settings().resolved_database_url() == "postgresql+psycopg://u@h/db"
