"""What the driver and the trainable know of the job's task without loading it: n from its definition, the
per-trial SFO budget (also when n is known only once the data is loaded), and one sentence when the
workers lack the task."""

from __future__ import annotations

import math
from typing import Any

import pytest

from schedules.spec import SpecError
from schedules.tasks import TaskUnavailable, catalogue
from service.jobspec import JobSpec
from tests.support import toy_tasks
from tests.workers.helpers import Db, job_spec
from workers.driver import SfoBudget, sfo_budget, task_n_train
from workers.trainable import ObjectiveTracker, trial_error


@pytest.mark.parametrize(
    ("max_sfo", "n_train", "expected"),
    [
        (5000, 1347, SfoBudget(cap_sfo=5000.0, per_epoch=500.0)),  # the job's cap wins
        (None, 1347, SfoBudget(cap_sfo=13_470.0, per_epoch=1347.0)),  # 10 full epochs of n
        (5000, None, SfoBudget(cap_sfo=5000.0, per_epoch=500.0)),  # n unknown but not needed
    ],
)
def test_sfo_budget(max_sfo: int | None, n_train: int | None, expected: SfoBudget) -> None:
    assert sfo_budget(max_epochs=10, max_sfo=max_sfo, n_train=n_train) == expected


def test_unknown_n_without_max_sfo_turns_early_stopping_off_and_says_so() -> None:
    budget = sfo_budget(max_epochs=10, max_sfo=None, n_train=None)
    assert (budget.cap_sfo, budget.per_epoch) == (None, None)
    assert budget.note is not None and "early stopping is off" in budget.note


def test_the_driver_reads_n_from_the_definition_installed_here(monkeypatch: pytest.MonkeyPatch) -> None:
    assert task_n_train(JobSpec.model_validate(job_spec(task={"name": "digits-cnn"}))) == 1347
    toy_tasks.install(monkeypatch, toy_tasks.UNKNOWN_SIZE)
    assert task_n_train(JobSpec.model_validate(job_spec(task={"name": "toy-unknown-size"}))) is None


def test_a_task_the_workers_lack_is_one_sentence() -> None:
    spec = JobSpec.model_validate(job_spec(task={"name": "wine-mlp", "options": {"width": 8}}))
    with pytest.raises(TaskUnavailable) as info:
        task_n_train(spec)
    message = str(info.value)
    assert message == (
        "task.name names a task that cannot be used here: task 'wine-mlp' is not installed on the Ray "
        f"workers (installed there: {', '.join(catalogue().names)}); install the package that provides it in "
        "that image, got name='wine-mlp'"
    )
    assert "\n" not in message and trial_error(info.value) == message


def test_options_that_no_longer_fit_the_workers_definition_are_one_sentence() -> None:
    spec = JobSpec.model_validate(job_spec(task={"name": "digits-mlp", "options": {"hidden": 10**6}}))
    with pytest.raises(SpecError, match=r"^task.options.hidden must be an integer in \[1, 4096\]"):
        task_n_train(spec)


def test_a_bug_in_a_trial_is_one_sentence_without_its_traceback() -> None:
    # The traceback goes to the worker's log; the owner sees one sentence (issue 12, information exposure).
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError as exc:
        text = trial_error(exc)
    assert text == "ZeroDivisionError: division by zero"


def test_tracker_without_a_cap_takes_it_from_the_first_epoch() -> None:
    tracker = ObjectiveTracker("sfo_to_target", 0.1, None, max_epochs=10)
    assert tracker.value() == 100 * ObjectiveTracker.UNKNOWN_CAP  # failed before any epoch: the worst
    record: dict[str, Any] = {"epoch": 1, "sfo": 500, "grad_norm": 0.2}
    # cap = 500 SFO per epoch x 10 epochs, as if the driver had known n = 500
    assert tracker.update(record) == pytest.approx(2 * 5000 * (1 + math.log10(2)))
    known = ObjectiveTracker("sfo_to_target", 0.1, 5000)
    assert known.update(record) == tracker.value()


def test_the_driver_fails_such_a_job_with_that_sentence_before_starting_ray(sqlite_db: Db) -> None:
    from service.settings import Settings
    from workers.driver import run_job

    # As the API would have accepted it on a server where the plugin is installed.
    job_id = sqlite_db.create_job(job_spec(task={"name": "wine-mlp"}))
    assert run_job(Settings(database_url=sqlite_db.url), job_id) == "failed"
    job = sqlite_db.job(job_id)
    assert job.status == "failed"
    assert job.error is not None and "\n" not in job.error
    assert job.error.startswith("task.name names a task that cannot be used here: task 'wine-mlp' is not")
