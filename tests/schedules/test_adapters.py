"""A plain PyTorch loop with ``schedules.adapters`` sees exactly the trainer's LRs and batches, step by step.

The trainer is observed from outside: a forward pre-hook on its model records each training batch (mapped back
to example indices through the data rows, which are distinct) and a wrapper on its optimizer records the LR of
every update. The loop under test uses only torch, a DataLoader and the adapters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import schedules.trainer as trainer_module
from schedules.adapters import ScheduleBatchSampler, ScheduleLR, make_torch_optimizer
from schedules.clock import ScheduleClock
from schedules.grad import full_gradient
from schedules.spec import Horizon, Schedule, TrialSpec
from schedules.tasks.runtime import Task, TensorData, load_task
from schedules.trainer import train

TASK = {"name": "synthetic-logreg", "options": {"n": 100, "n_test": 20, "d": 6, "seed": 3}}
GROWING = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 1}
PER_STEP = {"family": "diminishing", "lr0": 0.2}

# Every LR family on a growing batch, every batch family on a per-step LR (so each step's LR differs).
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "lr-constant": (GROWING, {"family": "constant", "lr0": 0.1}),
    "lr-diminishing": (GROWING, PER_STEP),
    "lr-linear": (GROWING, {"family": "linear", "lr0": 0.2}),
    "lr-poly": (GROWING, {"family": "poly", "lr0": 0.2, "power": 2.0}),
    "lr-cosine": (GROWING, {"family": "cosine", "lr0": 0.2, "lr_min": 0.01}),
    "lr-step_decay": (GROWING, {"family": "step_decay", "lr0": 0.2, "decay": 0.5, "interval": 2}),
    "lr-exp_growth-lr_max": (GROWING, {"family": "exp_growth", "lr0": 0.05, "lr_max": 0.4, "interval": 1}),
    "lr-exp_growth-factor": (GROWING, {"family": "exp_growth", "lr0": 0.05, "factor": 1.5, "interval": 1}),
    "lr-warmup_const": (
        GROWING,
        {"family": "warmup_const", "lr0": 0.05, "lr_max": 0.4, "warmup_epochs": 3, "warmup_interval": 1},
    ),
    "lr-warmup_cosine": (
        GROWING,
        {"family": "warmup_cosine", "lr0": 0.05, "lr_max": 0.4, "warmup_epochs": 2, "warmup_interval": 1},
    ),
    "lr-seesaw": (
        {"family": "constant", "b0": 8},
        {"family": "seesaw", "base": {"family": "step_decay", "lr0": 0.2, "decay": 0.5, "interval": 1}},
    ),
    "batch-constant": ({"family": "constant", "b0": 16}, PER_STEP),  # 100 = 6 x 16 + 4: a partial batch
    "batch-exp_growth-b_max": (
        {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 1, "b_max": 40},
        PER_STEP,
    ),
    "batch-linear_growth": (
        {"family": "linear_growth", "b0": 10, "increment": 7, "interval": 1, "b_max": 30},
        PER_STEP,
    ),
    # eps0 large: every check passes, so the stage moves mid-epoch until b_max.
    "batch-adaptive-moves": (
        {
            "family": "adaptive",
            "b0": 4,
            "factor": 2.0,
            "lr_factor": 1.4,
            "eps0": 50.0,
            "check_every": 7,
            "b_max": 64,
        },
        {"family": "cosine", "lr0": 0.2},
    ),
    # eps0 near the measured norms: some checks pass and some do not.
    "batch-adaptive-mixed": (
        {
            "family": "adaptive",
            "b0": 4,
            "factor": 2.0,
            "lr_factor": 1.2,
            "eps0": 0.1,
            "check_every": 5,
            "b_max": 32,
        },
        {"family": "diminishing", "lr0": 0.5},
    ),
}


def _spec(
    batch: dict[str, Any], lr: dict[str, Any], *, optimizer: str = "nshb", epochs: int = 4
) -> TrialSpec:
    return TrialSpec.from_json(
        {
            "task": TASK,
            "optimizer": {"name": optimizer, "momentum": 0.0 if optimizer == "sgd" else 0.9},
            "schedule": {"batch_size": batch, "lr": lr},
            "budget": {"max_epochs": epochs},
            "seed": 7,
        }
    )


@dataclasses.dataclass
class Seen:
    lrs: list[float]
    batches: list[list[int]]
    params: list[torch.Tensor]
    checks: list[bool] = dataclasses.field(default_factory=list)  # adaptive: each check's outcome


def _row_index(task: Task) -> dict[tuple[float, ...], int]:
    assert isinstance(task.train, TensorData)
    rows = {tuple(row): i for i, row in enumerate(task.train.x.tolist())}
    assert len(rows) == task.n_train  # distinct rows, so a batch maps back to its indices
    return rows


@contextmanager
def _observed_trainer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seen]:
    seen = Seen([], [], [])
    last: dict[str, torch.Tensor] = {}
    real_load_task, real_make_optimizer = trainer_module.load_task, trainer_module.make_optimizer

    def load_task_spy(name: str, options: Any, *, device: Any = None) -> Task:
        task = real_load_task(name, options, device=device)
        rows, build = _row_index(task), task.build_model

        def build_model() -> torch.nn.Module:
            model = build()
            model.register_forward_pre_hook(lambda _m, args: last.__setitem__("x", args[0]))
            seen.params = list(model.parameters())
            return model

        last["rows"] = rows  # type: ignore[assignment]
        return dataclasses.replace(task, build_model=build_model)

    def make_optimizer_spy(*args: Any, **kwargs: Any) -> Any:
        optimizer = real_make_optimizer(*args, **kwargs)
        update = optimizer.update

        def recording_update() -> None:
            rows: Any = last["rows"]
            seen.lrs.append(optimizer.param_groups[0]["lr"])
            seen.batches.append([rows[tuple(r)] for r in last["x"].tolist()])
            update()

        optimizer.update = recording_update
        return optimizer

    monkeypatch.setattr(trainer_module, "load_task", load_task_spy)
    monkeypatch.setattr(trainer_module, "make_optimizer", make_optimizer_spy)
    yield seen


def _trainer_run(spec: TrialSpec, monkeypatch: pytest.MonkeyPatch, device: str = "cpu") -> Seen:
    with _observed_trainer(monkeypatch) as seen:
        train(spec, device=device)
    monkeypatch.undo()
    return seen


def _adapter_run(spec: TrialSpec, device: str = "cpu") -> Seen:
    """The user's loop: a DataLoader over the training set, the adapters, and nothing from the trainer."""
    task = load_task(spec.task.name, spec.task.options, device=device)
    rows = _row_index(task)
    assert isinstance(task.train, TensorData)
    x_train, y_train = task.train.x, task.train.y
    clock = ScheduleClock(spec.schedule, Horizon(epochs=spec.budget.max_epochs, n_train=task.n_train))
    torch.manual_seed(spec.seed)
    model = task.build_model()
    optimizer = make_torch_optimizer(
        spec.optimizer.name, model.parameters(), momentum=spec.optimizer.momentum
    )
    scheduler = ScheduleLR(optimizer, clock)
    loader = DataLoader(
        TensorDataset(x_train, y_train),
        batch_sampler=ScheduleBatchSampler(clock, seed=spec.seed, device=device),
    )
    seen = Seen([], [], list(model.parameters()))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the trainer does for small tasks, so the float sums agree bit for bit
    try:
        for _ in range(clock.horizon.epochs):
            for x, y in loader:
                seen.lrs.append(optimizer.param_groups[0]["lr"])
                seen.batches.append([rows[tuple(r)] for r in x.tolist()])
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                if scheduler.grad_norm_due():
                    norm = full_gradient(
                        model, x_train, y_train, chunk=task.measure_chunk
                    ).grad_norm
                    seen.checks.append(scheduler.report_grad_norm(norm))
    finally:
        torch.set_num_threads(threads)
    return seen


