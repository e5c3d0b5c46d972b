"""Rich tables for the client commands: jobs, one job, trials, a trial's curve and the results report.

Pure functions of the service's JSON (no HTTP here), so they are easy to test and to reuse. Every table is
laid out for the console's width (``cli.layout``): readable at 80 columns, using more when there is
more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.layout import Column, fit_table

STATUS_STYLE = {
    "queued": "cyan",
    "running": "blue",
    "succeeded": "green",
    "failed": "red",
    "cancelling": "yellow",
    "cancelled": "yellow",
    "pruned": "dim",
    "diverged": "magenta",
    "pending": "cyan",
}


# ---------------------------------------------------------------------------------------------- values


def fmt_sfo(value: Any) -> str:
    """SFO (stochastic gradients) with thousands separators; "-" when missing (target never reached)."""
    if value is None:
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "-"
    return f"{round(number):,}"


def fmt_float(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{number:.{digits}g}"


def fmt_ratio(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}x"


def status_text(status: Any) -> str:
    style = STATUS_STYLE.get(str(status), "")
    return f"[{style}]{status}[/]" if style else str(status)


def family_text(part: Mapping[str, Any] | None) -> str:
    """``exp_growth(b0=8, factor=2, interval=3)`` from a family dict; a seesaw shows its base inside."""
    if not part:
        return "-"
    params = []
    for key, value in part.items():
        if key == "family" or value is None:
            continue
        shown = family_text(value) if isinstance(value, Mapping) and "family" in value else fmt_param(value)
        params.append(f"{key}={shown}")
    return f"{part.get('family', '?')}({', '.join(params)})"


def fmt_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def schedule_text(schedule: Mapping[str, Any] | None) -> str:
    """Both halves of a schedule on one line: ``batch: ...; lr: ...``."""
    if not schedule:
        return "-"
    return f"batch {family_text(schedule.get('batch_size'))}; lr {family_text(schedule.get('lr'))}"


def schedule_summary(schedule: Mapping[str, Any] | None) -> str:
    """A schedule on one line with both family names first, so a cut still shows them:
    ``exp_growth/seesaw: b0=8, factor=2, interval=30; base=cosine(lr0=0.1), alpha=2``."""
    if not schedule:
        return "-"
    halves = [schedule.get("batch_size"), schedule.get("lr")]
    names = "/".join(str(h.get("family", "?")) if isinstance(h, Mapping) else "?" for h in halves)
    params = "; ".join(_params_text(h) if isinstance(h, Mapping) else "-" for h in halves)
    return f"{names}: {params}"


def _params_text(part: Mapping[str, Any]) -> str:
    return family_text(part)[len(str(part.get("family", "?"))) + 1 : -1]


def warning_text(warning: Any) -> str:
    """A finding (``{"code", "message"}``), or a job warning: a schedule's name with its theory report."""
    if not isinstance(warning, Mapping):
        return str(warning)
    if "message" in warning:
        return str(warning["message"])
    if "strategy" in warning or "violations" in warning or "error" in warning:
        name = warning.get("schedule")
        return f"{name}: {theory_text(warning)}" if name else theory_text(warning)
    return str(dict(warning))


def items_of(page: Any) -> list[dict[str, Any]]:
    """The rows of a list response: ``{"data": [...], "count": n}`` or a bare list."""
    if isinstance(page, Mapping):
        for key in ("data", "items", "records", "metrics", "trials", "jobs"):
            if isinstance(page.get(key), list):
                return list(page[key])
        return []
    return list(page or [])


def total_of(page: Any) -> int | None:
    if isinstance(page, Mapping):
        for key in ("count", "total"):
            if isinstance(page.get(key), int):
                return int(page[key])
    return None


@dataclass(frozen=True)
class Progress:
    finished: int
    total: int
    sfo_spent: int | None
    best_sfo: float | None


def progress_of(job: Mapping[str, Any]) -> Progress:
    """Trials finished of total, SFO spent and the best SFO to target so far, from a job's JSON (the
    progress block, or flat fields)."""
    p = job.get("progress") if isinstance(job.get("progress"), Mapping) else job
    assert isinstance(p, Mapping)
    best = best_trial_of(job)
    best_sfo = trial_summary(best).get("sfo_to_target") if best is not None else None
    if best_sfo is None and job.get("objective", "sfo_to_target") == "sfo_to_target":
        best_sfo = job.get("best_value")
    return Progress(
        finished=int(p.get("trials_finished") or 0),
        total=int(p.get("trials_total") or 0),
        sfo_spent=p.get("sfo_spent"),
        best_sfo=best_sfo,
    )


