"""The trainer on digits-mlp: SFO accounting, budgets, stopping, divergence, determinism, LR per step."""

from __future__ import annotations

import math
from typing import Any

import pytest

from schedules.metrics import EpochRecord
from schedules.spec import TrialSpec
from schedules.trainer import train
from tests.support import toy_tasks

N_TRAIN = 1347  # digits-mlp training set with the default split


def _spec(batch: dict[str, Any], lr: dict[str, Any] | None = None, **extra: Any) -> TrialSpec:
    d: dict[str, Any] = {
        "task": {"name": "digits-mlp", "options": {"hidden": 32}},
        "optimizer": {"name": "nshb", "momentum": 0.9},
        "schedule": {"batch_size": batch, "lr": lr or {"family": "constant", "lr0": 0.1}},
        "budget": {"max_epochs": 3, "max_sfo": None},
        "seed": 0,
    }
    d.update(extra)
    return TrialSpec.from_json(d)


def _numbers(records: tuple[EpochRecord, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.to_json().items() if k != "wall_s"} for r in records]


def test_same_seed_gives_identical_records_and_another_seed_does_not() -> None:
    spec = _spec({"family": "exp_growth", "b0": 16, "factor": 2.0, "interval": 1})
    first, second = train(spec, device="cpu"), train(spec, device="cpu")
    assert _numbers(first.records) == _numbers(second.records)
    other = train(TrialSpec.from_json({**spec.to_json(), "seed": 1}), device="cpu")
    assert _numbers(other.records) != _numbers(first.records)


def test_sfo_is_the_sum_of_batch_sizes_and_steps_follow_the_plan() -> None:
    seen: list[EpochRecord] = []
    result = train(
        _spec({"family": "exp_growth", "b0": 100, "factor": 2.0, "interval": 1}), seen.append, device="cpu"
    )
    assert [r.batch_size for r in result.records] == [100, 200, 400]
    # every epoch uses each example once (last partial batch kept): ceil(1347/b) steps
    assert [r.step for r in result.records] == [14, 14 + 7, 14 + 7 + 4]
    assert [r.sfo for r in result.records] == [N_TRAIN, 2 * N_TRAIN, 3 * N_TRAIN]
    # measurement passes: one before training and one per epoch, counted apart
    assert [r.measure_sfo for r in result.records] == [2 * N_TRAIN, 3 * N_TRAIN, 4 * N_TRAIN]
    assert list(result.records) == seen  # report gets every record, in order
    s = result.summary
    assert (s.status, s.stop_reason, s.total_sfo, s.total_steps) == (
        "completed",
        "max_epochs",
        3 * N_TRAIN,
        25,
    )
    assert s.initial_grad_norm is not None and s.final_grad_norm is not None
    assert s.final_grad_norm < s.initial_grad_norm  # it trained


def test_max_sfo_is_never_exceeded() -> None:
    spec = _spec({"family": "constant", "b0": 100}, budget={"max_epochs": 5, "max_sfo": 2000})
    result = train(spec, device="cpu")
    # epoch 1: 1347; epoch 2 takes 6 batches of 100 (1947); a 7th would pass 2000
    assert [r.sfo for r in result.records] == [1347, 1947]
    assert [r.epoch for r in result.records] == [1, 2]
    assert (result.summary.status, result.summary.stop_reason) == ("completed", "max_sfo")


def test_budget_ending_on_an_epoch_boundary_adds_no_empty_record() -> None:
    result = train(_spec({"family": "constant", "b0": 100}, budget={"max_epochs": 5, "max_sfo": 2 * N_TRAIN}))
    assert [r.sfo for r in result.records] == [N_TRAIN, 2 * N_TRAIN]
    assert result.summary.stop_reason == "max_sfo"


def test_stops_at_target_when_asked() -> None:
    spec = _spec({"family": "constant", "b0": 64}, target={"grad_norm": 10.0, "stop_at_target": True})
    result = train(spec, device="cpu")
    assert len(result.records) == 1
    assert (result.summary.stop_reason, result.summary.epochs_to_target) == ("target", 1)
    assert result.summary.sfo_to_target == N_TRAIN


def test_should_stop_is_polled_each_epoch() -> None:
    polls: list[int] = []

    def should_stop() -> bool:
        polls.append(1)
        return len(polls) == 2

    result = train(_spec({"family": "constant", "b0": 256}), should_stop=should_stop)
    assert len(result.records) == 2 and len(polls) == 2
    assert (result.summary.status, result.summary.stop_reason) == ("stopped", "stopped")


