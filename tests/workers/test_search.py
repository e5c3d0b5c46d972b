"""``workers/search.py``: ASHA's rungs, where the Optuna study lives, its storage pickled without the URL, and
which report errors the Optuna searcher lets pass. No Ray cluster needed."""

from __future__ import annotations

from typing import Any

import pytest

from service.settings import Settings
from workers.search import asha_rungs, optuna_storage_url


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
    import pickle

    import optuna

    from workers.search import EnvironmentRDBStorage

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


def _searcher_whose_reports_raise(error: Exception) -> Any:
    from workers.search import TolerantOptunaSearch

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
    import optuna
    from sqlalchemy.exc import OperationalError

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
