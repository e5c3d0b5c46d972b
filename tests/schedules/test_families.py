"""Stage-value tables of every family, against the paper's numbers (paper-notes §2.3) where it gives them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from schedules.spec import (
    Horizon,
    Schedule,
    SpecError,
    batch_plan,
    lr_plan,
    parse_batch,
    parse_lr,
    total_steps,
)

CIFAR = Horizon(epochs=300, n_train=50_000)


def stages(values: Sequence[float], interval: int) -> list[float]:
    return list(values[::interval])


def test_exp_growth_batch_doubles_every_30_epochs() -> None:
    b = parse_batch({"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30})
    plan = [b.at(e, CIFAR) for e in range(300)]
    assert stages(plan, 30) == [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
    assert plan[29] == 8 and plan[299] == 4096


def test_exp_growth_batch_affine_rescale_hits_b_max() -> None:
    b = parse_batch({"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30, "b_max": 1024})
    assert stages([b.at(e, CIFAR) for e in range(300)], 30) == [8, 10, 14, 22, 38, 70, 134, 261, 516, 1024]


def test_exp_growth_lr_reaches_lr_max_in_last_stage() -> None:
    lr = parse_lr({"family": "exp_growth", "lr0": 0.1, "lr_max": 1.0, "interval": 30})
    got = [round(lr.at(epoch=e, horizon=CIFAR), 4) for e in range(0, 300, 30)]
    assert got == [0.1, 0.1292, 0.1668, 0.2154, 0.2783, 0.3594, 0.4642, 0.5995, 0.7743, 1.0]


@pytest.mark.parametrize(
    ("params", "epoch", "expected"),
    [
        ({"lr_max": 0.5}, 30, 0.1 * 5 ** (1 / 9)),  # gamma = 5^(1/9) from lr_max alone
        ({"factor": 1.2}, 90, 0.1 * 1.2**3),  # factor alone: uncapped, third stage
        ({"factor": 1.2, "lr_max": 1.0}, 0, 0.1),  # both: affine rescale starts at lr0
        ({"factor": 1.2, "lr_max": 1.0}, 299, 1.0),  # ... and ends at lr_max
    ],
)
def test_exp_growth_lr_variants(params: dict[str, float], epoch: int, expected: float) -> None:
    lr = parse_lr({"family": "exp_growth", "lr0": 0.1, "interval": 30, **params})
    assert lr.at(epoch=epoch, horizon=CIFAR) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 0.1),  # first plateau
        (2, 0.1),  # still the first plateau of w=3 epochs
        (3, 0.1 * 10 ** (1 / 9)),  # second plateau: gamma_w = 10^(3/27)
        (26, 0.1 * 10 ** (8 / 9)),  # last plateau below lr_max
        (27, 1.0),  # lr_max reached at epoch 27 = W - w
        (150, 1.0),  # constant after the warm-up
    ],
)
def test_warmup_const(epoch: int, expected: float) -> None:
    lr = parse_lr(
        {"family": "warmup_const", "lr0": 0.1, "lr_max": 1.0, "warmup_epochs": 30, "warmup_interval": 3}
    )
    assert lr.at(epoch=epoch, horizon=CIFAR) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (27, 1.0),  # warm-up done
        (30, 1.0),  # cosine starts at lr_max
        (165, 0.5),  # half way through epochs 30..299
        (299, 0.5 * (1 + math.cos(math.pi * 269 / 270))),  # near lr_min = 0
    ],
)
def test_warmup_cosine(epoch: int, expected: float) -> None:
    lr = parse_lr({"family": "warmup_cosine", "lr0": 0.1, "lr_max": 1.0})
    assert lr.at(epoch=epoch, horizon=CIFAR) == pytest.approx(expected, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize(
    ("d", "step", "epoch", "expected"),
    [
        ({"family": "constant", "lr0": 0.1}, 500, 7, 0.1),  # never moves
        ({"family": "diminishing", "lr0": 0.1}, 3, 0, 0.05),  # 0.1 / sqrt(4)
        ({"family": "linear", "lr0": 0.1}, 50, 0, 0.05),  # half of T=100
        ({"family": "poly", "lr0": 0.1}, 50, 0, 0.025),  # (1/2)^2
        ({"family": "poly", "lr0": 0.1, "power": 1.0}, 100, 0, 0.0),  # zero at T
        ({"family": "cosine", "lr0": 0.1}, 0, 150, 0.05),  # half way through N=300
        ({"family": "cosine", "lr0": 0.1, "lr_min": 0.02}, 0, 300, 0.02),  # lr_min at N
        ({"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 30}, 0, 60, 0.025),  # two halvings
    ],
)
def test_lr_values(d: dict[str, object], step: int, epoch: int, expected: float) -> None:
    lr = parse_lr(d)
    assert lr.at(epoch=epoch, step=step, total_steps=100, horizon=CIFAR) == pytest.approx(expected, abs=1e-15)


def test_per_step_family_needs_total_steps() -> None:
    with pytest.raises(SpecError, match="total_steps"):
        parse_lr({"family": "linear", "lr0": 0.1}).at(epoch=0, step=3, horizon=CIFAR)


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (0, 16),  # b0
        (25, 24),  # one increment
        (199, 72),  # seventh increment, under the cap
        (10_000, 100),  # capped at b_max
    ],
)
def test_linear_growth(epoch: int, expected: int) -> None:
    b = parse_batch({"family": "linear_growth", "b0": 16, "increment": 8, "interval": 25, "b_max": 100})
    assert b.at(epoch, CIFAR) == expected


def test_adaptive_stage_values() -> None:
    b = parse_batch(
        {"family": "adaptive", "b0": 8, "factor": 2.0, "lr_factor": 1.4, "eps0": 0.5, "b_max": 4096}
    )
    assert [b.stage_batch(k) for k in (0, 1, 9, 12)] == [8, 16, 4096, 4096]  # type: ignore[attr-defined]
    assert b.stage_threshold(1) == pytest.approx(0.5 / math.sqrt(2))  # type: ignore[attr-defined]
    assert b.stage_lr_multiplier(2) == pytest.approx(1.96)  # type: ignore[attr-defined]
    assert b.max_stage == 9  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"b0": 8, "factor": 2.0, "b_max": 4096}, 9),  # 8 * 2^9 = 4096 exactly
        ({"b0": 8, "factor": 2.0, "b_max": 4000}, 9),  # 4096 capped to 4000 at the same stage
        ({"b0": 8, "factor": 3.0, "b_max": 8}, 0),  # no room to grow
        ({"b0": 8, "factor": 1.01, "b_max": 9}, 1),  # ceil(8.08) = 9 already at stage 1
    ],
)
def test_adaptive_max_stage(params: dict[str, float], expected: int) -> None:
    b = parse_batch({"family": "adaptive", **params})
    assert b.max_stage == expected  # type: ignore[attr-defined]
    assert b.stage_batch(expected) == params["b_max"]  # type: ignore[attr-defined]


def test_seesaw_trades_lr_cuts_for_batch() -> None:
    s = Schedule.from_json(
        {
            "batch_size": {"family": "constant", "b0": 8},
            "lr": {
                "family": "seesaw",
                "base": {"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 30},
            },
        }
    )
    h = Horizon(epochs=90, n_train=50_000)
    assert stages(batch_plan(s, h), 30) == [8, 16, 32]
    assert stages(lr_plan(s, h), 30) == pytest.approx([0.1, 0.1 / math.sqrt(2), 0.05])


def test_seesaw_on_cosine_to_zero_caps_cuts() -> None:
    s = Schedule.from_json(
        {
            "batch_size": {"family": "constant", "b0": 8},
            "lr": {"family": "seesaw", "base": {"family": "cosine", "lr0": 0.1}, "alpha": 2.0, "max_cuts": 3},
        }
    )
    h = Horizon(epochs=10, n_train=50_000)
    plan = batch_plan(s, h)
    assert max(plan) == 64 and plan == sorted(plan)  # 8 * 2^3 at most, never shrinking
    assert s.lr.at(epoch=9, horizon=h) == pytest.approx(0.1 / 2**1.5)


def test_batch_plan_clips_to_n_train() -> None:
    s = Schedule.from_json(
        {
            "batch_size": {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 1},
            "lr": {"family": "constant", "lr0": 0.1},
        }
    )
    assert batch_plan(s, Horizon(epochs=8, n_train=100)) == [8, 16, 32, 64, 100, 100, 100, 100]


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({"family": "constant", "b0": 128}, 117_300),  # 300 * ceil(50000/128)
        ({"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30}, 374_760),  # 8 -> 4096
    ],
)
def test_total_steps_paper(batch: dict[str, object], expected: int) -> None:
    s = Schedule.from_json({"batch_size": batch, "lr": {"family": "constant", "lr0": 0.1}})
    assert total_steps(s, CIFAR) == expected
