"""The theory check: strategy, guarantee and each condition of paper-notes §2.4, on the paper's settings."""

from __future__ import annotations

from typing import Any

import pytest

from schedules.spec import Horizon, Schedule
from schedules.theory import CONDITIONS, check

INCR_B = {"family": "exp_growth", "b0": 8, "factor": 2.0, "interval": 30}
CONST_B = {"family": "constant", "b0": 128}
EXP_10X = {"family": "exp_growth", "lr0": 0.1, "lr_max": 1.0, "interval": 30}
CIFAR = Horizon(epochs=300, n_train=50_000)


def sched(batch: dict[str, Any], lr: dict[str, Any]) -> Schedule:
    return Schedule.from_json({"batch_size": batch, "lr": lr})


@pytest.mark.parametrize(
    ("batch", "lr", "strategy", "guaranteed"),
    [
        (CONST_B, {"family": "cosine", "lr0": 0.1}, "i", False),  # constant batch: no guarantee
        (CONST_B, {"family": "diminishing", "lr0": 0.1}, "i", False),  # per-step decay is still (i)
        (INCR_B, {"family": "constant", "lr0": 0.1}, "ii", True),  # growing batch, flat LR
        (INCR_B, {"family": "poly", "lr0": 0.1}, "ii", True),  # growing batch, per-step decay
        (
            INCR_B,
            {"family": "exp_growth", "lr0": 0.1, "lr_max": 0.5, "interval": 30},
            "iii",
            True,
        ),  # 5x, beta 0.9
        (INCR_B, {"family": "warmup_cosine", "lr0": 0.1, "lr_max": 0.5}, "warmup", True),  # (iv)
        (INCR_B, {"family": "warmup_const", "lr0": 0.1, "lr_max": 0.5}, "warmup", True),  # flat after warm-up
        (CONST_B, EXP_10X, "other", False),  # growing LR on a constant batch
        # Seesaw trades LR cuts for batch growth: a growing batch with a decaying LR
        (
            CONST_B,
            {"family": "seesaw", "base": {"family": "step_decay", "lr0": 0.1, "decay": 0.5, "interval": 30}},
            "ii",
            True,
        ),
    ],
)
def test_strategy_and_guarantee(
    batch: dict[str, Any], lr: dict[str, Any], strategy: str, guaranteed: bool
) -> None:
    report = check(sched(batch, lr), optimizer="nshb", momentum=0.9, horizon=CIFAR)
    assert report.strategy == strategy
    assert report.converges_guaranteed is guaranteed


def test_beta_09_with_10x_growth_is_flagged_and_087_passes() -> None:
    # gamma = 10^(1/9) = 1.2915: 0.81 * 1.2915 = 1.046 >= 1, 0.87^2 * 1.2915 = 0.978 < 1 (paper-notes §2.4)
    bad = check(sched(INCR_B, EXP_10X), optimizer="nshb", momentum=0.9, horizon=CIFAR)
    good = check(sched(INCR_B, EXP_10X), optimizer="nshb", momentum=0.87, horizon=CIFAR)
    assert [v.code for v in bad.violations] == ["momentum_growth"]
    assert "1.046" in bad.violations[0].message and "beta^2 gamma" in bad.violations[0].message
    assert not bad.converges_guaranteed
    assert good.violations == () and good.converges_guaranteed
    assert good.gamma == pytest.approx(10 ** (1 / 9)) and good.delta == pytest.approx(2.0)


def test_growth_ratio_gamma_squared_below_delta() -> None:
    # gamma = 1.5 per 30-epoch stage: gamma^2 = 2.25 >= delta = 2
    fast = {"family": "exp_growth", "lr0": 0.01, "lr_max": 0.01 * 1.5**9, "interval": 30}
    report = check(sched(INCR_B, fast), optimizer="sgd", momentum=None, horizon=CIFAR)
    assert [v.code for v in report.violations] == ["growth_ratio"]
    assert "2.25" in report.violations[0].message
    # sgd has no momentum, so beta^2 gamma < 1 is not even checked
    assert "momentum_growth" not in report.checked


def test_uncapped_lr_growth_is_a_violation() -> None:
    report = check(
        sched(INCR_B, {"family": "exp_growth", "lr0": 0.1, "factor": 1.2, "interval": 30}),
        optimizer="nshb",
        momentum=0.8,
        horizon=CIFAR,
    )
    assert [v.code for v in report.violations] == ["lr_capped"]


def test_unknown_momentum_gives_no_guarantee() -> None:
    report = check(sched(INCR_B, EXP_10X), optimizer="nshb", momentum=None, horizon=CIFAR)
    assert report.violations == ()
    assert [w.code for w in report.warnings] == ["momentum_growth"]
    assert not report.converges_guaranteed


def test_affine_rescale_is_judged_by_its_smallest_growth() -> None:
    # b_max=1024 gives 8 -> 10 -> 14 ...: delta = 1.25 at epoch 30 < gamma^2 = 1.668 (conservative)
    report = check(sched({**INCR_B, "b_max": 1024}, EXP_10X), optimizer="nshb", momentum=0.87, horizon=CIFAR)
    assert report.delta == pytest.approx(1.25) and [v.code for v in report.violations] == ["growth_ratio"]


def test_adaptive_uses_its_factors() -> None:
    adaptive = {"family": "adaptive", "b0": 8, "factor": 2.0, "lr_factor": 1.4, "b_max": 4096}
    report = check(sched(adaptive, {"family": "constant", "lr0": 0.1}), optimizer="nshb", momentum=0.8)
    assert (report.strategy, report.gamma, report.delta) == ("iii", 1.4, 2.0)
    assert report.converges_guaranteed  # 0.64 * 1.4 < 1, 1.96 < 2, capped at b_max's stage


def test_short_budget_from_max_epochs() -> None:
    # the same 10x growth over 3 stages of a 9-epoch run: gamma = 10^(1/2) = 3.16 breaks both conditions
    s = sched({**INCR_B, "interval": 3}, {**EXP_10X, "interval": 3})
    report = check(s, optimizer="shb", momentum=0.87, max_epochs=9)
    assert {v.code for v in report.violations} == {"growth_ratio", "momentum_growth"}


def test_json_form() -> None:
    out = check(sched(CONST_B, {"family": "constant", "lr0": 0.1})).to_json()
    assert out["strategy"] == "i" and out["converges_guaranteed"] is False
    assert out["warnings"] == [{"code": "constant_batch", "message": out["warnings"][0]["message"]}]
    assert set(out) >= {"violations", "notes", "gamma", "delta", "momentum", "checked", "strategy_name"}


def test_conditions_live_in_one_table() -> None:
    assert [c.code for c in CONDITIONS] == ["constant_batch", "growth_ratio", "momentum_growth", "lr_capped"]
