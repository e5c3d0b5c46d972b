"""``workers/search.py`` driven by fake trials, as Ray's own scheduler tests do: given points then Optuna,
only the searcher's own trials reported back, ASHA that spares the baselines and its rungs, where the Optuna
study lives and its storage pickled without the URL, and the report errors the Optuna searcher goes on
through (``TOLERATED``) or not. No Ray cluster."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
import pytest
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher
from sqlalchemy.exc import OperationalError

from service.jobspec import JobSpec, expand_job
from service.settings import Settings
from tests.workers.doubles import FakeTrial
from tests.workers.helpers import job_spec
from workers.search import (
    EnvironmentRDBStorage,
    JobSearcher,
    SparingASHA,
    TolerantOptunaSearch,
    asha_rungs,
    make_scheduler,
    optuna_storage_url,
)
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


@pytest.mark.parametrize(
    ("max_t", "per_epoch", "n_search", "expected"),
    [
        (30_000, 1_000, 24, (30_000 / 9, 3.0)),  # many trials: rf 3, grace two rungs below max_t
        (8_000, 1_000, 4, (2_000, 2.0)),  # few trials: rf 2
        (3_000, 1_000, 4, (1_000, 2.0)),  # grace at least one epoch
        (1_000, 1_000, 4, None),  # one epoch of budget: nothing to stop early
        (30_000, 1_000, 1, None),  # a single searched trial: nothing to compare
    ],
)
def test_asha_rungs(max_t: float, per_epoch: float, n_search: int, expected: Any) -> None:
    assert asha_rungs(max_t, per_epoch, n_search) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/schedsearch.db", "sqlite:///data/schedsearch-optuna.db"),  # a sibling file
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db?options=-csearch_path%3Doptuna"),
    ],
)
def test_optuna_storage_is_apart_from_the_service_tables(url: str, expected: str) -> None:
    # The driver passes the settings' URL, normalised there (a plain postgresql:// uses psycopg 3).
    assert optuna_storage_url(Settings(database_url=url).resolved_database_url()) == expected


def test_the_optuna_storage_pickles_without_its_url_and_comes_back_from_the_environment(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tune pickles the searcher (study and storage inside) into files; the URL is not in the pickle, and
    unpickling takes it from SCHEDSEARCH_DATABASE_URL, as the driver does."""
    service_db = tmp_path / "pw-in-path-s3cr3t.db"  # stands in for a secret: the file name is in the URL
    url = optuna_storage_url(f"sqlite:///{service_db}")
    storage = EnvironmentRDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=1.0))
    blob = pickle.dumps(study)
    assert b"s3cr3t" not in blob
    monkeypatch.setenv("SCHEDSEARCH_DATABASE_URL", f"sqlite:///{service_db}")
    restored = pickle.loads(blob)
    assert [t.value for t in restored.trials] == [1.0]


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


def _searcher_whose_reports_raise(error: Exception) -> Any:
    def retry(work: Any) -> Any:
        raise error

    searcher = TolerantOptunaSearch(metric="objective", mode="min", retry=retry)
    searcher._ot_trials["t1"] = object()  # a trial Optuna proposed (the reports are for it)
    return searcher


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("finished", id="UpdateFinishedTrialError"),  # a late report after a restart
        pytest.param("storage", id="StorageInternalError"),  # Optuna's wrapper of a database fault
        pytest.param("database", id="OperationalError"),  # an outage past the retry window
    ],
)
def test_reports_for_a_finished_trial_or_through_an_outage_are_let_pass(error: str) -> None:
    raised = {
        "finished": optuna.exceptions.UpdateFinishedTrialError("trial 3 has already finished"),
        "storage": optuna.exceptions.StorageInternalError("An exception is raised during the commit."),
        "database": OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")),
    }[error]
    searcher = _searcher_whose_reports_raise(raised)
    searcher.on_trial_result("t1", {"objective": 1.0})
    searcher.on_trial_complete("t1", {"objective": 1.0})


def test_any_other_error_of_a_report_ends_the_driver() -> None:
    """A bug (here a ValueError) is not swallowed: the driver fails the job and logs it."""
    searcher = _searcher_whose_reports_raise(ValueError("a bug in the searcher"))
    with pytest.raises(ValueError, match="a bug"):
        searcher.on_trial_result("t1", {"objective": 1.0})
    with pytest.raises(ValueError, match="a bug"):
        searcher.on_trial_complete("t1", {"objective": 1.0})
