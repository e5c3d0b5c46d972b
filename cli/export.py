"""``schedsearch export JOB [--trial ID] --format json|pytorch|megatron``: take a found schedule home.

Reads the job and the trial over the REST API (the job's best trial by default), builds the
``schedules.export.FoundSchedule`` (the schedule with the task, horizon N and n, optimizer and seed it was
found with) and prints it in the chosen format (``schedules.export``). Torch-free: only httpx and the
torch-free ``schedules`` and ``service.jobspec`` modules are imported.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from cli.client import _client, _connection_options, _guarded
from cli.rest import ApiClient, ApiError


def found_schedule(job: Mapping[str, Any], trial: Mapping[str, Any]) -> Any:
    """The ``FoundSchedule`` of ``trial`` in ``job`` (both as the API returns them). The horizon is the job's
    budget.max_epochs over the task's training-set size; optimizer and seed are the ones the trial ran with
    (the trial's momentum, the job's optimizer name and search.seed)."""
    from schedules.export import FoundSchedule
    from schedules.spec import Horizon, Schedule
    from service.jobspec import TaskSpec, known_n_train, stored_trial_spec

    spec = job.get("spec") or {}
    # The trial's config is the trial spec it ran (a row of the older shape read as one).
    config = stored_trial_spec(trial.get("config"), spec)
    schedule = config["schedule"] if isinstance(config.get("schedule"), Mapping) else config
    task = TaskSpec.model_validate(spec["task"])
    optimizer = spec.get("optimizer") or {}
    name = str(optimizer.get("name", "nshb"))
    ran = config.get("optimizer")
    momentum = ran.get("momentum") if isinstance(ran, Mapping) else optimizer.get("momentum", 0.9)
    if name == "sgd" or not isinstance(momentum, int | float):  # a searched momentum with no value here
        momentum = 0.0 if name == "sgd" else 0.9
    summary = trial.get("summary") or {}
    n_train = known_n_train(task)
    if n_train is None:
        raise ValueError(
            f"the training-set size of task {task.name!r} is not known without its data (or the task is not "
            "installed here), so the batch plan cannot be written out"
        )
    return FoundSchedule(
        schedule=Schedule.from_json(schedule),
        task=task.model_dump(),
        horizon=Horizon(epochs=spec["budget"]["max_epochs"], n_train=n_train),
        optimizer=name,
        momentum=float(momentum),
        seed=int((spec.get("search") or {}).get("seed", 0)),
        source={
            "job_id": job.get("id"),
            "job_name": job.get("name"),
            "trial_id": trial.get("id"),
            "trial_name": trial.get("name") or trial.get("trial_key"),
            "sfo_to_target": summary.get("sfo_to_target"),
        },
    )


def render(found: Any, fmt: str) -> str:
    """The text ``--format fmt`` prints; ``schedules.export.ExportError`` when the format cannot express
    it."""
    from schedules.export import megatron_args, pytorch_snippet

    if fmt == "json":
        return json.dumps(found.to_json(), indent=2) + "\n"
    if fmt == "pytorch":
        return str(pytorch_snippet(found))
    return str(megatron_args(found))


def pick_trial(api: ApiClient, job: Mapping[str, Any], trial_id: int | None) -> dict[str, Any]:
    """The trial ``trial_id`` of the job, or the job's best trial; a job without one yet is an ApiError."""
    if trial_id is not None:
        return api.trial(str(job["id"]), trial_id)
    best = job.get("best_trial")
    if isinstance(best, Mapping):
        return dict(best)
    progress = job.get("progress") or {}
    finished, total = progress.get("trials_finished", 0), progress.get("trials_total", 0)
    raise ApiError(
        f"job {job['id']} has no best trial yet ({job.get('status')}, {finished} of {total} trials "
        f"finished); pass --trial ID from `schedsearch trials {job['id']}`"
    )


def cmd_export(args: argparse.Namespace) -> int:
    with _client(args) as api:
        job = api.get_job(args.job_id)
        trial = pick_trial(api, job, args.trial)
    try:
        text = render(found_schedule(job, trial), args.format)
    except (ValueError, KeyError) as exc:  # ExportError, SpecError, a stored spec that no longer validates
        where = f"trial {trial.get('id')} of job {job['id']}"
        raise ApiError(f"cannot export {where} as {args.format}: {exc}") from None
    sys.stdout.write(text)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from schedules.export import EXPORT_FORMATS

    p = subparsers.add_parser(
        "export",
        parents=[_connection_options(json_flag=False)],
        help="print a found schedule as JSON, a PyTorch snippet or Megatron-LM arguments",
    )
    p.add_argument("job_id", metavar="JOB")
    p.add_argument(
        "--trial",
        type=int,
        metavar="ID",
        help="a trial id as `schedsearch trials` lists it (default: the best)",
    )
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="json",
        help="json: the schedule with its task, horizon and n; pytorch: a runnable loop with "
        "schedules.adapters; megatron: Megatron-LM arguments (default json)",
    )
    p.set_defaults(handler=_guarded(cmd_export))
