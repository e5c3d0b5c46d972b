"""Tune callbacks of a job's driver: the results writer and the cancel/budget stopper.

``ResultsWriter`` turns Tune's lifecycle events into database rows:

| Tune event | database |
|---|---|
| trial start | trial upserted by ``(job_id, trial_key)`` with its trial spec (``stored_config``), running |
| result (one per epoch) | buffered; flushed at most every ``flush_s`` as one transaction per batch |
| final result (``final=True``) | trial succeeded / diverged (trainer summary) or failed (error text) |
| trial complete without a final result | pruned (ASHA stopped it), or cancelled when the job is stopping |
| trial error (Tune gave up after FailureConfig retries) | failed with Tune's error text |

It also measures the per-trial overhead: wall time from Tune starting the trial to its completion minus the
time spent inside the training function (``train_wall_s`` of the final result).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ray.tune import Callback
from ray.tune.stopper import Stopper

from schedules.metrics import EpochRecord
from service.storage.states import TrialStatus
from workers.failures import scrub
from workers.space import TRIAL
from workers.store import JobStore, TrialUpdate

logger = logging.getLogger(__name__)

# Keys of a Tune result that are per-epoch trainer metrics and get stored: the fields of the EpochRecord, so
# a field added there is stored without a second list to keep in step.
RECORD_KEYS = tuple(f.name for f in fields(EpochRecord))


def trial_key(trial: Any) -> str:
    return str(trial.config.get("_key") or trial.trial_id)


def stored_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What ``trials.config`` stores of a Tune config: its trial spec JSON (``workers.space.TRIAL``) as
    given, so a stored trial reruns alone (``schedsearch train``). The searcher's raw values, which Optuna
    adds to the config, stay in the Optuna study (its trial's ``trial_key`` attribute names the row)."""
    trial = config.get(TRIAL)
    return dict(trial) if isinstance(trial, Mapping) else {}


@dataclass
class _Live:
    key: str
    started: float
    pending: TrialUpdate
    final: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)  # every epoch so far, for a pruned summary