def best_trial_of(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    best = job.get("best_trial")
    return best if isinstance(best, Mapping) else None


def trial_summary(trial: Mapping[str, Any]) -> Mapping[str, Any]:
    summary = trial.get("summary")
    return summary if isinstance(summary, Mapping) else {}


def trial_schedule(trial: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for key in ("schedule", "config"):
        value = trial.get(key)
        if isinstance(value, Mapping):
            inner = value.get("schedule")
            return inner if isinstance(inner, Mapping) else value
    return None


# ---------------------------------------------------------------------------------------------- tables


def print_jobs(console: Console, jobs: Sequence[Mapping[str, Any]], *, total: int | None) -> None:
    if not jobs:
        console.print("no jobs")
        return
    # The id is what the other commands take, so it is never cut; a narrow terminal shows the name and the
    # creation time on a second line under it.
    columns = (
        Column("id"),
        Column("name", priority=3, flex=12, fold_into="id"),
        Column("status"),
        Column("trials", priority=2, justify="right"),
        Column("best SFO to target", priority=1, justify="right"),
        Column("created (UTC)", priority=4, fold_into="id"),
    )
    rows = []
    for job in jobs:
        p = progress_of(job)
        rows.append(
            (
                escape(str(job["id"])),
                escape(str(job.get("name") or "")),
                status_text(job.get("status")),
                f"{p.finished}/{p.total}",
                fmt_sfo(p.best_sfo),
                escape(str(job.get("created_at") or "")[:16].replace("T", " ")),
            )
        )
    title = f"jobs ({total if total is not None else len(jobs)})"
    console.print(fit_table(console.width, columns, rows, title=title))


def print_job(console: Console, job: Mapping[str, Any]) -> None:
    p = progress_of(job)
    table = Table(show_header=False, title=f"job {escape(str(job['id']))}")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")  # long values wrap; nothing is cut
    table.add_row("name", escape(str(job.get("name") or "")))
    table.add_row("status", status_text(job.get("status")))
    table.add_row("objective", str(job.get("objective") or ""))
    table.add_row("trials", f"{p.finished} finished of {p.total}")
    table.add_row("SFO spent", fmt_sfo(p.sfo_spent))
    table.add_row("best SFO to target", fmt_sfo(p.best_sfo))
    best = best_trial_of(job)
    if best is not None:
        name = best.get("name") or best.get("trial_key") or ""
        table.add_row("best trial", escape(f"{best.get('id')} {name}"))
        table.add_row("best schedule", escape(schedule_summary(trial_schedule(best))))
    for key in ("created_at", "started_at", "finished_at", "error"):
        if job.get(key):
            table.add_row(key.replace("_", " "), escape(str(job[key])))
    for warning in job.get("warnings") or []:
        table.add_row("theory check", escape(warning_text(warning)))
    console.print(table)
    if job.get("ray_dashboard_url"):
        # A link is printed whole on its own line, never cut or folded inside the table, so it can be copied.
        console.print(f"Ray dashboard: {job['ray_dashboard_url']}", soft_wrap=True, markup=False)


def print_trials(console: Console, trials: Sequence[Mapping[str, Any]], *, total: int | None) -> None:
    if not trials:
        console.print("no trials yet")
        return
    columns = (
        Column("id", justify="right"),
        Column("name", priority=1, flex=10),
        Column("kind", priority=6, fold_into="name"),
        Column("status"),
        Column("SFO to target", justify="right"),
        Column("schedule", priority=2, flex=24),
        Column("SFO", priority=3, justify="right"),
        Column("final grad norm", priority=4, justify="right"),
        Column("epochs", priority=5, justify="right"),
    )
    rows = []
    for trial in trials:
        s = trial_summary(trial)
        rows.append(
            (
                escape(str(trial.get("id"))),
                escape(str(trial.get("name") or trial.get("trial_key") or "")),
                escape(str(trial.get("kind") or "")),
                status_text(trial.get("status")),
                fmt_sfo(s.get("sfo_to_target")),
                escape(schedule_summary(trial_schedule(trial))),
                fmt_sfo(trial.get("sfo", s.get("total_sfo"))),
                fmt_float(s.get("final_grad_norm")),
                str(trial.get("epochs") if trial.get("epochs") is not None else "-"),
            )
        )
    title = f"trials ({total if total is not None else len(trials)})"
    console.print(fit_table(console.width, columns, rows, title=title))


def print_metrics(console: Console, records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        console.print("no metrics yet")
        return
    records = [
        row["record"] if isinstance(row.get("record"), Mapping) else row for row in records
    ]
    subset = next((r.get("grad_norm_subset") for r in records if r.get("grad_norm_subset")), None)
    # an estimate on a fixed subset is never shown as the exact norm
    grad_header = f"grad norm (est., {subset:,} examples)" if subset else "grad norm"
    # (record key, header, priority): the curve is SFO against the gradient norm; the rest goes first.
    fields = (
        ("epoch", "epoch", 0),
        ("sfo", "SFO", 0),
        ("batch_size", "batch size", 1),
        ("lr", "lr", 2),
        ("grad_norm", grad_header, 0),
        ("train_loss", "train loss", 4),
        ("test_acc", "test acc", 3),
    )
    columns = [Column(header, priority=priority, justify="right") for _, header, priority in fields]
    rows = []
    for record in records:
        rows.append(
            [
                fmt_sfo(record.get(key))
                if key in ("epoch", "sfo", "batch_size")
                else fmt_float(record.get(key))
                for key, _, _ in fields
            ]
        )
    console.print(fit_table(console.width, columns, rows, title="per-epoch metrics"))


def row_kind(row: Mapping[str, Any], *, best: bool) -> str:
    if best:
        return "best found"
    if row.get("paper_strategy"):
        return "paper"
    return str(row.get("kind") or "")


def row_label(row: Mapping[str, Any]) -> str:
    """Baselines have names (``paper-iv``); searched trials are named by Tune, so show the trial id."""
    if row.get("kind") == "baseline" and row.get("name"):
        label = str(row["name"])
    else:
        label = f"trial {row.get('trial_id')}"
    status = row.get("status")
    return label if status in (None, "succeeded") else f"{label} ({status})"


def print_report(console: Console, report: Mapping[str, Any]) -> None:
    """The results table: the best schedule found, then the baselines and the paper's strategies by SFO to
    target, with each one's SFO relative to the best; then each schedule's definition, the saving and the
    theory check of the best. Narrow enough for an 80-column terminal."""
    rows = report.get("table")
    if not isinstance(rows, list):
        rows = items_of(report)
    best = report.get("best") if isinstance(report.get("best"), Mapping) else None
    target = report.get("target_grad_norm")
    title = "results"
    if target is not None:
        title += f": SFO to reach full gradient norm <= {fmt_float(target)}"
    if report.get("status") and report.get("status") != "succeeded":
        title += f" (job {report['status']}; trials finished so far)"
    if not rows:
        console.print(f"{title}: no finished trials yet")
        return
    columns = (
        Column("schedule", flex=14),
        Column("kind", priority=3, fold_into="schedule"),
        Column("SFO to target", justify="right"),
        Column("x best", priority=1, justify="right"),
        Column("final grad norm", priority=2, justify="right"),
        Column("test acc", priority=4, justify="right"),
    )
    cells = []
    for row in rows:
        is_best = best is not None and row.get("trial_id") == best.get("trial_id")
        label = escape(row_label(row))
        cells.append(
            (
                f"[bold]{label}[/]" if is_best else label,
                row_kind(row, best=is_best),
                fmt_sfo(row.get("sfo_to_target")),
                fmt_ratio(row.get("sfo_ratio")),
                fmt_float(row.get("final_grad_norm")),
                fmt_float(row.get("best_test_acc")),
            )
        )
    console.print(fit_table(console.width, columns, cells, title=title))
    for row in rows:
        console.print(
            f"  {row_label(row)}: {schedule_text(row.get('schedule'))}", highlight=False, markup=False
        )
    saving = report.get("best_vs_best_baseline")
    if isinstance(saving, Mapping) and saving.get("sfo_saving") is not None:
        share = float(saving["sfo_saving"])
        word = "fewer" if share >= 0 else "more"
        console.print(
            f"best found needs {abs(share):.0%} {word} SFO to target than the best baseline "
            f"({saving.get('baseline')})"
        )
    elif best is not None and best.get("sfo_to_target") is None:
        console.print("no searched schedule reached the target")
    elif best is not None and len(rows) > 1:
        console.print("no baseline reached the target within the budget; the best schedule found did")
    not_run = report.get("paper_not_run")
    if not_run:
        console.print(
            f"paper strategies not run in this job: {', '.join(map(str, not_run))} "
            '(add "baselines": ["paper"] to compare)'
        )
    theory = report.get("theory")
    if isinstance(theory, Mapping):
        console.print(f"theory check of the best schedule: {theory_text(theory)}")


def theory_text(theory: Mapping[str, Any]) -> str:
    """One line from a theory report (``schedules.theory.TheoryReport.to_json``)."""
    if theory.get("error"):
        return str(theory["error"])
    parts = []
    strategy = theory.get("strategy_name") or theory.get("strategy")
    if strategy:
        parts.append(str(strategy))
    if "converges_guaranteed" in theory:
        parts.append(
            "convergence guaranteed" if theory["converges_guaranteed"] else "convergence NOT guaranteed"
        )
    for finding in [*(theory.get("violations") or []), *(theory.get("warnings") or [])]:
        parts.append(warning_text(finding))
    return "; ".join(parts) or "nothing to report"
