"""``schedsearch migrate`` and ``schedsearch token create`` in-process, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli import main
from service.auth import authenticate
from service.settings import get_settings
from service.storage.db import make_engine, make_session_factory, session_scope


@pytest.fixture
def env_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("SCHEDSEARCH_DATABASE_URL", db_url)
    get_settings.cache_clear()
    yield db_url
    get_settings.cache_clear()


def test_migrate_then_token_create_prints_a_working_token(
    env_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == "database at revision 0001"
    assert main(["token", "create", "--user", "ops", "--admin"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    token = out[-1]  # alone on the last line, for `| tail -n 1`
    assert token.startswith("ss_") and " " not in token
    engine = make_engine(env_db)
    try:
        with session_scope(make_session_factory(engine)) as session:
            user = authenticate(session, token)
            assert (user.name, user.is_admin) == ("ops", True)
    finally:
        engine.dispose()
