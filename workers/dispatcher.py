"""The dispatcher: claims queued jobs and runs each one's Tune driver as a Ray Job, then watches it.

Why a Ray Job rather than Tune inside this process (docs/workers.md has the long form): the experiment
shows up in the dashboard's Jobs tab with its driver logs, can be stopped there, and keeps running when the
dispatcher dies; a restarted dispatcher claims the job again once its lease has expired and adopts the
still-running Ray Job instead of starting a second one. When the driver itself is gone (the head restarted,
the local Ray died with its machine) the job is submitted again and the new driver restarts only the
unfinished trials (``workers.driver.plan_job``).

Loop, every ``poll_s``:

1. for each job this dispatcher watches: heartbeat its lease (a lost lease means someone else took the job
   over: stop watching); if the Ray Job ended but the job did not (the driver died), submit it again, up to
   ``max_attempts`` drivers, then fail the job with the Ray Job's message; if a cancel was asked and the
   driver has not stopped within ``cancel_grace_s``, stop the Ray Job and finish the cancel here;
2. claim more jobs (``repository.claim_job``: queued, or running with an expired lease) up to ``max_jobs``.

The cluster is ``SCHEDSEARCH_RAY_ADDRESS`` (token auth, jobs submitted through
``SCHEDSEARCH_RAY_DASHBOARD_URL`` or the dashboard the cluster reports), or, when unset, a local head that
the dispatcher starts in its own process group and records under ``<data_dir>/ray/`` so that a restarted
dispatcher finds it again.
"""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from service.errors import LeaseLost, NotFound
from service.settings import Settings
from service.storage import repository as repo
from service.storage.db import (
    DATABASE_FAULTS,
    make_engine,
    make_session_factory,
    session_scope,
)
from service.storage.models import Job
from service.storage.states import JOB_TERMINAL, JobStatus, TrialStatus
from workers import raycluster, recovery
from workers.outage import OutageLog
from workers.store import JobStore

logger = logging.getLogger("workers.dispatcher")


# ------------------------------------------------------------------------------------------- the cluster


@dataclass
class RayTarget:
    """How the dispatcher reaches its Ray cluster."""

    address: str  # GCS host:port
    dashboard_url: str  # where jobs are submitted
    public_dashboard_url: str  # the link stored with each job
    local: bool  # the cluster runs on this machine (the driver can use this interpreter)
    owned_head: raycluster.RayNode | None = None  # a head this dispatcher started


def _token_for_local_ray(state_dir: Path) -> str:
    """The token of the dispatcher's own local Ray: the environment's, else one kept in ``state_dir``."""
    token = os.environ.get("RAY_AUTH_TOKEN")
    if token:
        return token
    path = state_dir / "auth_token"
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    token = raycluster.new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


def _discover_dashboard(address: str) -> str:
    import ray

    context = ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        url = context.dashboard_url or ""
    finally:
        ray.shutdown()
    if not url:
        raise RuntimeError(
            f"the Ray cluster at {address} reports no dashboard; set SCHEDSEARCH_RAY_DASHBOARD_URL"
        )
    return url if url.startswith("http") else f"http://{url}"


def _is_this_machine(address: str) -> bool:
    host = address.rpartition(":")[0] or address
    if host in ("127.0.0.1", "localhost", "::1"):
        return True
    try:
        local = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        local = set()
    return host in local


