"""Pure logic of the workers: the job space as Optuna define-by-run, grid and given points, ASHA rungs, the
objective the searcher sees, the restart plan and the Optuna storage URL. No Ray cluster needed."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest

from schedules.space import distributions
from service.jobspec import JobSpec, expand_job
from service.storage.models import Trial
from tests.workers.helpers import job_spec
from workers.driver import optuna_storage_url, plan_job
from workers.search import asha_rungs
from workers.space import JobSpace, given_points
from workers.trainable import ObjectiveTracker

TWO_FAMILIES: list[dict[str, Any]] = [
    {
        "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
        "lr": {"family": "constant", "lr0": {"loguniform": [0.1, 1.0]}},
    },
    {
        "batch_size": {"family": "exp_growth", "b0": 16, "factor": {"uniform": [1.5, 3.0]}, "interval": 2},
        "lr": {"family": "constant", "lr0": 0.5},
    },
]
FIXED: dict[str, Any] = {
    "batch_size": {"family": "constant", "b0": 64},
    "lr": {"family": "constant", "lr0": 0.2},
}


def _space(candidates: list[dict[str, Any]], momentum: Any) -> JobSpace:
    """The job space of SMALL_JOB with these candidates and momentum (no baselines)."""
    optimizer = {"name": "nshb", "momentum": momentum}
    body = job_spec(space=candidates, optimizer=optimizer, baselines=[])
    return JobSpace(expand_job(JobSpec.model_validate(body)))


def _ask(space: JobSpace, seed: int = 0, n: int = 8) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(config, Optuna params) of n define-by-run trials on an in-memory study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((space(trial), trial.params))
        study.tell(trial, 1.0)
    return out


def test_family_choice_comes_first_and_conditions_the_parameters() -> None:
    space = _space([*TWO_FAMILIES, FIXED], 0.9)
    assert len(space.candidates) == 2  # the fixed candidate is a given point, not searched
    seen = set()
    for config, params in _ask(space, n=12):
        label = params["candidate"]
        index = int(label.split(":")[0])
        seen.add(index)
        names = set(params) - {"candidate"}
        # only the chosen family's parameters exist, named with its index
        assert names == {f"{index}.{name}" for name, _ in distributions(TWO_FAMILIES[index])}
        trial = config["trial"]  # the trial spec
        assert trial["schedule"]["batch_size"]["family"] == TWO_FAMILIES[index]["batch_size"]["family"]
        assert trial["optimizer"]["momentum"] == 0.9 and config["_kind"] == "search"
    assert seen == {0, 1}


def test_one_candidate_has_unprefixed_names_and_a_searched_momentum() -> None:
    space = _space(TWO_FAMILIES[:1], {"uniform": [0.8, 0.95]})
    for config, params in _ask(space, n=4):
        assert set(params) == {"batch_size.b0", "lr.lr0", "optimizer.momentum"}
        trial = config["trial"]
        assert 0.8 <= trial["optimizer"]["momentum"] <= 0.95
        assert trial["schedule"]["batch_size"]["b0"] in (16, 32)
        assert 0.1 <= trial["schedule"]["lr"]["lr0"] <= 1.0


def test_same_seed_same_suggestions() -> None:
    space = _space(TWO_FAMILIES, 0.9)
    assert _ask(space, seed=3) == _ask(space, seed=3)
    assert _ask(space, seed=3) != _ask(space, seed=4)


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (100, 6),  # the full grid: b0 in {16, 32} x momentum choice of 3
        (4, 4),  # thinned evenly to the limit
    ],
)
def test_grid_enumerates_discrete_values(limit: int, expected: int) -> None:
    candidate = {
        "batch_size": {"family": "constant", "b0": {"choice": [16, 32]}},
        "lr": {"family": "constant", "lr0": 0.5},
    }
    points = _space([candidate], {"choice": [0.0, 0.5, 0.9]}).grid(limit)
    assert len(points) == expected
    assert len({p.key for p in points}) == expected
    pairs = {(p.schedule["batch_size"]["b0"], p.momentum) for p in points}
    assert len(pairs) == expected  # no duplicates
    if expected == 6:
        assert pairs == {(b, m) for b in (16, 32) for m in (0.0, 0.5, 0.9)}


def test_fixed_points_are_baselines_then_fixed_candidates() -> None:
    body = job_spec(space=[TWO_FAMILIES[0], FIXED], baselines=[{"name": "paper-a", **FIXED}])
    points = given_points(expand_job(JobSpec.model_validate(body)))
    assert [(p.key, p.kind) for p in points] == [("baseline:paper-a", "baseline"), ("fixed:1", "search")]
    assert points[0].config()["_key"] == "baseline:paper-a"


def test_with_a_searched_momentum_every_candidate_is_searched_and_baselines_run_at_its_center() -> None:
    """A fixed candidate still has its momentum to search. (Next to a candidate with distributions it used
    to be neither searched nor run.)"""
    body = job_spec(
        space=[TWO_FAMILIES[0], FIXED],
        optimizer={"momentum": {"choice": [0.5, 0.8, 0.9]}},
        baselines=[{"name": "b", **FIXED}],
    )
    job = expand_job(JobSpec.model_validate(body))
    assert JobSpace(job).candidates == (TWO_FAMILIES[0], FIXED)
    assert [(p.key, p.momentum) for p in given_points(job)] == [("baseline:b", 0.8)]


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
    ("objective", "norms", "expected"),
    [
        ("sfo_to_target", [0.5, 0.05, 0.01], 200.0),  # reached at the second epoch (sfo 200)
        ("sfo_to_target", [0.5, 0.2], 2 * 1000 * (1 + math.log10(0.2 / 0.1))),  # penalty by the best norm
        ("sfo_to_target", [0.5, math.nan], 100 * 1000),  # diverged: far above any penalty
        ("final_grad_norm", [0.5, 0.2], 0.2),  # the current norm
    ],
)
def test_objective_tracker(objective: str, norms: list[float], expected: float) -> None:
    tracker = ObjectiveTracker(objective, target=0.1, cap_sfo=1000)
    value = math.nan
    for i, norm in enumerate(norms, start=1):
        value = tracker.update(
            {"sfo": 100 * i, "grad_norm": None if math.isnan(norm) else norm, "test_acc": 0.5}
        )
    assert value == pytest.approx(expected)


def test_penalty_orders_trials_by_closeness_to_the_target() -> None:
    close, far = ObjectiveTracker("sfo_to_target", 0.1, 1000), ObjectiveTracker("sfo_to_target", 0.1, 1000)
    assert close.update({"sfo": 100, "grad_norm": 0.15}) < far.update({"sfo": 100, "grad_norm": 0.9})
    assert close.value() > 1000  # above any SFO that reaches the target within the budget


def _trial(key: str, status: str, kind: str = "search") -> Trial:
    return Trial(
        trial_key=key,
        status=status,
        kind=kind,
        name=key,
        config={"schedule": FIXED, "momentum": 0.9, "params": {}},
    )


def test_plan_skips_finished_trials_and_restarts_unfinished_ones() -> None:
    spec = expand_job(JobSpec.model_validate(job_spec(search={"num_trials": 4})))
    fresh = plan_job(spec, [])
    assert [p.key for p in fresh.given] == ["baseline:constant-32"]
    assert (fresh.n_search, fresh.trials_total, fresh.restarted) == (4, 5, 0)

    existing = [
        _trial("baseline:constant-32", "succeeded", "baseline"),  # finished: never again
        _trial("a1", "succeeded"),
        _trial("a2", "pruned"),
        _trial("a3", "running"),  # unfinished: restarted with its stored config and key
    ]
    plan = plan_job(spec, existing)
    assert [(p.key, p.schedule) for p in plan.given] == [("a3", FIXED)]
    assert (plan.n_search, plan.trials_total, plan.restarted) == (1, 5, 1)  # 4 - 2 finished - 1 restarted


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/schedsearch.db", "sqlite:///data/schedsearch-optuna.db"),  # a sibling file
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db?options=-csearch_path%3Doptuna"),
    ],
)
def test_optuna_storage_is_apart_from_the_service_tables(url: str, expected: str) -> None:
    assert optuna_storage_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql+psycopg://user:password@db.internal:5432/prod",
            {"study": "schedsearch-job-1", "where": "the optuna schema of the service's PostgreSQL database"},
        ),
        (
            "sqlite:////srv/schedsearch/schedsearch.db",
            {"study": "schedsearch-job-1", "where": "the -optuna file next to the service's SQLite database"},
        ),
    ],
)
def test_the_job_summary_names_the_study_not_the_storage(url: str, expected: dict[str, str]) -> None:
    """The summary is shown to the job's owner: the study's name and where it lives in words, never the
    database's user, host, name, password or file path."""
    from workers.driver import optuna_summary

    summary = optuna_summary(url, "schedsearch-job-1")
    assert summary == expected
    for secret in ("user", "password", "db.internal", "prod", "/srv"):
        assert secret not in str(summary)


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
