"""The Tune driver of one job: ``python -m workers.driver --job-id ID`` (the entrypoint of its Ray Job).

What one run does:

1. ``_plan``: reads the job from the database (the driver, unlike the trainable, may), validates and
   expands its spec once for this process (``service.jobspec.expand_job``) and plans the experiment from it
   and the trials already in the database (``plan_job``): finished trials are never run again, unfinished
   ones are restarted with their stored trial spec and key, and the search only asks Optuna for the trials
   still missing. So a driver that dies (a killed dispatcher that took the local Ray with it, a lost head
   node) is simply started again, and every finished trial stays present exactly once;
2. ``_connect``, ``_build_searcher``, ``_build_tuner``, ``_fit``: runs ``tune.Tuner(...).fit()`` on the
   cluster: given points first, then Optuna (TPE or random; the study lives in the service's database so
   ``optuna-dashboard`` can open it), ASHA on SFO, actors reused, FailureConfig retries for lost nodes,
   ``ResultsWriter`` streaming epochs into the database and ``JobStopper`` polling the cancel request;
   every trial's Tune config is its trial spec (``workers.space``);
3. ``_finish``: ends the job: cancelled (unfinished trials cancelled), succeeded with the summary and the
   report, or failed with the reason when no trial produced a result.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from schedules.spec import SpecError
from service.jobspec import ExpandedJob, JobSpec, expand_job
from service.objectives import OBJECTIVES
from service.settings import Settings
from service.storage.db import is_database_fault
from service.storage.models import Trial
from service.storage.states import TRIAL_TERMINAL, JobStatus, TrialStatus
from workers.failures import one_sentence
from workers.space import GivenPoint, JobSpace, given_points, restarted_point
from workers.store import JobStore

logger = logging.getLogger("workers.driver")

GIVEN_PREFIXES = ("baseline:", "fixed:", "grid:")
MAX_FAILURES = 2  # Tune retries of a trial whose worker died (a lost node); trial errors are not retried


# ------------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class JobPlan:
    """What is left to run of a job, given the trials already in the database."""

    given: tuple[GivenPoint, ...]  # baselines, fixed candidates, grid points and restarted trials
    space: JobSpace
    n_search: int  # new Optuna suggestions still to ask for
    trials_total: int
    restarted: int

    @property
    def num_samples(self) -> int:
        return len(self.given) + self.n_search


def plan_job(job: ExpandedJob, existing: Sequence[Trial]) -> JobPlan:
    """The plan of a (re)started driver: given points not finished yet, unfinished trials of an earlier run
    restarted from their stored trial spec with their key, and the Optuna suggestions still missing."""
    spec = job.spec
    terminal = {s.value for s in TRIAL_TERMINAL}
    done = {t.trial_key for t in existing if t.status in terminal}
    fixed = given_points(job)
    space = JobSpace(job)
    if spec.search.algorithm == "grid":
        planned = [*fixed, *space.grid(spec.search.num_trials)]
        n_search_total = 0
    else:
        planned = list(fixed)
        n_search_total = spec.search.num_trials if space.searchable else 0
    planned_keys = {p.key for p in planned}
    # Search trials of an earlier run (their key is a Tune trial id): finished ones count against the
    # number of suggestions, unfinished ones are restarted as given points with their stored trial spec.
    earlier = [
        t for t in existing if t.trial_key not in planned_keys and not t.trial_key.startswith(GIVEN_PREFIXES)
    ]
    restarted = [
        restarted_point(t.trial_key, t.name or t.trial_key, t.kind, t.config, spec)
        for t in earlier
        if t.status not in terminal
    ]
    finished_search = sum(1 for t in earlier if t.status in terminal)
    given = tuple(p for p in planned if p.key not in done) + tuple(restarted)
    n_search = max(n_search_total - finished_search - len(restarted), 0)
    return JobPlan(
        given=given,
        space=space,
        n_search=n_search,
        trials_total=len(planned) + n_search_total,
        restarted=len(restarted),
    )


# ------------------------------------------------------------------------------------------- optuna


def _ensure_optuna_schema(database_url: str) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE SCHEMA IF NOT EXISTS optuna"))
    finally:
        engine.dispose()


def _fail_stale_optuna_trials(storage: Any, study_name: str) -> int:
    """Optuna trials still RUNNING belong to a driver that died; mark them FAIL so TPE ignores them."""
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return 0
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(stale)


def optuna_summary(database_url: str, study_name: str) -> dict[str, str]:
    """The study as the job summary shows it to the job's owner: its name and where it lives, in words; the
    storage URL (user, host, database, password, file path) stays with the operator (docs/workers.md)."""
    backend = make_url(database_url).get_backend_name()
    where = (
        "the optuna schema of the service's PostgreSQL database"
        if backend == "postgresql"
        else f"the -optuna file next to the service's {'SQLite' if backend == 'sqlite' else backend} database"
    )
    return {"study": study_name, "where": where}


# ------------------------------------------------------------------------------------------- running


WORKERS = "on the Ray workers"


def task_n_train(spec: JobSpec) -> int | None:
    """n of the job's task from its definition as installed here (the driver runs in the workers' image), or
    None when the definition knows it only once the data is loaded. Raises ``SpecError`` (one sentence) when
    the task is not installed here, its plugin is broken, or its options no longer fit its definition."""
    from schedules.tasks import catalogue

    definition = catalogue().require(spec.task.name, where=WORKERS)
    return definition.training_size(spec.task.options)


@dataclass(frozen=True)
class SfoBudget:
    """What one trial may spend, for ASHA's rungs and the objective's penalty: ``cap_sfo`` (per trial) and
    ``per_epoch`` (SFO of one full epoch); both None when neither ``budget.max_sfo`` nor n is known before
    the data is loaded, and then ``note`` says what the driver does instead."""

    cap_sfo: float | None
    per_epoch: float | None
    note: str | None = None


def sfo_budget(*, max_epochs: int, max_sfo: int | None, n_train: int | None) -> SfoBudget:
    """Per-trial SFO budget from the job's budget and the task's n (``task_n_train``)."""
    if max_sfo is not None:
        return SfoBudget(cap_sfo=float(max_sfo), per_epoch=max_sfo / max_epochs)
    if n_train is not None:
        return SfoBudget(cap_sfo=float(n_train * max_epochs), per_epoch=float(n_train))
    return SfoBudget(
        cap_sfo=None,
        per_epoch=None,
        note="the task's training-set size is known only once its data is loaded and budget.max_sfo is "
        "unset: early stopping is off, and each trial takes its SFO cap from its first epoch "
        "(set budget.max_sfo to enable early stopping)",
    )


def _unplaceable(spec: JobSpec) -> str | None:
    """Why no live node can host one trial right now, or None."""
    import ray

    need = {"CPU": spec.resources.cpus, "GPU": spec.resources.gpus}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(r.get(k, 0.0) >= v for k, v in need.items() if v > 0) for r in nodes):
        return None
    largest = {k: max((r.get(k, 0.0) for r in nodes), default=0.0) for k in need}
    return (
        f"no node has resources.cpus={spec.resources.cpus} and resources.gpus={spec.resources.gpus} for one "
        f"trial (largest node: {largest['CPU']:g} CPUs, {largest['GPU']:g} GPUs); trials wait until one joins"
    )


def _slots(spec: JobSpec, plan: JobPlan) -> int:
    """Trials that can run at once: the concurrency limit, the trial count and the cluster's CPUs."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1.0)) if ray.is_initialized() else 1.0
    by_cpu = max(int(cpus // max(spec.resources.cpus, 1e-9)), 1)
    return max(min(spec.search.max_concurrent, max(plan.num_samples, 1), by_cpu), 1)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:80]


def _trial_name(job_id: str) -> Any:
    def name(trial: Any) -> str:
        return f"job-{job_id[:8]}-{trial.config.get('_key') or trial.trial_id}"

    return name


def _trial_dirname(trial: Any) -> str:
    return _safe_name(str(trial.config.get("_key") or trial.trial_id))


def run_job(settings: Settings, job_id: str, *, storage_path: Path | None = None) -> str:
    """Run (or finish) the job; returns its final status. Exceptions of our own code fail the job."""
    store = JobStore.connect(settings, job_id)
    try:
        return _run_job(settings, store, storage_path)
    except Exception as exc:
        if is_database_fault(exc):
            # The database stayed away for longer than the lease (the store waited that long): nothing can be
            # recorded now. This driver ends (its Ray Job fails) and the dispatcher, once the database is
            # back, starts a new one, which restarts only the unfinished trials.
            logger.error(
                "job %s: the database is still unavailable (%s); the driver ends", job_id, type(exc).__name__
            )
            return JobStatus.FAILED.value
        # The traceback goes to this driver's log (the Ray Job's log) with the job id; the job keeps one
        # sentence, which its owner sees (workers.failures).
        logger.exception("job %s: driver failed", job_id)
        error = (
            f"the job's driver failed: {one_sentence(exc)} (the driver's log for this job has the details)"
        )
        try:
            job = store.job()
            if JobStatus(job.status) == JobStatus.CANCELLING:
                store.finish_unfinished(TrialStatus.CANCELLED, "job cancelled")
                store.finish_job(JobStatus.CANCELLED, message="cancelled (driver error while stopping)")
                return JobStatus.CANCELLED.value
            store.finish_unfinished(TrialStatus.CANCELLED, "the driver failed")
            store.finish_job(JobStatus.FAILED, error=error, message="driver error")
        except Exception:
            logger.exception("job %s: could not record the failure", job_id)
        return JobStatus.FAILED.value
    finally:
        store.close()


@dataclass
class JobRun:
    """One driver run of a job: what its steps share. ``job`` is the job's spec validated and expanded
    once, for this whole process (the plan, the searcher, the trial specs and the final report read it)."""

    settings: Settings
    store: JobStore
    job: ExpandedJob
    plan: JobPlan
    budget: SfoBudget
    started: float
    experiment: str  # the Tune experiment's name: one folder per driver run
    storage_path: Path | None = None

    @property
    def spec(self) -> JobSpec:
        return self.job.spec

    @property
    def study_name(self) -> str:
        return f"schedsearch-job-{self.store.job_id}"

    @property
    def direction(self) -> str:
        return OBJECTIVES[self.spec.objective][1]


def _run_job(settings: Settings, store: JobStore, storage_path: Path | None) -> str:
    """The driver's steps: plan, connect, build the searcher, build the tuner, run it, finish the job."""
    from workers.callback import ResultsWriter

    run = _plan(settings, store, storage_path)
    if isinstance(run, str):
        return run  # the job had already ended, was cancelled before starting, or cannot run here
    _connect(settings, run)
    searcher = _build_searcher(run)
    writer = ResultsWriter(store, target_grad_norm=run.spec.target.grad_norm)
    stopper = _build_stopper(run, writer)
    fit_wall = _fit(run, _build_tuner(run, searcher, writer, stopper)) if run.plan.num_samples > 0 else 0.0
    return _finish(run, writer, stopper, fit_wall)


def _plan(settings: Settings, store: JobStore, storage_path: Path | None) -> JobRun | str:
    """Read the job (the one validation and expansion of its spec in this process) and plan what is left to
    run; a final status instead when there is nothing to run."""
    job = store.job()
    status = JobStatus(job.status)
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        return status.value
    if status in (JobStatus.CANCELLING, JobStatus.QUEUED) and job.cancel_requested_at is not None:
        store.finish_unfinished(TrialStatus.CANCELLED, "job cancelled")
        store.finish_job(JobStatus.CANCELLED, message="cancelled before the experiment started")
        return JobStatus.CANCELLED.value
    store.mark_running()
    expanded = expand_job(JobSpec.model_validate(job.spec))
    spec = expanded.spec
    try:
        n_train = task_n_train(spec)
    except SpecError as exc:  # the API accepted a task these workers cannot run: say so in one sentence
        store.finish_job(JobStatus.FAILED, error=str(exc), message="task unavailable on the workers")
        return JobStatus.FAILED.value
    plan = plan_job(expanded, store.trials())
    store.progress(trials_total=plan.trials_total)
    # The host goes to the log, not the event (events are shown to the job's owner).
    logger.info("job %s: driver on %s", job.id, os.uname().nodename)
    store.event(
        "driver_started",
        f"driver started: {len(plan.given)} given, {plan.n_search} to search, {plan.restarted} restarted",
        {"given": len(plan.given), "search": plan.n_search, "restarted": plan.restarted},
    )
    budget = sfo_budget(max_epochs=spec.budget.max_epochs, max_sfo=spec.budget.max_sfo, n_train=n_train)
    if budget.note:
        store.event("early_stopping_off", budget.note)
    # One experiment folder per driver run: a restarted driver re-plans from the database, not from it.
    experiment = f"job-{job.id}-{time.strftime('%Y%m%d-%H%M%S')}"
    return JobRun(settings, store, expanded, plan, budget, time.monotonic(), experiment, storage_path)


def _connect(settings: Settings, run: JobRun) -> None:
    """Join the Ray cluster and warn (an event) when no node can host one trial."""
    import ray

    if not ray.is_initialized():
        # In a Ray Job the supervisor sets RAY_ADDRESS; run by hand, the settings name the cluster.
        ray.init(
            address=os.environ.get("RAY_ADDRESS") or settings.ray_address or None,
            logging_level=logging.WARNING,
            log_to_driver=False,
        )
    unplaceable = _unplaceable(run.spec)
    if unplaceable:
        # An autoscaling cluster may still add such a node, so this is a warning, not a failure.
        run.store.event("resources_unavailable", unplaceable)
        logger.warning("job %s: %s", run.store.job_id, unplaceable)


def _build_searcher(run: JobRun) -> Any:
    """Given points first, then Optuna (TPE or random, its study in the service's database) for the
    suggestions still missing."""
    import optuna

    from workers.search import EnvironmentRDBStorage, JobSearcher, TolerantOptunaSearch, optuna_storage_url

    spec, plan = run.spec, run.plan
    inner = None
    if plan.n_search > 0:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        database_url = run.settings.resolved_database_url()
        _ensure_optuna_schema(database_url)
        # Pickled into Tune's files without its URL; pre-ping: pooled connections die in a database outage.
        storage = EnvironmentRDBStorage(
            optuna_storage_url(database_url), engine_kwargs={"pool_pre_ping": True}
        )
        _fail_stale_optuna_trials(storage, run.study_name)
        sampler: optuna.samplers.BaseSampler = (
            optuna.samplers.RandomSampler(seed=spec.search.seed)
            if spec.search.algorithm == "random"
            else optuna.samplers.TPESampler(seed=spec.search.seed)
        )
        inner = TolerantOptunaSearch(
            retry=run.store.retrying,  # its storage calls wait out a database outage, as the store's do
            space=plan.space,
            metric="objective",
            mode=run.direction,
            sampler=sampler,
            storage=storage,
            study_name=run.study_name,
        )
    return JobSearcher(
        [p.config() for p in plan.given], inner, plan.n_search, metric="objective", mode=run.direction
    )


def _build_stopper(run: JobRun, writer: Any) -> Any:
    """The cancel and total-budget stopper; it also tells the writer why trials end when the job stops."""
    from workers.callback import JobStopper

    # SFO spent by trials that finished in an earlier run counts against budget.total_sfo too.
    terminal = {s.value for s in TRIAL_TERMINAL}
    spent_before = sum(int(t.sfo or 0) for t in run.store.trials() if t.status in terminal)
    stopper = JobStopper(
        run.store,
        total_sfo=run.spec.budget.total_sfo,
        spent=lambda: sum(writer.sfo_by_key.values()) + spent_before,
    )
    writer.stopping = lambda: stopper.reason
    return stopper


def _build_tuner(run: JobRun, searcher: Any, writer: Any, stopper: Any) -> Any:
    """The Tune experiment: the trainable with the job's objective settings, the searcher behind a
    concurrency limit, ASHA on SFO (or FIFO), the results writer and the stopper."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from workers.search import make_scheduler
    from workers.trainable import run_trial

    spec, plan, budget, job_id = run.spec, run.plan, run.budget, run.store.job_id
    # Job-wide settings of the searcher's objective; what each trial trains is its config's trial spec.
    objective = {
        "job_id": job_id,
        "objective": spec.objective,
        "target": spec.target.grad_norm,
        "max_epochs": spec.budget.max_epochs,
        "cap_sfo": budget.cap_sfo,
    }
    resources = {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}
    trainable = tune.with_resources(tune.with_parameters(run_trial, base=objective), resources)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=spec.search.max_concurrent),
            scheduler=make_scheduler(
                early_stopping=spec.search.early_stopping and budget.cap_sfo is not None,
                max_t=budget.cap_sfo or 0.0,
                per_epoch=budget.per_epoch or 0.0,
                n_search=plan.n_search,
            ),
            num_samples=plan.num_samples,
            reuse_actors=True,
            trial_name_creator=_trial_name(job_id),
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=run.experiment,
            storage_path=str(run.storage_path) if run.storage_path else None,
            callbacks=[writer],
            stop=stopper,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            verbose=0,
        ),
    )


def _fit(run: JobRun, tuner: Any) -> float:
    """Run the experiment to its end; returns its wall seconds."""
    fit_started = time.monotonic()
    run.store.event(
        "experiment_started",
        f"Tune experiment {run.experiment}: {run.plan.num_samples} trials",
        {"setup_s": round(fit_started - run.started, 3)},
    )
    tuner.fit()
    return time.monotonic() - fit_started


def _finish(run: JobRun, writer: Any, stopper: Any, fit_wall: float) -> str:
    """End the job: cancelled, or succeeded with its summary and report, or failed when no trial produced a
    result."""
    store = run.store
    wall = time.monotonic() - run.started
    if stopper.reason == "cancel":
        store.finish_unfinished(TrialStatus.CANCELLED, "job cancelled")
        store.finish_job(JobStatus.CANCELLED, message="cancelled while running")
        return JobStatus.CANCELLED.value
    if stopper.reason == "budget":
        store.finish_unfinished(TrialStatus.PRUNED, "job SFO budget (budget.total_sfo) exhausted")
    # Trials Tune never ended cleanly (should not happen) must not stay running forever.
    store.finish_unfinished(TrialStatus.FAILED, "the trial did not finish (Tune reported no end)")
    overhead = writer.overhead_summary(fit_wall_s=fit_wall, slots=_slots(run.spec, run.plan))
    summary = _summary(run, overhead, wall)
    counts = summary["trials"]
    with_result = sum(counts.get(s, 0) for s in ("succeeded", "diverged", "pruned"))
    if with_result == 0 and counts:
        first_error = next((t.error for t in store.trials() if t.error), "no error text")
        store.finish_job(
            JobStatus.FAILED,
            summary=summary,
            error=f"no trial produced a result ({dict(counts)}); first error: {first_error}"[:4000],
            message="every trial failed",
        )
        return JobStatus.FAILED.value
    store.finish_job(JobStatus.SUCCEEDED, summary=summary, message=f"{sum(counts.values())} trials")
    return JobStatus.SUCCEEDED.value


def _summary(run: JobRun, overhead: Mapping[str, Any], wall: float) -> dict[str, Any]:
    from service.report import trial_schedule

    store, spec = run.store, run.spec
    trials = store.trials()
    counts = Counter(t.status for t in trials)
    field, direction = OBJECTIVES[spec.objective]
    scored = [t for t in trials if t.objective is not None and math.isfinite(t.objective)]
    best = (min if direction == "min" else max)(scored, key=lambda t: float(t.objective or 0), default=None)
    summary: dict[str, Any] = {
        "trials": dict(counts),
        "objective": spec.objective,
        "best": None
        if best is None
        else {
            "trial_id": best.id,
            "trial_key": best.trial_key,
            "name": best.name,
            "kind": best.kind,
            "objective": best.objective,
            "schedule": trial_schedule(best, spec),
            "sfo_to_target": (best.summary or {}).get("sfo_to_target"),
        },
        "baselines": [
            {
                "name": t.name,
                "status": t.status,
                "sfo_to_target": (t.summary or {}).get("sfo_to_target"),
                field: (t.summary or {}).get(field),
            }
            for t in trials
            if t.kind == "baseline"
        ],
        "overhead": dict(overhead),
        "wall_s": round(wall, 3),
        "nodes": sorted({t.node_id for t in trials if t.node_id}),
        "optuna": optuna_summary(run.settings.resolved_database_url(), run.study_name)
        if run.plan.n_search or any(not t.trial_key.startswith(GIVEN_PREFIXES) for t in trials)
        else None,
    }
    try:
        # The report the API serves, frozen into the job at its end (best against baselines, theory check),
        # from this process's expansion of the job.
        from service.report import build_report
        from service.storage.db import session_scope
        from service.storage.repository import get_job

        with session_scope(store.factory) as s:
            summary["report"] = build_report(s, get_job(s, job_id=store.job_id), expanded=run.job)
    except Exception as exc:  # the report is a convenience; the job result does not depend on it
        logger.exception("job %s: could not build the report", store.job_id)
        summary["report_error"] = f"the report could not be built: {one_sentence(exc)}"
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.driver", description=__doc__.splitlines()[0])
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--storage-path", type=Path, default=None, help="Tune results folder on the head.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    status = run_job(Settings(), args.job_id, storage_path=args.storage_path)
    print(f"job {args.job_id}: {status}", flush=True)
    return 0 if status in (JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value) else 1


if __name__ == "__main__":
    sys.exit(main())