@pytest.mark.parametrize("case", list(CASES))
def test_a_plain_loop_with_the_adapters_sees_the_trainers_lrs_and_batches(
    case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch, lr = CASES[case]
    spec = _spec(batch, lr)
    expected = _trainer_run(spec, monkeypatch)
    got = _adapter_run(spec)
    assert len(got.lrs) == len(expected.lrs) > 0
    assert got.lrs == expected.lrs  # exactly, step by step
    assert [len(b) for b in got.batches] == [len(b) for b in expected.batches]
    assert got.batches == expected.batches  # the same examples in the same order
    # Same batches, LRs and optimizer: the same trajectory.
    assert all(torch.equal(a, b) for a, b in zip(got.params, expected.params, strict=True))


def test_the_cases_exercise_every_family_and_both_adaptive_outcomes() -> None:
    from schedules.spec import BATCH_FAMILIES, LR_FAMILIES

    assert {b["family"] for b, _ in CASES.values()} == set(BATCH_FAMILIES)
    assert {lr["family"] for _, lr in CASES.values()} == set(LR_FAMILIES)
    moves = _adapter_run(_spec(*CASES["batch-adaptive-moves"])).checks
    assert moves and all(moves)  # every check moved the stage, up to b_max
    mixed = _adapter_run(_spec(*CASES["batch-adaptive-mixed"])).checks
    assert mixed.count(True) >= 2 and mixed.count(False) >= 2, mixed  # some checks moved it, some did not


@pytest.mark.parametrize("optimizer", ["shb", "sgd"])
def test_shb_and_sgd_follow_the_trainers_trajectory_too(
    optimizer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(GROWING, {"family": "cosine", "lr0": 0.05}, optimizer=optimizer, epochs=2)
    expected, got = _trainer_run(spec, monkeypatch), _adapter_run(spec)
    assert got.lrs == expected.lrs
    assert all(torch.equal(a, b) for a, b in zip(got.params, expected.params, strict=True))


@pytest.mark.gpu
def test_on_cuda_the_sampler_draws_the_trainers_permutations_with_device_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    spec = _spec(GROWING, PER_STEP)
    expected, got = _trainer_run(spec, monkeypatch, device="cuda"), _adapter_run(spec, device="cuda")
    assert got.lrs == expected.lrs
    assert got.batches == expected.batches  # CUDA's generator, not the CPU one: pass device="cuda"


# ---------------------------------------------------------------------------------------------- the clock


def _clock(batch: dict[str, Any], lr: dict[str, Any] | None = None, *, epochs: int = 2, n: int = 10) -> Any:
    schedule = Schedule.from_json({"batch_size": batch, "lr": lr or {"family": "constant", "lr0": 0.1}})
    return ScheduleClock(schedule, Horizon(epochs=epochs, n_train=n))


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, (0, 0, 4)),  # epoch 0, first batch
        (2, (0, 8, 2)),  # the epoch's last batch is partial: 10 = 4 + 4 + 2
        (3, (1, 0, 4)),  # epoch 1 starts a new permutation
        (5, (1, 8, 2)),  # the last step of the run
        (6, (1, 10, 0)),  # past the end: the last epoch, no batch
    ],
)
def test_clock_positions(step: int, expected: tuple[int, int, int]) -> None:
    p = _clock({"family": "constant", "b0": 4}).position(step)
    assert (p.epoch, p.offset, p.batch_size) == expected


