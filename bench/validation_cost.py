"""Validation cost: CPU seconds the service spends checking a submission before it stores (or refuses) it.

``POST /v1/jobs`` checks every schedule a job can run over its whole budget (``service.jobspec``) and runs the
theory check of its fixed schedules; that work grows with ``budget.max_epochs`` times the number of
schedules. The service bounds it up front: a job whose ``max_epochs x (fixed + 2 x searched)`` exceeds
``max_check_schedule_epochs`` (default 300,000), or whose space has more than 4,096 corner schedules, is
refused before any check runs. This script measures, side by side in one run:

- ``small``: the README-sized job (12 epochs, one searched candidate, one baseline): the reference;
- ``fixed-at-limit``: the paper's 4 strategies and 26 dict baselines at 10,000 epochs, at the default limit;
- ``searched-at-limit``: searched candidates at 10,000 epochs, at the limit;
- ``corners-at-limit``: a space with 4,096 corner schedules (the per-job maximum) at 12 epochs;
- ``refused-over-limit``: 256 baselines at 10,000 epochs (8 s of checks before the limit existed), refused
  by the cost limit: the time until the refusal.

Each case runs the route's own steps (per-job limits, ``check_job_spec``, ``theory_warnings``), timed with
``time.process_time`` (CPU of this process), median of ``--repeats`` runs; the table prints each case's
ratio to ``small``.

    python bench/validation_cost.py                 # the numbers in docs/reliability.md
    python bench/validation_cost.py --epochs 500    # smaller budgets, seconds
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._report import table, write_latest

SMALL: dict[str, Any] = {
    "name": "small",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {
                "family": "exp_growth",
                "b0": {"choice": [8, 16, 32]},
                "factor": {"uniform": [1.5, 4.0]},
                "interval": 3,
            },
            "lr": {
                "family": "warmup_const",
                "lr0": 0.1,
                "lr_max": {"loguniform": [0.2, 2.0]},
                "warmup_epochs": 6,
                "warmup_interval": 1,
            },
        }
    ],
    "baselines": [
        {
            "name": "constant",
            "batch_size": {"family": "constant", "b0": 32},
            "lr": {"family": "constant", "lr0": 0.1},
        }
    ],
    "budget": {"max_epochs": 12},
    "target": {"grad_norm": 0.05},
    "search": {"num_trials": 4},
}
# Schedules that stay finite over any budget and exercise the per-epoch formulas (cosine, warm-up, growth
# to a cap), so each epoch of the check costs what a realistic one does.
FIXED = {
    "batch_size": {"family": "exp_growth", "b0": 8, "factor": 1.5, "interval": 50, "b_max": 1024},
    "lr": {"family": "warmup_cosine", "lr0": 0.05, "lr_max": 0.5, "warmup_epochs": 10, "warmup_interval": 2},
}
SEARCHED = {
    "batch_size": {
        "family": "exp_growth",
        "b0": {"choice": [8, 16]},
        "factor": {"uniform": [1.2, 2.0]},
        "interval": 50,
        "b_max": 1024,
    },
    "lr": {
        "family": "warmup_cosine",
        "lr0": 0.05,
        "lr_max": {"loguniform": [0.1, 1.0]},
        "warmup_epochs": 10,
        "warmup_interval": 2,
    },
}


def _job(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SMALL)
    body.update(changes)
    return body


def cases(epochs: int, limit: int) -> dict[str, dict[str, Any]]:
    """The jobs measured; the at-limit ones are sized so that their cost is ``limit`` (or as large as the job
    spec allows: at most 256 baselines and 64 candidates)."""
    fixed_n = min(limit // epochs - 4, 255)  # "paper" adds four fixed schedules
    searched_n = min(limit // (2 * epochs), 64)
    many_choices = {
        "batch_size": {"family": "constant", "b0": {"choice": list(range(8, 72))}},
        "lr": {"family": "constant", "lr0": {"choice": [0.01 * i for i in range(1, 65)]}},
    }
    return {
        "small": _job(),
        "fixed-at-limit": _job(
            space=[],
            baselines=["paper", *({"name": f"b{i}", **FIXED} for i in range(fixed_n))],
            budget={"max_epochs": epochs},
            search={"num_trials": 0},
        ),
        "searched-at-limit": _job(space=[SEARCHED] * searched_n, baselines=[], budget={"max_epochs": epochs}),
        "corners-at-limit": _job(space=[many_choices], baselines=[]),
        "refused-over-limit": _job(
            space=[],
            baselines=[{"name": f"b{i}", **FIXED} for i in range(256)],
            budget={"max_epochs": epochs},
            search={"num_trials": 0},
        ),
    }


def submission_checks(body: dict[str, Any], settings: Any) -> str:
    """The route's checks before the insert; returns how they ended."""
    from service.api.routes.jobs import _check_limits
    from service.errors import QuotaExceeded
    from service.jobspec import JobSpec, check_job_spec, count_trials, expand_job, theory_warnings

    job = expand_job(JobSpec.model_validate(body))
    try:
        _check_limits(job, count_trials(job), settings)
    except QuotaExceeded as exc:
        return f"refused: {exc.limit}"
    errors = check_job_spec(job)
    if errors:
        return f"refused: {len(errors)} errors"
    theory_warnings(job)
    return "accepted"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10_000, help="budget.max_epochs of the large cases")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--limit", type=int, default=None, help="max_check_schedule_epochs (default: the setting's default)"
    )
    parser.add_argument("--name", default="validation_cost", help="result file name under bench/results")
    args = parser.parse_args(argv)

    from service.settings import Settings

    settings = Settings()
    if args.limit is not None:
        settings = settings.model_copy(update={"max_check_schedule_epochs": args.limit})
    limit = settings.max_check_schedule_epochs
    rows = []
    results: dict[str, Any] = {}
    submission_checks(SMALL, settings)  # imports and first-call costs stay out of the numbers
    for name, body in cases(args.epochs, limit).items():
        times = []
        outcome = ""
        for _ in range(args.repeats):
            start = time.process_time()
            outcome = submission_checks(body, settings)
            times.append(time.process_time() - start)
        results[name] = {"cpu_s": statistics.median(times), "outcome": outcome, "runs": times}
    base = results["small"]["cpu_s"]
    for name, r in results.items():
        r["ratio_to_small"] = r["cpu_s"] / base if base > 0 else None
        rows.append([name, r["outcome"], f"{r['cpu_s']:.3f}", f"{r['ratio_to_small']:.0f}x"])
    print(f"submission checks, median CPU seconds of {args.repeats} runs, max_check_schedule_epochs={limit}")
    print(table(["case", "outcome", "cpu s", "vs small"], rows))
    write_latest(args.name, {"epochs": args.epochs, "limit": limit, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
