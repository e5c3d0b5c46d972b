"""``ResultsWriter`` and ``JobStopper`` (``workers.callback``) driven by fake trials, as Ray's own callback
tests do, writing to the real databases (SQLite and PostgreSQL) through ``JobStore``. No Ray cluster."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from service.storage import repository as repo
from service.storage.db import session_scope
from service.storage.models import Trial
from tests.workers.doubles import FakeTrial, epoch_results
from tests.workers.doubles import job_store as job_store
from workers.callback import JobStopper, ResultsWriter, stored_config
from workers.store import JobStore

TRIAL_SPEC: dict[str, Any] = {
    "task": {"name": "digits-mlp", "options": {}},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "schedule": {
        "batch_size": {"family": "constant", "b0": 32},
        "lr": {"family": "constant", "lr0": 0.5},
    },
    "budget": {"max_epochs": 3, "max_sfo": None},
    "target": {"grad_norm": 0.3, "stop_at_target": False},
    "seed": 0,
    "grad_norm_mode": "clean",
}


def _config(key: str | None = None, kind: str = "search") -> dict[str, Any]:
    config: dict[str, Any] = {"trial": TRIAL_SPEC, "_kind": kind, "batch_size.b0": 32}  # + a raw value
    if key is not None:
        config.update(_key=key, _name=key.partition(":")[2])
    return config


def _writer(store: JobStore, reason: str | None = None) -> ResultsWriter:
    return ResultsWriter(store, target_grad_norm=0.3, flush_s=0.0, stopping=lambda: reason)


def _trial(store: JobStore, key: str) -> Trial:
    return next(t for t in store.trials() if t.trial_key == key)


def _epochs(store: JobStore, trial: Trial) -> list[int]:
    with session_scope(store.factory) as s:
        return [m.epoch for m in repo.list_metrics(s, trial_id=trial.id)]


def _play(
    writer: ResultsWriter, trial: FakeTrial, results: list[dict[str, Any]], *, complete: bool = True
) -> None:
    writer.on_trial_start(0, [trial], trial)
    for result in results:
        writer.on_trial_result(0, [trial], trial, result)
    if complete:
        writer.on_trial_complete(0, [trial], trial)


def test_the_stored_config_is_the_trial_spec_as_given() -> None:
    assert stored_config(_config("baseline:b")) == TRIAL_SPEC  # no bookkeeping keys, no raw values
    assert stored_config({"_key": "x"}) == {}


def test_a_finished_trial_is_stored_with_its_trial_spec_epochs_and_summary(job_store: JobStore) -> None:
    writer = _writer(job_store)
    trial = FakeTrial("t1", _config("baseline:b", kind="baseline"))
    results = epoch_results(trial.config, epochs=3)
    _play(writer, trial, results)
    row = _trial(job_store, "baseline:b")
    assert (row.name, row.kind, row.status, row.config) == ("b", "baseline", "succeeded", TRIAL_SPEC)
    assert _epochs(job_store, row) == [1, 2, 3]
    assert row.summary == results[-1]["summary"]
    assert writer.sfo_by_key == {"baseline:b": 300}


def test_a_searched_trial_is_keyed_by_its_tune_id(job_store: JobStore) -> None:
    trial = FakeTrial("a1b2c3", _config())
    _play(_writer(job_store), trial, epoch_results(trial.config, epochs=1))
    row = _trial(job_store, "a1b2c3")
    assert (row.name, row.kind, row.config) == ("a1b2c3", "search", TRIAL_SPEC)


@pytest.mark.parametrize(
    ("final", "status", "error"),
    [
        ({"summary": {"status": "diverged"}}, "diverged", None),
        ({"error": "ValueError: bad data"}, "failed", "ValueError: bad data"),  # the trainable's sentence
    ],
)
def test_the_final_result_decides_the_ending(
    job_store: JobStore, final: dict[str, Any], status: str, error: str | None
) -> None:
    trial = FakeTrial("t1", _config("fixed:0"))
    results = epoch_results(trial.config, epochs=2)
    results[-1] = {**results[-1], "summary": None, **final}
    _play(_writer(job_store), trial, results)
    row = _trial(job_store, "fixed:0")
    assert (row.status, row.error) == (status, error)


def test_a_diverged_epochs_non_finite_values_are_stored_as_null(job_store: JobStore) -> None:
    trial = FakeTrial("t1", _config("fixed:0"))
    results = epoch_results(trial.config, epochs=2)
    results[1] = {**results[1], "grad_norm": math.nan, "train_loss": math.inf}
    _play(_writer(job_store), trial, results)
    with session_scope(job_store.factory) as s:
        last = repo.list_metrics(s, trial_id=_trial(job_store, "fixed:0").id)[-1]
    assert (last.record["grad_norm"], last.record["train_loss"]) == (None, None)


@pytest.mark.parametrize(
    ("reason", "status", "error"),
    [
        (None, "pruned", None),  # stopped by the early-stopping scheduler
        ("cancel", "cancelled", "job cancelled"),
        ("budget", "pruned", "job SFO budget (budget.total_sfo) exhausted"),
    ],
)
def test_a_trial_stopped_from_outside_is_pruned_or_cancelled_with_a_summary_of_its_epochs(
    job_store: JobStore, reason: str | None, status: str, error: str | None
) -> None:
    trial = FakeTrial("t1", _config())
    results = epoch_results(trial.config, epochs=3)[:2]  # two epochs, no final result
    _play(_writer(job_store, reason), trial, results)
    row = _trial(job_store, "t1")
    assert (row.status, row.error) == (status, error)
    assert row.summary is not None
    assert (row.summary["status"], row.summary["total_sfo"], row.summary["min_grad_norm"]) == (
        "stopped",
        200,
        0.5,
    )


def test_a_trial_tune_gave_up_on_fails_with_the_last_line_of_its_error(
    job_store: JobStore, tmp_path: Path
) -> None:
    error_file = tmp_path / "error.txt"
    error_file.write_text(
        f'Traceback (most recent call last):\n  File "{tmp_path}/x.py"\nRuntimeError: node lost\n'
    )
    writer = _writer(job_store)
    trial = FakeTrial("t1", _config(), error_file=str(error_file))
    _play(writer, trial, epoch_results(trial.config, epochs=1)[:1], complete=False)
    writer.on_trial_error(0, [trial], trial)
    row = _trial(job_store, "t1")
    assert (row.status, row.error) == (
        "failed",
        "the trial failed after its retries: RuntimeError: node lost",
    )
    assert _epochs(job_store, row) == [1]


def test_overhead_is_measured_per_finished_trial(job_store: JobStore) -> None:
    writer = _writer(job_store)
    for i in range(2):
        trial = FakeTrial(f"t{i}", _config())
        _play(writer, trial, epoch_results(trial.config, epochs=1))
    summary = writer.overhead_summary(fit_wall_s=1.0, slots=2)
    assert summary["trials_measured"] == 2 and summary["slots"] == 2
    assert summary["in_trial_max_s"] >= summary["in_trial_mean_s"] >= 0.0
    assert writer.overhead_summary(fit_wall_s=1.0, slots=2) == summary  # reading does not consume


def test_the_stopper_stops_for_the_total_budget_and_for_a_cancel(job_store: JobStore) -> None:
    spent = {"sfo": 0}
    stopper = JobStopper(job_store, total_sfo=1000, spent=lambda: spent["sfo"], poll_s=0.0)
    assert not stopper.stop_all() and stopper.reason is None
    spent["sfo"] = 1000
    assert stopper.stop_all() and stopper.reason == "budget"

    cancelled = JobStopper(job_store, total_sfo=None, spent=lambda: 0, poll_s=0.0)
    job_store.mark_running()
    with session_scope(job_store.factory) as s:
        repo.request_cancel(s, job_id=job_store.job_id)
    assert cancelled.stop_all() and cancelled.reason == "cancel"
    assert cancelled("t1", {}) is False  # never stops a single trial
