"""The ``schedsearch`` client commands against a real uvicorn server on 127.0.0.1 (SQLite, no dispatcher).

Where a test needs a finished job, it writes the trials, metrics and statuses through the storage repository,
the same calls the dispatcher makes, so the client reads real rows through the real API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from cli import main
from tests.support.serve import free_port

SPEC: dict[str, Any] = {
    "name": "client test",
    "task": {"name": "digits-mlp"},
    "optimizer": {"name": "nshb", "momentum": 0.9},
    "space": [
        {
            "batch_size": {"family": "exp_growth", "b0": {"choice": [8, 16]}, "factor": 2.0, "interval": 2},
            "lr": {"family": "constant", "lr0": {"loguniform": [0.05, 0.5]}},
        }
    ],
    "budget": {"max_epochs": 6, "max_sfo": 100_000, "total_sfo": 1_000_000},
    "target": {"grad_norm": 0.05},
    "search": {"algorithm": "random", "num_trials": 2, "max_concurrent": 1, "seed": 0},
}


@dataclass
class Server:
    url: str
    sessions: sessionmaker[Session]
    alice: str
    bob: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    from service.api.app import create_app
    from service.auth import create_token
    from service.settings import Settings
    from service.storage.db import make_engine, make_session_factory
    from service.storage.migrate import upgrade

    data = tmp_path_factory.mktemp("client-server")
    settings = Settings(
        database_url=f"sqlite:///{data / 'schedsearch.db'}", data_dir=data, embedded_dispatcher=False
    )
    engine = make_engine(settings.resolved_database_url(), settings=settings)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        alice = create_token(session, user_name="alice")
        bob = create_token(session, user_name="bob")
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert thread.is_alive(), "uvicorn exited during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start within 20 s"
        time.sleep(0.05)
    yield Server(url=f"http://127.0.0.1:{port}", sessions=sessions, alice=alice, bob=bob)
    uv.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich wraps tables to the terminal width; captured output has none, so give it room for long ids.
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.delenv("SCHEDSEARCH_URL", raising=False)
    monkeypatch.delenv("SCHEDSEARCH_TOKEN", raising=False)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def spec_file(tmp_path: Path, spec: dict[str, Any] | None = None, name: str = "job.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(spec if spec is not None else SPEC))
    return str(path)


def submit(capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path, token: str) -> str:
    rc, out, err = cli(capsys, "submit", spec_file(tmp_path), "--url", server.url, "--token", token)
    assert rc == 0, err
    return out.strip()


# ---------------------------------------------------------------------------------------------- errors


def test_a_service_that_is_not_running_gives_one_readable_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    rc, out, err = cli(capsys, "jobs", "--url", url, "--token", "x")
    assert rc == 1
    assert out == ""
    assert f"cannot reach the schedsearch service at {url}" in err
    assert "schedsearch serve" in err
    assert "Traceback" not in err


def test_missing_token_is_a_401_with_a_hint(capsys: pytest.CaptureFixture[str], server: Server) -> None:
    rc, _, err = cli(capsys, "jobs", "--url", server.url)
    assert rc == 1
    assert "401" in err
    assert "set --token or SCHEDSEARCH_TOKEN" in err
    assert "schedsearch token create" in err


def test_invalid_spec_is_a_422_that_names_the_field(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    bad = {**SPEC, "budget": {**SPEC["budget"], "max_epochs": 0}}
    rc, out, err = cli(
        capsys, "submit", spec_file(tmp_path, bad), "--url", server.url, "--token", server.alice
    )
    assert rc == 1
    assert out == ""
    assert "422" in err
    assert "budget.max_epochs" in err


def test_a_file_that_is_not_json_is_named_with_the_parse_error(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",')
    rc, _, err = cli(capsys, "submit", str(path), "--url", server.url, "--token", server.alice)
    assert rc == 1
    assert f"{path} is not valid JSON" in err


def test_another_users_job_is_not_found(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    job_id = submit(capsys, server, tmp_path, server.alice)
    rc, _, err = cli(capsys, "show", job_id, "--url", server.url, "--token", server.bob)
    assert rc == 1
    assert "404" in err and job_id in err
    rc, _, err = cli(capsys, "cancel", job_id, "--url", server.url, "--token", server.bob)
    assert rc == 1 and "404" in err


# ---------------------------------------------------------------------------------------------- journey


def test_submit_list_show_cancel_with_url_and_token_from_the_environment(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDSEARCH_URL", server.url)
    monkeypatch.setenv("SCHEDSEARCH_TOKEN", server.alice)
    rc, out, err = cli(capsys, "submit", spec_file(tmp_path))
    assert rc == 0, err
    job_id = out.strip()
    assert len(job_id) >= 8 and "\n" not in job_id
    assert f"submitted job {job_id}" in err

    rc, out, _ = cli(capsys, "jobs")
    assert rc == 0
    assert job_id in out and "client test" in out and "queued" in out

    rc, out, _ = cli(capsys, "show", job_id, "--json")
    shown = json.loads(out)
    assert (shown["id"], shown["status"], shown["progress"]["trials_total"]) == (job_id, "queued", 2)

    rc, out, _ = cli(capsys, "trials", job_id)
    assert (rc, out.strip()) == (0, "no trials yet")

    rc, out, _ = cli(capsys, "cancel", job_id)
    assert rc == 0
    assert out.strip() == f"job {job_id}: cancelled"
    rc, out, _ = cli(capsys, "jobs", "--status", "cancelled", "--json")
    assert [j["id"] for j in json.loads(out)["data"]] == [job_id]


def test_a_yaml_spec_is_submitted_like_json(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    import yaml

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**SPEC, "name": "from yaml"}))
    rc, out, err = cli(capsys, "submit", str(path), "--url", server.url, "--token", server.alice, "--json")
    assert rc == 0, err
    assert json.loads(out)["name"] == "from yaml"


# ---------------------------------------------------------------------------------------------- results


SUMMARY_KEYS = ("status", "stop_reason", "final_grad_norm", "min_grad_norm", "best_test_acc", "total_sfo")


def _finish_job(server: Server, job_id: str, *, delay: float = 0.0) -> dict[str, int]:
    """Play the dispatcher: claim the job, record two searched trials and one baseline with their per-epoch
    curves, and mark the job succeeded. Returns the trial ids by name."""
    from service.storage import repository as repo

    time.sleep(delay)
    curves = {
        # name: (kind, batch sizes per epoch, grad norms per epoch, SFO to target or None)
        "search-fast": ("search", [8, 16, 32], [0.5, 0.08, 0.04], 32 * 40),
        "search-slow": ("search", [16, 16, 16], [0.6, 0.2, 0.09], None),
        "paper-iv-warmup": ("baseline", [8, 8, 16], [0.7, 0.1, 0.045], 1_920),
    }
    ids: dict[str, int] = {}
    with server.sessions.begin() as session:
        assert repo.claim_job(session, owner="test-dispatcher", lease_seconds=60, job_id=job_id) is not None
    for name, (kind, batches, norms, sfo_to_target) in curves.items():
        with server.sessions.begin() as session:
            schedule = {
                "batch_size": {"family": "constant", "b0": batches[0]},
                "lr": {"family": "constant", "lr0": 0.1},
            }
            trial = repo.upsert_trial(
                session, job_id=job_id, trial_key=name, kind=kind, name=name, config={"schedule": schedule}
            )
            repo.set_trial_status(session, trial_id=trial.id, status="running")
            sfo = 0
            records = []
            for epoch, (b, g) in enumerate(zip(batches, norms, strict=True), start=1):
                sfo += b * 40
                records.append({"epoch": epoch, "sfo": sfo, "grad_norm": g, "lr": 0.1, "batch_size": b})
            repo.append_metrics(session, trial_id=trial.id, records=records)
            summary: dict[str, Any] = {k: None for k in SUMMARY_KEYS}
            summary.update(
                status="completed",
                stop_reason="max_epochs",
                sfo_to_target=sfo_to_target,
                final_grad_norm=norms[-1],
                min_grad_norm=min(norms),
                best_test_acc=0.9,
                total_sfo=sfo,
            )
            repo.set_trial_status(session, trial_id=trial.id, status="succeeded", summary=summary)
            ids[name] = trial.id
    with server.sessions.begin() as session:
        repo.refresh_job_progress(session, job_id=job_id)
        repo.set_job_status(session, job_id=job_id, status="succeeded")
    return ids


def test_trials_metrics_report_and_plot_of_a_finished_job(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    job_id = submit(capsys, server, tmp_path, server.alice)
    ids = _finish_job(server, job_id)
    auth = ("--url", server.url, "--token", server.alice)

    rc, out, _ = cli(capsys, "show", job_id, *auth)
    assert rc == 0
    assert "succeeded" in out
    assert "3 finished of 3" in out
    assert "1,280" in out  # best SFO to target: search-fast, 32 * 40

    rc, out, _ = cli(capsys, "trials", job_id, *auth)
    assert rc == 0
    lines = [line for line in out.splitlines() if "search-" in line or "paper-" in line]
    # Best first by SFO to target; the trial that never reached the target comes last with "-".
    assert [next(n for n in ids if n in line) for line in lines] == [
        "search-fast",
        "paper-iv-warmup",
        "search-slow",
    ]
    assert "1,280" in lines[0] and "1,920" in lines[1]

    rc, out, _ = cli(capsys, "trials", job_id, "--metrics", str(ids["search-slow"]), *auth)
    assert rc == 0
    # Three epochs of 16 x 40 examples: SFO 640, 1,280, 1,920 with the grad norms written above.
    for sfo, grad_norm in (("640", "0.6"), ("1,280", "0.2"), ("1,920", "0.09")):
        assert any(sfo in line and grad_norm in line for line in out.splitlines()), (sfo, grad_norm, out)

    rc, out, err = cli(capsys, "report", job_id, *auth)
    assert rc == 0, err
    best_line = next(line for line in out.splitlines() if "best found" in line)
    assert f"trial {ids['search-fast']}" in best_line and "1,280" in best_line and "1.00x" in best_line
    baseline_line = next(line for line in out.splitlines() if "paper-iv-warmup" in line and "│" in line)
    assert "1,920" in baseline_line and "1.50x" in baseline_line  # 1,920 / 1,280
    # The baseline is not one of the job's paper strategies (those are named paper-i ... paper-iv).
    assert "baseline" in baseline_line
    assert "33% fewer SFO to target than the best baseline (paper-iv-warmup)" in out

    target = tmp_path / "plots" / "job.png"
    rc, _, err = cli(capsys, "plot", job_id, "-o", str(target), *auth)
    assert rc == 0, err
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(target.resolve()) in err


def test_submit_wait_shows_progress_and_ends_with_the_results_table(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    # A second job of alice's is queued behind nothing: finish it from a thread while the client waits.
    before = _job_ids(server)
    finisher = threading.Thread(target=_finish_new_job, args=(server, before), daemon=True)
    finisher.start()
    plot = tmp_path / "wait.png"
    rc, out, err = cli(
        capsys,
        "submit", spec_file(tmp_path), "--wait", "--interval", "0.1", "--plot", str(plot),
        "--url", server.url, "--token", server.alice,
    )  # fmt: skip
    finisher.join(timeout=30)
    assert rc == 0, err
    assert "3/3" in err  # the progress bar's final state: trials finished of total
    assert "best SFO to target: 1,280" in err
    assert "3 of 3 trials, 5,440 SFO spent" in err  # 2,240 + 1,920 + 1,280
    assert "best found" in out and "paper-iv-warmup" in out  # the results table
    assert plot.read_bytes()[:4] == b"\x89PNG"


def _job_ids(server: Server) -> set[str]:
    from sqlalchemy import select

    from service.storage.models import Job

    with server.sessions() as session:
        return set(session.scalars(select(Job.id)))


def _finish_new_job(server: Server, before: set[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        new = _job_ids(server) - before
        if new:
            _finish_job(server, new.pop(), delay=0.5)
            return
        time.sleep(0.05)


def test_submit_wait_gives_up_after_max_wait_and_the_job_goes_on(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    # No dispatcher runs here, so the job stays queued.
    auth = ("--url", server.url, "--token", server.alice)
    rc, _, err = cli(
        capsys, "submit", spec_file(tmp_path), "--wait", "--interval", "0.1", "--max-wait", "0.5", *auth
    )
    assert rc == 1
    assert "is still queued after 0.5 s; stopped waiting" in err
    job_id = err.split("submitted job ")[1].split()[0]
    rc, out, _ = cli(capsys, "show", job_id, "--json", *auth)
    assert json.loads(out)["status"] == "queued"


# ---------------------------------------------------------------------------------------------- export


def _add_trial(server: Server, job_id: str, name: str, schedule: dict[str, Any]) -> int:
    from service.storage import repository as repo

    with server.sessions.begin() as session:
        trial = repo.upsert_trial(
            session, job_id=job_id, trial_key=name, name=name, config={"schedule": schedule, "momentum": 0.8}
        )
        return int(trial.id)


def test_export_takes_the_best_schedule_home_as_json_pytorch_and_megatron(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    job_id = submit(capsys, server, tmp_path, server.alice)
    ids = _finish_job(server, job_id)
    auth = ("--url", server.url, "--token", server.alice)

    rc, out, err = cli(capsys, "export", job_id, *auth)  # json by default, the best trial
    assert rc == 0, err
    found = json.loads(out)
    assert found["schedule"] == {
        "batch_size": {"family": "constant", "b0": 8},
        "lr": {"family": "constant", "lr0": 0.1},
    }  # search-fast's schedule, in its one JSON form
    assert found["task"] == {"name": "digits-mlp", "options": {}}
    assert found["horizon"] == {"epochs": 6, "n_train": 1347}  # budget.max_epochs over digits' training set
    assert (found["optimizer"], found["seed"]) == ({"name": "nshb", "momentum": 0.9}, 0)
    assert (found["source"]["trial_id"], found["source"]["job_id"]) == (ids["search-fast"], job_id)

    rc, out, err = cli(capsys, "export", job_id, "--format", "pytorch", *auth)
    assert rc == 0, err
    compile(out, "snippet", "exec")
    assert "ScheduleLR(optimizer, clock)" in out and "Horizon(epochs=6, n_train=1347)" in out

    baseline = str(ids["paper-iv-warmup"])
    rc, out, err = cli(capsys, "export", job_id, "--trial", baseline, "--format", "megatron", *auth)
    assert rc == 0, err
    assert '--step-batch-size-schedule "0:8" \\' in out.splitlines()
    assert "--lr-decay-style constant \\" in out.splitlines()
    assert "--train-samples 8082 \\" in out.splitlines()  # 6 epochs x 1,347


def test_export_errors_are_one_sentence(
    capsys: pytest.CaptureFixture[str], server: Server, tmp_path: Path
) -> None:
    auth = ("--url", server.url, "--token", server.alice)
    job_id = submit(capsys, server, tmp_path, server.alice)
    rc, out, err = cli(capsys, "export", job_id, *auth)
    assert (rc, out) == (1, "")
    assert f"job {job_id} has no best trial yet (queued, 0 of 2 trials finished)" in err
    assert f"schedsearch trials {job_id}" in err

    warmup = {
        "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 2},
        "lr": {"family": "warmup_const", "lr0": 0.1, "lr_max": 0.5, "warmup_epochs": 4, "warmup_interval": 1},
    }
    trial_id = _add_trial(server, job_id, "warm", warmup)
    rc, out, err = cli(capsys, "export", job_id, "--trial", str(trial_id), "--format", "megatron", *auth)
    assert (rc, out) == (1, "")
    assert f"cannot export trial {trial_id} of job {job_id} as megatron: lr.family=warmup_const has no" in err
    assert "Traceback" not in err
    rc, out, _ = cli(capsys, "export", job_id, "--trial", str(trial_id), *auth)  # json takes any schedule
    assert rc == 0 and json.loads(out)["optimizer"]["momentum"] == 0.8  # the trial's own momentum

    rc, _, err = cli(capsys, "export", job_id, "--url", server.url, "--token", server.bob)
    assert rc == 1 and "404" in err  # another user's job


def test_the_export_command_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cli import build_parser\n"
        "build_parser()\n"
        "import cli.export\n"
        "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
