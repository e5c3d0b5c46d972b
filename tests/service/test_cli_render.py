"""Pure helpers of the client: error details and the values shown in its tables."""

from __future__ import annotations

from typing import Any

import pytest

from service.cli.render import family_text, fmt_sfo, progress_of, schedule_text
from service.cli.rest import Connection, format_detail


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("job 42 not found", "job 42 not found"),  # a domain error's text as is
        (
            [{"loc": ["body", "budget", "max_epochs"], "msg": "Input should be greater than or equal to 1"}],
            "budget.max_epochs: Input should be greater than or equal to 1",
        ),  # FastAPI's "body" prefix dropped, the field path dotted
        (
            [{"loc": ["body", "space", 0, "lr", "lr0"], "msg": "a"}, {"loc": ["query", "limit"], "msg": "b"}],
            "space.0.lr.lr0: a\nlimit: b",
        ),  # several errors, one line each; list indices kept
        ([{"loc": [], "msg": "whole body"}], "request: whole body"),  # no location at all
        ({"limit": "max_trials_per_job", "value": 500}, "limit: max_trials_per_job; value: 500"),  # a mapping
    ],
)
def test_format_detail(detail: Any, expected: str) -> None:
    assert format_detail(detail) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "-"),  # target never reached
        (1280, "1,280"),  # thousands separator
        (1.5e7, "15,000,000"),  # floats from JSON shown as whole gradients
        (float("inf"), "-"),  # not finite: never reached
    ],
)
def test_fmt_sfo(value: Any, expected: str) -> None:
    assert fmt_sfo(value) == expected


def test_schedule_text_shows_both_families_and_a_seesaw_base() -> None:
    schedule = {
        "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": None},
        "lr": {"family": "seesaw", "base": {"family": "cosine", "lr0": 0.1}, "alpha": 2.0},
    }
    assert schedule_text(schedule) == (
        "batch exp_growth(b0=8, factor=2, interval=30); lr seesaw(base=cosine(lr0=0.1), alpha=2)"
    )
    assert family_text(None) == "-"


def test_progress_reads_the_best_trial_sfo_to_target() -> None:
    job = {
        "objective": "test_acc",
        "progress": {"trials_total": 5, "trials_finished": 2, "sfo_spent": 900},
        "best_trial": {"summary": {"sfo_to_target": 640}},
        "best_value": 0.93,  # the objective's value (accuracy here), not an SFO
    }
    p = progress_of(job)
    assert (p.finished, p.total, p.sfo_spent, p.best_sfo) == (2, 5, 900, 640)
    assert progress_of({**job, "best_trial": None}).best_sfo is None


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        ((None, None), {}, ("http://127.0.0.1:8000", None)),  # defaults
        (
            (None, None),
            {"SCHEDSEARCH_URL": "http://h:1/", "SCHEDSEARCH_TOKEN": "t"},
            ("http://h:1", "t"),
        ),  # env
        (
            ("http://f:2", "flag"),
            {"SCHEDSEARCH_URL": "http://h:1", "SCHEDSEARCH_TOKEN": "t"},
            ("http://f:2", "flag"),
        ),  # flags win
    ],
)
def test_connection_resolution(
    flags: tuple[str | None, str | None],
    env: dict[str, str],
    expected: tuple[str, str | None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("SCHEDSEARCH_URL", "SCHEDSEARCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    c = Connection.resolve(*flags)
    assert (c.url, c.token) == expected


def test_metrics_table_marks_a_gradient_norm_measured_on_a_subset() -> None:
    from rich.console import Console

    from service.cli.render import print_metrics

    def table(**extra: Any) -> str:
        console = Console(record=True, width=200)
        print_metrics(console, [{"epoch": 1, "sfo": 100, "grad_norm": 0.5, **extra}])
        return console.export_text()

    assert "grad_norm (est., 300 examples)" in table(grad_norm_subset=300)
    assert "est." not in table(grad_norm_subset=None) and "est." not in table()
