"""No credential in any file schedsearch or Ray writes.

A ``schedsearch dispatcher`` with a password in ``SCHEDSEARCH_DATABASE_URL`` (PostgreSQL; its trust auth
ignores the password, so any value connects) starts its own local Ray and runs a job that searches with
Optuna. Then every file under the data directory (Tune's ``tuner.pkl``, ``searcher-state-*.pkl``, the
experiment state) and under the local Ray's temp directory (session logs, the driver's artifacts, the Ray
Job's logs) is read as bytes: the password is in none of them, nor in the Ray Job's runtime environment that
the dashboard shows. The driver still reaches the database: it takes the URL from its environment, which the
dispatcher's local head inherits."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from service.storage.db import make_engine
from service.storage.migrate import upgrade
from tests.support.postgres import PG_HOST, PG_PORT, PG_USER, fresh_pg_database, pg_unavailable_reason
from tests.workers.helpers import Db, Proc, job_spec
from workers import raycluster

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.postgres]

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def password_url() -> Iterator[tuple[str, str]]:
    """(url with a password, the password) of a fresh migrated database."""
    reason = pg_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    password = "pw-" + secrets.token_hex(12)
    with fresh_pg_database("schedsearch_secret") as plain:
        database = plain.rsplit("/", 1)[1]
        url = f"postgresql+psycopg://{PG_USER}:{password}@{PG_HOST}:{PG_PORT}/{database}"
        engine = make_engine(url, settings=Settings(database_url=url))
        upgrade(engine)
        engine.dispose()
        yield url, password


def _files_holding(folder: Path, secret: bytes) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret in path.read_bytes():
                    found.append(str(path.relative_to(folder)))
            except OSError:
                continue  # a socket or a file removed while walking
    return found


def test_the_database_password_is_in_no_file_and_no_runtime_env(
    password_url: tuple[str, str], tmp_path: Path
) -> None:
    url, password = password_url
    data_dir = tmp_path / "data"
    db = Db(url)
    spec = job_spec(
        search={"num_trials": 2, "max_concurrent": 1}, budget={"max_epochs": 2, "max_sfo": 2 * 1347}
    )
    job_id = db.create_job(spec)
    env = {
        "SCHEDSEARCH_DATABASE_URL": url,
        "SCHEDSEARCH_DATA_DIR": str(data_dir),
        "SCHEDSEARCH_LOG_LEVEL": "info",
    }
    # The dispatcher makes its own local Ray and token: nothing Ray-related comes from this process.
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("SCHEDSEARCH_", "RAY_AUTH"))}
    try:
        dispatcher = Proc(["dispatcher", "--poll", "0.5"], env, tmp_path / "dispatcher.log")
    finally:
        os.environ.update(saved)
    head = None
    try:
        job = db.wait_status(job_id, TERMINAL, timeout_s=240)
        assert job.status == "succeeded", (job.error, db.events(job_id), dispatcher.log())
        head = raycluster.load_node(data_dir / "ray" / "head.json")
        assert head is not None
        # Read before the dispatcher stops: a clean stop removes the local Ray's temp directory.
        on_disk = {
            "data dir": _files_holding(data_dir, password.encode()),
            "ray temp dir": _files_holding(head.temp_dir, password.encode()),
        }
        pickles = [p.name for p in data_dir.rglob("*.pkl")] + [p.name for p in head.temp_dir.rglob("*.pkl")]
        token = (data_dir / "ray" / "auth_token").read_text().strip()
        assert job.ray_job_id is not None
        info = httpx.get(
            f"{head.dashboard_url}/api/jobs/{job.ray_job_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()
    finally:
        dispatcher.stop()
        db.close()
    # The files that used to hold it exist (so this looked where it matters) and hold it no more.
    assert "tuner.pkl" in pickles and any(p.startswith("searcher-state") for p in pickles), pickles
    assert on_disk == {"data dir": [], "ray temp dir": []}, on_disk
    assert password not in str(info.get("runtime_env")), info.get("runtime_env")
    assert password not in dispatcher.log()