class ResultsWriter(Callback):
    def __init__(
        self,
        store: JobStore,
        *,
        target_grad_norm: float | None,
        flush_s: float = 1.0,
        stopping: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.store = store
        self.target_grad_norm = target_grad_norm
        self.flush_s = flush_s
        self.stopping = stopping  # why the whole job is stopping ("cancel", "budget"), if it is
        self.overheads: list[float] = []
        self.train_walls: list[float] = []
        self.sfo_by_key: dict[str, int] = {}
        self._live: dict[str, _Live] = {}
        self._last_flush = 0.0

    # -- Tune hooks

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        key = trial_key(trial)
        config = trial.config
        self.store.start_trial(
            key=key,
            name=str(config.get("_name") or trial.trial_id),
            kind=str(config.get("_kind") or "search"),
            config=stored_config(config),
        )
        self._live[trial.trial_id] = _Live(key=key, started=time.monotonic(), pending=TrialUpdate(key=key))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        # Tune retries the trial from scratch (FailureConfig): its clock restarts; rows already written stay
        # and the replayed epochs are ignored by the (trial_id, epoch) key.
        live = self._live.get(trial.trial_id)
        if live is not None:
            live.started = time.monotonic()
        self.store.event("trial_retry", f"trial {trial_key(trial)} is retried after a failure")

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        live = self._live.get(trial.trial_id)
        if live is None:  # a result without a start event (should not happen): start it now
            self.on_trial_start(iteration, trials, trial)
            live = self._live[trial.trial_id]
        self._absorb(live, result)
        if live.final or time.monotonic() - self._last_flush >= self.flush_s:
            self._flush()

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        live = self._live.pop(trial.trial_id, None)
        if live is None:
            return
        if not live.final:
            # Stopped from outside the training function: by ASHA, or because the job is stopping.
            reason = self.stopping()
            live.pending.status = (TrialStatus.CANCELLED if reason == "cancel" else TrialStatus.PRUNED).value
            live.pending.error = {
                "cancel": "job cancelled",
                "budget": "job SFO budget (budget.total_sfo) exhausted",
            }.get(reason or "")
            live.pending.summary = self._partial_summary(live.records)
            train_wall = float(live.records[-1].get("wall_s") or 0.0) if live.records else 0.0
            self.train_walls.append(train_wall)
            self.overheads.append(max(time.monotonic() - live.started - train_wall, 0.0))
        self._flush(extra=[live.pending])

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        live = self._live.pop(trial.trial_id, None)
        key = live.key if live is not None else trial_key(trial)
        update = live.pending if live is not None else TrialUpdate(key=key)
        update.status = TrialStatus.FAILED.value
        update.error = _tune_error_text(trial)
        self._flush(extra=[update])

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if time.monotonic() - self._last_flush >= self.flush_s:
            self._flush()

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._flush()

    # -- internals

    def _absorb(self, live: _Live, result: Mapping[str, Any]) -> None:
        pending = live.pending
        if result.get("node_id"):
            pending.node_id = str(result["node_id"])
        if "epoch" in result and "sfo" in result and int(result["epoch"]) > 0 and not result.get("final"):
            record = {k: _jsonable(result.get(k)) for k in RECORD_KEYS if k in result}
            pending.records.append(record)
            live.records.append(record)
        if "sfo" in result:
            self.sfo_by_key[live.key] = max(self.sfo_by_key.get(live.key, 0), int(result["sfo"] or 0))
        if result.get("final"):
            live.final = True
            if result.get("error"):
                pending.status = TrialStatus.FAILED.value
                pending.error = str(result["error"])
            else:
                summary = dict(result.get("summary") or {})
                pending.summary = {k: _jsonable(v) for k, v in summary.items()}
                pending.status = (
                    TrialStatus.DIVERGED if summary.get("status") == "diverged" else TrialStatus.SUCCEEDED
                ).value
            train_wall = float(result.get("train_wall_s") or 0.0)
            self.train_walls.append(train_wall)
            self.overheads.append(max(time.monotonic() - live.started - train_wall, 0.0))

    def _partial_summary(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The trial summary of a trial stopped early, from the epochs it reported."""
        from schedules.metrics import summarize

        try:
            epochs = [EpochRecord.from_json(r) for r in records]
            summary = summarize(
                epochs, target_grad_norm=self.target_grad_norm, status="stopped", stop_reason="stopped"
            )
        except (TypeError, ValueError, KeyError) as exc:
            logger.warning("could not summarize a stopped trial: %s", exc)
            return None
        return {k: _jsonable(v) for k, v in summary.to_json().items()}

    def _flush(self, extra: list[TrialUpdate] | None = None) -> None:
        live_updates = self._live.values()
        updates = [live.pending for live in live_updates if live.pending.records or live.pending.status]
        updates += extra or []
        self._last_flush = time.monotonic()
        if not updates:
            return
        self.store.write(updates)
        for live in self._live.values():
            live.pending = TrialUpdate(key=live.key, node_id=live.pending.node_id)

    def overhead_summary(self, *, fit_wall_s: float, slots: int) -> dict[str, Any]:
        """Per-trial overhead, two ways.

        ``in_trial_*``: from Tune starting a trial to its end, minus the time inside the training function.
        ``per_trial_s``: the experiment's wall time times its concurrent slots, minus all training time,
        per trial; it also counts scheduling, actor start/reuse and the gaps between trials, so it is an
        upper bound (slots sit idle at the tail of the experiment).
        """
        values = self.overheads
        if not values:
            return {"trials_measured": 0}
        return {
            "trials_measured": len(values),
            "in_trial_mean_s": round(statistics.fmean(values), 4),
            "in_trial_median_s": round(statistics.median(values), 4),
            "in_trial_max_s": round(max(values), 4),
            "per_trial_s": round(max(fit_wall_s * slots - sum(self.train_walls), 0.0) / len(values), 4),
            "train_mean_s": round(statistics.fmean(self.train_walls), 4),
            "fit_wall_s": round(fit_wall_s, 3),
            "slots": slots,
        }


def _jsonable(value: Any) -> Any:
    # A diverged epoch's NaN/inf become null: JSON has no such numbers and PostgreSQL's JSON rejects them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _tune_error_text(trial: Any) -> str:
    """The trial's error for its owner: the exception line of Tune's error file, one sentence without
    paths (workers.failures); the whole file goes to the driver's log."""
    text = ""
    path = getattr(trial, "error_file", None)
    if path:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = ""
    text = text or str(getattr(trial, "error_msg", None) or "")
    if text:
        logger.error("trial %s failed (Tune gave up after its retries):\n%s", trial_key(trial), text[-4000:])
    line = scrub(text)
    return f"the trial failed after its retries: {line}" if line else "the trial failed after its retries"


class JobStopper(Stopper):
    """Stops the whole experiment when the job is cancelled or its total SFO budget is spent.

    Tune polls ``stop_all`` on every loop step (about every 0.1 s); the database is read at most every
    ``poll_s``, so a cancel takes effect within about ``poll_s`` plus the current epoch of each trial.
    """

    def __init__(
        self, store: JobStore, *, total_sfo: int | None, spent: Callable[[], int], poll_s: float = 1.0
    ) -> None:
        self.store = store
        self.total_sfo = total_sfo
        self.spent = spent
        self.poll_s = poll_s
        self.reason: str | None = None
        self._last_poll = 0.0

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        if self.reason is not None:
            return True
        if self.total_sfo is not None and self.spent() >= self.total_sfo:
            self.reason = "budget"
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.poll_s:
            self._last_poll = now
            try:
                if self.store.cancel_requested():
                    self.reason = "cancel"
            except Exception as exc:  # a database hiccup must not end the experiment
                logger.warning("cancel poll failed: %s", exc)
        return self.reason is not None
