"""Test doubles for the workers' unit tests: Tune's side of the driver's objects, in this process and
without a Ray cluster, and a job's store on the parametrized database.

``FakeTrial`` carries what Tune's callbacks, searchers and schedulers read of a trial, as Ray's own scheduler
tests build trials; ``FakeTuner`` is Tune's loop reduced to what the driver's objects see: it asks the
searcher for configs until it is finished (or the stopper stops everything) and plays each trial's results
through the searcher and the results writer, in Tune's order of events.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ray.tune.search import Searcher
from sqlalchemy.orm import Session, sessionmaker

from schedules.metrics import EpochRecord
from service.storage import repository as repo
from service.storage.db import session_scope
from tests.workers.helpers import job_spec
from workers.store import JobStore


@dataclass
class FakeTrial:
    trial_id: str
    config: dict[str, Any]
    error_file: str | None = None
    error_msg: str | None = None


def epoch_results(config: dict[str, Any], *, epochs: int, sfo_per_epoch: int = 100) -> list[dict[str, Any]]:
    """The results a trainable reports for ``config``: one per epoch (an ``EpochRecord`` plus the objective),
    then the final one with the trainer's summary; gradient norms fall as 1/epoch, SFO grows by
    ``sfo_per_epoch``."""
    out: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        record = EpochRecord(
            epoch=epoch,
            step=epoch * 10,
            sfo=epoch * sfo_per_epoch,
            lr=0.1,
            batch_size=sfo_per_epoch // 10,
            train_loss=1.0 / epoch,
            full_loss=1.0 / epoch,
            grad_norm=1.0 / epoch,
            test_loss=1.0 / epoch,
            test_acc=0.5,
        )
        result = {**record.to_json(), "objective": float(record.sfo), "final": False}
        out.append({**result, "training_iteration": epoch})
    last = out[-1]
    summary = {"status": "completed", "stop_reason": "max_epochs", "total_sfo": last["sfo"]}
    final = {"final": True, "summary": summary, "train_wall_s": 0.0, "training_iteration": epochs + 1}
    out.append({**last, **final})  # Tune counts the final report as one more iteration
    return out


@dataclass
class FakeTuner:
    """``tune.Tuner`` for the driver's unit tests: ``fit()`` runs every trial one after another."""

    searcher: Any
    writer: Any
    stopper: Any
    results: Callable[[FakeTrial], list[dict[str, Any]]]
    trials: list[FakeTrial] = field(default_factory=list)

    def fit(self) -> None:
        while not self.stopper.stop_all():
            trial_id = f"fake{len(self.trials):05d}"
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                break
            trial = FakeTrial(trial_id, config)
            self.trials.append(trial)
            self.writer.on_trial_start(0, self.trials, trial)
            results = self.results(trial)
            for result in results:
                self.searcher.on_trial_result(trial_id, result)
                self.writer.on_trial_result(0, self.trials, trial, result)
            last = results[-1] if results else None
            self.searcher.on_trial_complete(trial_id, result=last)
            self.writer.on_trial_complete(0, self.trials, trial)
        self.writer.on_experiment_end(self.trials)


@pytest.fixture
def job_store(session_factory: sessionmaker[Session]) -> JobStore:
    """A ``JobStore`` of a queued SMALL_JOB (``tests.workers.helpers``) on the ``db_url`` database. Import it
    into a test module (``from tests.workers.doubles import job_store as job_store``)."""
    with session_scope(session_factory) as s:
        owner = repo.get_or_create_user(s, name="alice")
        spec = job_spec()
        job, _ = repo.create_job(
            s, owner_id=owner.id, name=spec["name"], spec=spec, objective="sfo_to_target"
        )
        job_id = job.id
    return JobStore(session_factory, job_id)
