"""``schedules.export``: the JSON form, the PyTorch snippet (run for real) and Megatron-LM arguments."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from schedules.clock import ScheduleClock
from schedules.export import (
    ExportError,
    FoundSchedule,
    megatron_args,
    megatron_lr_args,
    pytorch_snippet,
    step_batch_size_schedule,
)
from schedules.spec import Horizon, Schedule

GROWING = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 2}
COSINE = {"family": "cosine", "lr0": 0.1, "lr_min": 0.01}


def _found(
    batch: dict[str, Any], lr: dict[str, Any], *, epochs: int = 6, n: int = 100, optimizer: str = "nshb"
) -> FoundSchedule:
    return FoundSchedule(
        schedule=Schedule.from_json({"batch_size": batch, "lr": lr}),
        task={"name": "synthetic-logreg", "options": {"n": n}},
        horizon=Horizon(epochs=epochs, n_train=n),
        optimizer=optimizer,
        momentum=0.0 if optimizer == "sgd" else 0.9,
        seed=3,
        source={"job_id": "0123abcd", "trial_id": 7, "trial_name": "search-7"},
    )


@pytest.mark.parametrize(
    ("batch", "lr", "n", "expected"),
    [
        (GROWING, COSINE, 100, [(0, 8), (200, 16), (400, 32)]),  # a change every 2 epochs of 100 samples
        ({"family": "constant", "b0": 32}, COSINE, 100, [(0, 32)]),  # one entry: no change
        (GROWING, COSINE, 20, [(0, 8), (40, 16), (80, 20)]),  # 32 > n: clipped to the training set
        (
            {"family": "linear_growth", "b0": 10, "increment": 5, "interval": 3},
            COSINE,
            100,
            [(0, 10), (300, 15)],
        ),  # linear growth every 3 epochs
        (
            {"family": "constant", "b0": 8},
            {"family": "seesaw", "base": {"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 2}},
            100,
            [(0, 8), (200, 16), (400, 32)],
        ),  # Seesaw's batch multiplier is part of the plan
    ],
)
def test_step_batch_size_schedule(
    batch: dict[str, Any], lr: dict[str, Any], n: int, expected: list[tuple[int, int]]
) -> None:
    schedule = Schedule.from_json({"batch_size": batch, "lr": lr})
    assert step_batch_size_schedule(schedule, Horizon(epochs=6, n_train=n)) == expected


def test_megatron_arguments_for_a_growing_batch_with_cosine() -> None:
    assert megatron_args(_found(GROWING, COSINE)) == (
        "# Megatron-LM arguments for the schedule of schedsearch job 0123abcd, trial 7 (search-7): "
        "synthetic-logreg, 6 epochs over n=100 examples.\n"
        "# --step-batch-size-schedule thresholds are consumed samples (epoch e starts at e x n); Megatron\n"
        "# reads them as tokens when --seq-length is set: "
        "then multiply each threshold by the sequence length.\n"
        "# Every batch size must be a multiple of --micro-batch-size x the data-parallel size. Megatron has\n"
        "# no partial last batch, so a change can come up to one step later than in schedsearch's trainer.\n"
        "# NSHB as Megatron's SGD (SHB): LRs x (1 - momentum) = x 0.1, the same trajectory.\n"
        "# lr cosine: schedsearch holds each epoch's LR, Megatron decays per sample; "
        "equal at every epoch start.\n"
        "--train-samples 600 \\\n"
        '--step-batch-size-schedule "0:8 200:16 400:32" \\\n'
        "--optimizer sgd \\\n"
        "--sgd-momentum 0.9 \\\n"
        "--weight-decay 0.0 \\\n"
        "--lr 0.01 \\\n"
        "--min-lr 0.001 \\\n"
        "--lr-decay-style cosine \\\n"
        "--lr-decay-samples 600 \\\n"
        "--lr-warmup-samples 0\n"
    )


@pytest.mark.parametrize(
    ("lr", "optimizer", "expected"),
    [
        (
            {"family": "constant", "lr0": 0.1},
            "shb",
            [("--lr", "0.1"), ("--lr-decay-style", "constant")],
        ),  # SHB is Megatron's SGD: the LR as it is
        (
            {"family": "constant", "lr0": 0.1},
            "sgd",
            [("--lr", "0.1"), ("--lr-decay-style", "constant")],
        ),  # plain SGD: momentum 0
        (
            {"family": "linear", "lr0": 0.5},
            "nshb",
            [
                ("--lr", "0.05"),
                ("--min-lr", "0.0"),
                ("--lr-decay-style", "linear"),
                ("--lr-decay-samples", "600"),
            ],
        ),  # linear with a constant batch; NSHB's LR x (1 - 0.9)
    ],
)
def test_megatron_lr_arguments(lr: dict[str, Any], optimizer: str, expected: list[tuple[str, str]]) -> None:
    args, _ = megatron_lr_args(_found({"family": "constant", "b0": 20}, lr, optimizer=optimizer))
    momentum = "0.0" if optimizer == "sgd" else "0.9"
    assert args == [
        ("--optimizer", "sgd"),
        ("--sgd-momentum", momentum),
        ("--weight-decay", "0.0"),
        *expected,
        ("--lr-warmup-samples", "0"),
    ]


@pytest.mark.parametrize(
    ("batch", "lr", "message"),
    [
        (
            {"family": "adaptive", "b0": 8},
            COSINE,
            "batch_size.family=adaptive moves with the measured full gradient norm",
        ),  # no step schedule can follow a measured norm
        (
            GROWING,
            {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 4, "warmup_interval": 1},
            "lr.family=warmup_const has no Megatron-LM --lr-decay-style",
        ),  # geometric warm-up plateaus; Megatron's warm-up is linear
        (GROWING, {"family": "diminishing", "lr0": 0.1}, "lr.family=diminishing has no Megatron-LM"),
        (GROWING, {"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 2}, "lr.family=step_decay"),
        (
            GROWING,
            {"family": "linear", "lr0": 0.1},
            "Megatron can take linear only with a constant batch size",
        ),  # per step vs per sample part ways once the batch grows
    ],
)
def test_families_megatron_cannot_express_are_a_clear_error(
    batch: dict[str, Any], lr: dict[str, Any], message: str
) -> None:
    with pytest.raises(ExportError, match=message) as info:
        megatron_args(_found(batch, lr))
    assert "--format pytorch" in str(info.value)


def test_the_json_form_round_trips_with_what_it_was_found_for() -> None:
    found = _found(GROWING, COSINE)
    data = found.to_json()
    assert data["schedule"] == found.schedule.to_json()  # the one JSON form of a schedule
    assert (data["task"]["name"], data["horizon"], data["seed"]) == (
        "synthetic-logreg",
        {"epochs": 6, "n_train": 100},
        3,
    )
    assert FoundSchedule.from_json(data) == found


@pytest.mark.parametrize(
    "batch",
    [GROWING, {"family": "adaptive", "b0": 4, "eps0": 100.0, "check_every": 3, "b_max": 16}],
    ids=["exp_growth", "adaptive"],
)
def test_the_pytorch_snippet_runs_as_printed(batch: dict[str, Any]) -> None:
    found = _found(batch, COSINE, epochs=3, n=40)
    code = pytorch_snippet(found) + "print(scheduler.last_epoch, clock.stage_changes)\n"
    compile(code, "snippet", "exec")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    steps, changes = out.stdout.split(" ", 1)
    clock = ScheduleClock(found.schedule, found.horizon)
    if found.schedule.batch_size.is_adaptive:
        assert changes.strip() != "()"  # the snippet reported the norm and the stage moved
    else:
        assert int(steps) == clock.total_steps  # one scheduler step per optimizer step, T in all
