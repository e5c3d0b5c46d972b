"""The Ray Tune function trainable: one trial = one call of ``schedules.trainer.train``.

Every epoch becomes one ``tune.report`` (the trainer calls ``report`` once per epoch; nothing is synced per
step). The trial's last report carries ``final=True`` plus either the trainer's ``summary`` or the ``error``
text: a trial whose training raises ends normally with the error in its result, so Tune's FailureConfig
retries only system failures (a lost node, a killed worker), never a deterministic bug, and the job goes on.

The trainable never touches the service database. Its config holds the trial spec's JSON under ``trial``
(``workers.space``: the same JSON ``trials.config`` stores, so a stored trial reruns alone with ``schedsearch
train``) and the bookkeeping keys ``_key``, ``_kind``, ``_name``; the searcher's objective settings come
through ``tune.with_parameters`` as ``base`` (``job_id``, ``objective``, ``target``, ``max_epochs``,
``cap_sfo``), which holds no secrets either.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from service.objectives import OBJECTIVES
from workers.failures import one_sentence, scrub
from workers.space import TRIAL

logger = logging.getLogger(__name__)


def record_dict(record: Any) -> dict[str, Any]:
    to_json = getattr(record, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    return dataclasses.asdict(record)


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class ObjectiveTracker:
    """The value the searcher minimizes or maximizes, updated at each epoch.

    It must exist at every epoch (``OptunaSearch`` records it as an intermediate value) and be finite (Optuna
    rejects NaN). For ``sfo_to_target`` a trial that has not reached the target yet gets a penalty above any
    reachable value that still orders trials by how close they came: ``2 * cap * (1 + log10(min_norm /
    target))``, where ``cap`` is the per-trial SFO budget. Diverged trials get ``100 * cap``.

    ``cap_sfo=None`` (the driver knows neither ``budget.max_sfo`` nor n before the data is loaded): the cap is
    taken from the first record as its SFO per epoch times ``max_epochs`` (each full epoch spends n); a trial
    that fails before its first epoch gets ``100 * UNKNOWN_CAP``, worse than any other.
    """

    UNKNOWN_CAP = 1e15

    def __init__(
        self, objective: str, target: float, cap_sfo: float | None, *, max_epochs: int | None = None
    ) -> None:
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if cap_sfo is None and max_epochs is None:
            raise ValueError("ObjectiveTracker needs cap_sfo or max_epochs to derive it")
        self.objective = objective
        self.target = target
        self.cap: float | None = None if cap_sfo is None else max(float(cap_sfo), 1.0)
        self.max_epochs = max_epochs
        self.reached_sfo: float | None = None
        self.min_norm = math.inf
        self.best_acc = 0.0
        self.diverged = False

    def update(self, record: Mapping[str, Any]) -> float:
        if self.cap is None and self.max_epochs is not None and int(record.get("epoch") or 0) > 0:
            self.cap = max(float(record["sfo"]) / int(record["epoch"]) * self.max_epochs, 1.0)
        norm = _finite(record.get("grad_norm"))
        if norm is None:
            self.diverged = True
        else:
            self.min_norm = min(self.min_norm, norm)
            if self.reached_sfo is None and norm <= self.target:
                self.reached_sfo = float(record["sfo"])
        acc = _finite(record.get("test_acc"))
        if acc is not None:
            self.best_acc = max(self.best_acc, acc)
        return self.value(norm)

    def value(self, last_norm: float | None = None) -> float:
        if self.objective == "test_acc":
            return self.best_acc
        if self.objective == "final_grad_norm":
            return last_norm if last_norm is not None else 1e30
        if self.reached_sfo is not None:
            return self.reached_sfo
        cap = self.cap if self.cap is not None else self.UNKNOWN_CAP
        if self.diverged or not math.isfinite(self.min_norm):
            return 100.0 * cap
        return 2.0 * cap * (1.0 + math.log10(max(self.min_norm / self.target, 1.0)))


#: Longest stored text of a SpecError (it lists what is valid, e.g. every installed task).
SPEC_ERROR_CHARS = 2000


def trial_error(exc: BaseException) -> str:
    """The error a failed trial stores, shown to the job's owner: a spec the trial cannot run (a
    ``SpecError``: an unknown or unavailable task, options that do not fit it) says so in its own words;
    anything else is one sentence (``workers.failures``; the traceback goes to the worker's log)."""
    from schedules.spec import SpecError

    if isinstance(exc, SpecError):
        # Its message says what is valid (the installed tasks, an option's range): kept whole, one line.
        return scrub(str(exc), limit=SPEC_ERROR_CHARS)
    return one_sentence(exc)


def run_trial(config: dict[str, Any], base: dict[str, Any] | None = None) -> None:
    """The function Tune runs (through ``tune.with_parameters(run_trial, base=...)``): trains
    ``TrialSpec.from_json(config["trial"])``."""
    import ray
    from ray import tune

    assert base is not None, "run_trial needs base= through tune.with_parameters"
    node_id = ray.get_runtime_context().get_node_id()
    cap = base["cap_sfo"]
    tracker = ObjectiveTracker(
        base["objective"],
        float(base["target"]),
        None if cap is None else float(cap),
        max_epochs=int(base["max_epochs"]),
    )
    last: dict[str, Any] = {"epoch": 0, "sfo": 0, "step": 0}
    started = time.perf_counter()

    def report(record: Any) -> None:
        data = record_dict(record)
        last.update(data)
        tune.report({**data, "objective": tracker.update(data), "node_id": node_id, "final": False})

    try:
        from schedules.spec import TrialSpec
        from schedules.tasks import catalogue
        from schedules.trainer import train

        spec = TrialSpec.from_json(config[TRIAL])
        catalogue().require(spec.task.name, where=f"on the Ray worker node {node_id[:12]}")
        result = train(spec, report=report)
    except Exception as exc:  # a trial that raises is a failed trial, not a Ray failure
        # The traceback goes to this worker's log; the trial's error (shown to the job's owner) is one
        # sentence (workers.failures).
        logger.exception("job %s trial %s failed", base.get("job_id"), config.get("_key"))
        tune.report(
            {
                **last,
                "objective": tracker.value(),
                "node_id": node_id,
                "final": True,
                "error": trial_error(exc),
                "train_wall_s": time.perf_counter() - started,
            }
        )
        return
    summary = record_dict(result.summary)
    tune.report(
        {
            **last,
            "objective": tracker.value(_finite(last.get("grad_norm"))),
            "node_id": node_id,
            "final": True,
            "summary": summary,
            "train_wall_s": time.perf_counter() - started,
        }
    )