def connect_ray(settings: Settings) -> RayTarget:
    """The configured cluster, or this dispatcher's local head (started if it is not running)."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    if settings.ray_address:
        dashboard = settings.ray_dashboard_url or _discover_dashboard(settings.ray_address)
        return RayTarget(
            address=settings.ray_address,
            dashboard_url=dashboard.rstrip("/"),
            public_dashboard_url=(settings.ray_dashboard_public_url or dashboard).rstrip("/"),
            local=_is_this_machine(settings.ray_address),
        )
    state_dir = settings.data_dir.resolve() / "ray"
    token = _token_for_local_ray(state_dir)
    os.environ["RAY_AUTH_TOKEN"] = token  # this process's Ray clients (job submission) need it too
    head = raycluster.load_node(state_dir / "head.json")
    if head is None or not raycluster.is_running(head) or not raycluster.gcs_answers(head.gcs_address):
        # A short temp dir: Ray's unix socket paths under it must stay below 108 bytes.
        temp_dir = Path(tempfile.mkdtemp(prefix="schedsearch-ray-"))
        # The drivers of this head's Ray Jobs are its children: they read the database URL from the
        # environment they inherit, never from the runtime env (the dashboard shows it) or a file.
        head_env = {
            **raycluster.LOOPBACK_ONLY_ENV,
            "SCHEDSEARCH_DATABASE_URL": settings.resolved_database_url(),
        }
        head = raycluster.start_head(temp_dir, token=token, num_cpus=os.cpu_count() or 1, extra_env=head_env)
        raycluster.save_node(head, state_dir / "head.json")
        logger.info("started a local Ray head at %s (dashboard %s)", head.gcs_address, head.dashboard_url)
    assert head.dashboard_url is not None
    return RayTarget(
        address=head.gcs_address,
        dashboard_url=head.dashboard_url,
        public_dashboard_url=(settings.ray_dashboard_public_url or head.dashboard_url).rstrip("/"),
        local=True,
        owned_head=head,
    )


# ------------------------------------------------------------------------------------------- the loop


@dataclass
class _Watch:
    job_id: str
    submission_id: str
    drivers: int = 1  # drivers submitted for this job by this dispatcher
    stop_sent: bool = False
    unreachable: int = 0  # consecutive polls that could not read the Ray Job


@dataclass
class Dispatcher:
    settings: Settings
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    poll_s: float = 1.0
    max_jobs: int = 2
    max_attempts: int = 3
    cancel_grace_s: float = 15.0
    unreachable_limit: int = 60  # polls before an unreadable Ray Job counts as gone
    _factory: sessionmaker[Session] | None = None
    _target: RayTarget | None = None
    _client: Any = None
    _watch: dict[str, _Watch] = field(default_factory=dict)
    _last_beat: float = 0.0

    # -- setup

    @property
    def factory(self) -> sessionmaker[Session]:
        if self._factory is None:
            engine = make_engine(settings=self.settings)
            self._factory = make_session_factory(engine)
        return self._factory

    def target(self) -> RayTarget:
        if self._target is None:
            self._target = connect_ray(self.settings)
        return self._target

    def client(self) -> Any:
        if self._client is None:
            # target() first: it sets RAY_AUTH_MODE/RAY_AUTH_TOKEN, which Ray reads once, when imported.
            target = self.target()
            from ray.job_submission import JobSubmissionClient

            self._client = JobSubmissionClient(target.dashboard_url)
        return self._client

    # -- public

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; errors of one step are logged and the loop goes on."""
        logger.info("dispatcher %s started", self.owner)
        while not stop.is_set():
            # Connect (or start the local Ray) before the first job arrives; retried until it works.
            try:
                self.client()
                break
            except Exception:
                logger.exception("cannot reach Ray yet; retrying in %.1fs", max(self.poll_s, 5.0))
                stop.wait(max(self.poll_s, 5.0))
        logger.info(
            "dispatcher %s: Ray at %s, dashboard %s",
            self.owner,
            self._target.address if self._target else "?",
            self._target.public_dashboard_url if self._target else "?",
        )
        outage = OutageLog(logger, waiting="the dispatcher waits for it")
        while not stop.is_set():
            try:
                self.step()
            except DATABASE_FAULTS as exc:
                # One line when the outage starts and one when it ends, not a stack trace per poll; leases
                # run out only if the outage outlasts them (docs/reliability.md).
                outage.failed(exc)
            except Exception:
                logger.exception("dispatcher step failed; retrying in %.1fs", self.poll_s)
                self._forget_dead_local_head()
            else:
                outage.ok()
            stop.wait(self.poll_s)
        self.shutdown()

    def step(self) -> None:
        self._tend_watched()
        while len(self._watch) < self.max_jobs:
            with session_scope(self.factory) as s:
                job = repo.claim_job(s, owner=self.owner, lease_seconds=self.settings.lease_seconds)
            if job is None:
                break
            self._start(job)

    def shutdown(self) -> None:
        """Give up the leases (another dispatcher can adopt the running Ray Jobs at once) and, when nothing
        runs on it, stop the local head this dispatcher started."""
        for job_id in list(self._watch):
            try:
                with session_scope(self.factory) as s:
                    repo.release_job(s, job_id=job_id, owner=self.owner)
            except Exception:
                logger.exception("could not release job %s", job_id)
        # A watched job may have ended since the last step (stopped right after a job finished): only live
        # ones keep the local head up, else the head outlives its last job.
        running = any(self._maybe_active(job_id) for job_id in self._watch)
        self._watch.clear()
        target = self._target
        if target is not None and target.owned_head is not None:
            if running:
                logger.info("leaving the local Ray at %s running: jobs are still on it", target.address)
            else:
                logger.info("stopping the local Ray at %s", target.address)
                raycluster.stop_node(target.owned_head)
                (self.settings.data_dir.resolve() / "ray" / "head.json").unlink(missing_ok=True)
                shutil.rmtree(target.owned_head.temp_dir, ignore_errors=True)
        logger.info("dispatcher %s stopped", self.owner)
        if self._factory is not None:
            bind = self._factory.kw.get("bind")
            if bind is not None:
                bind.dispose()

    # -- internals

    def _forget_dead_local_head(self) -> None:
        """A local head this dispatcher started that died (OOM, killed by hand) is never coming back:
        drop the connection so the next step starts a fresh head, and the watched jobs, whose Ray Jobs died
        with it, are resubmitted by the usual dead-driver path instead of retrying a dead dashboard forever.
        """
        target = self._target
        if target is None or target.owned_head is None:
            return
        if raycluster.is_running(target.owned_head) and raycluster.gcs_answers(target.owned_head.gcs_address):
            return
        logger.warning("the local Ray head at %s is gone; starting a new one", target.address)
        shutil.rmtree(target.owned_head.temp_dir, ignore_errors=True)
        self._target = None
        self._client = None

    def _ray_status(self, submission_id: str) -> tuple[str | None, str]:
        """(status, message) of a Ray Job; status None when the cluster does not know the job.

        Any other failure (the dashboard restarting, a timeout) raises: it says nothing about the driver,
        and taking it for a dead driver would start a second one."""
        try:
            info = self.client().get_job_info(submission_id)
        except RuntimeError as exc:  # the SDK's error for an HTTP status; 404 = no such job
            if "status code 404" in str(exc):
                return None, str(exc)
            raise
        status = getattr(info.status, "value", str(info.status))
        return str(status), str(info.message or "")

    @property
    def limits(self) -> recovery.Limits:
        return recovery.Limits(
            max_attempts=self.max_attempts,
            cancel_grace_s=self.cancel_grace_s,
            unreachable_limit=self.unreachable_limit,
        )

    def _start(self, job: Job) -> None:
        """A freshly claimed job: adopt its running Ray Job, finish a cancel, or submit a driver
        (``recovery.on_claim``)."""
        ray = self._ray_status(job.ray_job_id)[0] if job.ray_job_id else None
        action = recovery.on_claim(JobStatus(job.status), ray)
        if action == recovery.Action.ADOPT:
            assert job.ray_job_id is not None
            self._watch[job.id] = _Watch(job.id, job.ray_job_id)
            self._event(job.id, "driver_adopted", f"adopted the running Ray Job {job.ray_job_id}")
        elif action == recovery.Action.FINISH_CANCEL:
            self._finish_cancel(job.id, "cancelled (no driver was running)")
        else:
            self._submit(job.id, drivers=1)

    def _submit(self, job_id: str, *, drivers: int) -> None:
        target = self.target()
        submission_id = f"schedsearch-{job_id[:12]}-{int(time.time())}-{secrets.token_hex(2)}"
        python = shlex.quote(sys.executable) if target.local else "python"
        entrypoint = f"{python} -m workers.driver --job-id {shlex.quote(job_id)}"
        if target.local:
            results = (self.settings.data_dir.resolve() / "ray_results").as_posix()
            entrypoint += f" --storage-path {shlex.quote(results)}"
        self.client().submit_job(
            entrypoint=entrypoint,
            submission_id=submission_id,
            runtime_env={"env_vars": _driver_env(self.settings)},
            metadata={"schedsearch_job": job_id, "dispatcher": self.owner},
            entrypoint_num_cpus=0,
        )
        with session_scope(self.factory) as s:
            repo.set_ray_job(
                s,
                job_id=job_id,
                ray_job_id=submission_id,
                dashboard_url=f"{target.public_dashboard_url}/#/jobs/{submission_id}",
            )
            repo.add_job_event(
                s,
                job_id=job_id,
                kind="driver_submitted",
                message=f"Ray Job {submission_id} (driver {drivers})",
            )
        self._watch[job_id] = _Watch(job_id, submission_id, drivers=drivers)

    def _tend_watched(self) -> None:
        """One poll of every watched job: observe, decide (``recovery.on_poll``), act."""
        beat = time.monotonic() - self._last_beat >= self.settings.lease_seconds / 3
        if beat:
            self._last_beat = time.monotonic()
        for job_id, watch in list(self._watch.items()):
            # The Ray Job first, then the row: a driver ends the job before its Ray Job ends, so the row read
            # second shows how an ended driver left the job.
            ray, message = self._read_ray(watch)
            job = self._read_job(job_id, heartbeat=beat)
            seen = recovery.Observed(
                job=None if job is None else JobStatus(job.status),
                ray=ray,
                submission_id=watch.submission_id,
                unreadable=watch.unreachable,
                drivers=watch.drivers,
                cancel_waited_s=_cancel_waited_s(job),
                stop_sent=watch.stop_sent,
            )
            self._act(job_id, watch, recovery.on_poll(seen, self.limits), message)

    def _read_ray(self, watch: _Watch) -> tuple[str | None, str]:
        """(status, message) of the watched job's Ray Job; (None, why) when it cannot be read, counted in
        ``watch.unreachable`` (reset by a read that works)."""
        try:
            status, message = self._ray_status(watch.submission_id)
        except Exception as exc:
            watch.unreachable += 1
            self._forget_dead_local_head()
            logger.warning(
                "job %s: cannot read Ray Job %s (%d): %s",
                watch.job_id,
                watch.submission_id,
                watch.unreachable,
                exc,
            )
            return None, f"Ray Job unreachable {watch.unreachable} times: {exc}"
        watch.unreachable = 0
        return status, message

    def _read_job(self, job_id: str, *, heartbeat: bool) -> Job | None:
        """The job's row, renewing the lease when ``heartbeat``; None when the lease was lost (another
        dispatcher took the job over) or the job is gone."""
        try:
            with session_scope(self.factory) as s:
                if heartbeat:
                    return repo.heartbeat(
                        s, job_id=job_id, owner=self.owner, lease_seconds=self.settings.lease_seconds
                    )
                return repo.get_job(s, job_id=job_id)
        except (LeaseLost, NotFound) as exc:
            # The driver ending the job drops the lease too; only a live job taken over is news.
            if not self._is_terminal(job_id):
                logger.warning("job %s: %s; no longer watching it", job_id, exc)
            return None

    def _act(self, job_id: str, watch: _Watch, decision: recovery.Decision, ray_message: str) -> None:
        action = decision.action
        if action == recovery.Action.FORGET:
            self._watch.pop(job_id, None)
        elif action == recovery.Action.FINISH_CANCEL:
            self._finish_cancel(job_id, decision.message)
        elif action == recovery.Action.STOP_DRIVER:
            logger.warning("job %s: driver ignores the cancel; stopping Ray Job", job_id)
            self.client().stop_job(watch.submission_id)
            watch.stop_sent = True
        elif action in (recovery.Action.SUBMIT, recovery.Action.FAIL):
            # Ray's message ends with the driver's output (a traceback, paths): the log has it, the job's
            # owner gets the sentence (workers.failures).
            logger.warning("job %s: %s: %s", job_id, decision.message, ray_message[-1500:])
            if action == recovery.Action.SUBMIT:
                self._event(job_id, "driver_lost", decision.message)
                self._submit(job_id, drivers=watch.drivers + 1)
            else:
                store = JobStore(self.factory, job_id)
                store.finish_unfinished(TrialStatus.CANCELLED, "the job failed")
                store.finish_job(JobStatus.FAILED, error=decision.message, message="driver failed")
                self._watch.pop(job_id, None)

    def _is_terminal(self, job_id: str) -> bool:
        try:
            with session_scope(self.factory) as s:
                return JobStatus(repo.get_job(s, job_id=job_id).status) in JOB_TERMINAL
        except NotFound:
            return True

    def _maybe_active(self, job_id: str) -> bool:
        try:
            return not self._is_terminal(job_id)
        except DATABASE_FAULTS:  # the database is unreachable: assume the job still runs
            return True

    def _finish_cancel(self, job_id: str, message: str) -> None:
        store = JobStore(self.factory, job_id)
        store.finish_unfinished(TrialStatus.CANCELLED, "job cancelled")
        store.finish_job(JobStatus.CANCELLED, message=message)
        self._watch.pop(job_id, None)

    def _event(self, job_id: str, kind: str, message: str) -> None:
        with session_scope(self.factory) as s:
            repo.add_job_event(s, job_id=job_id, kind=kind, message=message)


