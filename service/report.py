"""Report data for a job: the best searched schedule against the baselines and the paper's strategies.

Built from the stored trials only, so it works while the job runs. Rows carry SFO to target side by side and
``sfo_ratio`` = the row's SFO to target divided by the best searched trial's (> 1: the row needs more).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.jobspec import ExpandedJob, JobSpec, known_n_train, stored_job_spec, stored_trial_spec
from service.objectives import OBJECTIVES, objective_value
from service.storage import repository as repo
from service.storage.models import Job, Trial

# Fields of the trial summary (schedules.metrics.TrialSummary) shown in each row.
ROW_FIELDS = (
    "sfo_to_target",
    "epochs_to_target",
    "steps_to_target",
    "final_grad_norm",
    "min_grad_norm",
    "best_test_acc",
    "decay_exponent",
    "total_sfo",
    "wall_s",
    "grad_norm_subset",  # null: the norms above are exact; k: measured on a fixed subset of k examples
)


def trial_schedule(trial: Trial, spec: JobSpec | None) -> dict[str, Any]:
    """The schedule JSON of a trial: the ``schedule`` of its stored trial spec
    (``service.jobspec.stored_trial_spec``, which reads rows of the older shape too); a row without one
    shows its config itself."""
    config = stored_trial_spec(trial.config, spec)
    schedule = config.get("schedule")
    return dict(schedule) if isinstance(schedule, dict) else config


def sfo_to_target(trial: Trial) -> float | None:
    """The trial's SFO to target as stored when it is a finite number, else None: never reached, or a stored
    value that is not one (NaN, or text from a writer's bug), which must not break a report or a plot."""
    summary = trial.summary if isinstance(trial.summary, dict) else {}
    value = summary.get("sfo_to_target")
    return value if objective_value("sfo_to_target", summary) is not None else None


def _row(trial: Trial, *, spec: JobSpec | None, paper: set[str], best_sfo: float | None) -> dict[str, Any]:
    summary = trial.summary if isinstance(trial.summary, dict) else {}
    sfo = sfo_to_target(trial)
    row: dict[str, Any] = {
        "trial_id": trial.id,
        "name": trial.name or trial.trial_key,
        "kind": trial.kind,
        "paper_strategy": trial.kind == "baseline" and (trial.name or "") in paper,
        "status": trial.status,
        "objective": trial.objective,
        "schedule": trial_schedule(trial, spec),
        **{field: summary.get(field) for field in ROW_FIELDS},
        "sfo_to_target": sfo,
        "sfo_ratio": (sfo / best_sfo) if sfo is not None and best_sfo else None,
    }
    return row


def theory_of(schedule: dict[str, Any], spec: JobSpec, n_train: int | None) -> dict[str, Any] | None:
    """The theory check of one schedule with the job's optimizer; None if it cannot be checked."""
    from schedules.spec import Schedule
    from schedules.theory import check

    momentum = spec.optimizer.momentum
    try:
        report = check(
            Schedule.from_json(schedule),
            optimizer=spec.optimizer.name,
            momentum=momentum if isinstance(momentum, int | float) else None,
            max_epochs=spec.budget.max_epochs,
            n_train=n_train,
        )
    except Exception as exc:  # an unusual stored schedule gives a note, not a 500
        return {"error": f"theory check failed: {exc}"}
    result: dict[str, Any] = report.to_json()
    return result


def build_report(session: Session, job: Job, *, expanded: ExpandedJob | None = None) -> dict[str, Any]:
    """The report of ``job`` from its stored trials. ``expanded``: the job's spec as this process already
    validated and expanded it (the driver's); otherwise the stored spec is read once here (a spec that no
    longer validates leaves out the theory check and the paper's marks, never the report)."""
    from schedules.paper import STRATEGY_NAMES

    spec = expanded.spec if expanded is not None else stored_job_spec(job.spec)
    trials, _ = repo.list_trials(session, job_id=job.id, limit=100_000)
    searched = [t for t in trials if t.kind != "baseline"]
    baselines = [t for t in trials if t.kind == "baseline"]
    best = searched[0] if searched and searched[0].objective is not None else None  # list is best-first
    best_sfo = sfo_to_target(best) if best is not None else None
    # A baseline named like a paper strategy is one: the names are reserved (service.jobspec.RESERVED_NAME).
    paper = set(STRATEGY_NAMES) if spec is not None else set()
    best_row = _row(best, spec=spec, paper=paper, best_sfo=best_sfo) if best is not None else None
    baseline_rows = [_row(t, spec=spec, paper=paper, best_sfo=best_sfo) for t in baselines]
    # Side by side: the best searched trial first, then baselines by SFO to target (never reached last).
    table = ([best_row] if best_row else []) + sorted(
        baseline_rows, key=lambda r: (r["sfo_to_target"] is None, r["sfo_to_target"] or 0.0, r["name"])
    )
    best_baseline = next((r for r in table[1 if best_row else 0 :] if r["sfo_to_target"] is not None), None)
    return {
        "job_id": job.id,
        "status": job.status,
        "objective": job.objective,
        "objective_direction": OBJECTIVES[job.objective][1],
        "target_grad_norm": job.spec.get("target", {}).get("grad_norm"),
        "trials": {"total": job.trials_total, "finished": job.trials_finished, "sfo_spent": job.sfo_spent},
        "best": best_row,
        "baselines": [r for r in baseline_rows if not r["paper_strategy"]],
        "paper": [r for r in baseline_rows if r["paper_strategy"]],
        # The paper's strategies this job did not run (add "paper" to baselines to compare with them).
        "paper_not_run": sorted(set(STRATEGY_NAMES) - {r["name"] for r in baseline_rows}),
        "table": table,
        "best_vs_best_baseline": (
            {
                "baseline": best_baseline["name"],
                "sfo_saving": 1.0 - best_sfo / float(best_baseline["sfo_to_target"]),
            }
            if best_baseline is not None and best_sfo
            else None
        ),
        "theory": theory_of(best_row["schedule"], spec, _n_train(spec, expanded))
        if best_row and spec is not None
        else None,
        "warnings": job.warnings or [],
    }


def _n_train(spec: JobSpec, expanded: ExpandedJob | None) -> int | None:
    return expanded.n_train if expanded is not None else known_n_train(spec.task)
