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
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.workers.helpers import Db, migrated_sqlite
from workers import raycluster


@dataclass
class Cluster:
    token: str
    head: raycluster.RayNode
    workers: list[raycluster.RayNode] = field(default_factory=list)
    node_ids: list[str] = field(default_factory=list)  # of the nodes started with the cluster

    @property
    def address(self) -> str:
        return self.head.gcs_address

    @property
    def dashboard_url(self) -> str:
        assert self.head.dashboard_url is not None
        return self.head.dashboard_url

    def env(self) -> dict[str, str]:
        """Environment for a dispatcher or driver subprocess that uses this cluster."""
        return {**raycluster.auth_env(self.token), "SCHEDSEARCH_RAY_ADDRESS": self.address}

    def alive_node_ids(self) -> list[str]:
        """Node ids of the live nodes, read through the dashboard's REST API with the token."""
        import httpx

        response = httpx.get(
            f"{self.dashboard_url}/nodes?view=summary",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        response.raise_for_status()
        nodes = response.json()["data"]["summary"]
        return [n["raylet"]["nodeId"] for n in nodes if n["raylet"]["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout_s: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        ids: list[str] = []
        while time.monotonic() < deadline:
            try:
                ids = self.alive_node_ids()
            except Exception:  # the dashboard answers a few seconds after `ray start` returns
                ids = []
            if len(ids) == count:
                return ids
            time.sleep(0.5)
        raise AssertionError(f"expected {count} alive Ray nodes within {timeout_s}s, saw {ids}")


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


# The GCS declares a silent node dead after period x threshold; Ray's defaults (several seconds each) would
# make the node-loss test wait out half a minute before Tune can place the retried trial elsewhere.
FAST_NODE_DEATH = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def _start_cluster(temp_dir: Path, token: str, cpus: list[int]) -> Cluster:
    head = raycluster.start_head(temp_dir, token=token, num_cpus=cpus[0], extra_env=FAST_NODE_DEATH)
    cluster = Cluster(token=token, head=head)
    try:
        for i, n in enumerate(cpus[1:], start=1):
            cluster.workers.append(raycluster.start_worker(head, token=token, num_cpus=n, name=f"worker{i}"))
        cluster.node_ids = cluster.wait_for_nodes(len(cpus))
    except BaseException:
        _stop_cluster(cluster)
        raise
    return cluster


def _stop_cluster(cluster: Cluster) -> None:
    for node in [*cluster.workers, cluster.head]:
        raycluster.stop_node(node)


@pytest.fixture(scope="session")
def ray_cluster(ray_token: str) -> Iterator[Cluster]:
    """Head (1 CPU) + one worker node (1 CPU) on 127.0.0.1, token auth, free non-default ports."""
    cluster = _start_cluster(_short_temp_dir("rc"), ray_token, [1, 1])
    yield cluster
    _stop_cluster(cluster)
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
    cluster = _start_cluster(_short_temp_dir("lr"), ray_token, [2])
    yield cluster
    _stop_cluster(cluster)
    shutil.rmtree(cluster.head.temp_dir, ignore_errors=True)


def _short_temp_dir(name: str) -> Path:
    # Ray puts unix sockets under the temp dir and their paths must stay under 108 bytes, so not the
    # (long) pytest tmp_path.
    return Path(tempfile.mkdtemp(prefix=f"ss-{name}-"))