def test_an_adaptive_stage_change_moves_the_rest_of_the_epoch_and_the_lr() -> None:
    clock = _clock(
        {"family": "adaptive", "b0": 2, "factor": 2.0, "lr_factor": 2.0, "check_every": 2, "b_max": 8},
        {"family": "constant", "lr0": 0.1},
        epochs=2,
    )
    assert clock.epoch_start(2) == 10  # stage 0 throughout: 5 + 5 steps of 2
    assert clock.grad_norm_due(2) and not clock.grad_norm_due(3)
    assert clock.report_grad_norm(2, 0.0) is True  # 0 <= eps0: the stage moves from step 2 on
    assert [clock.position(t).batch_size for t in range(5)] == [2, 2, 4, 2, 4]  # 2+2+4+2 = 10, then epoch 1
    assert (clock.lr(1), clock.lr(2)) == (0.1, 0.2)  # LR x lr_factor from the new stage
    assert clock.epoch_start(2) == 7
    with pytest.raises(ValueError, match="already reported"):
        clock.report_grad_norm(2, 0.0)
    with pytest.raises(ValueError, match="no gradient-norm check is due after steps_done=3"):
        clock.report_grad_norm(3, 0.0)


def test_an_adaptive_stage_change_for_a_batch_already_drawn_is_refused() -> None:
    clock = _clock({"family": "adaptive", "b0": 2, "check_every": 2, "b_max": 8})
    sampler = ScheduleBatchSampler(clock, seed=0)
    batches = iter(sampler)
    for _ in range(3):  # a DataLoader with workers draws ahead of the loop
        next(batches)
    with pytest.raises(RuntimeError, match="num_workers=0"):
        clock.report_grad_norm(2, 0.0)


def test_the_sampler_resumes_from_its_state_and_refuses_epochs_past_the_horizon() -> None:
    clock = _clock({"family": "constant", "b0": 3}, epochs=3)
    first = ScheduleBatchSampler(clock, seed=5)
    epochs = [list(first) for _ in range(3)]
    resumed = ScheduleBatchSampler(clock, seed=5)
    list(resumed)
    state = resumed.state_dict()
    again = ScheduleBatchSampler(clock, seed=5)
    again.load_state_dict(state)
    assert [list(again), list(again)] == epochs[1:]
    assert len(again) == 4  # ceil(10 / 3) batches per epoch
    with pytest.raises(RuntimeError, match="covers 3 epochs"):
        iter(again)


def test_the_lr_scheduler_resumes_from_its_state_dict() -> None:
    clock = _clock({"family": "constant", "b0": 3}, {"family": "diminishing", "lr0": 1.0}, epochs=3)
    model = torch.nn.Linear(2, 2)
    optimizer = make_torch_optimizer("nshb", model.parameters(), momentum=0.9)
    scheduler = ScheduleLR(optimizer, clock)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    other = make_torch_optimizer("nshb", torch.nn.Linear(2, 2).parameters(), momentum=0.9)
    resumed = ScheduleLR(other, ScheduleClock(clock.schedule, clock.horizon))
    resumed.load_state_dict(state)
    assert other.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 1.0 / 6**0.5  # step t = 5
    assert resumed.last_epoch == 5


def test_make_torch_optimizer_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="must be one of shb, nshb, sgd, got name='adam'"):
        make_torch_optimizer("adam", torch.nn.Linear(2, 2).parameters(), momentum=0.9)
