"""The Ray fixtures themselves: token auth is enforced and both nodes of the cluster are alive."""

from __future__ import annotations

import httpx
import pytest

from tests.support.cluster import Cluster

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 401),  # no token: the dashboard refuses
        ({"Authorization": "Bearer wrong"}, 403),  # a wrong token is forbidden
        (None, 200),  # the cluster's token is accepted
    ],
)
def test_dashboard_requires_the_token(
    ray_cluster: Cluster, headers: dict[str, str] | None, expected: int
) -> None:
    if headers is None:
        headers = {"Authorization": f"Bearer {ray_cluster.token}"}
    response = httpx.get(f"{ray_cluster.dashboard_url}/api/version", headers=headers, timeout=10)
    assert response.status_code == expected, response.text


def test_cluster_has_two_alive_nodes(ray_cluster: Cluster) -> None:
    assert len(set(ray_cluster.node_ids)) == 2, ray_cluster.node_ids
    assert set(ray_cluster.node_ids) <= set(ray_cluster.alive_node_ids())