def test_divergence_is_a_status_not_an_exception() -> None:
    result = train(_spec({"family": "constant", "b0": 64}, {"family": "constant", "lr0": 1e30}), device="cpu")
    assert (result.summary.status, result.summary.stop_reason) == ("diverged", "diverged")
    assert len(result.records) == 1
    assert not math.isfinite(result.records[-1].grad_norm) or not math.isfinite(result.records[-1].train_loss)
    assert result.to_json()["records"][-1]["grad_norm"] is None  # JSON-safe


def test_per_step_lr_uses_total_steps() -> None:
    # linear: lr0 (1 - t/T); b=200 -> 7 steps per epoch, T = 21; a record holds its epoch's last-step LR
    result = train(_spec({"family": "constant", "b0": 200}, {"family": "linear", "lr0": 0.2}), device="cpu")
    assert [r.lr for r in result.records] == pytest.approx([0.2 * (1 - t / 21) for t in (6, 13, 20)])


def test_adaptive_stage_advances_on_the_gradient_norm_rule() -> None:
    # eps0 huge: every check passes, so the batch doubles at every check (every 5 steps) up to b_max
    batch = {
        "family": "adaptive",
        "b0": 16,
        "factor": 2.0,
        "lr_factor": 1.0,
        "eps0": 1e9,
        "check_every": 5,
        "b_max": 64,
    }
    result = train(_spec(batch), device="cpu")
    # epoch 1: 5 steps at 16, 5 at 32, then 64 for the remaining 1347 - 240 = 1107 examples (18 steps)
    assert result.records[0].step == 5 + 5 + 18
    assert [r.batch_size for r in result.records] == [64, 64, 64]
    # two checks taken (after the cap no more), plus the initial and per-epoch passes
    assert result.records[-1].measure_sfo == (2 + 1 + 3) * N_TRAIN
    # eps0 tiny: never advances
    never = train(_spec({**batch, "eps0": 1e-9}), device="cpu")
    assert [r.batch_size for r in never.records] == [16, 16, 16]
    assert never.records[-1].measure_sfo > result.records[-1].measure_sfo  # more checks, none passed


def test_faithful_mode_runs_and_differs_from_clean() -> None:
    clean = train(_spec({"family": "constant", "b0": 128}), device="cpu")
    faithful = train(_spec({"family": "constant", "b0": 128}, grad_norm_mode="faithful"), device="cpu")
    # the MLP has no BatchNorm, so only the b/n over-weighting of the short last chunk differs
    assert [r.train_loss for r in faithful.records] == [r.train_loss for r in clean.records]
    assert faithful.records[-1].grad_norm != clean.records[-1].grad_norm


@pytest.mark.gpu
def test_trains_on_cuda_when_present() -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    result = train(_spec({"family": "exp_growth", "b0": 64, "factor": 2.0, "interval": 1}), device=None)
    assert result.device.startswith("cuda")
    assert [r.sfo for r in result.records] == [N_TRAIN, 2 * N_TRAIN, 3 * N_TRAIN]
    assert result.summary.final_grad_norm is not None and math.isfinite(result.summary.final_grad_norm)


# --- the task contract: streamed data, other losses, augmentation, gradient-norm subsets -------------------

ADAPTIVE = {
    "family": "adaptive",
    "b0": 16,
    "factor": 2.0,
    "lr_factor": 1.0,
    "eps0": 1e9,
    "check_every": 5,
    "b_max": 64,
}


@pytest.mark.parametrize(
    ("batch", "extra", "num_workers"),
    [
        ({"family": "exp_growth", "b0": 16, "factor": 2.0, "interval": 1}, {}, 0),  # b changes per epoch
        (ADAPTIVE, {}, 0),  # b changes mid-epoch, after a measurement pass
        (ADAPTIVE, {}, 1),  # ... with a worker process prefetching ahead of the loop
        (  # the SFO budget cuts an epoch short; faithful measurement in chunks of b
            {"family": "constant", "b0": 100},
            {"grad_norm_mode": "faithful", "budget": {"max_epochs": 3, "max_sfo": 2000}},
            0,
        ),
    ],
)
def test_streamed_path_gives_the_same_numbers_as_the_in_memory_path(
    batch: dict[str, Any], extra: dict[str, Any], num_workers: int
) -> None:
    memory = train(_spec(batch, **extra), device="cpu")
    streamed_spec = _spec(batch, **extra)
    streamed_spec = TrialSpec.from_json(
        {
            **streamed_spec.to_json(),
            "task": {
                "name": "digits-mlp",
                "options": {"hidden": 32, "stream": True, "num_workers": num_workers},
            },
        }
    )
    streamed = train(streamed_spec, device="cpu")
    assert _numbers(streamed.records) == _numbers(memory.records)
    assert streamed.task_bytes == 0 and memory.task_bytes > 0


