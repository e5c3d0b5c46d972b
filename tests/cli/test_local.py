"""``schedsearch train``, ``schedules``, ``tasks`` and ``check``, run in-process through
``cli.main``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli import main

N_TRAIN = 1347


def test_train_from_flags_prints_table_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "result.json"
    rc = main(
        [
            "train",
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--lr0",
            "0.05",
            "--task-option",
            "hidden=16",
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "per-epoch metrics" in captured.out and "summary" in captured.out
    assert "2/2" in captured.err  # the progress bar, on stderr
    result = json.loads(out.read_text())
    assert [r["sfo"] for r in result["records"]] == [N_TRAIN, 2 * N_TRAIN]
    assert result["spec"]["schedule"] == {
        "batch_size": {"family": "constant", "b0": 256},
        "lr": {"family": "constant", "lr0": 0.05},
    }
    assert result["spec"]["task"] == {"name": "digits-mlp", "options": {"hidden": 16}}
    assert result["summary"]["total_steps"] == 2 * 6  # ceil(1347 / 256) = 6 steps per epoch


def test_train_from_yaml_spec_with_flag_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "task: {name: synthetic-logreg, options: {n: 512, d: 8}}\n"
        "optimizer: {name: shb, momentum: 0.5}\n"
        "schedule:\n"
        "  batch_size: {family: exp_growth, b0: 32, factor: 2, interval: 1}\n"
        "  lr: {family: cosine, lr0: 0.2}\n"
        "budget: {max_epochs: 9}\n"
    )
    assert main(["train", str(spec), "--epochs", "3", "--print-spec"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["budget"]["max_epochs"] == 3  # the flag wins
    assert resolved["optimizer"] == {"name": "shb", "momentum": 0.5}
    assert resolved["schedule"]["lr"] == {"family": "cosine", "lr0": 0.2, "lr_min": 0.0}
    out = tmp_path / "r.json"
    assert main(["train", str(spec), "--epochs", "3", "--no-progress", "--json", str(out)]) == 0
    assert [r["batch_size"] for r in json.loads(out.read_text())["records"]] == [32, 64, 128]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # unknown family: the spec error names the field and the valid values
        (["--batch", '{"family": "nope", "b0": 8}'], "batch_size.family must be one of constant, exp_growth"),
        # unknown task: the registry lists the known ones
        (["--task", "mnist"], "task.name must be one of cifar10-resnet18"),
        # malformed JSON flag
        (["--lr", "{oops"], "--lr is not valid JSON"),
        # both batch flags
        (["--batch-size", "8", "--batch", '{"family": "constant", "b0": 8}'], "give --batch or --batch-size"),
        # missing spec file
        (["no-such-spec.json"], "no such file: no-such-spec.json"),
    ],
)
def test_train_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--no-progress", *argv]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_schedules_lists_families_with_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schedules", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    exp = {p["name"]: p for p in listing["families"]["batch_size"]["exp_growth"]}
    assert exp["b0"]["required"] and exp["b_max"] == {"name": "b_max", "required": False, "default": None}
    assert {"constant", "diminishing", "linear", "poly", "cosine", "warmup_const", "seesaw"} <= set(
        listing["families"]["lr"]
    )
    assert main(["schedules"]) == 0
    assert "warmup_cosine" in capsys.readouterr().out


def test_check_names_violated_conditions(capsys: pytest.CaptureFixture[str]) -> None:
    # (iii) with beta = 0.9 and a 10x LR growth over 9 stages: beta^2 gamma = 0.81 * 1.2915 > 1
    spec: dict[str, Any] = {
        "optimizer": {"name": "nshb", "momentum": 0.9},
        "schedule": {
            "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2, "interval": 30},
            "lr": {"family": "exp_growth", "lr0": 0.1, "interval": 30, "lr_max": 1.0},
        },
        "budget": {"max_epochs": 300},
    }
    assert main(["check", json.dumps(spec)]) == 0
    out = capsys.readouterr().out
    assert "(iii)" in out and "NOT guaranteed" in out and "momentum_growth" in out
    spec["optimizer"]["momentum"] = 0.87  # the paper's fix for 10x growth
    assert main(["check", json.dumps(spec), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["converges_guaranteed"] is True and report["violations"] == []


def test_check_rejects_a_bad_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    bad = {
        "batch_size": {"family": "exp_growth", "b0": 8, "factor": 0.5, "interval": 3},
        "lr": {"family": "constant", "lr0": 0.1},
    }
    assert main(["check", json.dumps(bad)]) == 2
    assert "batch_size.factor" in capsys.readouterr().err


def test_train_from_a_paper_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "optimizer": "nshb",
        "init_beta": 0.9,
        "bs_method": "exp_growth",
        "init_bs": 8,
        "bs_growth_rate": 2.0,
        "incr_interval": 30,
        "lr_method": "warmup_const",
        "init_lr": 0.1,
        "lr_max": 0.5,
        "warmup_epochs": 30,
        "warmup_interval": 3,
        "epochs": 300,
    }
    path = tmp_path / "paper.json"
    path.write_text(json.dumps(config))
    assert main(["train", "--paper-config", str(path), "--print-spec"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["task"]["name"] == "cifar100-resnet18" and spec["budget"]["max_epochs"] == 300
    assert spec["schedule"]["batch_size"]["b0"] == 8 and spec["schedule"]["lr"]["family"] == "warmup_const"
    # the same run, moved to the embedded task and cut to one epoch, really trains
    out = tmp_path / "r.json"
    rc = main(
        [
            "train",
            "--paper-config",
            str(path),
            "--task",
            "digits-mlp",
            "--epochs",
            "1",
            "--no-progress",
            "--json",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    assert result["records"][0]["batch_size"] == 8 and result["records"][0]["step"] == 169  # ceil(1347 / 8)
    assert result["spec"]["grad_norm_mode"] == "faithful"  # the importer keeps the paper's measurement


def test_train_from_a_preset(capsys: pytest.CaptureFixture[str]) -> None:
    from schedules.paper import PRESETS

    name = next(k for k in PRESETS if "/iv/" in k)
    assert main(["train", "--preset", name, "--task", "digits-mlp", "--epochs", "5", "--print-spec"]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["schedule"] == PRESETS[name].schedule.to_json()
    assert spec["task"]["name"] == "digits-mlp" and spec["budget"]["max_epochs"] == 5
    assert main(["train", "--preset", "no-such-preset", "--print-spec"]) == 2
    assert "unknown preset 'no-such-preset'" in capsys.readouterr().err


def test_tasks_lists_installed_tasks_with_their_options(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from schedules.tasks.registry import BrokenTask, Catalogue
    from tests.support import toy_tasks

    installed = toy_tasks.install(monkeypatch, toy_tasks.REGRESSION)
    assert main(["tasks", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    names = [t["name"] for t in listing["data"]]
    expected = {"digits-mlp", "digits-cnn", "synthetic-logreg", "cifar10-resnet18", "toy-regression"}
    generic = {"tabular-mlp", "image-folder", "text-transformer"}
    assert expected | generic <= set(names)
    cifar = next(t for t in listing["data"] if t["name"] == "cifar10-resnet18")
    assert "augment" in [o["name"] for o in cifar["options"]]
    assert listing["count"] == len(names) and listing["broken"] == []
    digits = next(t for t in listing["data"] if t["name"] == "digits-mlp")
    hidden = next(o for o in digits["options"] if o["name"] == "hidden")
    assert hidden == {
        "name": "hidden",
        "type": "int",
        "default": 128,
        "minimum": 1,
        "maximum": 4096,
        "choices": None,
        "nullable": False,
        "description": "Width of each hidden layer.",
    }
    # the table, and a broken plugin reported with its package on stderr
    broken = Catalogue(
        tasks=installed.tasks, broken={"bad": BrokenTask("bad", "bad-pkg 1.0", "'bad:X' does not load")}
    )
    monkeypatch.setattr("schedules.tasks.catalogue", lambda: broken)
    assert main(["tasks"]) == 0
    captured = capsys.readouterr()
    assert "toy-regression" in captured.out and "hidden=128 [1..4,096]" in captured.out
    assert "unavailable: task 'bad' from bad-pkg 1.0: 'bad:X' does not load" in " ".join(captured.err.split())


def test_check_takes_n_train_from_the_task_definition(capsys: pytest.CaptureFixture[str]) -> None:
    from cli.local import _task_n_train

    assert _task_n_train({"name": "cifar10-resnet18", "options": {"subset": 512}}) == 512
    assert _task_n_train({"name": "digits-mlp"}) == 1347
    assert _task_n_train(None) is None
    spec = {
        "task": {"name": "digits-mlp", "options": {"hiden": 8}},
        "schedule": {"batch_size": {"family": "constant", "b0": 8}, "lr": {"family": "constant", "lr0": 0.1}},
    }
    assert main(["check", json.dumps(spec)]) == 2
    assert "task.options.hiden is not an option of task digits-mlp" in capsys.readouterr().err


def test_train_table_marks_a_gradient_norm_measured_on_a_subset(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--epochs", "1", "--no-progress", "--task-option", "grad_norm_subset=300"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "grad norm (est., 300 examples)" in out and "grad_norm_subset" in out
