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

from schedules.tasks import catalogue
from schedules.tasks.definition import GRAD_NORM_SUBSET_OPTION, NUM_WORKERS_OPTION, STREAM_OPTION
from service.cli import build_parser
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


def _rows() -> dict[str, str]:
    table = DOC.read_text().split("## README rows", 1)[1].split("\n\n")[2]
    rows: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([\w-]+)`", cells[0]):
            rows[name] = cells[-1]
    return rows


def test_readme_rows_name_every_option_with_its_default() -> None:
    rows = _rows()
    assert sorted(rows) == sorted([*GENERIC, "cifar10-resnet18", "cifar100-resnet18"])
    shared = {o.name for o in (STREAM_OPTION, NUM_WORKERS_OPTION, GRAD_NORM_SUBSET_OPTION)}
    for name, cell in rows.items():
        options = {o.name: o for o in catalogue().get(name).options}
        mentioned = dict(re.findall(r"`([a-z_][a-z0-9_]*)`(?: \(([^,)\s]+))?", cell))
        assert set(mentioned) <= set(options), (name, set(mentioned) - set(options))
        assert set(options) - shared - set(mentioned) == set(), (name, set(options) - shared - set(mentioned))
        for option, default in mentioned.items():
            value = default.rstrip(":")
            if value in ("null", "true", "false") or re.fullmatch(r"\d+(\.\d+)?|\"[\w-]+\"", value):
                assert json.loads(value) == options[option].default, (name, option, default)
