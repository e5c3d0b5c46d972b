"""``schedsearch`` client commands over the REST API: submit, jobs, show, trials, report, plot, cancel.

Every command takes ``--url`` and ``--token`` (or ``SCHEDSEARCH_URL`` / ``SCHEDSEARCH_TOKEN``) and prints
tables with rich; ``--json`` prints the service's JSON instead, for scripts. Failures print one readable
message on stderr and exit 1 (see :mod:`cli.rest`). Only httpx, rich and pyyaml are imported: the
client never loads torch or ray.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cli import render, specfile
from cli.rest import DEFAULT_URL, TOKEN_ENV, URL_ENV, ApiClient, ApiError, Connection

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _out() -> Console:
    # Built per call so tests that capture stdout see the output; soft_wrap keeps long ids on one line.
    return Console(soft_wrap=True)


def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient(Connection.resolve(args.url, args.token), timeout=args.timeout)


def _emit(data: Any, *, as_json: bool, draw: Callable[[Any], None]) -> int:
    """Every read command's ending: the raw JSON with ``--json``, else the table ``draw`` renders."""
    if as_json:
        _print_json(data)
    else:
        draw(data)
    return 0


def _write_file(name: str, data: bytes) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.resolve()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_spec(path: Path) -> dict[str, Any]:
    """A job spec from a JSON or YAML file, read with limits (:mod:`cli.specfile`); the service
    validates the content."""
    try:
        return specfile.load_spec(path)
    except ValueError as exc:
        raise ApiError(str(exc)) from None


# ---------------------------------------------------------------------------------------------- commands


def cmd_submit(args: argparse.Namespace) -> int:
    spec = load_spec(Path(args.file))
    with _client(args) as api:
        job = api.submit(spec, idempotency_key=args.idempotency_key)
        job_id = str(job["id"])
        if args.json and not args.wait:
            _print_json(job)
            return 0
        err = _err()
        err.print(f"submitted job [bold]{job_id}[/] ({job.get('name') or 'unnamed'}), status {job['status']}")
        for warning in job.get("warnings") or []:
            err.print(f"[yellow]theory check:[/] {render.warning_text(warning)}")
        if not args.wait:
            # The id alone on stdout, so `JOB=$(schedsearch submit job.json)` works.
            sys.stdout.write(job_id + "\n")
            return 0
        job = watch(api, job_id, interval=args.interval, max_wait=args.max_wait)
        return _finish(api, job, plot=args.plot, as_json=args.json)


