"""Pure helpers of the client: error details and the values shown in its tables."""

from __future__ import annotations

from typing import Any

import pytest

from cli.render import family_text, fmt_sfo, progress_of, schedule_text
from cli.rest import Connection, format_detail


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


# ---------------------------------------------------------------------------------------------- widths


def _render(width: int, draw: Any) -> list[str]:
    """What ``draw(console)`` prints on a terminal ``width`` columns wide, line by line."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    draw(Console(width=width, file=buffer, color_system=None, force_terminal=False))
    return buffer.getvalue().splitlines()


def _fits(lines: list[str], width: int) -> None:
    from rich.cells import cell_len

    too_wide = [line for line in lines if cell_len(line) > width]
    assert not too_wide, "\n".join(too_wide)


SCHEDULE = {
    "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": None},
    "lr": {"family": "seesaw", "base": {"family": "cosine", "lr0": 0.1, "lr_min": 0.0}, "alpha": 2.0},
}
JOB_ID = "e9f06b67a1b2c3d4e5f60718293a4b5c"
LINK = "http://127.0.0.1:8265/#/jobs/raysubmit_AbCdEfGhIjKlMnOpQrStUvWx"
JOBS = [
    {
        "id": JOB_ID,
        "name": "digits-mlp: growing batch + warm-up vs the paper's strategies",
        "status": status,
        "objective": "sfo_to_target",
        "progress": {"trials_total": 10, "trials_finished": 10, "sfo_spent": 12_345_678},
        "best_trial": {
            "id": 9,
            "name": "run_trial_2e90ca6d",
            "summary": {"sfo_to_target": 26_940},
            "config": {"schedule": SCHEDULE},
        },
        "created_at": "2026-11-29T19:37:01.123",
        "ray_dashboard_url": LINK,
    }
    for status in ("succeeded", "cancelling", "running")
]
TRIALS = [
    {
        "id": 1234,
        "kind": "search",
        "name": "run_trial_2e90ca6d",
        "status": "succeeded",
        "summary": {"sfo_to_target": 26_940, "final_grad_norm": 0.01234},
        "epochs": 30,
        "sfo": 404_100,
        "config": {"schedule": SCHEDULE},
    },
    {
        "id": 1235,
        "kind": "baseline",
        "name": "paper-iv-warmup_const-1.0",
        "status": "diverged",
        "summary": {},
        "epochs": 5,
        "sfo": 4_100,
        "config": {"schedule": SCHEDULE},
    },
]
REPORT = {
    "target_grad_norm": 0.02,
    "status": "succeeded",
    "best": {"trial_id": 1234, "sfo_to_target": 26_940},
    "table": [
        {"trial_id": 1234, "kind": "search", "status": "succeeded", "sfo_to_target": 26_940, "sfo_ratio": 1.0,
         "final_grad_norm": 0.01, "best_test_acc": 0.95, "schedule": SCHEDULE},
        {"trial_id": 1236, "kind": "baseline", "name": "paper-iv-warmup_const-1.0", "paper_strategy": "iv",
         "status": "succeeded", "sfo_to_target": 40_410, "sfo_ratio": 1.5, "final_grad_norm": 0.015,
         "best_test_acc": 0.94, "schedule": SCHEDULE},
    ],
}  # fmt: skip
RECORDS = [
    {"epoch": e, "sfo": 1347 * e, "batch_size": 8 * e, "lr": 0.1, "train_loss": 0.5, "grad_norm": 0.25 / e,
     "test_acc": 0.9}
    for e in (1, 2, 3)
]  # fmt: skip


def _row(lines: list[str], needle: str) -> str:
    return next(line for line in lines if needle in line)


@pytest.mark.parametrize("width", [80, 160])
def test_jobs_table_keeps_ids_status_and_numbers_whole(width: int) -> None:
    from cli.render import print_jobs

    lines = _render(width, lambda c: print_jobs(c, JOBS, total=3))
    _fits(lines, width)
    for status in ("succeeded", "cancelling", "running"):
        row = _row(lines, status)
        assert JOB_ID in row and "10/10" in row and "26,940" in row  # id, trials and best never cut
    assert sum("digits-mlp: growing" in line for line in lines) == 3  # the name: own column or folded under
    if width == 160:  # room for every column, names whole, on the job's line
        assert "created (UTC)" in lines[2] or any("created (UTC)" in line for line in lines[:5])
        assert "digits-mlp: growing batch + warm-up vs the paper's strategies" in _row(lines, "cancelling")
        assert "2026-11-29 19:37" in _row(lines, "cancelling")


@pytest.mark.parametrize("width", [80, 160])
def test_trials_table_keeps_status_whole_and_the_schedule_on_one_line(width: int) -> None:
    from cli.render import print_trials

    lines = _render(width, lambda c: print_trials(c, TRIALS, total=2))
    _fits(lines, width)
    ok, bad = _row(lines, "succeeded"), _row(lines, "diverged")
    assert "1234" in ok and "26,940" in ok and "exp_growth/seesaw" in ok
    assert "1235" in bad and "exp_growth/seesaw" in bad
    assert sum("seesaw" in line for line in lines) == 2  # one line per schedule, never wrapped
    if width == 80:
        assert "not shown at this width: epochs, final grad norm" in " ".join(lines)
    else:  # every column, the name whole
        assert "grad norm" in " ".join(lines) and "0.01234" in ok and "run_trial_2e90ca6d" in ok
        assert "paper-iv-warmup_const-1.0" in bad and "baseline" in bad


@pytest.mark.parametrize("width", [80, 160])
def test_show_prints_the_dashboard_link_whole(width: int) -> None:
    from cli.render import print_job

    lines = _render(width, lambda c: print_job(c, JOBS[0]))
    assert f"Ray dashboard: {LINK}" in lines  # alone on its line, never cut or folded
    _fits([line for line in lines if not line.startswith("Ray dashboard:")], width)
    assert "succeeded" in _row(lines, "status")
    assert "exp_growth/seesaw: b0=8" in " ".join(lines)


@pytest.mark.parametrize("width", [80, 160])
def test_metrics_table_keeps_the_curve(width: int) -> None:
    from cli.render import print_metrics

    lines = _render(width, lambda c: print_metrics(c, RECORDS))
    _fits(lines, width)
    row = _row(lines, "4,041")  # epoch 3: SFO 3 x 1,347
    assert "0.08333" in row and "24" in row  # grad norm and batch size
    if width == 160:
        assert all(h in lines[2] for h in ("epoch", "SFO", "batch size", "lr", "grad norm", "test acc"))


@pytest.mark.parametrize("width", [80, 160])
def test_report_table_keeps_labels_and_sfo_whole(width: int) -> None:
    from cli.render import print_report

    lines = _render(width, lambda c: print_report(c, REPORT))
    table = [line for line in lines if line.startswith(("┃", "│", "┏", "┡", "└"))]
    _fits(table, width)
    best, paper = _row(table, "trial 1234"), _row(table, "paper-iv-warmup_const-1.0")
    assert "26,940" in best and "1.00x" in best
    assert "40,410" in paper and "1.50x" in paper
    if width == 160:
        assert "final grad norm" in table[1] and "test acc" in table[1]  # one-line headers
    else:
        assert "schedule" in table[1] or "schedule" in table[2]


@pytest.mark.parametrize("width", [80, 160])
def test_local_train_table_keeps_the_curve(width: int) -> None:
    from cli.local import print_records
    from schedules.metrics import EpochRecord

    record = EpochRecord(
        epoch=12, step=1234, sfo=1_616_400, lr=0.123456, batch_size=4096, train_loss=0.1, full_loss=0.1,
        grad_norm=0.0123456, test_loss=0.2, test_acc=0.95, measure_sfo=0, wall_s=123.45,
    )  # fmt: skip
    lines = _render(width, lambda c: print_records(c, [record]))
    _fits(lines, width)
    row = _row(lines, "1,616,400")
    assert "4,096" in row and "0.01235" in row
    assert ("123.45" in row) == (width == 160)  # wall time only where there is room


def test_metrics_table_marks_a_gradient_norm_measured_on_a_subset() -> None:
    from rich.console import Console

    from cli.render import print_metrics

    def table(**extra: Any) -> str:
        console = Console(record=True, width=200)
        print_metrics(console, [{"epoch": 1, "sfo": 100, "grad_norm": 0.5, **extra}])
        return console.export_text()

    assert "grad norm (est., 300 examples)" in table(grad_norm_subset=300)
    assert "est." not in table(grad_norm_subset=None) and "est." not in table()
