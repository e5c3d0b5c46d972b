"""Ray fixtures for the workers suite: real Ray nodes on 127.0.0.1 with token auth and non-default ports.

Ray starts cost about 7 s each on 2 cores, so the clusters are session-scoped and started lazily:

- ``ray_cluster``: a head (1 CPU) plus a worker node (1 CPU), so a job with two concurrent 1-CPU trials
  places one trial on each node;
- ``local_ray``: a single head with 2 CPUs, for tests that do not care about placement.

Every node runs in its own process group and teardown stops exactly those groups (never ``ray stop``, which
would stop other people's Ray on the machine). The token is generated here and given to the nodes, to this
process and to the subprocesses the tests start through the environment; ``~/.ray`` is never written.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster, short_temp_dir, start_cluster, stop_cluster
from tests.workers.helpers import Db, migrated_sqlite
from workers import raycluster


@pytest.fixture(scope="session")
def ray_token() -> Iterator[str]:
    """A fresh token, also put in this process's environment (the Ray client libraries read it there)."""
    token = raycluster.new_token()
    saved = {name: os.environ.get(name) for name in raycluster.AUTH_ENV}
    os.environ.update(raycluster.auth_env(token))
    yield token
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def ray_cluster(ray_token: str) -> Iterator[Cluster]:
    """Head (1 CPU) + one worker node (1 CPU) on 127.0.0.1, token auth, free non-default ports."""
    cluster = start_cluster(short_temp_dir("rc"), ray_token, [1, 1])
    yield cluster
    stop_cluster(cluster)
    shutil.rmtree(cluster.head.temp_dir, ignore_errors=True)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Db]:
    """A migrated SQLite database in the test's tmp_path."""
    db = Db(migrated_sqlite(tmp_path / "schedsearch.db"))
    yield db
    db.close()


@pytest.fixture(scope="session")
def local_ray(ray_token: str) -> Iterator[Cluster]:
    """A single head with 2 CPUs."""
    cluster = start_cluster(short_temp_dir("lr"), ray_token, [2])
    yield cluster
    stop_cluster(cluster)
    shutil.rmtree(cluster.head.temp_dir, ignore_errors=True)
