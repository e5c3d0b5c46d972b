"""Tune search algorithm and scheduler for a job: given points first, then Optuna; ASHA that spares baselines.

- ``JobSearcher`` hands out the given points (baselines, fixed candidates, grid points, trials restarted
  after a dispatcher or driver crash) and then asks the inner searcher (``OptunaSearch`` with TPE or random
  sampling) for ``n_search`` more. Only the inner searcher's own trials are reported back to it, so the
  baselines do not leak into the Optuna study.
- ``TolerantOptunaSearch`` ignores late reports for trials Optuna already considers finished (Optuna raises
  ``UpdateFinishedTrialError``), which otherwise crash the Tune driver after a restart, and a database
  outage longer than its retries; nothing else (``TOLERATED``).
- ``make_scheduler`` builds ASHA with SFO as its clock: trials are compared by gradient norm at equal SFO.
  Baselines are never stopped early (they are the yardstick), but their results still shape the rungs.
- ``ScheduleAwareScheduler`` (built by ``make_schedule_aware_scheduler``) is the Tune adapter of the
  schedule-aware rule of ``workers.stopping``; the trials it stops go into a shared ``pruned`` set that
  ``TolerantOptunaSearch(pruned=...)`` reads, so that Optuna records them PRUNED, not COMPLETE.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

import optuna
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch
from sqlalchemy.engine import make_url

from schedules.spec import Horizon
from service.storage.db import DATABASE_FAULTS
from workers.stopping import ScheduleAwareStopping, ScheduleFacts, StoppingConfig, schedule_aware_config

logger = logging.getLogger(__name__)
T = TypeVar("T")


def optuna_storage_url(database_url: str) -> str:
    """Where the job's Optuna studies live, next to the service's tables but apart from them (both use a
    table named ``trials``): a sibling SQLite file ``<name>-optuna.db``, or the ``optuna`` schema of the
    same PostgreSQL database. ``optuna-dashboard <this URL>`` opens it. ``database_url`` is the settings'
    ``resolved_database_url()`` (already a SQLAlchemy URL)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        db = Path(url.database or "schedsearch.db")
        return str(url.set(database=str(db.with_name(f"{db.stem}-optuna{db.suffix or '.db'}"))))
    if url.get_backend_name() == "postgresql":
        return url.update_query_dict({"options": "-csearch_path=optuna"}).render_as_string(
            hide_password=False
        )
    return str(url.render_as_string(hide_password=False))


class EnvironmentRDBStorage(optuna.storages.RDBStorage):
    """Optuna's database storage, pickled without its URL.

    Tune pickles the searcher, with the Optuna study and its storage inside, into ``tuner.pkl`` and
    ``searcher-state-*.pkl``, both in the experiment folder and in Ray's driver artifacts: the URL there put
    the database password on disk (mode 0644, under a world-writable temp directory). Unpickled, the storage
    takes the URL from the process's environment (``SCHEDSEARCH_DATABASE_URL``), as the driver itself does.
    """

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = None
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        from service.settings import Settings

        super().__setstate__({**state, "url": optuna_storage_url(Settings().resolved_database_url())})


def _at_once(work: Callable[[], T]) -> T:
    return work()


#: What the searcher goes on through, deliberately; anything else is a bug and ends the driver. A late
#: report for a trial Optuna has already finished (``UpdateFinishedTrialError``: a restarted driver marks the
#: Optuna trials of the dead one FAIL, and Tune may still deliver their results), and a database outage
#: that outlasted the retries (a ``DATABASE_FAULTS`` error, or Optuna's ``StorageInternalError`` wrapping
#: one): Optuna then misses one value, the trial's row in the service's database still has it.
TOLERATED: tuple[type[Exception], ...] = (
    optuna.exceptions.UpdateFinishedTrialError,
    optuna.exceptions.StorageInternalError,
    *DATABASE_FAULTS,
)


class TolerantOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that goes on through what should not end a job (``TOLERATED``); its storage calls
    wait out a database outage through ``retry`` (the driver passes its store's ``retrying``: up to the
    lease, one log line at each end). Each Optuna trial records the service's trial key (the Tune trial id)
    as its ``trial_key`` user attribute, which links the raw values Optuna drew (shown by optuna-dashboard)
    to the trial's row, whose ``config`` holds the trial spec built from them.

    ``pruned``: ids of trials a scheduler stopped early (``ScheduleAwareScheduler.pruned``, the same
    object). Tune completes a stopped trial with its last result, which ``OptunaSearch`` would tell Optuna
    as COMPLETE with that result's value (a penalty); a trial in ``pruned`` is told as PRUNED instead, its
    intermediate values already recorded."""

    def __init__(
        self,
        *args: Any,
        retry: Callable[[Callable[[], Any]], Any] = _at_once,
        pruned: Collection[str] = (),
        **kwargs: Any,
    ) -> None:
        self._retry = retry
        self._pruned = pruned
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        suggested: dict[str, Any] | None = self._retry(lambda: OptunaSearch.suggest(self, trial_id))
        ot_trial = self._ot_trials.get(trial_id)
        if suggested is not None and ot_trial is not None:
            self._retry(lambda: ot_trial.set_user_attr("trial_key", trial_id))
        return suggested

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id not in self._ot_trials:
            return
        try:
            self._retry(lambda: OptunaSearch.on_trial_result(self, trial_id, result))
        except TOLERATED as exc:
            logger.warning("optuna: ignoring a result of trial %s: %s", trial_id, type(exc).__name__)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self._ot_trials:
            return
        if not error and trial_id in self._pruned:
            result = None  # OptunaSearch tells a completion without a value as PRUNED
        try:
            self._retry(lambda: OptunaSearch.on_trial_complete(self, trial_id, result=result, error=error))
        except TOLERATED as exc:
            logger.warning("optuna: ignoring the completion of trial %s: %s", trial_id, type(exc).__name__)


class JobSearcher(Searcher):
    """Given configs first (in order), then up to ``n_search`` suggestions of ``inner``."""

    def __init__(
        self,
        given: Sequence[dict[str, Any]],
        inner: Searcher | None,
        n_search: int,
        *,
        metric: str,
        mode: str,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.given = [dict(c) for c in given]
        self.next_given = 0
        self.inner = inner
        self.n_search_left = n_search if inner is not None else 0
        self.inner_trials: set[str] = set()

    @property
    def total(self) -> int:
        return len(self.given) + self.n_search_left + len(self.inner_trials)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return True  # metric and mode are fixed at construction; the space is ours

    def suggest(self, trial_id: str) -> dict[str, Any] | None:  # or Searcher.FINISHED (a str)
        if self.next_given < len(self.given):
            config = dict(self.given[self.next_given])
            self.next_given += 1
            return config
        if self.inner is None or self.n_search_left <= 0:
            return Searcher.FINISHED  # type: ignore[return-value]
        suggested = self.inner.suggest(trial_id)
        if suggested is None or suggested == Searcher.FINISHED:
            return suggested
        self.n_search_left -= 1
        self.inner_trials.add(trial_id)
        return dict(suggested)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if self.inner is not None and trial_id in self.inner_trials:
            self.inner.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if self.inner is not None and trial_id in self.inner_trials:
            self.inner.on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class SparingASHA(ASHAScheduler):
    """ASHA that never stops baseline trials (config ``_kind == "baseline"``), nor a trial in its last epoch
    (``sfo >= spare_from``): stopping it there saves nothing and loses the trainer's own summary."""

    def __init__(self, *, spare_from: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spare_from = spare_from

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if trial.config.get("_kind") == "baseline" or float(result.get("sfo") or 0) >= self.spare_from:
            return TrialScheduler.CONTINUE
        return decision


def asha_rungs(max_t: float, per_epoch: float, n_search: int) -> tuple[float, float] | None:
    """(grace_period, reduction_factor) in SFO for ASHA, or None when early stopping cannot help.

    reduction_factor 3 when there are enough trials for three rungs of survivors (>= 9), else 2; the grace
    period is max_t / rf^2 (so two rungs below max_t) but at least one epoch of SFO.

    >>> asha_rungs(30_000, 1_000, 24)
    (3333.33..., 3)   # rungs at 3.3k and 10k SFO
    """
    if n_search < 2 or max_t <= per_epoch:
        return None
    rf = 3.0 if n_search >= 9 else 2.0
    grace = max(max_t / rf**2, per_epoch)
    if grace >= max_t:
        return None
    return grace, rf


def make_scheduler(*, early_stopping: bool, max_t: float, per_epoch: float, n_search: int) -> TrialScheduler:
    rungs = asha_rungs(max_t, per_epoch, n_search) if early_stopping else None
    if rungs is None:
        return FIFOScheduler()
    grace, rf = rungs
    return SparingASHA(
        time_attr="sfo",
        metric="grad_norm",
        mode="min",
        # ASHA stops a trial that reaches max_t itself; one epoch of headroom lets trials end on their own
        # (with the trainer's summary) while the rungs stay where the budget puts them.
        max_t=math.ceil(max_t + per_epoch),
        spare_from=max_t - per_epoch / 2,
        grace_period=max(int(grace), 1),
        reduction_factor=rf,
    )


class ScheduleAwareScheduler(FIFOScheduler):
    """Tune adapter of ``workers.stopping.ScheduleAwareStopping``: each epoch result of a searched trial goes
    to the rule with the facts of the trial's schedule (``config["schedule"]`` over ``max_epochs`` epochs of
    n_train, read off the first result as sfo / epoch); the rule's stop is Tune's STOP.

    Baselines (``config["_kind"] == "baseline"``) are the yardstick: never stopped and not shown to the
    rule. The trainable's closing report (``final``) carries no new epoch and is not shown either. Every
    trial stopped early is added to ``pruned`` (pass the same set to ``TolerantOptunaSearch``); a diverged
    one is stopped but not added: divergence is a result, told to Optuna as completed with the
    objective's worst value (``ObjectiveTracker``: 100 x cap)."""

    def __init__(self, config: StoppingConfig, *, max_epochs: int, pruned: set[str] | None = None) -> None:
        super().__init__()
        self.rule = ScheduleAwareStopping(config)
        self.max_epochs = max_epochs
        self.pruned: set[str] = pruned if pruned is not None else set()
        self._facts: dict[str, ScheduleFacts] = {}

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        if trial.config.get("_kind") == "baseline" or result.get("final"):
            return TrialScheduler.CONTINUE
        facts = self._facts.get(trial.trial_id)
        if facts is None:
            epoch, sfo = int(result.get("epoch") or 0), float(result.get("sfo") or 0)
            if epoch < 1 or sfo <= 0:
                return TrialScheduler.CONTINUE  # no epoch yet: nothing to judge
            n_train = max(round(sfo / epoch), 1)
            facts = ScheduleFacts.from_schedule(
                trial.config["schedule"], Horizon(epochs=self.max_epochs, n_train=n_train)
            )
            self._facts[trial.trial_id] = facts
        decision = self.rule.on_result(trial.trial_id, facts, result)
        if not decision.stop:
            return TrialScheduler.CONTINUE
        logger.info("early stopping: trial %s %s", trial.trial_id, decision.reason)
        if decision.kind != "diverged":  # diverged is a result: completed with the worst objective
            self.pruned.add(trial.trial_id)
        return TrialScheduler.STOP


def make_schedule_aware_scheduler(
    *,
    max_t: float,
    per_epoch: float,
    max_epochs: int,
    n_search: int,
    target: float | None,
    objective: str,
    pruned: set[str] | None = None,
) -> TrialScheduler:
    """The schedule-aware rule for a job (``workers.stopping.schedule_aware_config``): rungs below ``max_t``
    SFO, capping only when the objective is ``sfo_to_target``; FIFO when there is nothing to compare (fewer
    than 2 searched trials, or a budget of one epoch)."""
    if n_search < 2 or max_t <= per_epoch:
        return FIFOScheduler()
    capped = objective == "sfo_to_target" and target is not None
    config = schedule_aware_config(budget_sfo=max_t, sfo_per_epoch=per_epoch, target=target, cap=capped)
    return ScheduleAwareScheduler(config, max_epochs=max_epochs, pruned=pruned)
