"""Repository: keyword-only functions over a ``Session`` for users, tokens, jobs, trials, metrics and events.

Split by aggregate, re-exported here so callers write ``from service.storage import repository as repo`` and
``repo.create_job(...)`` whatever module a function lives in (as Optuna's ``storages`` package re-exports its
private implementation modules):

- ``users``: users and API tokens;
- ``jobs``: submission (idempotency key, per-user quota), reads, cancel requests, status changes, progress;
- ``leases``: the dispatchers' lease protocol (claim, heartbeat, release), kept apart like Optuna's heartbeat;
- ``trials``: trials and their per-epoch metrics;
- ``events``: a job's event log.

Contract (shared by the API and the dispatcher in ``workers``):

- functions flush, never commit; wrap a unit of work in ``service.storage.db.session_scope``;
- errors are the domain errors of ``service.errors`` (``NotFound``, ``Conflict``, ``InvalidTransition``,
  ``LeaseLost``, ``QuotaExceeded``), never HTTP types;
- status changes go through ``service.storage.states``; setting the current status again is a no-op, so a
  replayed worker update is harmless; status writes are compare-and-set on the row, so two writers cannot both
  win a transition;
- ``owner_id=None`` in readers means "no owner filter" (admins and workers); the API passes the caller's id
  for non-admins so another user's job is a ``NotFound``.

Dispatcher loop, for orientation::

    with session_scope(factory) as s:
        job = claim_job(s, owner=me, lease_seconds=60)          # None when nothing to do
    ...
    with session_scope(factory) as s:
        job = heartbeat(s, job_id=job.id, owner=me, lease_seconds=60)   # LeaseLost if another took it
        if job.status == "cancelling": ...                          # or is_cancel_requested(s, job_id=...)
        trial = upsert_trial(s, job_id=job.id, trial_key="tune-0001", config=cfg)
        set_trial_status(s, trial_id=trial.id, status="running", node_id=node)
        append_metrics(s, trial_id=trial.id, records=[record_dict, ...])    # replays are ignored
        set_trial_status(s, trial_id=trial.id, status="succeeded", summary=summary_dict)
        refresh_job_progress(s, job_id=job.id)
    with session_scope(factory) as s:
        set_job_status(s, job_id=job.id, status="succeeded", summary=report, owner=me)
"""

from __future__ import annotations

from service.storage.repository._common import UNSET
from service.storage.repository.events import add_job_event, list_job_events
from service.storage.repository.jobs import (
    count_active_jobs,
    count_jobs_by_status,
    create_job,
    find_idempotent_job,
    find_job_by_idempotency_key,
    get_job,
    is_cancel_requested,
    list_jobs,
    refresh_job_progress,
    request_cancel,
    set_job_status,
    set_ray_job,
    set_trials_total,
)
from service.storage.repository.leases import claim_job, heartbeat, release_job
from service.storage.repository.trials import (
    append_metrics,
    finish_unfinished_trials,
    get_trial,
    get_trial_by_key,
    list_metrics,
    list_trials,
    metrics_for_trials,
    set_trial_status,
    upsert_trial,
)
from service.storage.repository.users import add_token, create_user, find_token, get_or_create_user

__all__ = [
    "UNSET",
    "add_job_event",
    "add_token",
    "append_metrics",
    "claim_job",
    "count_active_jobs",
    "count_jobs_by_status",
    "create_job",
    "create_user",
    "find_idempotent_job",
    "find_job_by_idempotency_key",
    "find_token",
    "finish_unfinished_trials",
    "get_job",
    "get_or_create_user",
    "get_trial",
    "get_trial_by_key",
    "heartbeat",
    "is_cancel_requested",
    "list_job_events",
    "list_jobs",
    "list_metrics",
    "list_trials",
    "metrics_for_trials",
    "refresh_job_progress",
    "release_job",
    "request_cancel",
    "set_job_status",
    "set_ray_job",
    "set_trial_status",
    "set_trials_total",
    "upsert_trial",
]
