"""Rich tables for the client commands: jobs, one job, trials, a trial's curve and the results report.

Pure functions of the service's JSON (no HTTP here), so they are easy to test and to reuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

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
    table = Table(title=f"jobs ({total if total is not None else len(jobs)})")
    # The id is what the other commands take, so it is never cut; long names are.
    table.add_column("id", no_wrap=True)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("status")
    table.add_column("trials", justify="right")
    table.add_column("best SFO to target", justify="right")
    table.add_column("created (UTC)", no_wrap=True)
    for job in jobs:
        p = progress_of(job)
        table.add_row(
            str(job["id"]),
            str(job.get("name") or ""),
            status_text(job.get("status")),
            f"{p.finished}/{p.total}",
            fmt_sfo(p.best_sfo),
            str(job.get("created_at") or "")[:16].replace("T", " "),
        )
    console.print(table)


def print_job(console: Console, job: Mapping[str, Any]) -> None:
    p = progress_of(job)
    table = Table(show_header=False, title=f"job {job['id']}")
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("name", str(job.get("name") or ""))
    table.add_row("status", status_text(job.get("status")))
    table.add_row("objective", str(job.get("objective") or ""))
    table.add_row("trials", f"{p.finished} finished of {p.total}")
    table.add_row("SFO spent", fmt_sfo(p.sfo_spent))
    table.add_row("best SFO to target", fmt_sfo(p.best_sfo))
    best = best_trial_of(job)
    if best is not None:
        table.add_row("best trial", f"{best.get('id')} {best.get('name') or best.get('trial_key') or ''}")
        table.add_row("best schedule", schedule_text(trial_schedule(best)))
    for key in ("created_at", "started_at", "finished_at", "ray_dashboard_url", "error"):
        if job.get(key):
            table.add_row(key.replace("_", " "), str(job[key]))
    for warning in job.get("warnings") or []:
        table.add_row("theory check", warning_text(warning))
    console.print(table)


def print_trials(console: Console, trials: Sequence[Mapping[str, Any]], *, total: int | None) -> None:
    if not trials:
        console.print("no trials yet")
        return
    table = Table(title=f"trials ({total if total is not None else len(trials)})")
    for column, justify in (
        ("id", "right"),
        ("kind", "left"),
        ("name", "left"),
        ("status", "left"),
        ("SFO to target", "right"),
        ("final grad norm", "right"),
        ("epochs", "right"),
        ("SFO", "right"),
        ("schedule", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for trial in trials:
        s = trial_summary(trial)
        table.add_row(
            str(trial.get("id")),
            str(trial.get("kind") or ""),
            str(trial.get("name") or trial.get("trial_key") or ""),
            status_text(trial.get("status")),
            fmt_sfo(s.get("sfo_to_target")),
            fmt_float(s.get("final_grad_norm")),
            str(trial.get("epochs") if trial.get("epochs") is not None else "-"),
            fmt_sfo(trial.get("sfo", s.get("total_sfo"))),
            schedule_text(trial_schedule(trial)),
        )
    console.print(table)


def print_metrics(console: Console, records: Sequence[Mapping[str, Any]]) -> None:
    if not records:
        console.print("no metrics yet")
        return
    table = Table(title="per-epoch metrics")
    columns = ("epoch", "sfo", "batch_size", "lr", "train_loss", "grad_norm", "test_acc")
    rows: list[Mapping[str, Any]] = []
    for row in records:
        record = row.get("record")
        rows.append(record if isinstance(record, Mapping) else row)
    subset = next((r.get("grad_norm_subset") for r in rows if r.get("grad_norm_subset")), None)
    for column in columns:
        # an estimate on a fixed subset is never shown as the exact norm
        heading = f"grad_norm (est., {subset:,} examples)" if column == "grad_norm" and subset else column
        table.add_column(heading, justify="right")
    for record in rows:
        table.add_row(
            *(
                fmt_sfo(record.get(c)) if c in ("epoch", "sfo", "batch_size") else fmt_float(record.get(c))
                for c in columns
            )
        )
    console.print(table)


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
    table = Table(title=title)
    table.add_column("schedule")
    table.add_column("kind")
    for column in ("SFO to target", "x best", "final grad norm", "test acc"):
        table.add_column(column, justify="right")
    for row in rows:
        is_best = best is not None and row.get("trial_id") == best.get("trial_id")
        table.add_row(
            f"[bold]{row_label(row)}[/]" if is_best else row_label(row),
            row_kind(row, best=is_best),
            fmt_sfo(row.get("sfo_to_target")),
            fmt_ratio(row.get("sfo_ratio")),
            fmt_float(row.get("final_grad_norm")),
            fmt_float(row.get("best_test_acc")),
        )
    console.print(table)
    for row in rows:
        console.print(f"  {row_label(row)}: {schedule_text(row.get('schedule'))}", highlight=False)
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
