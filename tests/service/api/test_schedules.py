"""POST /v1/schedules/check: the theory check without running anything."""

from __future__ import annotations

from fastapi.testclient import TestClient

from schedules.spec import Schedule
from schedules.theory import check

GROWING_BOTH = {
    "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 3},
    "lr": {"family": "exp_growth", "lr0": 0.1, "lr_max": 1.0, "interval": 3},
}


def test_check_returns_the_theory_report(client: TestClient, alice: dict[str, str]) -> None:
    body = {"schedule": GROWING_BOTH, "optimizer": "nshb", "momentum": 0.9, "max_epochs": 30}
    response = client.post("/v1/schedules/check", json=body, headers=alice)
    assert response.status_code == 200
    expected = check(
        Schedule.from_json(GROWING_BOTH), optimizer="nshb", momentum=0.9, max_epochs=30
    ).to_json()
    assert response.json() == expected
    assert response.json()["strategy"] == "iii"


def test_a_bare_schedule_is_accepted(client: TestClient, alice: dict[str, str]) -> None:
    response = client.post("/v1/schedules/check", json=GROWING_BOTH, headers=alice)
    expected = check(
        Schedule.from_json(GROWING_BOTH), optimizer="nshb", momentum=0.9, max_epochs=30
    ).to_json()
    assert (response.status_code, response.json()) == (200, expected)


def test_check_locates_a_bad_schedule(client: TestClient, alice: dict[str, str]) -> None:
    bad = {**GROWING_BOTH, "batch_size": {"family": "exp_growth", "b0": 8, "factor": 0.5, "interval": 3}}
    response = client.post("/v1/schedules/check", json={"schedule": bad}, headers=alice)
    assert response.status_code == 422
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "schedule", "batch_size", "factor"]
    assert detail["msg"].startswith("batch_size.factor ")


def test_check_needs_a_token(client: TestClient) -> None:
    assert client.post("/v1/schedules/check", json={"schedule": GROWING_BOTH}).status_code == 401


def test_a_growth_factor_past_the_float_range_is_checked_not_a_500(
    client: TestClient, alice: dict[str, str]
) -> None:
    """Found by the fuzzer: b0 x factor^k is past the largest float at stage 1, which is simply b_max."""
    huge = {
        "batch_size": {"family": "adaptive", "factor": 5.2e307, "b_max": 395},
        "lr": {"family": "constant", "lr0": 0.1},
    }
    response = client.post("/v1/schedules/check", json={"schedule": huge}, headers=alice)
    assert response.status_code == 200, response.text
    assert Schedule.from_json(huge).batch_size.stage_batch(1) == 395  # type: ignore[attr-defined]
    growth = {**GROWING_BOTH, "lr": {"family": "exp_growth", "lr0": 0.1, "factor": 1e300, "interval": 1}}
    response = client.post("/v1/schedules/check", json={"schedule": growth}, headers=alice)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "schedule", "lr", "factor"]