def _toy_spec(task: str, options: dict[str, Any] | None = None, **extra: Any) -> TrialSpec:
    d: dict[str, Any] = {
        "task": {"name": task, "options": options or {}},
        "optimizer": {"name": "nshb", "momentum": 0.9},
        "schedule": {
            "batch_size": {"family": "constant", "b0": 16},
            "lr": {"family": "constant", "lr0": 0.5},
        },
        "budget": {"max_epochs": 4, "max_sfo": None},
        "seed": 0,
    }
    d.update(extra)
    return TrialSpec.from_json(d)


def test_regression_trains_with_mean_squared_error_and_reports_no_accuracy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.REGRESSION)
    result = train(_toy_spec("toy-regression"), device="cpu")
    assert all(r.test_acc is None for r in result.records) and result.summary.best_test_acc is None
    assert result.records[-1].train_loss < result.records[0].train_loss
    assert result.summary.final_grad_norm is not None and result.summary.initial_grad_norm is not None
    assert result.summary.final_grad_norm < result.summary.initial_grad_norm
    assert [r.sfo for r in result.records] == [96, 192, 288, 384]
    streamed = train(_toy_spec("toy-regression", {"stream": True}), device="cpu")
    assert _numbers(streamed.records) == _numbers(result.records)


def test_language_model_counts_sequences_as_sfo_and_reports_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.LANGUAGE)
    result = train(_toy_spec("toy-language", {"context": 8}), device="cpu")
    assert [r.sfo for r in result.records] == [64, 128, 192, 256]  # one example is one sequence
    assert [r.tokens for r in result.records] == [64 * 8, 128 * 8, 192 * 8, 256 * 8]
    assert result.summary.total_tokens == 256 * 8
    accs = [r.test_acc for r in result.records]
    assert all(a is not None and 0.0 <= a <= 1.0 for a in accs)
    assert (
        result.records[-1].full_loss is not None
        and result.records[-1].full_loss < result.records[0].train_loss
    )


def test_augmentation_has_its_own_seeded_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    toy_tasks.install(monkeypatch, toy_tasks.AUGMENTED)
    runs = {
        kind: train(_toy_spec("toy-augmented", {"augment": kind}, budget={"max_epochs": 2}), device="cpu")
        for kind in ("none", "draw-only", "noise")
    }
    # drawing from the augmentation stream does not move the permutation or anything else
    assert _numbers(runs["draw-only"].records) == _numbers(runs["none"].records)
    # augmented batches train differently, and the same seed augments the same way
    assert [r.train_loss for r in runs["noise"].records] != [r.train_loss for r in runs["none"].records]
    again = train(_toy_spec("toy-augmented", {"augment": "noise"}, budget={"max_epochs": 2}), device="cpu")
    assert _numbers(again.records) == _numbers(runs["noise"].records)
    # clean mode measures on the data as they are; faithful mode on augmented data (same initial model)
    assert runs["noise"].summary.initial_grad_norm == runs["none"].summary.initial_grad_norm
    faithful = {
        kind: train(
            _toy_spec(
                "toy-augmented", {"augment": kind}, budget={"max_epochs": 1}, grad_norm_mode="faithful"
            ),
            device="cpu",
        )
        for kind in ("none", "noise")
    }
    assert faithful["noise"].summary.initial_grad_norm != faithful["none"].summary.initial_grad_norm


def test_gradient_norm_on_a_fixed_subset_is_marked_as_an_estimate() -> None:
    exact = train(_spec({"family": "constant", "b0": 128}), device="cpu")
    spec = _spec({"family": "constant", "b0": 128})
    estimate = train(
        TrialSpec.from_json(
            {
                **spec.to_json(),
                "task": {"name": "digits-mlp", "options": {"hidden": 32, "grad_norm_subset": 300}},
            }
        ),
        device="cpu",
    )
    # training is untouched; the measurement covers 300 examples and every record says so
    assert [r.train_loss for r in estimate.records] == [r.train_loss for r in exact.records]
    assert [r.grad_norm_subset for r in estimate.records] == [300, 300, 300]
    assert [r.grad_norm_subset for r in exact.records] == [None, None, None]
    assert [r.measure_sfo for r in estimate.records] == [300 * k for k in (2, 3, 4)]
    assert estimate.records[-1].grad_norm != exact.records[-1].grad_norm
    assert estimate.summary.grad_norm_subset == 300 and exact.summary.grad_norm_subset is None
    # the record's JSON form keeps the mark
    assert EpochRecord.from_json(estimate.records[-1].to_json()) == estimate.records[-1]
    # a subset as large as the training set is the exact measurement
    whole = train(
        TrialSpec.from_json(
            {
                **spec.to_json(),
                "task": {"name": "digits-mlp", "options": {"hidden": 32, "grad_norm_subset": N_TRAIN}},
            }
        ),
        device="cpu",
    )
    assert _numbers(whole.records) == _numbers(exact.records)
