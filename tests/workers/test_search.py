"""The driver's searchers and scheduler (``workers.search``) driven by fake trials, as Ray's own scheduler
tests do: given points then Optuna, only the searcher's own trials reported back, ASHA that spares the
baselines, and the exceptions the Optuna searcher goes on through. No Ray cluster."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from service.jobspec import JobSpec, expand_job
from tests.workers.doubles import FakeTrial
from tests.workers.helpers import job_spec
from workers.search import JobSearcher, SparingASHA, TolerantOptunaSearch, make_scheduler
from workers.space import JobSpace

CANDIDATE = {
    "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
    "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 1.0]}},
}


class Inner(Searcher):
    """A searcher that suggests numbered configs and records what it is told."""

    def __init__(self) -> None:
        super().__init__(metric="objective", mode="min")
        self.results: list[str] = []
        self.completed: list[str] = []
        self.count = 0

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self.count += 1
        return {"n": self.count}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.results.append(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.completed.append(trial_id)


def test_given_configs_come_first_then_the_inner_searchers_then_finished() -> None:
    inner = Inner()
    searcher = JobSearcher([{"g": 1}, {"g": 2}], inner, 2, metric="objective", mode="min")
    assert [searcher.suggest(f"t{i}") for i in range(5)] == [
        {"g": 1},
        {"g": 2},
        {"n": 1},
        {"n": 2},
        Searcher.FINISHED,
    ]
    assert searcher.total == 4


def test_only_the_inner_searchers_trials_are_reported_to_it() -> None:
    inner = Inner()
    searcher = JobSearcher([{"g": 1}], inner, 1, metric="objective", mode="min")
    searcher.suggest("given")
    searcher.suggest("searched")
    for trial_id in ("given", "searched"):
        searcher.on_trial_result(trial_id, {"objective": 1.0})
        searcher.on_trial_complete(trial_id, {"objective": 1.0})
    assert (inner.results, inner.completed) == (["searched"], ["searched"])  # baselines stay out of Optuna


def test_without_an_inner_searcher_only_the_given_configs_run() -> None:
    searcher = JobSearcher([{"g": 1}], None, 5, metric="objective", mode="min")
    assert [searcher.suggest("a"), searcher.suggest("b")] == [{"g": 1}, Searcher.FINISHED]


def test_the_searcher_state_survives_a_save_and_restore(tmp_path: Path) -> None:
    searcher = JobSearcher([{"g": 1}, {"g": 2}], None, 0, metric="objective", mode="min")
    searcher.suggest("a")
    searcher.save(str(tmp_path / "state.pkl"))
    restored = JobSearcher([], None, 0, metric="objective", mode="min")
    restored.restore(str(tmp_path / "state.pkl"))
    assert restored.suggest("b") == {"g": 2}


def _asha(spare_from: float = 1e9) -> SparingASHA:
    scheduler = make_scheduler(early_stopping=True, max_t=8000, per_epoch=1000, n_search=4)
    assert isinstance(scheduler, SparingASHA)  # rungs at 2000, 4000 SFO (reduction factor 2)
    scheduler.spare_from = spare_from
    return scheduler


def _report(scheduler: SparingASHA, trial: FakeTrial, sfo: float, grad_norm: float) -> str:
    decision: str = scheduler.on_trial_result(None, trial, {"sfo": sfo, "grad_norm": grad_norm})
    return decision


def _rung_of_three(scheduler: SparingASHA) -> None:
    for i, norm in enumerate((0.3, 0.2, 0.1)):  # each as good as the rung so far
        trial = FakeTrial(f"good{i}", {"_kind": "search"})
        scheduler.on_trial_add(None, trial)
        assert _report(scheduler, trial, 2000, norm) == TrialScheduler.CONTINUE


@pytest.mark.parametrize(
    ("kind", "spare_from", "expected"),
    [
        ("search", 1e9, TrialScheduler.STOP),  # a weak searched trial at the first rung
        ("baseline", 1e9, TrialScheduler.CONTINUE),  # the yardstick is never stopped
        ("search", 2000, TrialScheduler.CONTINUE),  # in its last epoch: stopping it saves nothing
    ],
)
def test_asha_stops_weak_searched_trials_only(kind: str, spare_from: float, expected: str) -> None:
    scheduler = _asha(spare_from)
    _rung_of_three(scheduler)
    weak = FakeTrial("weak", {"_kind": kind})
    scheduler.on_trial_add(None, weak)
    assert _report(scheduler, weak, 2000, 0.9) == expected


def test_no_early_stopping_is_fifo() -> None:
    assert not isinstance(
        make_scheduler(early_stopping=False, max_t=8000, per_epoch=1000, n_search=4), SparingASHA
    )


def _optuna_searcher() -> TolerantOptunaSearch:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = JobSpace(expand_job(JobSpec.model_validate(job_spec(space=[CANDIDATE]))))
    return TolerantOptunaSearch(
        space=space, metric="objective", mode="min", sampler=optuna.samplers.RandomSampler(seed=0)
    )


def test_optuna_suggests_a_trial_spec_and_links_its_trial_to_the_key() -> None:
    searcher = _optuna_searcher()
    config = searcher.suggest("abc123")
    assert config is not None
    assert config["trial"]["schedule"]["batch_size"]["b0"] in (16, 32)  # the trial spec
    assert {"batch_size.b0", "lr.lr0"} <= set(config)  # Optuna's raw values, which stay in its study
    (study_trial,) = searcher._ot_study.get_trials()
    assert study_trial.user_attrs == {"trial_key": "abc123"}
    assert pickle.loads(pickle.dumps(searcher)) is not None  # Tune pickles the searcher


def test_a_late_result_for_a_trial_optuna_finished_is_ignored() -> None:
    searcher = _optuna_searcher()
    searcher.suggest("t1")
    searcher._ot_study.tell(searcher._ot_trials["t1"], state=optuna.trial.TrialState.FAIL)  # a restart did
    searcher.on_trial_result("t1", {"objective": 1.0, "training_iteration": 1})  # UpdateFinishedTrialError
    searcher.on_trial_result("unknown", {"objective": 1.0, "training_iteration": 1})  # not its trial


def test_any_other_error_of_the_optuna_searcher_is_raised() -> None:
    searcher = _optuna_searcher()
    searcher.suggest("t1")
    with pytest.raises(KeyError):  # a result without the metric: a bug, not something to go on through
        searcher.on_trial_result("t1", {"training_iteration": 1})