def watch(api: ApiClient, job_id: str, *, interval: float, max_wait: float | None = None) -> dict[str, Any]:
    """Poll the job until it ends, with a progress bar of finished trials and the best SFO to target.
    After ``max_wait`` seconds stop waiting (the job goes on) with an :class:`ApiError`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = _err()
    job = api.get_job(job_id)
    link_shown = False
    deadline = None if max_wait is None else time.monotonic() + max_wait
    # Fits 80 columns: "d50589bd running ━━━━━━━━━━━━━━ 3/10 trials  best SFO to target: 26,940 0:00:41".
    columns = (
        TextColumn("{task.description}"),
        BarColumn(bar_width=14),
        MofNCompleteColumn(),
        TextColumn("trials  best SFO to target: {task.fields[best]}"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task(job["status"], total=None, best="-")
            while True:
                # The dispatcher records the link when it starts the job's driver.
                if job.get("ray_dashboard_url") and not link_shown:
                    progress.console.print(f"Ray dashboard: {job['ray_dashboard_url']}")
                    link_shown = True
                p = render.progress_of(job)
                progress.update(
                    task,
                    description=f"{job_id[:8]} {job['status']}",
                    completed=p.finished,
                    total=p.total or None,
                    best=render.fmt_sfo(p.best_sfo),
                )
                if job["status"] in TERMINAL:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise ApiError(
                        f"job {job_id} is still {job['status']} after {max_wait:g} s; stopped waiting. "
                        f"It goes on: `schedsearch show {job_id}`, `schedsearch cancel {job_id}`."
                    )
                time.sleep(interval)
                job = api.get_job(job_id)
    except KeyboardInterrupt:
        err.print(
            f"\nstopped watching; job {job_id} goes on. Watch again with `schedsearch show {job_id}`, "
            f"stop it with `schedsearch cancel {job_id}`."
        )
        raise SystemExit(130) from None
    p = render.progress_of(job)
    spent = render.fmt_sfo(p.sfo_spent)
    err.print(f"job {job_id} {job['status']}: {p.finished} of {p.total} trials, {spent} SFO spent")
    return job


def _finish(api: ApiClient, job: dict[str, Any], *, plot: str | None, as_json: bool) -> int:
    job_id = str(job["id"])
    err = _err()
    if job["status"] != "succeeded":
        reason = job.get("error") or "no reason recorded"
        err.print(f"[red]job {job_id} {job['status']}[/]: {reason}")
        if as_json:
            _print_json(job)
        return 1
    _emit(api.report(job_id), as_json=as_json, draw=lambda report: render.print_report(_out(), report))
    if plot:
        path = _write_file(plot, api.plot(job_id))
        err.print(f"plot: {path}")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    with _client(args) as api:
        page = api.list_jobs(status=args.status, limit=args.limit)
    return _emit(
        page,
        as_json=args.json,
        draw=lambda p: render.print_jobs(_out(), render.items_of(p), total=render.total_of(p)),
    )


def cmd_show(args: argparse.Namespace) -> int:
    with _client(args) as api:
        job = api.get_job(args.job_id)
    return _emit(job, as_json=args.json, draw=lambda j: render.print_job(_out(), j))


def cmd_trials(args: argparse.Namespace) -> int:
    with _client(args) as api:
        if args.metrics is not None:
            curve = api.metrics(args.job_id, args.metrics)
            return _emit(
                curve, as_json=args.json, draw=lambda c: render.print_metrics(_out(), render.items_of(c))
            )
        page = api.trials(args.job_id, sort=args.sort, limit=args.limit)
    return _emit(
        page,
        as_json=args.json,
        draw=lambda p: render.print_trials(_out(), render.items_of(p), total=render.total_of(p)),
    )


def cmd_report(args: argparse.Namespace) -> int:
    with _client(args) as api:
        report = api.report(args.job_id)
    return _emit(report, as_json=args.json, draw=lambda r: render.print_report(_out(), r))


def cmd_plot(args: argparse.Namespace) -> int:
    with _client(args) as api:
        png = api.plot(args.job_id)
    path = _write_file(args.output, png)
    _err().print(f"wrote {len(png):,} bytes to {path}")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as api:
        job = api.cancel(args.job_id)
    if args.json:
        _print_json(job)
        return 0
    _out().print(f"job {job['id']}: {job['status']}")
    return 0


# ---------------------------------------------------------------------------------------------- parser


def _guarded(handler: Any) -> Any:
    """Turn an :class:`ApiError` into one message on stderr and exit status 1, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args) or 0)
        except ApiError as exc:
            # The message quotes files and server answers: brackets in them are text, not rich markup.
            _err().print(f"[red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
            return 1

    return run


def _connection_options(*, json_flag: bool = True) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument("--url", help=f"service URL (env {URL_ENV}, default {DEFAULT_URL})")
    group.add_argument("--token", help=f"API token (env {TOKEN_ENV})")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    if json_flag:
        group.add_argument("--json", action="store_true", help="print the service's JSON instead of tables")
    return parent


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = [_connection_options()]

    p = subparsers.add_parser("submit", parents=common, help="submit a job spec (JSON or YAML)")
    p.add_argument("file", help="job spec file, e.g. examples/digits-warmup-vs-growth.json")
    p.add_argument("--wait", action="store_true", help="show live progress and end with the results table")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between progress polls (default 1)")
    p.add_argument("--plot", metavar="FILE", help="with --wait: also save the plot (PNG) to FILE")
    p.add_argument(
        "--max-wait",
        type=float,
        metavar="SECONDS",
        help="with --wait: give up waiting after this long (exit 1)",
    )
    p.add_argument("--idempotency-key", help="retrying with the same key returns the same job")
    p.set_defaults(handler=_guarded(cmd_submit))

    p = subparsers.add_parser("jobs", parents=common, help="list your jobs, newest first")
    p.add_argument("--status", help="only jobs in this status (queued, running, succeeded, ...)")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.set_defaults(handler=_guarded(cmd_jobs))

    p = subparsers.add_parser("show", parents=common, help="a job's status, progress and best trial")
    p.add_argument("job_id", metavar="ID")
    p.set_defaults(handler=_guarded(cmd_show))

    p = subparsers.add_parser("trials", parents=common, help="a job's trials, best first")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--sort", choices=["objective", "created", "sfo"], default="objective")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--metrics", metavar="TRIAL", help="print the per-epoch curve of one trial instead")
    p.set_defaults(handler=_guarded(cmd_trials))

    p = subparsers.add_parser(
        "report", parents=common, help="best schedule against the paper's strategies, SFO to target"
    )
    p.add_argument("job_id", metavar="ID")
    p.set_defaults(handler=_guarded(cmd_report))

    p = subparsers.add_parser("plot", parents=common, help="save the gradient norm vs SFO plot (PNG)")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the PNG")
    p.set_defaults(handler=_guarded(cmd_plot))

    p = subparsers.add_parser("cancel", parents=common, help="cancel a queued or running job")
    p.add_argument("job_id", metavar="ID")
    p.set_defaults(handler=_guarded(cmd_cancel))
