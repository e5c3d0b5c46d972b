"""The paper's ordering on the embedded task (digits-mlp, 60 epochs, seed 0): see docs/reproduction.md.

Settings are the paper's scaled from 300 to 60 epochs (``bench/reproduction.py``), chosen before looking at
the outcome and not tuned afterwards. What is asserted is what held over seeds 0-2; the part of claim 1 that
did not hold here (the constant batch's plateau) is documented, not asserted.
"""

from __future__ import annotations

import math

import pytest

from bench.reproduction import EPOCHS, sfo_to, spec_for, strategies
from schedules.trainer import TrialResult, train

N_TRAIN = 1347
PAPER = ("paper-i", "paper-ii", "paper-iii", "paper-iv")


@pytest.fixture(scope="module")
def runs() -> dict[str, TrialResult]:
    return {name: train(spec_for(schedule, seed=0), device="cpu") for name, schedule in strategies().items()}


@pytest.mark.slow
def test_every_strategy_spends_the_same_sfo(runs: dict[str, TrialResult]) -> None:
    assert {r.summary.total_sfo for r in runs.values()} == {EPOCHS * N_TRAIN}
    # ... with very different step counts (paper-notes §6.3, item 7): b=128 takes 60 ceil(1347/128) steps; the
    # growing batch 6 epochs at each of 8, 16, ..., 1024 and 12 full-batch epochs (2048 clipped to 1347)
    assert runs["const-b128/const-lr"].summary.total_steps == 60 * 11
    assert runs["grow/const-lr"].summary.total_steps == 6 * (169 + 85 + 43 + 22 + 11 + 6 + 3 + 2 + 1 + 1)


@pytest.mark.slow
def test_growing_batch_ends_lower_at_equal_sfo(runs: dict[str, TrialResult]) -> None:
    const, grow = runs["const-b128/const-lr"].summary, runs["grow/const-lr"].summary
    assert grow.final_grad_norm is not None and const.final_grad_norm is not None
    # measured over seeds 0-2: 0.0155-0.0156 against 0.043-0.061 (about 3x); asserted with margin: 2x
    assert grow.final_grad_norm < 0.5 * const.final_grad_norm
    assert grow.min_grad_norm is not None and const.min_grad_norm is not None
    assert grow.min_grad_norm < 0.5 * const.min_grad_norm


@pytest.mark.slow
def test_warmup_with_growing_batch_reaches_the_tightest_target_in_the_fewest_sfo(
    runs: dict[str, TrialResult],
) -> None:
    # Of the targets declared in advance (0.05, 0.02, 0.01), the claim held over seeds 0-2 only at 0.01, where
    # the warm-up is the only strategy to get there; at 0.02 paper-ii was first for seed 0 and at 0.05 they
    # tie (docs/reproduction.md has the table).
    reached = {name: sfo_to(runs[name], 0.01) for name in PAPER}
    warmup = reached.pop("paper-iv")
    assert warmup is not None, "warm-up never reached 0.01"
    for name, sfo in reached.items():
        assert warmup < (sfo if sfo is not None else math.inf), f"{name} reached 0.01 at {sfo} SFO"


@pytest.mark.slow
def test_warmup_ends_lowest_of_the_paper_strategies(runs: dict[str, TrialResult]) -> None:
    finals = {name: runs[name].summary.final_grad_norm for name in PAPER}
    warmup = finals.pop("paper-iv")
    assert warmup is not None
    # measured over seeds 0-2: 0.0045-0.0048 against >= 0.013 for the others; asserted with margin: 2x
    assert all(other is not None and warmup < 0.5 * other for other in finals.values()), finals
