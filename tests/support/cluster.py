"""Real Ray nodes on 127.0.0.1 for the workers suite: a head and worker nodes with token auth and free
non-default ports, each in its own process group, stopped by exactly those groups (never ``ray stop``, which
would stop other people's Ray on the machine)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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


# The GCS declares a silent node dead after period x threshold; Ray's defaults (several seconds each) would
# make the node-loss test wait out half a minute before Tune can place the retried trial elsewhere.
FAST_NODE_DEATH = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def start_cluster(temp_dir: Path, token: str, cpus: list[int]) -> Cluster:
    head = raycluster.start_head(temp_dir, token=token, num_cpus=cpus[0], extra_env=FAST_NODE_DEATH)
    cluster = Cluster(token=token, head=head)
    try:
        for i, n in enumerate(cpus[1:], start=1):
            cluster.workers.append(raycluster.start_worker(head, token=token, num_cpus=n, name=f"worker{i}"))
        cluster.node_ids = cluster.wait_for_nodes(len(cpus))
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    for node in [*cluster.workers, cluster.head]:
        raycluster.stop_node(node)


def short_temp_dir(name: str) -> Path:
    # Ray puts unix sockets under the temp dir and their paths must stay under 108 bytes, so not the
    # (long) pytest tmp_path.
    return Path(tempfile.mkdtemp(prefix=f"ss-{name}-"))