def _cancel_waited_s(job: Job | None) -> float | None:
    """Seconds since the job's cancel was asked; 0 for a cancelling job without the time, None otherwise."""
    if job is None or JobStatus(job.status) != JobStatus.CANCELLING:
        return None
    asked = job.cancel_requested_at or datetime.now(UTC)
    return (datetime.now(UTC) - asked).total_seconds()


def _absolute_url(settings: Settings) -> URL:
    """The database URL with a SQLite file's path made absolute (a driver's working directory differs)."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).resolve()))
    return url


def _driver_env(settings: Settings) -> dict[str, str]:
    """Environment of the driver's Ray Job. The database URL travels only without a password: Ray shows a
    job's runtime env in its dashboard, so a URL with a secret must come from the head's own environment
    (``SCHEDSEARCH_DATABASE_URL`` set there: by ``connect_ray`` for the dispatcher's local head, from a
    Kubernetes secret or the env file for a cluster)."""
    url = _absolute_url(settings)
    env = {
        "SCHEDSEARCH_SQLITE_BUSY_TIMEOUT_MS": str(settings.sqlite_busy_timeout_ms),
        # The driver waits out a database outage for as long as the dispatcher's lease (workers.store).
        "SCHEDSEARCH_LEASE_SECONDS": str(settings.lease_seconds),
    }
    if url.password is None:
        env["SCHEDSEARCH_DATABASE_URL"] = url.render_as_string(hide_password=False)
    return env


# ------------------------------------------------------------------------------------------- entry points


def run_embedded(settings: Settings, stop: threading.Event) -> None:
    """The embedded dispatcher of ``schedsearch serve`` (``cli/server.py`` runs this in a thread)."""
    Dispatcher(settings).run(stop)


def run_forever(settings: Settings, **kwargs: Any) -> int:
    """``schedsearch dispatcher``: run in the foreground until SIGTERM or Ctrl-C."""
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    Dispatcher(settings, **kwargs).run(stop)
    return 0
