"""Every example job in examples/ is a valid job spec (the README submits them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.jobspec import count_trials, parse_job

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_is_an_example() -> None:
    assert any(p.name == "digits-demo.json" for p in EXAMPLES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_is_a_valid_job(path: Path) -> None:
    job = parse_job(json.loads(path.read_text()))
    assert count_trials(job) >= 1
